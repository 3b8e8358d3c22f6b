//! core `v1` **Namespace**: cluster-scoped; in Slipway a namespace is a team.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Namespace;
use serde_json::{Map, Value};
use slipway_apimachinery::meta;
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldPath};

use crate::checks;
use crate::resource::{Builtin, age_column, builtin, column};

/// The phases a namespace can be in.
pub const PHASES: &[&str] = &["Active", "Terminating"];

/// Namespace: short name `ns`, `Status` column, `/status` subresource.
pub fn resource() -> ResourceDef {
    builtin::<Namespace>(Builtin {
        short_names: &["ns"],
        printer_columns: vec![
            column(
                "Status",
                "string",
                ".status.phase",
                "The phase of the namespace: Active or Terminating",
            ),
            age_column(),
        ],
        status_subresource: true,
        strategy: Arc::new(NamespaceStrategy),
    })
}

/// Names are DNS-1123 labels; `spec` defaults to `{}` and `status.phase` to `Active`.
pub struct NamespaceStrategy;

impl Strategy for NamespaceStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(root) = obj.as_object_mut() else {
            return;
        };
        // Always present, as server-side apply's merge leaves it: a create and a later apply
        // of the same manifest give the same object.
        let spec = root
            .entry("spec")
            .or_insert_with(|| Value::Object(Map::new()));
        if spec.is_null() {
            *spec = Value::Object(Map::new());
        }
        let status = root
            .entry("status")
            .or_insert_with(|| Value::Object(Map::new()));
        if status.is_null() {
            *status = Value::Object(Map::new());
        }
        if let Some(status) = status.as_object_mut() {
            let phase = status.entry("phase").or_insert(Value::Null);
            if phase.as_str().is_none_or(str::is_empty) {
                *phase = Value::String("Active".into());
            }
        }
    }

    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        checks::check_name_is_label(obj, &mut errs);
        if let Some(phase) = obj.pointer("/status/phase")
            && !phase.as_str().is_some_and(|p| PHASES.contains(&p))
        {
            errs.push(FieldError::not_supported(
                &FieldPath::root("status").child("phase"),
                phase,
                PHASES,
            ));
        }
        if let Some(finalizers) = obj.pointer("/spec/finalizers").and_then(Value::as_array) {
            for (i, f) in finalizers.iter().enumerate() {
                let at = FieldPath::root("spec").child("finalizers").index(i);
                match f.as_str() {
                    Some(name) => {
                        if let Some(problem) = meta::check_qualified_name(name) {
                            errs.push(FieldError::invalid(&at, f, problem));
                        }
                    }
                    None => errs.push(FieldError::type_invalid(&at, f, "must be a string")),
                }
            }
        }
        errs
    }
}
