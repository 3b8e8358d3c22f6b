//! The names upstream gives things in its OpenAPI documents: definition (schema) names,
//! operation ids and tags.

use serde_json::{Value, json};

/// Where meta types live: `io.k8s.apimachinery.pkg.apis.meta.v1.<Type>`.
pub(crate) const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// `io.k8s.apimachinery.pkg.apis.meta.v1.<name>`.
pub(crate) fn meta(name: &str) -> String {
    format!("{META}.{name}")
}

/// The definition name of a kind, as upstream names it in `components.schemas` (v3) and
/// `definitions` (v2): built-in groups by their Go package (`io.k8s.api.core.v1.Namespace`,
/// `io.k8s.api.coordination.v1.Lease`), every other group by its reversed domain, the way the
/// apiextensions server names custom resources (`dev.slipway.v1alpha1.Cluster`).
pub(crate) fn definition_name(group: &str, version: &str, kind: &str) -> String {
    let package = match group {
        "" => "io.k8s.api.core".to_string(),
        "apiextensions.k8s.io" => {
            "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions".to_string()
        }
        "apiregistration.k8s.io" => "io.k8s.kube-aggregator.pkg.apis.apiregistration".to_string(),
        g if is_builtin_group(g) => {
            let first = g.split('.').next().unwrap_or(g);
            format!("io.k8s.api.{first}")
        }
        g => g.split('.').rev().collect::<Vec<_>>().join("."),
    };
    format!("{package}.{version}.{kind}")
}

/// Groups whose types are compiled into kube-apiserver (as opposed to custom resources, which
/// may also live under `k8s.io`, e.g. `gateway.networking.k8s.io`).
fn is_builtin_group(group: &str) -> bool {
    matches!(
        group,
        "admissionregistration.k8s.io"
            | "apps"
            | "authentication.k8s.io"
            | "authorization.k8s.io"
            | "autoscaling"
            | "batch"
            | "certificates.k8s.io"
            | "coordination.k8s.io"
            | "discovery.k8s.io"
            | "events.k8s.io"
            | "flowcontrol.apiserver.k8s.io"
            | "internal.apiserver.k8s.io"
            | "networking.k8s.io"
            | "node.k8s.io"
            | "policy"
            | "rbac.authorization.k8s.io"
            | "resource.k8s.io"
            | "scheduling.k8s.io"
            | "storage.k8s.io"
            | "storagemigration.k8s.io"
    )
}

/// `{"group": ..., "kind": ..., "version": ...}`: one `x-kubernetes-group-version-kind` entry.
/// Clients compare it as a map, so it carries exactly these three keys.
pub(crate) fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

/// Upstream's operation-id word for a group: `.k8s.io` dropped, other separators removed with
/// the next letter capitalised (`slipway.dev` -> `slipwayDev`, core -> `core`).
fn camel(s: &str, capitalize_first: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut capitalize = capitalize_first;
    for (i, c) in s.chars().enumerate() {
        if c.is_alphabetic() || c == '_' || (i != 0 && c.is_ascii_digit()) {
            if capitalize {
                out.extend(c.to_uppercase());
                capitalize = false;
            } else {
                out.push(c);
            }
        } else {
            capitalize = true;
        }
    }
    out
}

fn group_word(group: &str) -> &str {
    if group.is_empty() {
        "core"
    } else {
        group.strip_suffix(".k8s.io").unwrap_or(group)
    }
}

/// The tag of a group-version's operations: `slipwayDev_v1alpha1`, `core_v1`, `coordination_v1`.
pub(crate) fn tag(group: &str, version: &str) -> String {
    format!(
        "{}_{}",
        camel(group_word(group), false),
        camel(version, false)
    )
}

/// The tag of a group's discovery operation: `slipwayDev`, `core`.
pub(crate) fn group_tag(group: &str) -> String {
    camel(group_word(group), false)
}

/// `SlipwayDevV1alpha1`, `CoreV1`: the part of an operation id naming the group-version.
pub(crate) fn group_version_word(group: &str, version: &str) -> String {
    format!("{}{}", camel(group_word(group), true), camel(version, true))
}

/// `SlipwayDev`, `Core`.
pub(crate) fn group_word_title(group: &str) -> String {
    camel(group_word(group), true)
}

/// "a Cluster", "an Event": upstream's article for create and delete descriptions.
pub(crate) fn with_article(kind: &str) -> String {
    let vowel = kind
        .chars()
        .next()
        .is_some_and(|c| "AEIOUaeiou".contains(c));
    if vowel {
        format!("an {kind}")
    } else {
        format!("a {kind}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_names_follow_upstream() {
        assert_eq!(
            definition_name("slipway.dev", "v1alpha1", "Cluster"),
            "dev.slipway.v1alpha1.Cluster"
        );
        assert_eq!(
            definition_name("", "v1", "Namespace"),
            "io.k8s.api.core.v1.Namespace"
        );
        assert_eq!(
            definition_name("coordination.k8s.io", "v1", "Lease"),
            "io.k8s.api.coordination.v1.Lease"
        );
        assert_eq!(
            definition_name("rbac.authorization.k8s.io", "v1", "Role"),
            "io.k8s.api.rbac.v1.Role"
        );
        assert_eq!(
            definition_name("apps", "v1", "Deployment"),
            "io.k8s.api.apps.v1.Deployment"
        );
        // A custom resource under k8s.io is named by its reversed domain, as upstream does.
        assert_eq!(
            definition_name("gateway.networking.k8s.io", "v1", "Gateway"),
            "io.k8s.networking.gateway.v1.Gateway"
        );
    }

    #[test]
    fn operation_words_and_tags() {
        assert_eq!(tag("slipway.dev", "v1alpha1"), "slipwayDev_v1alpha1");
        assert_eq!(tag("", "v1"), "core_v1");
        assert_eq!(tag("coordination.k8s.io", "v1"), "coordination_v1");
        assert_eq!(
            group_version_word("slipway.dev", "v1alpha1"),
            "SlipwayDevV1alpha1"
        );
        assert_eq!(group_version_word("", "v1"), "CoreV1");
        assert_eq!(
            group_version_word("rbac.authorization.k8s.io", "v1"),
            "RbacAuthorizationV1"
        );
        assert_eq!(with_article("Event"), "an Event");
        assert_eq!(with_article("Cluster"), "a Cluster");
    }
}
