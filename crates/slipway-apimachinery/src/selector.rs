//! Label selectors and field selectors, parsed and matched the way the Kubernetes apiserver
//! does it (`k8s.io/apimachinery/pkg/labels` and `.../fields`).
//!
//! Label selector syntax (`?labelSelector=` and `kubectl -l`):
//!
//! ```text
//! selector    ::= requirement ( "," requirement )*
//! requirement ::= [ "!" ] KEY [ ( "in" | "notin" ) "(" VALUES ")" | ( "=" | "==" | "!=" | ">" | "<" ) VALUE ]
//! ```
//!
//! e.g. `tier=production,env in (dev, staging),!deprecated,gpu`. Keys are qualified names
//! (`[prefix/]name`), values are label values; both are validated like upstream.
//!
//! Field selector syntax (`?fieldSelector=`): `field=value`, `field==value`, `field!=value`,
//! comma-separated (AND), with `\,`, `\=` and `\\` escapes in values.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{Map, Value};

use crate::field::{FieldError, FieldPath};
use crate::meta::{check_label_value, check_qualified_name};
use crate::status::ApiError;

/// The operator of one label requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value` (same meaning as `=`, kept so the text round-trips)
    DoubleEquals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>3`: the label's value is an integer greater than 3.
    GreaterThan,
    /// `key<3`
    LessThan,
}

/// One `key <op> values` clause of a label selector.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and de-duplicated, as upstream's string sets are.
    values: BTreeSet<String>,
}

impl Requirement {
    /// A validated requirement; errors read like upstream's `NewRequirement`, with field paths
    /// under `path` (`key`, `values[0][key]`, ...).
    pub fn new(
        key: &str,
        operator: Operator,
        values: impl IntoIterator<Item = String>,
        path: &FieldPath,
    ) -> Result<Self, Vec<FieldError>> {
        let values: BTreeSet<String> = values.into_iter().collect();
        let mut errs = Vec::new();
        if let Some(problem) = check_qualified_name(key) {
            errs.push(FieldError::invalid(
                &path.child("key"),
                &Value::String(key.to_string()),
                problem,
            ));
        }
        let values_path = path.child("values");
        let shown = || Value::Array(values.iter().cloned().map(Value::String).collect());
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(FieldError::invalid(
                        &values_path,
                        &shown(),
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        &values_path,
                        &shown(),
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(FieldError::invalid(
                        &values_path,
                        &shown(),
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(FieldError::invalid(
                        &values_path,
                        &shown(),
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(FieldError::invalid(
                            &values_path.index(i),
                            &Value::String(v.clone()),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            if let Some(problem) = check_label_value(v) {
                errs.push(FieldError::invalid(
                    &values_path.index(i).key(key),
                    &Value::String(v.clone()),
                    problem,
                ));
            }
        }
        if errs.is_empty() {
            Ok(Self {
                key: key.to_string(),
                operator,
                values,
            })
        } else {
            Err(errs)
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    pub fn values(&self) -> &BTreeSet<String> {
        &self.values
    }

    /// Whether a set of labels satisfies this requirement. Labels whose value is not a string
    /// count as present with a value no requirement names.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let present = labels.and_then(|l| l.get(&self.key));
        let value = present.and_then(Value::as_str);
        let has_value = || value.is_some_and(|v| self.values.contains(v));
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                present.is_some() && has_value()
            }
            Operator::NotIn | Operator::NotEquals => present.is_none() || !has_value(),
            Operator::Exists => present.is_some(),
            Operator::DoesNotExist => present.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(actual) = value.and_then(|v| v.parse::<i64>().ok()) else {
                    return false;
                };
                let Some(wanted) = self
                    .values
                    .iter()
                    .next()
                    .and_then(|v| v.parse::<i64>().ok())
                else {
                    return false;
                };
                if self.values.len() != 1 {
                    return false;
                }
                match self.operator {
                    Operator::GreaterThan => actual > wanted,
                    _ => actual < wanted,
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = || {
            self.values
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(",")
        };
        match self.operator {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={}", self.key, joined()),
            Operator::DoubleEquals => write!(f, "{}=={}", self.key, joined()),
            Operator::NotEquals => write!(f, "{}!={}", self.key, joined()),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, joined()),
            Operator::LessThan => write!(f, "{}<{}", self.key, joined()),
            Operator::In => write!(f, "{} in ({})", self.key, joined()),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, joined()),
        }
    }
}

/// A label selector: the AND of its requirements. The empty selector matches everything;
/// [`LabelSelector::nothing`] (what a `null` `metav1.LabelSelector` means) matches nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    /// Sorted by key (then operator and values), as upstream sorts them after parsing.
    requirements: Vec<Requirement>,
    nothing: bool,
}

impl LabelSelector {
    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// The selector that matches no object.
    pub fn nothing() -> Self {
        Self {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// A selector from requirements (sorted into canonical order).
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort();
        Self {
            requirements,
            nothing: false,
        }
    }

    /// Parse the string syntax. Errors are 400 BadRequest with upstream's wording, e.g.
    /// `unable to parse requirement: found '', expected: '('`.
    #[allow(clippy::result_large_err)] // ApiError is the crate-wide error type
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let tokens = lex(text).map_err(ApiError::bad_request)?;
        let requirements = Parser { tokens, pos: 0 }
            .parse()
            .map_err(ApiError::bad_request)?;
        Ok(Self::from_requirements(requirements))
    }

    /// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`), with field errors
    /// relative to the selector (`matchExpressions[0].operator`). `null` selects nothing,
    /// `{}` selects everything, as `LabelSelectorAsSelector` does.
    pub fn from_json(value: &Value) -> Result<Self, Vec<FieldError>> {
        Self::from_json_at(value, &FieldPath::default())
    }

    /// [`LabelSelector::from_json`] with field errors under `path` (e.g. `spec.selector`).
    pub fn from_json_at(value: &Value, path: &FieldPath) -> Result<Self, Vec<FieldError>> {
        let obj = match value {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(vec![FieldError::type_invalid(
                    path,
                    other,
                    "must be an object",
                )]);
            }
        };
        let mut errs = Vec::new();
        let mut requirements = Vec::new();
        let labels_path = path.child("matchLabels");
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (k, v) in labels {
                    let Some(v) = v.as_str() else {
                        errs.push(FieldError::type_invalid(
                            &labels_path.key(k),
                            v,
                            "must be a string",
                        ));
                        continue;
                    };
                    if let Some(problem) = check_qualified_name(k) {
                        errs.push(FieldError::invalid(
                            &labels_path,
                            &Value::String(k.clone()),
                            problem,
                        ));
                        continue;
                    }
                    if let Some(problem) = check_label_value(v) {
                        errs.push(FieldError::invalid(
                            &labels_path.key(k),
                            &Value::String(v.to_string()),
                            problem,
                        ));
                        continue;
                    }
                    requirements.push(Requirement {
                        key: k.clone(),
                        operator: Operator::Equals,
                        values: BTreeSet::from([v.to_string()]),
                    });
                }
            }
            Some(other) => errs.push(FieldError::type_invalid(
                &labels_path,
                other,
                "must be an object",
            )),
        }
        let exprs_path = path.child("matchExpressions");
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    match requirement_from_json(expr, &exprs_path.index(i)) {
                        Ok(r) => requirements.push(r),
                        Err(mut e) => errs.append(&mut e),
                    }
                }
            }
            Some(other) => errs.push(FieldError::type_invalid(
                &exprs_path,
                other,
                "must be an array",
            )),
        }
        if errs.is_empty() {
            Ok(Self::from_requirements(requirements))
        } else {
            Err(errs)
        }
    }

    /// True when the selector does not restrict anything (matches every object).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// True for [`LabelSelector::nothing`].
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether an object with these labels (`metadata.labels`, absent = no labels) is selected.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The single value `key` must have, when the selector pins it (`key=v`, `key==v` or
    /// `key in (v)`), so callers can narrow a scan.
    pub fn exact_match(&self, key: &str) -> Option<&str> {
        let r = self.requirements.iter().find(|r| r.key == key)?;
        match r.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In if r.values.len() == 1 => {
                r.values.iter().next().map(String::as_str)
            }
            _ => None,
        }
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn requirement_from_json(expr: &Value, path: &FieldPath) -> Result<Requirement, Vec<FieldError>> {
    let Some(obj) = expr.as_object() else {
        return Err(vec![FieldError::type_invalid(
            path,
            expr,
            "must be an object",
        )]);
    };
    let mut errs = Vec::new();
    let key = match obj.get("key") {
        Some(Value::String(k)) => k.as_str(),
        None | Some(Value::Null) => {
            errs.push(FieldError::required(&path.child("key"), ""));
            ""
        }
        Some(other) => {
            errs.push(FieldError::type_invalid(
                &path.child("key"),
                other,
                "must be a string",
            ));
            ""
        }
    };
    let op_path = path.child("operator");
    let operator = match obj.get("operator") {
        Some(Value::String(op)) => match op.as_str() {
            "In" => Some(Operator::In),
            "NotIn" => Some(Operator::NotIn),
            "Exists" => Some(Operator::Exists),
            "DoesNotExist" => Some(Operator::DoesNotExist),
            _ => {
                errs.push(FieldError::not_supported(
                    &op_path,
                    &Value::String(op.clone()),
                    &["In", "NotIn", "Exists", "DoesNotExist"],
                ));
                None
            }
        },
        None | Some(Value::Null) => {
            errs.push(FieldError::required(&op_path, ""));
            None
        }
        Some(other) => {
            errs.push(FieldError::type_invalid(
                &op_path,
                other,
                "must be a string",
            ));
            None
        }
    };
    let values_path = path.child("values");
    let mut values = Vec::new();
    match obj.get("values") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                match v.as_str() {
                    Some(s) => values.push(s.to_string()),
                    None => errs.push(FieldError::type_invalid(
                        &values_path.index(i),
                        v,
                        "must be a string",
                    )),
                }
            }
        }
        Some(other) => errs.push(FieldError::type_invalid(
            &values_path,
            other,
            "must be an array",
        )),
    }
    match operator {
        Some(Operator::In | Operator::NotIn) if values.is_empty() => {
            errs.push(FieldError::required(
                &values_path,
                "must be specified when `operator` is 'In' or 'NotIn'",
            ))
        }
        Some(Operator::Exists | Operator::DoesNotExist) if !values.is_empty() => {
            errs.push(FieldError::forbidden(
                &values_path,
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            ))
        }
        _ => {}
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let Some(operator) = operator else {
        return Err(vec![FieldError::required(&op_path, "")]);
    };
    Requirement::new(key, operator, values, path)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    End,
    OpenPar,
    ClosedPar,
    Comma,
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
    Ident,
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn symbol(s: &str) -> Option<Tok> {
    Some(match s {
        "(" => Tok::OpenPar,
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::Not,
        "=" => Tok::Equals,
        "==" => Tok::DoubleEquals,
        "!=" => Tok::NotEquals,
        ">" => Tok::GreaterThan,
        "<" => Tok::LessThan,
        _ => return None,
    })
}

/// Split the selector into tokens, each with its literal text, ending with `Tok::End`.
fn lex(text: &str) -> Result<Vec<(Tok, String)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && is_space(chars[i]) {
            i += 1;
        }
        if i >= chars.len() {
            tokens.push((Tok::End, String::new()));
            return Ok(tokens);
        }
        if is_special(chars[i]) {
            // The longest run of special characters that is still a known symbol.
            let mut buf = String::new();
            let mut best: Option<(Tok, String)> = None;
            while i < chars.len() && is_special(chars[i]) {
                buf.push(chars[i]);
                if let Some(tok) = symbol(&buf) {
                    best = Some((tok, buf.clone()));
                    i += 1;
                } else if best.is_some() {
                    break;
                } else {
                    i += 1;
                }
            }
            match best {
                Some(found) => tokens.push(found),
                None => {
                    return Err(format!(
                        "unable to parse requirement: error expected: keyword found '{buf}'"
                    ));
                }
            }
        } else {
            let mut buf = String::new();
            while i < chars.len() && !is_special(chars[i]) && !is_space(chars[i]) {
                buf.push(chars[i]);
                i += 1;
            }
            let tok = match buf.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident,
            };
            tokens.push((tok, buf));
        }
    }
}

