//! core `v1` **ConfigMap**: non-secret configuration, as strings (`data`) or bytes
//! (`binaryData`, base64-encoded).

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::Value;
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldErrorType, FieldPath};

use super::check_immutable_data;
use crate::checks;
use crate::resource::{Builtin, age_column, builtin};

/// The largest total size of a ConfigMap's data, as upstream.
pub const MAX_CONFIG_MAP_BYTES: usize = 1024 * 1024;

/// ConfigMap: short name `cm`.
pub fn resource() -> ResourceDef {
    builtin::<ConfigMap>(Builtin {
        short_names: &["cm"],
        printer_columns: vec![age_column()],
        status_subresource: false,
        strategy: Arc::new(ConfigMapStrategy),
    })
}

/// Keys valid and not in both `data` and `binaryData`, binary values base64, total size at
/// most 1 MiB, immutability.
pub struct ConfigMapStrategy;

impl Strategy for ConfigMapStrategy {
    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let data_path = FieldPath::root("data");
        let binary_path = FieldPath::root("binaryData");
        let data = obj.get("data").and_then(Value::as_object);
        let binary = obj.get("binaryData").and_then(Value::as_object);
        let mut total = 0usize;
        for (k, v) in data.into_iter().flatten() {
            if let Some(problem) = checks::check_config_key(k) {
                errs.push(FieldError::invalid(
                    &data_path.key(k),
                    &Value::String(k.clone()),
                    problem,
                ));
            }
            if binary.is_some_and(|b| b.contains_key(k)) {
                errs.push(FieldError::invalid(
                    &data_path.key(k),
                    &Value::String(k.clone()),
                    "duplicate of key present in binaryData",
                ));
            }
            total += k.len() + v.as_str().map_or(0, str::len);
        }
        for (k, v) in binary.into_iter().flatten() {
            if let Some(problem) = checks::check_config_key(k) {
                errs.push(FieldError::invalid(
                    &binary_path.key(k),
                    &Value::String(k.clone()),
                    problem,
                ));
            }
            match v.as_str().map(|s| STANDARD.decode(s)) {
                Some(Ok(bytes)) => total += k.len() + bytes.len(),
                Some(Err(_)) => errs.push(FieldError::invalid(
                    &binary_path.key(k),
                    v,
                    "must be base64-encoded",
                )),
                None => errs.push(FieldError::type_invalid(
                    &binary_path.key(k),
                    v,
                    "must be a base64-encoded string",
                )),
            }
        }
        if total > MAX_CONFIG_MAP_BYTES {
            errs.push(FieldError {
                kind: FieldErrorType::TooLong,
                field: data_path,
                value: None,
                detail: format!(
                    "data and binaryData may not be more than {MAX_CONFIG_MAP_BYTES} bytes together"
                ),
            });
        }
        if let Some(old) = old {
            check_immutable_data(obj, old, &["data", "binaryData"], &mut errs);
        }
        errs
    }
}
