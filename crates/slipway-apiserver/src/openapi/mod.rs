//! OpenAPI v2 and v3 documents (in progress).
