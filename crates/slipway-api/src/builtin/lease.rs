//! `coordination.k8s.io/v1` **Lease**: leader election and heartbeats.

use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use serde_json::Value;
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldPath};

use crate::resource::{Builtin, age_column, builtin, column};

/// Lease: `Holder` column.
pub fn resource() -> ResourceDef {
    builtin::<Lease>(Builtin {
        short_names: &[],
        printer_columns: vec![
            column(
                "Holder",
                "string",
                ".spec.holderIdentity",
                "Who holds the lease",
            ),
            age_column(),
        ],
        status_subresource: false,
        strategy: Arc::new(LeaseStrategy),
    })
}

/// Durations positive, transitions non-negative, a preferred holder needs a strategy.
pub struct LeaseStrategy;

impl Strategy for LeaseStrategy {
    fn validate(&self, obj: &Value, _old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        let spec = FieldPath::root("spec");
        if let Some(secs) = obj
            .pointer("/spec/leaseDurationSeconds")
            .and_then(Value::as_i64)
            && secs <= 0
        {
            errs.push(FieldError::invalid(
                &spec.child("leaseDurationSeconds"),
                &Value::from(secs),
                "must be greater than 0",
            ));
        }
        if let Some(n) = obj
            .pointer("/spec/leaseTransitions")
            .and_then(Value::as_i64)
            && n < 0
        {
            errs.push(FieldError::invalid(
                &spec.child("leaseTransitions"),
                &Value::from(n),
                "must be greater than or equal to 0",
            ));
        }
        let set = |p: &str| {
            obj.pointer(p)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        if set("/spec/preferredHolder") && !set("/spec/strategy") {
            errs.push(FieldError::required(
                &spec.child("strategy"),
                "must be specified when preferredHolder is set",
            ));
        }
        errs
    }
}
