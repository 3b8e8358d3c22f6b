//! Built-in Kubernetes kinds Slipway serves, one module per kind. Each module's `resource()`
//! names what the k8s-openapi type does not say (short names, printer columns, status
//! subresource) and the kind's strategy; group, version, plural, scope and schema come from
//! the k8s-openapi type itself (see [`crate::resource::builtin`]).

pub mod apps;
pub mod configmap;
pub mod event;
pub mod lease;
pub mod namespace;
pub mod node;
pub mod pdb;
pub mod pod;
pub mod podspec;
pub mod secret;

use serde_json::Value;
use slipway_apimachinery::{FieldError, FieldPath};

/// Objects with an `immutable` field (ConfigMap, Secret): once `immutable: true` is stored,
/// the `fields` may not change and `immutable` may not be unset.
fn check_immutable_data(obj: &Value, old: &Value, fields: &[&str], errs: &mut Vec<FieldError>) {
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return;
    }
    if obj.get("immutable") != Some(&Value::Bool(true)) {
        errs.push(FieldError::forbidden(
            &FieldPath::root("immutable"),
            "field is immutable when `immutable` is set",
        ));
    }
    for field in fields {
        let empty = |v: Option<&Value>| {
            v.is_none_or(|v| v.is_null() || v.as_object().is_some_and(|m| m.is_empty()))
        };
        let same = obj.get(*field) == old.get(*field)
            || (empty(obj.get(*field)) && empty(old.get(*field)));
        if !same {
            errs.push(FieldError::forbidden(
                &FieldPath::root(field),
                "field is immutable when `immutable` is set",
            ));
        }
    }
}

/// The string at a JSON pointer, if there is one.
fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}
