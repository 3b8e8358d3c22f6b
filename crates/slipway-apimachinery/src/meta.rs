//! `metadata` on untyped objects: accessors and the validation every kind shares.

use serde_json::Value;

use crate::field::{FieldError, FieldPath};

pub fn name(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/name").and_then(Value::as_str)
}

pub fn namespace(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/namespace").and_then(Value::as_str)
}

pub fn resource_version(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

pub fn uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/uid").and_then(Value::as_str)
}

pub fn labels(obj: &Value) -> Option<&serde_json::Map<String, Value>> {
    obj.pointer("/metadata/labels").and_then(Value::as_object)
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|f| f.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn deletion_timestamp(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
}

/// `metadata` as a mutable map, created if missing or not an object.
pub fn metadata_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(serde_json::Map::new());
    }
    let map = obj.as_object_mut().expect("made an object above");
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(serde_json::Map::new());
    }
    meta.as_object_mut().expect("made an object above")
}

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;

/// A DNS-1123 label: lower-case alphanumerics and '-', starting and ending alphanumeric,
/// at most 63 characters. `None` when valid, otherwise what is wrong.
pub fn check_dns1123_label(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("must not be empty".into());
    }
    if value.len() > DNS1123_LABEL_MAX {
        return Some(format!(
            "must be no more than {DNS1123_LABEL_MAX} characters"
        ));
    }
    if !is_label_chars(value) {
        return Some(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into(),
        );
    }
    None
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub fn check_dns1123_subdomain(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("must not be empty".into());
    }
    if value.len() > DNS1123_SUBDOMAIN_MAX {
        return Some(format!(
            "must be no more than {DNS1123_SUBDOMAIN_MAX} characters"
        ));
    }
    if !value.split('.').all(is_label_chars) {
        return Some(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into(),
        );
    }
    None
}

fn is_label_chars(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// A label or annotation key: optional DNS subdomain prefix and '/', then a name of at most
/// 63 characters of alphanumerics, '-', '_' and '.', starting and ending alphanumeric.
pub fn check_qualified_name(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && let Some(err) = check_dns1123_subdomain(prefix)
    {
        return Some(format!("prefix part {err}"));
    }
    if name.is_empty() || name.len() > 63 {
        return Some("name part must be non-empty and no more than 63 characters".into());
    }
    if !is_qualified_chars(name) {
        return Some("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into());
    }
    None
}

/// A label value: empty, or at most 63 characters like a qualified name part.
pub fn check_label_value(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    if value.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    if !is_qualified_chars(value) {
        return Some("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".into());
    }
    None
}

fn is_qualified_chars(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Validate the parts of `metadata` every kind shares: name (DNS-1123 subdomain, or label when
/// `name_is_label`), labels, annotations, finalizers.
pub fn validate_metadata(obj: &Value, name_is_label: bool) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let meta = FieldPath::root("metadata");
    match name(obj) {
        None | Some("") => errs.push(FieldError::required(
            &meta.child("name"),
            "name or generateName is required",
        )),
        Some(n) => {
            let problem = if name_is_label {
                check_dns1123_label(n)
            } else {
                check_dns1123_subdomain(n)
            };
            if let Some(problem) = problem {
                errs.push(FieldError::invalid(
                    &meta.child("name"),
                    &Value::String(n.into()),
                    problem,
                ));
            }
        }
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        let path = meta.child("labels");
        for (k, v) in labels {
            if let Some(problem) = check_qualified_name(k) {
                errs.push(FieldError::invalid(
                    &path,
                    &Value::String(k.clone()),
                    problem,
                ));
            }
            match v.as_str() {
                Some(s) => {
                    if let Some(problem) = check_label_value(s) {
                        errs.push(FieldError::invalid(&path.key(k), v, problem));
                    }
                }
                None => errs.push(FieldError::type_invalid(
                    &path.key(k),
                    v,
                    "must be a string",
                )),
            }
        }
    }
    if let Some(annotations) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        let path = meta.child("annotations");
        let mut total = 0usize;
        for (k, v) in annotations {
            if let Some(problem) = check_qualified_name(k) {
                errs.push(FieldError::invalid(
                    &path,
                    &Value::String(k.clone()),
                    problem,
                ));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        if total > 256 * 1024 {
            errs.push(FieldError {
                kind: crate::field::FieldErrorType::TooLong,
                field: path,
                value: None,
                detail: "may not have more than 262144 bytes".into(),
            });
        }
    }
    for (i, f) in finalizers(obj).iter().enumerate() {
        if let Some(problem) = check_qualified_name(f) {
            errs.push(FieldError::invalid(
                &meta.child("finalizers").index(i),
                &Value::String(f.clone()),
                problem,
            ));
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dns_names() {
        assert!(check_dns1123_label("payments-eu").is_none());
        assert!(check_dns1123_label("Payments").is_some());
        assert!(check_dns1123_label("-a").is_some());
        assert!(check_dns1123_label(&"a".repeat(64)).is_some());
        assert!(check_dns1123_subdomain("a.b-c.d").is_none());
        assert!(check_dns1123_subdomain("a..b").is_some());
    }

    #[test]
    fn metadata_errors_name_the_field() {
        let obj = json!({"metadata": {"name": "Bad_Name", "labels": {"ok": "x", "bad key!": "y", "v": "-x"}}});
        let errs = validate_metadata(&obj, false);
        let fields: Vec<String> = errs.iter().map(|e| e.field.to_string()).collect();
        assert_eq!(
            fields,
            vec!["metadata.name", "metadata.labels", "metadata.labels[v]"]
        );
        assert_eq!(
            validate_metadata(&json!({"metadata": {}}), false)[0]
                .field
                .as_str(),
            "metadata.name"
        );
    }
}
