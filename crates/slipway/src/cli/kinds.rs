//! The kinds the fleet commands name, with kubectl-like aliases.

use std::str::FromStr;

use kube::core::{ApiResource, GroupVersionKind};

/// What a command acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Cluster,
    Machine,
    Class,
    /// A Cluster's node pool (not an API kind: rows made from Clusters).
    Pool,
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(
            match s.to_ascii_lowercase().trim_end_matches(".slipway.dev") {
                "cluster" | "clusters" | "cl" => Self::Cluster,
                "machine" | "machines" | "ma" => Self::Machine,
                "class" | "classes" | "clusterclass" | "clusterclasses" | "cc" => Self::Class,
                "pool" | "pools" | "nodepool" | "nodepools" | "np" => Self::Pool,
                _ => {
                    return Err(format!(
                        "unknown kind {s:?}: use clusters (cl), machines (ma), classes (cc) or pools (np)"
                    ));
                }
            },
        )
    }
}

/// An API kind the commands read and delete.
#[derive(Debug, Clone)]
pub struct Resource {
    pub api: ApiResource,
    pub namespaced: bool,
}

impl Resource {
    fn slipway(kind: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            api: ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("slipway.dev", "v1alpha1", kind),
                plural,
            ),
            namespaced,
        }
    }

    /// `cluster.slipway.dev`, as kubectl names a kind in what it reports.
    pub fn display(&self) -> String {
        format!("{}.{}", self.api.kind.to_ascii_lowercase(), self.api.group)
    }
}

impl Kind {
    /// The API kind behind it.
    pub fn resource(self) -> Resource {
        match self {
            Self::Cluster | Self::Pool => Resource::slipway("Cluster", "clusters", true),
            Self::Machine => Resource::slipway("Machine", "machines", true),
            Self::Class => Resource::slipway("ClusterClass", "clusterclasses", false),
        }
    }

    /// The API kind to delete: pools are deleted by editing their cluster.
    pub fn deletable(self) -> anyhow::Result<Resource> {
        if self == Self::Pool {
            anyhow::bail!(
                "a pool is part of its cluster: remove it from spec.nodePools and `slipway apply` the cluster, or `slipway scale cluster NAME --pool POOL --size 0`"
            );
        }
        Ok(self.resource())
    }

    /// Refuse anything but `want` for `command`.
    pub fn expect(self, want: Kind, command: &str) -> anyhow::Result<()> {
        if self == want {
            Ok(())
        } else {
            anyhow::bail!(
                "`slipway {command}` works on clusters only: `slipway {command} cluster NAME ...`"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_like_kubectl() {
        for (text, kind) in [
            ("clusters", Kind::Cluster),
            ("cl", Kind::Cluster),
            ("Cluster", Kind::Cluster),
            ("clusters.slipway.dev", Kind::Cluster),
            ("machine", Kind::Machine),
            ("cc", Kind::Class),
            ("clusterclasses", Kind::Class),
            ("pools", Kind::Pool),
        ] {
            assert_eq!(text.parse::<Kind>(), Ok(kind), "{text}");
        }
        let err = "pods".parse::<Kind>().expect_err("pods");
        assert!(err.contains("clusters (cl)"), "{err}");
    }

    #[test]
    fn pools_are_not_deleted_directly() {
        let err = Kind::Pool.deletable().expect_err("pool").to_string();
        assert!(err.contains("spec.nodePools"), "{err}");
        assert_eq!(
            Kind::Class.deletable().expect("class").display(),
            "clusterclass.slipway.dev"
        );
    }
}
