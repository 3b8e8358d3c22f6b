//! Slipway resource definitions.
