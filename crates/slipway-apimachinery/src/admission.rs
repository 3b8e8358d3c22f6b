//! Admission that needs more than the object itself: other objects (a Cluster's ClusterClass)
//! or configuration only known at run time (the provider's catalog).
//!
//! A kind's [`Strategy`](crate::Strategy) is pure and sees one object. An [`Admission`] plugin
//! is given to the registry at start and runs on every create and update of its kind, inside
//! the same preparation as the strategy, before anything is written: `mutate` before the
//! kind's defaulting (so a class's defaults win over the built-in ones), `validate` after the
//! kind's own validation passed. Both report problems as field errors: the write is refused
//! with a 422 naming them.

use std::sync::Arc;

use serde_json::Value;

use crate::FieldError;

/// Reads other objects while admitting one (from the registry's watch cache).
pub trait Lookup {
    /// The object of kind `group`/`kind` named `name` (in `namespace` for namespaced kinds).
    fn get(
        &self,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<Value>>;
}

/// An admission plugin for one kind.
pub trait Admission: Send + Sync {
    /// The API group of the kind it admits.
    fn group(&self) -> &str;
    /// The kind it admits.
    fn kind(&self) -> &str;

    /// Change the object about to be written (`old`: the stored one on update), before the
    /// kind's defaulting.
    fn mutate(
        &self,
        _obj: &mut Value,
        _old: Option<&Value>,
        _lookup: &dyn Lookup,
    ) -> Vec<FieldError> {
        Vec::new()
    }

    /// Check the object about to be written, after its kind's own validation passed.
    fn validate(
        &self,
        _obj: &Value,
        _old: Option<&Value>,
        _lookup: &dyn Lookup,
    ) -> Vec<FieldError> {
        Vec::new()
    }
}

impl std::fmt::Debug for dyn Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Admission({}/{})", self.group(), self.kind())
    }
}
