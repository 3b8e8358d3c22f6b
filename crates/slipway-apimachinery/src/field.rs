//! Field paths (`spec.nodePools[1].minReplicas`) and field errors, worded like upstream's
//! `field.Error` so kubectl users read familiar messages.

use std::fmt;

use serde_json::Value;

use crate::status::StatusCause;

/// A path to a field inside an object, rendered `a.b[2].c` or `a.b[key]` for maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn root(name: &str) -> Self {
        Self(name.to_string())
    }

    pub fn child(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    pub fn key(&self, key: &str) -> Self {
        Self(format!("{}[{key}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorType {
    Required,
    Invalid,
    NotSupported,
    Duplicate,
    Forbidden,
    TooLong,
    TooMany,
    /// A field the schema does not know (strict field validation).
    Unknown,
    TypeInvalid,
}

impl FieldErrorType {
    /// The `Status.details.causes[].reason` string upstream uses.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Unknown => "FieldValueInvalid",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub kind: FieldErrorType,
    pub field: FieldPath,
    /// The offending value, when there is one to show.
    pub value: Option<Value>,
    /// What is wrong and what is allowed.
    pub detail: String,
}

impl FieldError {
    pub fn required(field: &FieldPath, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::Required,
            field: field.clone(),
            value: None,
            detail: detail.into(),
        }
    }

    pub fn invalid(field: &FieldPath, value: &Value, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::Invalid,
            field: field.clone(),
            value: Some(value.clone()),
            detail: detail.into(),
        }
    }

    pub fn not_supported(field: &FieldPath, value: &Value, allowed: &[&str]) -> Self {
        let quoted: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        Self {
            kind: FieldErrorType::NotSupported,
            field: field.clone(),
            value: Some(value.clone()),
            detail: format!("supported values: {}", quoted.join(", ")),
        }
    }

    pub fn duplicate(field: &FieldPath, value: &Value) -> Self {
        Self {
            kind: FieldErrorType::Duplicate,
            field: field.clone(),
            value: Some(value.clone()),
            detail: String::new(),
        }
    }

    pub fn forbidden(field: &FieldPath, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::Forbidden,
            field: field.clone(),
            value: None,
            detail: detail.into(),
        }
    }

    pub fn unknown(field: &FieldPath) -> Self {
        Self {
            kind: FieldErrorType::Unknown,
            field: field.clone(),
            value: None,
            detail: format!("unknown field \"{field}\""),
        }
    }

    pub fn type_invalid(field: &FieldPath, value: &Value, detail: impl Into<String>) -> Self {
        Self {
            kind: FieldErrorType::TypeInvalid,
            field: field.clone(),
            value: Some(value.clone()),
            detail: detail.into(),
        }
    }

    /// The `details.causes` entry: its message is the error without the field (upstream's
    /// `ErrorBody`), since clients print `field: message`.
    pub fn to_cause(&self) -> StatusCause {
        let full = self.to_string();
        let field = self.field.to_string();
        let message = full
            .strip_prefix(&format!("{field}: "))
            .map_or_else(|| full.clone(), str::to_string);
        StatusCause {
            reason: self.kind.reason().to_string(),
            message,
            field,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |v: &Option<Value>| match v {
            Some(Value::String(s)) => format!("\"{s}\""),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        match self.kind {
            FieldErrorType::Required => write!(f, "{}: Required value", self.field)?,
            FieldErrorType::Invalid => {
                write!(f, "{}: Invalid value: {}", self.field, shown(&self.value))?
            }
            FieldErrorType::NotSupported => write!(
                f,
                "{}: Unsupported value: {}",
                self.field,
                shown(&self.value)
            )?,
            FieldErrorType::Duplicate => {
                write!(f, "{}: Duplicate value: {}", self.field, shown(&self.value))?
            }
            FieldErrorType::Forbidden => write!(f, "{}: Forbidden", self.field)?,
            FieldErrorType::TooLong => write!(f, "{}: Too long", self.field)?,
            FieldErrorType::TooMany => write!(f, "{}: Too many", self.field)?,
            FieldErrorType::TypeInvalid => {
                write!(f, "{}: Invalid value: {}", self.field, shown(&self.value))?
            }
            FieldErrorType::Unknown => return write!(f, "{}", self.detail),
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_render_like_upstream() {
        let p = FieldPath::root("spec")
            .child("nodePools")
            .index(1)
            .child("minReplicas");
        assert_eq!(p.as_str(), "spec.nodePools[1].minReplicas");
        assert_eq!(
            FieldPath::root("metadata")
                .child("labels")
                .key("a/b")
                .as_str(),
            "metadata.labels[a/b]"
        );
    }

    #[test]
    fn messages_name_field_value_and_rule() {
        let p = FieldPath::root("spec").child("version");
        let e = FieldError::invalid(
            &p,
            &json!("banana"),
            "must be a Kubernetes version such as 1.33.4",
        );
        assert_eq!(
            e.to_string(),
            "spec.version: Invalid value: \"banana\": must be a Kubernetes version such as 1.33.4"
        );
        assert_eq!(
            FieldError::required(&p, "").to_string(),
            "spec.version: Required value"
        );
        assert_eq!(
            FieldError::unknown(&FieldPath::root("spec").child("colour")).to_string(),
            "unknown field \"spec.colour\""
        );
    }
}
