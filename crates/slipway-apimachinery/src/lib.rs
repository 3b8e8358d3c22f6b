//! Kubernetes API machinery as pure functions over JSON objects: no I/O, no HTTP, no store.
//!
//! - [`status`]: `ApiError`, the one error type every API layer returns, and its `Status` form.
//! - [`field`]: field paths and field errors (the `causes` of a 422).
//! - [`resource`]: `ResourceDef`, everything the server needs to serve one kind, and the
//!   `Strategy` hooks (defaulting, validation) a kind plugs in.
//! - [`meta`]: reading and validating `metadata` on untyped objects.

pub mod field;
pub mod meta;
pub mod resource;
pub mod status;

pub use field::{FieldError, FieldErrorType, FieldPath};
pub use resource::{PrinterColumn, ResourceDef, Strategy};
pub use status::{ApiError, StatusCause};
