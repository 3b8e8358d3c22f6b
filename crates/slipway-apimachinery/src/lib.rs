//! Kubernetes API machinery as pure functions over JSON objects: no I/O, no HTTP, no store.
//!
//! - [`compact`]: JSON values shrunk to fit, for objects that are kept.
//! - [`status`]: `ApiError`, the one error type every API layer returns, and its `Status` form.
//! - [`field`]: field paths and field errors (the `causes` of a 422).
//! - [`resource`]: `ResourceDef`, everything the server needs to serve one kind, and the
//!   `Strategy` hooks (defaulting, validation) a kind plugs in.
//! - [`meta`]: reading and validating `metadata` on untyped objects.
//! - [`selector`]: label and field selectors.
//! - [`jsonpath`]: the JSONPath subset printer columns use.
//! - [`schema`]: OpenAPI v3 structural schemas: type checks, unknown fields, pruning.
//! - [`table`]: `meta.k8s.io/v1` `Table` responses for `kubectl get`.
//! - [`patch`]: JSON merge patch and JSON patch.
//! - [`ssa`]: server-side apply and `managedFields`.

pub mod admission;
pub mod compact;
pub mod field;
pub mod jsonpath;
pub mod meta;
pub mod patch;
pub mod resource;
pub mod schema;
pub mod selector;
pub mod ssa;
pub mod status;
pub mod table;

pub use admission::{Admission, Lookup};
pub use field::{FieldError, FieldErrorType, FieldPath};
pub use resource::{PrinterColumn, ResourceDef, ScaleSubresource, Strategy};
pub use status::{ApiError, StatusCause};
