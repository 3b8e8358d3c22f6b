//! `slipway.dev/v1alpha1` **Cluster**: a Kubernetes cluster as one declarative object.
//!
//! - [`types`]: the typed spec and status (their doc comments are the schema's descriptions),
//!   and the `#[derive(CustomResource)]` that names the kind, its printer columns and status
//!   subresource.
//! - [`defaults`]: what an unset field means.
//! - [`validation`]: every rule the schema cannot express, at exact field paths.
//!
//! [`resource`] puts them together as the `ResourceDef` the server serves.

pub mod defaults;
pub mod types;
pub mod validation;

use std::sync::Arc;

use kube_core::CustomResourceExt;
use serde::Deserialize;
use serde_json::Value;
use slipway_apimachinery::resource::{ResourceDef, Strategy};
use slipway_apimachinery::{FieldError, FieldPath};

pub use types::*;

use crate::{checks, resource, schema};

/// The Cluster kind: namespaced, `/status` subresource, generation tracks spec changes.
pub fn resource() -> ResourceDef {
    resource::from_crd(Cluster::crd(), true, |schema| {
        Arc::new(ClusterStrategy::new(schema))
    })
}

/// Cluster defaulting and validation on untyped objects.
pub struct ClusterStrategy {
    spec_schema: Value,
    status_schema: Value,
}

impl ClusterStrategy {
    /// A strategy that checks `spec` and `status` against the parts of `object_schema` (the
    /// kind's full schema) before decoding them.
    pub fn new(object_schema: &Value) -> Self {
        let part = |name: &str| schema::property(object_schema, name);
        Self {
            spec_schema: part("spec"),
            status_schema: part("status"),
        }
    }
}

impl Strategy for ClusterStrategy {
    /// Defaults `spec` (see [`defaults::apply`]); a spec that does not decode is left alone
    /// for validation to report. The defaults are laid over the object as written, so fields
    /// the types do not know survive for strict field validation or pruning to deal with.
    fn default(&self, obj: &mut Value) {
        let Some(spec) = obj.get_mut("spec") else {
            return;
        };
        let Ok(mut typed) = ClusterSpec::deserialize(&*spec) else {
            return;
        };
        defaults::apply(&mut typed);
        if let Ok(defaulted) = serde_json::to_value(&typed) {
            overlay(spec, defaulted);
        }
    }

    fn validate(&self, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
        let mut errs = Vec::new();
        checks::check_name_is_label(obj, &mut errs);
        let spec_path = FieldPath::root("spec");
        let spec = if obj.get("spec").is_some() {
            schema::decode_checked::<ClusterSpec>(obj, "spec", &self.spec_schema, &mut errs)
        } else {
            errs.push(FieldError::required(&spec_path, ""));
            None
        };
        if let Some(spec) = &spec {
            errs.extend(validation::validate_spec(spec, &spec_path));
        }
        if let Some(status) =
            schema::decode_checked::<ClusterStatus>(obj, "status", &self.status_schema, &mut errs)
        {
            errs.extend(validation::validate_status(
                &status,
                &FieldPath::root("status"),
            ));
        }
        let old_spec = old
            .and_then(|o| o.get("spec"))
            .and_then(|s| ClusterSpec::deserialize(s).ok());
        if let (Some(spec), Some(old_spec)) = (&spec, &old_spec) {
            errs.extend(validation::validate_spec_update(spec, old_spec, &spec_path));
        }
        errs
    }
}

/// Lay `source` over `target`: objects merge key by key, arrays of the same length item by
/// item, anything else is replaced. Keys only `target` has are kept.
fn overlay(target: &mut Value, source: Value) {
    match (target, source) {
        (Value::Object(t), Value::Object(s)) => {
            for (k, v) in s {
                match t.get_mut(&k) {
                    Some(existing) => overlay(existing, v),
                    None => {
                        t.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(t), Value::Array(s)) if t.len() == s.len() => {
            for (existing, v) in t.iter_mut().zip(s) {
                overlay(existing, v);
            }
        }
        (t, s) => *t = s,
    }
}
