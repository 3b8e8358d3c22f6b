//! core `v1` **Event**: what happened to an object, for `kubectl get events` and `describe`.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Event;
use serde_json::Value;
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldPath};

use super::str_at;
use crate::resource::{Builtin, builtin, column, wide_column};

/// The event types.
pub const TYPES: &[&str] = &["Normal", "Warning"];

/// Event: short name `ev`; columns as close to upstream's as JSONPath allows (upstream prints
/// `kind/name` for the object and falls back from lastTimestamp to eventTime for Last Seen).
pub fn resource() -> ResourceDef {
    builtin::<Event>(Builtin {
        short_names: &["ev"],
        printer_columns: vec![
            column(
                "Last Seen",
                "date",
                ".lastTimestamp",
                "When the event was last seen",
            ),
            column("Type", "string", ".type", "Normal or Warning"),
            column(
                "Reason",
                "string",
                ".reason",
                "Why the event happened, in CamelCase",
            ),
            column(
                "Object",
                "string",
                ".involvedObject.name",
                "The object the event is about",
            ),
            column("Message", "string", ".message", "What happened"),
            wide_column(
                "Subobject",
                "string",
                ".involvedObject.fieldPath",
                "The part of the object",
            ),
            wide_column(
                "Source",
                "string",
                ".source.component",
                "The component that reported the event",
            ),
            wide_column(
                "First Seen",
                "date",
                ".firstTimestamp",
                "When the event was first seen",
            ),
            wide_column(
                "Count",
                "integer",
                ".count",
                "How many times the event happened",
            ),
        ],
        status_subresource: false,
        strategy: Arc::new(EventStrategy),
    })
}

/// `type` is Normal or Warning; the involved object lives in the event's namespace.
pub struct EventStrategy;

impl Strategy for EventStrategy {
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        if let Some(t) = obj.get("type")
            && !t
                .as_str()
                .is_some_and(|t| t.is_empty() || TYPES.contains(&t))
        {
            errs.push(FieldError::not_supported(
                &FieldPath::root("type"),
                t,
                TYPES,
            ));
        }
        if let Some(involved) = str_at(obj, "/involvedObject/namespace").filter(|n| !n.is_empty())
            && let Some(ns) = str_at(obj, "/metadata/namespace").filter(|n| !n.is_empty())
            && involved != ns
        {
            errs.push(FieldError::invalid(
                &FieldPath::root("involvedObject").child("namespace"),
                &Value::String(involved.into()),
                format!("does not match event.namespace ({ns})"),
            ));
        }
        if let Some(count) = obj.get("count").and_then(Value::as_i64)
            && count < 0
        {
            errs.push(FieldError::invalid(
                &FieldPath::root("count"),
                &Value::from(count),
                "must be greater than or equal to 0",
            ));
        }
        errs
    }
}
