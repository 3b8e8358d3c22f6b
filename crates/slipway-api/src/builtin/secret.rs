//! core `v1` **Secret**: small pieces of sensitive data, base64-encoded in `data`.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::core::v1::Secret;
use serde_json::{Map, Value};
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldErrorType, FieldPath};

use super::{check_immutable_data, str_at};
use crate::checks;
use crate::resource::{Builtin, age_column, builtin, column};

/// The largest total size of a Secret's data, as upstream.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// Secret: `Type` column.
pub fn resource() -> ResourceDef {
    builtin::<Secret>(Builtin {
        short_names: &[],
        printer_columns: vec![
            column(
                "Type",
                "string",
                ".type",
                "The type of the secret, e.g. Opaque or kubernetes.io/tls",
            ),
            age_column(),
        ],
        status_subresource: false,
        strategy: Arc::new(SecretStrategy),
    })
}

/// `type` defaults to `Opaque`; `stringData` is merged into `data` (base64-encoded) on write,
/// as upstream does; data keys and values, per-type required keys and immutability are checked.
pub struct SecretStrategy;

impl Strategy for SecretStrategy {
    fn default(&self, obj: &mut Value) {
        let Some(root) = obj.as_object_mut() else {
            return;
        };
        if root
            .get("type")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            root.insert("type".into(), Value::String("Opaque".into()));
        }
        // Merge only a well-formed stringData; anything else stays for validation to report.
        let well_formed = root
            .get("stringData")
            .and_then(Value::as_object)
            .is_some_and(|m| m.values().all(Value::is_string));
        let data_ok = root
            .get("data")
            .is_none_or(|d| d.is_null() || d.is_object());
        if !(well_formed && data_ok) {
            return;
        }
        let Some(Value::Object(string_data)) = root.remove("stringData") else {
            return;
        };
        let data = root
            .entry("data")
            .or_insert_with(|| Value::Object(Map::new()));
        if data.is_null() {
            *data = Value::Object(Map::new());
        }
        if let Some(data) = data.as_object_mut() {
            for (k, v) in string_data {
                if let Value::String(s) = v {
                    data.insert(k, Value::String(STANDARD.encode(s)));
                }
            }
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let data_path = FieldPath::root("data");
        let mut total = 0usize;
        let data = obj.get("data").and_then(Value::as_object);
        for (k, v) in data.into_iter().flatten() {
            if let Some(problem) = checks::check_config_key(k) {
                errs.push(FieldError::invalid(
                    &data_path.key(k),
                    &Value::String(k.clone()),
                    problem,
                ));
            }
            match v.as_str().map(|s| STANDARD.decode(s)) {
                Some(Ok(bytes)) => total += bytes.len(),
                Some(Err(_)) => errs.push(FieldError::invalid(
                    &data_path.key(k),
                    &Value::String("<secret contents redacted>".into()),
                    "must be base64-encoded: data holds the base64 encoding of each value (use stringData for plain text)",
                )),
                None => errs.push(FieldError::type_invalid(&data_path.key(k), v, "must be a base64-encoded string")),
            }
        }
        let string_data_path = FieldPath::root("stringData");
        for (k, v) in obj
            .get("stringData")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(problem) = checks::check_config_key(k) {
                errs.push(FieldError::invalid(
                    &string_data_path.key(k),
                    &Value::String(k.clone()),
                    problem,
                ));
            }
            total += v.as_str().map_or(0, str::len);
        }
        if total > MAX_SECRET_BYTES {
            errs.push(FieldError {
                kind: FieldErrorType::TooLong,
                field: data_path.clone(),
                value: None,
                detail: format!("may not be more than {MAX_SECRET_BYTES} bytes"),
            });
        }
        check_type_keys(obj, &mut errs);
        if let Some(old) = old {
            let new_type = str_at(obj, "/type").unwrap_or("Opaque");
            let old_type = str_at(old, "/type").unwrap_or("Opaque");
            if new_type != old_type {
                errs.push(FieldError::invalid(
                    &FieldPath::root("type"),
                    &Value::String(new_type.into()),
                    "field is immutable",
                ));
            }
            check_immutable_data(obj, old, &["data", "stringData"], &mut errs);
        }
        errs
    }
}

/// The keys each well-known secret type requires, as upstream checks them.
fn check_type_keys(obj: &Value, errs: &mut Vec<FieldError>) {
    let has = |key: &str| {
        obj.pointer("/data").and_then(|d| d.get(key)).is_some()
            || obj
                .pointer("/stringData")
                .and_then(|d| d.get(key))
                .is_some()
    };
    let data = FieldPath::root("data");
    let mut require = |key: &str| {
        if !has(key) {
            errs.push(FieldError::required(&data.key(key), ""));
        }
    };
    match str_at(obj, "/type").unwrap_or("Opaque") {
        "kubernetes.io/tls" => {
            require("tls.crt");
            require("tls.key");
        }
        "kubernetes.io/dockerconfigjson" => require(".dockerconfigjson"),
        "kubernetes.io/dockercfg" => require(".dockercfg"),
        "kubernetes.io/ssh-auth" => require("ssh-privatekey"),
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required(
                &data.key("username"),
                "basic-auth secrets need a username or a password",
            ));
        }
        "kubernetes.io/service-account-token"
            if !has_annotation(obj, SERVICE_ACCOUNT_ANNOTATION) =>
        {
            errs.push(FieldError::required(
                &FieldPath::root("metadata")
                    .child("annotations")
                    .key(SERVICE_ACCOUNT_ANNOTATION),
                "",
            ));
        }
        _ => {}
    }
}

const SERVICE_ACCOUNT_ANNOTATION: &str = "kubernetes.io/service-account.name";

fn has_annotation(obj: &Value, key: &str) -> bool {
    obj.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .is_some()
}
