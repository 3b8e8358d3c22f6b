//! The simulated Kubernetes of Slipway's workload clusters, as pure decision functions over
//! k8s-openapi types. No I/O, no clock: every function takes the objects it decides about and
//! `now`, and returns what to write. The controllers that run them against each workload
//! cluster's API (list, decide, write) are thin wrappers on the controller runtime.
//!
//! - [`node`]: the Node a simulated kubelet registers for a machine (zone, region, arch, OS,
//!   instance type, pool, cluster and role labels; capacity and allocatable from vCPU,
//!   memory and GPUs; nodeInfo with the kubelet version; addresses; taints) and its
//!   Ready/NotReady heartbeat with the not-ready taints.
//! - [`scheduler`]: pick a node for a pending pod by resources, node selector and affinity,
//!   taints and tolerations, cordons, readiness and zone spread; or the `Unschedulable`
//!   message in the real scheduler's words.
//! - [`replicaset`]: pods to create, delete and adopt, and the ReplicaSet status.
//! - [`deployment`]: pod-template-hash, the new ReplicaSet, rolling-update and Recreate
//!   arithmetic, status with `Available` and `Progressing`.
//! - [`pdb`]: the PodDisruptionBudget status the eviction subresource spends.
//! - [`kubelet`]: pods start on Ready nodes, go not-ready with their node, are evicted after
//!   their not-ready toleration, and are deleted with a node that is gone; pod IPs from the
//!   node's range.
//! - [`quantity`], [`common`]: resource quantities; selectors, owners, conditions.

pub mod common;
pub mod deployment;
pub mod kubelet;
pub mod node;
pub mod pdb;
pub mod quantity;
pub mod replicaset;
pub mod scheduler;
#[cfg(test)]
mod testutil;
