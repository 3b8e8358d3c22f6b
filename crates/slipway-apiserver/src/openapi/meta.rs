//! The shared types every document references: `meta/v1` (ObjectMeta, ListMeta, Status,
//! DeleteOptions, WatchEvent, Patch, ...), the discovery types and `version.Info`.
//!
//! Field names, types, formats and `x-kubernetes-*` markers follow upstream exactly (clients
//! and server-side apply tooling read those); the descriptions are short and our own.

use serde_json::{Map, Value, json};

use super::names::{self, META};

/// How `$ref`s are written: `#/components/schemas/` (v3) or `#/definitions/` (v2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refs {
    V3,
    V2,
}

impl Refs {
    pub(crate) fn prefix(self) -> &'static str {
        match self {
            Refs::V3 => "#/components/schemas/",
            Refs::V2 => "#/definitions/",
        }
    }

    /// `{"$ref": "<prefix><name>"}`.
    pub(crate) fn to(self, name: &str) -> Value {
        json!({"$ref": format!("{}{}", self.prefix(), name)})
    }

    /// A `$ref` with a description beside it, as upstream writes fields of a named type.
    pub(crate) fn field(self, name: &str, description: &str) -> Value {
        json!({"$ref": format!("{}{}", self.prefix(), name), "description": description})
    }
}

pub(crate) const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this \
    representation of an object. Servers convert recognized schemas to the latest internal value \
    and may reject unrecognized values. More info: \
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";

pub(crate) const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource \
    this object represents. Servers may infer this from the endpoint the client submits requests \
    to. Cannot be updated. In CamelCase. More info: \
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

pub(crate) const OBJECT_META_DESCRIPTION: &str = "Standard object's metadata. More info: \
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

pub(crate) const LIST_META_DESCRIPTION: &str = "Standard list metadata. More info: \
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

pub(crate) fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn integer(format: &str, description: &str) -> Value {
    json!({"type": "integer", "format": format, "description": description})
}