struct Parser {
    tokens: Vec<(Tok, String)>,
    pos: usize,
}

/// Keywords are identifiers wherever a key or a value is expected (`in in (in)` is valid).
fn as_value(tok: Tok) -> Tok {
    match tok {
        Tok::In | Tok::NotIn => Tok::Ident,
        other => other,
    }
}

impl Parser {
    fn peek(&self) -> (Tok, &str) {
        let (tok, lit) = &self.tokens[self.pos.min(self.tokens.len() - 1)];
        (*tok, lit.as_str())
    }

    fn next(&mut self) -> (Tok, String) {
        let item = self.tokens[self.pos.min(self.tokens.len() - 1)].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        item
    }

    fn parse(mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.peek();
            match as_value(tok) {
                Tok::Ident | Tok::Not => {
                    let r = self
                        .requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    let (tok, lit) = self.next();
                    match as_value(tok) {
                        Tok::End => return Ok(requirements),
                        Tok::Comma => {
                            let (next, lit) = self.peek();
                            if !matches!(as_value(next), Tok::Ident | Tok::Not) {
                                return Err(format!(
                                    "found '{lit}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => {
                            return Err(format!("found '{lit}', expected: ',' or 'end of string'"));
                        }
                    }
                }
                Tok::End => return Ok(requirements),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ));
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        let (mut tok, mut key) = self.next();
        let negated = tok == Tok::Not;
        if negated {
            (tok, key) = self.next();
        }
        if as_value(tok) != Tok::Ident {
            return Err(format!("found '{key}', expected: identifier"));
        }
        if let Some(problem) = check_qualified_name(&key) {
            return Err(format!("key: Invalid value: \"{key}\": {problem}"));
        }
        let (after, _) = self.peek();
        if negated || matches!(after, Tok::End | Tok::Comma) {
            let operator = if negated {
                Operator::DoesNotExist
            } else {
                Operator::Exists
            };
            return build(&key, operator, Vec::new());
        }
        let (tok, lit) = self.next();
        let operator = match tok {
            Tok::In => Operator::In,
            Tok::NotIn => Operator::NotIn,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::NotEquals => Operator::NotEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: '=', '!=', '==', 'in', notin'"
                ));
            }
        };
        let values = match operator {
            Operator::In | Operator::NotIn => self.set_values()?,
            _ => self.exact_value()?,
        };
        build(&key, operator, values)
    }

    /// `( a, b, c )`; empty entries (`(a,,b)`, `()`) are the empty value.
    fn set_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.next();
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (first, lit) = self.peek();
        let lit = lit.to_string();
        match as_value(first) {
            Tok::ClosedPar => {
                self.next();
                return Ok(vec![String::new()]);
            }
            Tok::Ident | Tok::Comma => {}
            _ => return Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
        let mut values = Vec::new();
        loop {
            let (tok, lit) = self.next();
            match as_value(tok) {
                Tok::Ident => {
                    values.push(lit);
                    let (after, lit2) = self.peek();
                    match after {
                        Tok::Comma => {}
                        Tok::ClosedPar => break,
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    match self.peek().0 {
                        Tok::ClosedPar => {
                            values.push(String::new());
                            break;
                        }
                        Tok::Comma => {
                            self.next();
                            values.push(String::new());
                        }
                        _ => {}
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
        let (tok, _) = self.next();
        if tok != Tok::ClosedPar {
            return Err(format!("found '{lit}', expected: ')'"));
        }
        Ok(values)
    }

    fn exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.peek();
        if matches!(tok, Tok::End | Tok::Comma) {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.next();
        if as_value(tok) == Tok::Ident {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

fn build(key: &str, operator: Operator, values: Vec<String>) -> Result<Requirement, String> {
    Requirement::new(key, operator, values, &FieldPath::default()).map_err(|errs| {
        match errs.as_slice() {
            [one] => one.to_string(),
            many => format!(
                "[{}]",
                many.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    })
}

/// One `field=value` / `field!=value` term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    pub field: String,
    /// `true` for `!=`.
    pub negated: bool,
    pub value: String,
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.negated { "!=" } else { "=" };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// A field selector: the AND of its terms. Empty matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parse `field=value,field!=value`; every field must be one of `supported` (the kind's
    /// selectable fields), otherwise 400 `field label not supported: <field>` as upstream.
    #[allow(clippy::result_large_err)] // ApiError is the crate-wide error type
    pub fn parse(text: &str, supported: &[&str]) -> Result<Self, ApiError> {
        let mut terms = split_unescaped_commas(text);
        terms.sort();
        let mut requirements = Vec::new();
        for term in terms {
            if term.trim().is_empty() {
                continue;
            }
            let Some((lhs, negated, rhs)) = split_field_term(term) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                )));
            };
            let value = unescape_field_value(rhs.trim()).map_err(ApiError::bad_request)?;
            let field = lhs.trim().to_string();
            if !supported.contains(&field.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            requirements.push(FieldRequirement {
                field,
                negated,
                value,
            });
        }
        Ok(Self { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value `field` must equal, when a `field=value` term pins it.
    pub fn exact_match(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && !r.negated)
            .map(|r| r.value.as_str())
    }

    /// Whether `obj` satisfies every term. Fields are dotted paths into the object
    /// (`metadata.name`, `spec.nodeName`); a missing field reads as the empty string, and
    /// numbers and booleans as their text.
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) != r.negated
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// The text of the field at a dotted path, or "" when absent.
fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for part in path.split('.') {
        match cur.get(part) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

fn split_unescaped_commas(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == ',' {
            terms.push(&text[start..i]);
            start = i + 1;
        }
    }
    terms.push(&text[start..]);
    terms
}

/// The first `!=`, `==` or `=` in the term splits it.
fn split_field_term(term: &str) -> Option<(&str, bool, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        if rest.starts_with("!=") {
            return Some((&term[..i], true, &term[i + 2..]));
        }
        if rest.starts_with("==") {
            return Some((&term[..i], false, &term[i + 2..]));
        }
        if rest.starts_with('=') {
            return Some((&term[..i], false, &term[i + 1..]));
        }
    }
    None
}

fn unescape_field_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    ));
                }
            }
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            ',' | '=' => {
                return Err(format!(
                    "invalid field selector: unescaped character in value: '{c}'"
                ));
            }
            other => out.push(other),
        }
    }
    if escaped {
        return Err("invalid field selector: invalid escape sequence: \\".into());
    }
    Ok(out)
}

