//! Machine bootstrap: what a machine runs on first boot to become a node of its cluster.
//!
//! The platform's controllers create every machine of a workload cluster through the
//! `Provider` and hand it cloud-init user data. This crate renders that user data, purely
//! (no I/O, no clock, no randomness: the same [`MachineConfig`] always gives the same bytes):
//!
//! - [`render_user_data`] turns a [`MachineConfig`] into a `#cloud-config` that writes
//!   `/etc/kubernetes/kubeadm.yaml` ([`KUBEADM_CONFIG_PATH`], kubeadm `v1beta4`: an
//!   `InitConfiguration`, `ClusterConfiguration` and `KubeletConfiguration` for the first
//!   control-plane machine, a `JoinConfiguration` for every other machine) and runs
//!   `kubeadm init` or `kubeadm join` with it. Inputs are validated first, and every problem is
//!   a [`RenderError`] naming the field, so a bad spec fails in the controller, not on a
//!   machine that never becomes a node.
//! - The same user data writes `/etc/slipway/bootstrap.json` ([`BOOTSTRAP_PATH`]), the
//!   [`Bootstrap`] document the workload-cluster simulator reads (it runs no kubeadm). That
//!   document, [`Bootstrap::from_user_data`] and [`Bootstrap::to_cloud_config`] are the
//!   contract between whoever creates machines and `slipway-simhost`, which re-exports this
//!   crate as `slipway_simhost::bootstrap`.
//!
//! - [`ca_cert_hash`] pins the cluster CA as kubeadm does; every join carries the pin in
//!   `caCertHashes`, so a machine trusts only the API its cluster's CA signed.
//!
//! What the rendered configuration does not carry, because [`MachineConfig`] has no field
//! for it yet: shared control-plane certificates (a control-plane join expects `/etc/kubernetes/pki` to be
//! provisioned with the cluster's CAs, as Cluster API's kubeadm bootstrap provider does
//! through extra `write_files`).

mod document;
mod pin;
mod render;
mod validate;

pub use document::{BOOTSTRAP_PATH, Bootstrap, BootstrapError, Role, Taint};
pub use pin::{PinError, ca_cert_hash, is_ca_cert_hash};
pub use render::{KUBEADM_CONFIG_PATH, MachineConfig, render_user_data};
pub use validate::RenderError;