fn boolean(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

fn strings(description: &str) -> Value {
    json!({"type": "array", "items": {"type": "string", "default": ""}, "description": description})
}

fn string_map(description: &str) -> Value {
    json!({"type": "object", "additionalProperties": {"type": "string", "default": ""}, "description": description})
}

fn array_of(refs: Refs, name: &str, description: &str) -> Value {
    json!({"type": "array", "items": refs.to(name), "description": description})
}

fn object(description: &str, properties: Vec<(&str, Value)>, required: &[&str]) -> Value {
    let mut schema = Map::new();
    schema.insert("description".into(), description.into());
    schema.insert("type".into(), "object".into());
    schema.insert(
        "properties".into(),
        Value::Object(
            properties
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        ),
    );
    if !required.is_empty() {
        schema.insert(
            "required".into(),
            required.iter().map(|r| Value::from(*r)).collect(),
        );
    }
    Value::Object(schema)
}

fn with(mut schema: Value, key: &str, value: Value) -> Value {
    if let Some(map) = schema.as_object_mut() {
        map.insert(key.to_string(), value);
    }
    schema
}

/// `x-kubernetes-group-version-kind` of a type registered in the core group only.
fn core_gvk(kind: &str) -> Value {
    json!([names::gvk("", "v1", kind)])
}

/// `x-kubernetes-group-version-kind` of a meta type every group-version serves
/// (DeleteOptions, WatchEvent): core v1 plus each served group-version.
fn everywhere_gvk(kind: &str, served: &[(String, String)]) -> Value {
    let mut list = vec![names::gvk("", "v1", kind)];
    for (group, version) in served {
        if !group.is_empty() {
            list.push(names::gvk(group, version, kind));
        }
    }
    Value::Array(list)
}

/// The schema of a shared type by its definition name, with `$ref`s written for `refs`;
/// `served` lists the (group, version) pairs the server serves. `None` for unknown names.
pub(crate) fn schema(name: &str, refs: Refs, served: &[(String, String)]) -> Option<Value> {
    if name == "io.k8s.apimachinery.pkg.version.Info" {
        return Some(version_info());
    }
    if name == "io.k8s.apimachinery.pkg.runtime.RawExtension" {
        return Some(json!({
            "type": "object",
            "description": "RawExtension holds an arbitrary embedded object, serialized as JSON."
        }));
    }
    let short = name.strip_prefix(META)?.strip_prefix('.')?;
    let time = names::meta("Time");
    let schema = match short {
        "Time" => json!({
            "type": "string",
            "format": "date-time",
            "description": "Time is a timestamp in RFC 3339 form, with second precision."
        }),
        "MicroTime" => json!({
            "type": "string",
            "format": "date-time",
            "description": "MicroTime is a timestamp in RFC 3339 form, with microsecond precision."
        }),
        "FieldsV1" => json!({
            "type": "object",
            "description": "FieldsV1 is a set of fields as a trie in JSON (the format of \
                sigs.k8s.io/structured-merge-diff): `f:<name>` for a field, `k:<keys>` for a \
                list item by its keys, `v:<value>` for a set item, `i:<index>` for a list index, \
                and `.` for the field itself."
        }),
        "Patch" => json!({
            "type": "object",
            "description": "Patch is the body of a PATCH request: a JSON patch, a JSON merge \
                patch or an apply configuration, as its content type says."
        }),
        "ObjectMeta" => object(
            "ObjectMeta is the metadata every persisted object has.",
            vec![
                ("annotations", string_map("Annotations is a map of arbitrary, non-identifying metadata set by tools and users. More info: http://kubernetes.io/docs/user-guide/annotations")),
                ("creationTimestamp", refs.field(&time, "CreationTimestamp is when the server created the object (RFC 3339, UTC). Populated by the system. Read-only.")),
                ("deletionGracePeriodSeconds", integer("int64", "Seconds allowed for this object to terminate gracefully before it is removed. Only set when deletionTimestamp is set. Read-only.")),
                ("deletionTimestamp", refs.field(&time, "DeletionTimestamp is when deletion was requested. The object stays, visible, until its finalizers list is empty. Populated by the system. Read-only.")),
                ("finalizers", with(with(strings("Finalizers must all be removed before the object is deleted from storage. Each names the component responsible for removing it."), "x-kubernetes-list-type", "set".into()), "x-kubernetes-patch-strategy", "merge".into())),
                ("generateName", string("GenerateName is a prefix the server uses to generate a unique name when name is not set.")),
                ("generation", integer("int64", "Generation is a sequence number of the desired state (the spec). Populated by the system. Read-only.")),
                ("labels", string_map("Labels are string keys and values used to organize and select objects. More info: http://kubernetes.io/docs/user-guide/labels")),
                ("managedFields", with(array_of(refs, &names::meta("ManagedFieldsEntry"), "ManagedFields records which manager (field manager) owns which fields, for server-side apply. Mostly internal housekeeping."), "x-kubernetes-list-type", "atomic".into())),
                ("name", string("Name is unique within a namespace (or, for cluster-scoped kinds, within the kind). Required when creating, unless generateName is set. Cannot be updated. More info: http://kubernetes.io/docs/user-guide/identifiers#names")),
                ("namespace", string("Namespace is the space within which each name must be unique; empty for cluster-scoped kinds. Must be a DNS label. Cannot be updated. More info: http://kubernetes.io/docs/user-guide/namespaces")),
                ("ownerReferences", {
                    let s = array_of(refs, &names::meta("OwnerReference"), "OwnerReferences lists the objects this object depends on. When all of them are deleted, this object is garbage collected. At most one may be a managing controller.");
                    let s = with(s, "x-kubernetes-list-map-keys", json!(["uid"]));
                    let s = with(s, "x-kubernetes-list-type", "map".into());
                    let s = with(s, "x-kubernetes-patch-merge-key", "uid".into());
                    with(s, "x-kubernetes-patch-strategy", "merge".into())
                }),
                ("resourceVersion", string("ResourceVersion is an opaque value that changes whenever the object changes; used for optimistic concurrency and to start watches. Populated by the system. Read-only.")),
                ("selfLink", string("Deprecated: not set by the server.")),
                ("uid", string("UID is the unique in time and space value for this object, generated by the server on creation. Populated by the system. Read-only. More info: http://kubernetes.io/docs/user-guide/identifiers#uids")),
            ],
            &[],
        ),
        "ManagedFieldsEntry" => object(
            "ManagedFieldsEntry records the fields a manager owns, with the version they apply to.",
            vec![
                ("apiVersion", string("APIVersion (group/version) of the resource the field set applies to.")),
                ("fieldsType", string("FieldsType is the format of the field set; the only value is \"FieldsV1\".")),
                ("fieldsV1", refs.field(&names::meta("FieldsV1"), "FieldsV1 is the field set, in the FieldsV1 format.")),
                ("manager", string("Manager is the name of the workflow managing these fields.")),
                ("operation", string("Operation that produced this entry: 'Apply' or 'Update'.")),
                ("subresource", string("Subresource the fields were written through (e.g. status), or empty for the main resource.")),
                ("time", refs.field(&time, "Time is when these fields were last set. Empty for Apply.")),
            ],
            &[],
        ),
        "OwnerReference" => with(
            object(
                "OwnerReference identifies an owning object, which must be in the same namespace as the dependent or be cluster-scoped.",
                vec![
                    ("apiVersion", with(string("API version of the owner."), "default", "".into())),
                    ("blockOwnerDeletion", boolean("If true and the owner has the foregroundDeletion finalizer, the owner is not removed from storage until this reference is removed.")),
                    ("controller", boolean("If true, this reference points to the managing controller.")),
                    ("kind", with(string("Kind of the owner."), "default", "".into())),
                    ("name", with(string("Name of the owner."), "default", "".into())),
                    ("uid", with(string("UID of the owner."), "default", "".into())),
                ],
                &["apiVersion", "kind", "name", "uid"],
            ),
            "x-kubernetes-map-type",
            "atomic".into(),
        ),
        "ListMeta" => object(
            "ListMeta is the metadata of lists and other synthetic responses.",
            vec![
                ("continue", string("Continue is set when more items are available: pass it as the continue parameter to get the next page.")),
                ("remainingItemCount", integer("int64", "RemainingItemCount estimates how many items remain after this page, when known.")),
                ("resourceVersion", string("ResourceVersion of the list: the store revision it was read at. Opaque to clients; may be used to start a watch.")),
                ("selfLink", string("Deprecated: not set by the server.")),
            ],
            &[],
        ),
        "Status" => with(
            object(
                "Status is returned by calls that don't return other objects, and for every error.",
                vec![
                    ("apiVersion", string(API_VERSION_DESCRIPTION)),
                    ("code", integer("int32", "Suggested HTTP status code, 0 if not set.")),
                    ("details", refs.field(&names::meta("StatusDetails"), "Details associated with the reason, such as field causes.")),
                    ("kind", string(KIND_DESCRIPTION)),
                    ("message", string("A human-readable description of the status of this operation.")),
                    ("metadata", refs.field(&names::meta("ListMeta"), LIST_META_DESCRIPTION)),
                    ("reason", string("A machine-readable reason for a Failure status, such as NotFound, AlreadyExists, Conflict or Invalid.")),
                    ("status", string("Status of the operation: \"Success\" or \"Failure\".")),
                ],
                &[],
            ),
            "x-kubernetes-group-version-kind",
            core_gvk("Status"),
        ),
        "StatusDetails" => object(
            "StatusDetails carries data about the object a Status is about.",
            vec![
                ("causes", with(array_of(refs, &names::meta("StatusCause"), "Causes lists the individual problems, e.g. one per invalid field."), "x-kubernetes-list-type", "atomic".into())),
                ("group", string("Group of the resource.")),
                ("kind", string("Kind of the resource.")),
                ("name", string("Name of the resource.")),
                ("retryAfterSeconds", integer("int32", "Seconds to wait before retrying, when the server asks for it.")),
                ("uid", string("UID of the resource.")),
            ],
            &[],
        ),
        "StatusCause" => object(
            "StatusCause is one problem behind a failure.",
            vec![
                ("field", string("Field path of the problem, e.g. spec.nodePools[0].minReplicas.")),
                ("message", string("A human-readable description of the problem.")),
                ("reason", string("A machine-readable reason, such as FieldValueInvalid or FieldValueRequired.")),
            ],
            &[],
        ),
        "DeleteOptions" => with(
            object(
                "DeleteOptions may be provided when deleting an object.",
                vec![
                    ("apiVersion", string(API_VERSION_DESCRIPTION)),
                    ("dryRun", with(strings("When present, the deletion is validated but not persisted. The only valid value is All."), "x-kubernetes-list-type", "atomic".into())),
                    ("gracePeriodSeconds", integer("int64", "Seconds before the object should be deleted; zero means immediately.")),
                    ("kind", string(KIND_DESCRIPTION)),
                    ("orphanDependents", boolean("Deprecated: use propagationPolicy. Whether dependents are orphaned.")),
                    ("preconditions", refs.field(&names::meta("Preconditions"), "Must be fulfilled before the deletion is carried out; otherwise the server answers 409 Conflict.")),
                    ("propagationPolicy", string("Whether and how garbage collection is performed: 'Orphan', 'Background' or 'Foreground'.")),
                ],
                &[],
            ),
            "x-kubernetes-group-version-kind",
            everywhere_gvk("DeleteOptions", served),
        ),
        "Preconditions" => object(
            "Preconditions must be fulfilled before an operation is carried out.",
            vec![
                ("resourceVersion", string("The object's resourceVersion must be this.")),
                ("uid", string("The object's uid must be this.")),
            ],
            &[],
        ),
        "WatchEvent" => with(
            object(
                "WatchEvent is one event of a watch stream.",
                vec![
                    ("object", refs.field("io.k8s.apimachinery.pkg.runtime.RawExtension", "Object is the new state (ADDED, MODIFIED), the last state (DELETED), a Status (ERROR) or an object carrying only a resourceVersion (BOOKMARK).")),
                    ("type", with(string("ADDED, MODIFIED, DELETED, BOOKMARK or ERROR."), "default", "".into())),
                ],
                &["type", "object"],
            ),
            "x-kubernetes-group-version-kind",
            everywhere_gvk("WatchEvent", served),
        ),
        "APIResourceList" => with(
            object(
                "APIResourceList lists the resources of a group-version.",
                vec![
                    ("apiVersion", string(API_VERSION_DESCRIPTION)),
                    ("groupVersion", with(string("The group-version this list is for."), "default", "".into())),
                    ("kind", string(KIND_DESCRIPTION)),
                    ("resources", with(array_of(refs, &names::meta("APIResource"), "The resources of the group-version."), "x-kubernetes-list-type", "atomic".into())),
                ],
                &["groupVersion", "resources"],
            ),
            "x-kubernetes-group-version-kind",
            core_gvk("APIResourceList"),
        ),
        "APIResource" => object(
            "APIResource describes one resource: its names, scope and verbs.",
            vec![
                ("categories", with(strings("Categories the resource belongs to (e.g. 'all')."), "x-kubernetes-list-type", "atomic".into())),
                ("group", string("Preferred group of the resource, when it differs from the list's.")),
                ("kind", with(string("Kind of the resource."), "default", "".into())),
                ("name", with(string("Plural name of the resource."), "default", "".into())),
                ("namespaced", with(boolean("Whether the resource is namespaced."), "default", false.into())),
                ("shortNames", with(strings("Short names of the resource."), "x-kubernetes-list-type", "atomic".into())),
                ("singularName", with(string("Singular name of the resource."), "default", "".into())),
                ("storageVersionHash", string("An opaque hash of the storage version.")),
                ("verbs", strings("Verbs the resource supports.")),
                ("version", string("Preferred version of the resource, when it differs from the list's.")),
            ],
            &["name", "singularName", "namespaced", "kind", "verbs"],
        ),
        "APIVersions" => with(
            object(
                "APIVersions lists the versions of the core group (/api).",
                vec![
                    ("apiVersion", string(API_VERSION_DESCRIPTION)),
                    ("kind", string(KIND_DESCRIPTION)),
                    ("serverAddressByClientCIDRs", with(array_of(refs, &names::meta("ServerAddressByClientCIDR"), "Server addresses by client CIDR."), "x-kubernetes-list-type", "atomic".into())),
                    ("versions", with(strings("The versions served."), "x-kubernetes-list-type", "atomic".into())),
                ],
                &["versions", "serverAddressByClientCIDRs"],
            ),
            "x-kubernetes-group-version-kind",
            core_gvk("APIVersions"),
        ),
        "ServerAddressByClientCIDR" => object(
            "ServerAddressByClientCIDR tells clients in a CIDR which address to use.",
            vec![
                ("clientCIDR", with(string("The CIDR of clients this address is for."), "default", "".into())),
                ("serverAddress", with(string("Address of the server: host, host:port or IP:port."), "default", "".into())),
            ],
            &["clientCIDR", "serverAddress"],
        ),
        "APIGroupList" => with(
            object(
                "APIGroupList lists the groups served under /apis.",
                vec![
                    ("apiVersion", string(API_VERSION_DESCRIPTION)),
                    ("groups", with(array_of(refs, &names::meta("APIGroup"), "The groups."), "x-kubernetes-list-type", "atomic".into())),
                    ("kind", string(KIND_DESCRIPTION)),
                ],
                &["groups"],
            ),
            "x-kubernetes-group-version-kind",
            core_gvk("APIGroupList"),
        ),
        "APIGroup" => with(
            object(
                "APIGroup describes a group and the versions it serves.",
                vec![
                    ("apiVersion", string(API_VERSION_DESCRIPTION)),
                    ("kind", string(KIND_DESCRIPTION)),
                    ("name", with(string("Name of the group."), "default", "".into())),
                    ("preferredVersion", refs.field(&names::meta("GroupVersionForDiscovery"), "The version clients should prefer.")),
                    ("serverAddressByClientCIDRs", with(array_of(refs, &names::meta("ServerAddressByClientCIDR"), "Server addresses by client CIDR."), "x-kubernetes-list-type", "atomic".into())),
                    ("versions", with(array_of(refs, &names::meta("GroupVersionForDiscovery"), "The versions served."), "x-kubernetes-list-type", "atomic".into())),
                ],
                &["name", "versions"],
            ),
            "x-kubernetes-group-version-kind",
            core_gvk("APIGroup"),
        ),
        "GroupVersionForDiscovery" => object(
            "GroupVersionForDiscovery names one version of a group.",
            vec![
                ("groupVersion", with(string("group/version"), "default", "".into())),
                ("version", with(string("The version alone."), "default", "".into())),
            ],
            &["groupVersion", "version"],
        ),
        _ => return None,
    };
    Some(schema)
}

fn version_info() -> Value {
    let field = |d: &str| with(string(d), "default", "".into());
    object(
        "Info describes the server's version.",
        vec![
            ("buildDate", field("When the binary was built.")),
            ("compiler", field("The compiler that built the binary.")),
            (
                "emulationMajor",
                string("Major version this server emulates."),
            ),
            (
                "emulationMinor",
                string("Minor version this server emulates."),
            ),
            ("gitCommit", field("Commit the binary was built from.")),
            ("gitTreeState", field("Whether the tree was clean.")),
            (
                "gitVersion",
                field("The Kubernetes version the API is compatible with, e.g. v1.33.0."),
            ),
            ("goVersion", field("Toolchain version.")),
            ("major", field("Major version.")),
            (
                "minCompatibilityMajor",
                string("Oldest major version this server is compatible with."),
            ),
            (
                "minCompatibilityMinor",
                string("Oldest minor version this server is compatible with."),
            ),
            ("minor", field("Minor version.")),
            ("platform", field("OS/architecture.")),
        ],
        &[
            "major",
            "minor",
            "gitVersion",
            "gitCommit",
            "gitTreeState",
            "buildDate",
            "goVersion",
            "compiler",
            "platform",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_meta_carries_the_merge_markers_clients_read() {
        let om = schema(&names::meta("ObjectMeta"), Refs::V3, &[]).expect("ObjectMeta");
        assert_eq!(
            om["properties"]["ownerReferences"]["x-kubernetes-patch-merge-key"],
            "uid"
        );
        assert_eq!(
            om["properties"]["ownerReferences"]["x-kubernetes-list-type"],
            "map"
        );
        assert_eq!(
            om["properties"]["finalizers"]["x-kubernetes-list-type"],
            "set"
        );
        assert_eq!(
            om["properties"]["creationTimestamp"]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"
        );
        let v2 = schema(&names::meta("ObjectMeta"), Refs::V2, &[]).expect("ObjectMeta");
        assert_eq!(
            v2["properties"]["creationTimestamp"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Time"
        );
    }

    #[test]
    fn delete_options_is_registered_in_every_served_group() {
        let served = vec![
            ("".to_string(), "v1".to_string()),
            ("slipway.dev".to_string(), "v1alpha1".to_string()),
        ];
        let d = schema(&names::meta("DeleteOptions"), Refs::V3, &served).expect("DeleteOptions");
        let gvks = d["x-kubernetes-group-version-kind"]
            .as_array()
            .expect("gvk list");
        assert_eq!(gvks.len(), 2);
        assert!(gvks.contains(&names::gvk("slipway.dev", "v1alpha1", "DeleteOptions")));
        assert!(
            schema(
                "io.k8s.apimachinery.pkg.apis.meta.v1.Nope",
                Refs::V3,
                &served
            )
            .is_none()
        );
    }
}