fn escape_field_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn labels(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn parses_every_operator_and_prints_canonically() {
        let cases = [
            ("a=b", "a=b"),
            ("a==b", "a==b"),
            ("a!=b", "a!=b"),
            ("a in (y,x)", "a in (x,y)"),
            ("a  in(x , y , x)", "a in (x,y)"),
            ("a notin (x)", "a notin (x)"),
            ("a", "a"),
            ("!a", "!a"),
            (" ! a ", "!a"),
            ("z=1,a=2", "a=2,z=1"),
            ("a>3", "a>3"),
            ("a<3", "a<3"),
            ("a=", "a="),
            ("a in ()", "a in ()"),
            ("a in (x,,y)", "a in (,x,y)"),
            ("a in (x,)", "a in (,x)"),
            ("in in (in,notin)", "in in (in,notin)"),
            (
                "example.com/tier = production , env",
                "env,example.com/tier=production",
            ),
            ("", ""),
            ("  ", ""),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.to_string(), want, "input {input:?}");
        }
    }

    #[test]
    fn malformed_selectors_are_bad_requests_with_upstream_wording() {
        let cases = [
            (
                "a in",
                "unable to parse requirement: found '' expected: '('",
            ),
            (
                "a in (x",
                "unable to parse requirement: found '', expected: ',' or ')'",
            ),
            ("a=b c", "found 'c', expected: ',' or 'end of string'"),
            ("a,", "found '', expected: identifier after ','"),
            (
                "=a",
                "found '=', expected: !, identifier, or 'end of string'",
            ),
            (
                "a b",
                "unable to parse requirement: found 'b', expected: '=', '!=', '==', 'in', notin'",
            ),
            (
                "a=(",
                "unable to parse requirement: found '(', expected: identifier",
            ),
            ("!a=b", "found '=', expected: ',' or 'end of string'"),
            (
                "a>x",
                "for 'Gt', 'Lt' operators, the value must be an integer",
            ),
            (
                "bad key!=x",
                "found 'key', expected: '=', '!=', '==', 'in', notin'",
            ),
            (
                "-a=b",
                "unable to parse requirement: key: Invalid value: \"-a\": name part must consist of",
            ),
            (
                "a=-b",
                "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be",
            ),
            (
                &format!("a={}", "x".repeat(64)),
                "must be no more than 63 characters",
            ),
        ];
        for (input, want) in cases {
            let err = LabelSelector::parse(input).expect_err(input);
            assert_eq!(err.code, 400, "{input}");
            assert_eq!(err.reason, "BadRequest");
            assert!(
                err.message.contains(want),
                "{input:?}: got {:?}, want {want:?}",
                err.message
            );
        }
    }

    #[test]
    fn matching_follows_upstream_semantics() {
        let l = labels(json!({"tier": "prod", "env": "eu", "n": "5"}));
        let yes = [
            "",
            "tier=prod",
            "tier==prod",
            "tier!=dev",
            "absent!=x",
            "tier in (dev,prod)",
            "tier notin (dev)",
            "absent notin (x)",
            "tier",
            "!absent",
            "n>4",
            "n<6",
            "tier=prod,env=eu",
        ];
        let no = [
            "tier=dev",
            "absent=x",
            "tier!=prod",
            "tier in (dev)",
            "absent in (x)",
            "tier notin (prod)",
            "absent",
            "!tier",
            "n>5",
            "n<5",
            "tier>1",
            "absent>1",
            "tier=prod,env=us",
        ];
        for s in yes {
            assert!(
                LabelSelector::parse(s).unwrap().matches(Some(&l)),
                "{s} should match"
            );
        }
        for s in no {
            assert!(
                !LabelSelector::parse(s).unwrap().matches(Some(&l)),
                "{s} should not match"
            );
        }
        assert!(
            LabelSelector::parse("!a,b!=c,d notin (e)")
                .unwrap()
                .matches(None)
        );
        assert!(!LabelSelector::parse("a").unwrap().matches(None));
    }

    #[test]
    fn empty_and_nothing() {
        assert!(LabelSelector::parse("").unwrap().is_empty());
        assert!(!LabelSelector::parse("a").unwrap().is_empty());
        assert!(LabelSelector::everything().matches(None));
        assert!(!LabelSelector::nothing().matches(Some(&labels(json!({})))));
        assert!(!LabelSelector::nothing().is_empty());
    }

    #[test]
    fn exact_match_pins_a_value() {
        let sel = LabelSelector::parse("a=1,b in (2),c in (3,4),d!=5").unwrap();
        assert_eq!(sel.exact_match("a"), Some("1"));
        assert_eq!(sel.exact_match("b"), Some("2"));
        assert_eq!(sel.exact_match("c"), None);
        assert_eq!(sel.exact_match("d"), None);
        assert_eq!(sel.exact_match("e"), None);
    }

    #[test]
    fn metav1_label_selector_objects() {
        let sel = LabelSelector::from_json(&json!({
            "matchLabels": {"tier": "prod"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["eu", "us"]},
                {"key": "legacy", "operator": "DoesNotExist"},
                {"key": "gpu", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["a"]}
            ]
        }))
        .unwrap();
        assert_eq!(
            sel.to_string(),
            "env in (eu,us),gpu,!legacy,tier=prod,zone notin (a)"
        );
        assert!(sel.matches(Some(&labels(
            json!({"tier": "prod", "env": "eu", "gpu": ""})
        ))));
        assert!(!sel.matches(Some(&labels(json!({"tier": "prod", "env": "eu"})))));
        assert!(LabelSelector::from_json(&json!({})).unwrap().is_empty());
        assert!(LabelSelector::from_json(&Value::Null).unwrap().is_nothing());
    }

    #[test]
    fn metav1_label_selector_errors_name_fields() {
        let base = FieldPath::root("spec").child("selector");
        let errs = LabelSelector::from_json_at(
            &json!({
                "matchLabels": {"ok": "x", "bad key": "y", "v": "-x", "n": 1},
                "matchExpressions": [
                    {"key": "a", "operator": "Foo"},
                    {"key": "b", "operator": "In"},
                    {"key": "c", "operator": "Exists", "values": ["x"]},
                    {"operator": "Exists"},
                    {"key": "-d", "operator": "Exists"},
                    {"key": "e", "operator": "In", "values": ["-x"]}
                ]
            }),
            &base,
        )
        .unwrap_err();
        let fields: Vec<String> = errs.iter().map(|e| e.field.to_string()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.selector.matchLabels",
                "spec.selector.matchLabels[v]",
                "spec.selector.matchLabels[n]",
                "spec.selector.matchExpressions[0].operator",
                "spec.selector.matchExpressions[1].values",
                "spec.selector.matchExpressions[2].values",
                "spec.selector.matchExpressions[3].key",
                "spec.selector.matchExpressions[4].key",
                "spec.selector.matchExpressions[5].values[0][e]",
            ]
        );
        assert_eq!(
            errs[3].to_string(),
            "spec.selector.matchExpressions[0].operator: Unsupported value: \"Foo\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""
        );
        assert!(LabelSelector::from_json(&json!("x")).is_err());
    }

    #[test]
    fn field_selectors_parse_and_match() {
        let supported = [
            "metadata.name",
            "metadata.namespace",
            "spec.nodeName",
            "spec.replicas",
        ];
        let obj = json!({"metadata": {"name": "a", "namespace": "team"}, "spec": {"replicas": 3}});
        let cases = [
            ("", true),
            ("metadata.name=a", true),
            ("metadata.name==a", true),
            ("metadata.name!=a", false),
            ("metadata.name=a,metadata.namespace=team", true),
            ("metadata.name=a,metadata.namespace=other", false),
            ("spec.nodeName=", true),
            ("spec.nodeName!=", false),
            ("spec.replicas=3", true),
            (" metadata.name = a ", true),
        ];
        for (input, want) in cases {
            let sel =
                FieldSelector::parse(input, &supported).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(sel.matches(&obj), want, "{input}");
        }
        let sel =
            FieldSelector::parse("metadata.namespace!=x,metadata.name==a", &supported).unwrap();
        assert_eq!(sel.to_string(), "metadata.name=a,metadata.namespace!=x");
        assert_eq!(sel.exact_match("metadata.name"), Some("a"));
        assert_eq!(sel.exact_match("metadata.namespace"), None);
        let escaped = FieldSelector::parse(r"metadata.name=a\,b\=c\\d", &supported).unwrap();
        assert_eq!(escaped.requirements()[0].value, r"a,b=c\d");
        assert_eq!(escaped.to_string(), r"metadata.name=a\,b\=c\\d");
    }

    #[test]
    fn field_selector_errors() {
        let supported = ["metadata.name"];
        let cases = [
            ("spec.colour=red", "field label not supported: spec.colour"),
            (
                "metadata.name",
                "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
            ),
            (
                r"metadata.name=a\x",
                "invalid field selector: invalid escape sequence: \\x",
            ),
            (
                "metadata.name=a=b",
                "invalid field selector: unescaped character in value: '='",
            ),
            (
                r"metadata.name=a\",
                "invalid field selector: invalid escape sequence: \\",
            ),
        ];
        for (input, want) in cases {
            let err = FieldSelector::parse(input, &supported).expect_err(input);
            assert_eq!(err.code, 400);
            assert_eq!(err.message, want, "{input}");
        }
    }

    fn label_name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9]([-a-zA-Z0-9_.]{0,10}[a-zA-Z0-9])?"
    }

    fn label_key() -> impl Strategy<Value = String> {
        (
            proptest::option::of("[a-z0-9]([-a-z0-9]{0,6}[a-z0-9])?(\\.[a-z0-9]{1,5}){0,2}"),
            label_name(),
        )
            .prop_map(|(prefix, name)| match prefix {
                Some(p) => format!("{p}/{name}"),
                None => name,
            })
    }

    fn label_value() -> impl Strategy<Value = String> {
        prop_oneof![Just(String::new()), label_name()]
    }

    fn requirement() -> impl Strategy<Value = Requirement> {
        let op = prop_oneof![
            Just(Operator::Equals),
            Just(Operator::DoubleEquals),
            Just(Operator::NotEquals),
            Just(Operator::In),
            Just(Operator::NotIn),
            Just(Operator::Exists),
            Just(Operator::DoesNotExist),
            Just(Operator::GreaterThan),
            Just(Operator::LessThan),
        ];
        (
            label_key(),
            op,
            proptest::collection::vec(label_value(), 1..4),
            0u32..1000,
        )
            .prop_map(|(key, op, values, n)| {
                let values: Vec<String> = match op {
                    Operator::In | Operator::NotIn => values,
                    Operator::Exists | Operator::DoesNotExist => Vec::new(),
                    Operator::GreaterThan | Operator::LessThan => vec![n.to_string()],
                    _ => values.into_iter().take(1).collect(),
                };
                Requirement::new(&key, op, values, &FieldPath::default()).unwrap()
            })
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(reqs in proptest::collection::vec(requirement(), 0..5)) {
            let sel = LabelSelector::from_requirements(reqs);
            let text = sel.to_string();
            let parsed = LabelSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(parsed, sel);
        }

        #[test]
        fn parse_never_panics(text in "[a-z!=(), <>in]{0,30}") {
            let _ = LabelSelector::parse(&text);
        }
    }
}
