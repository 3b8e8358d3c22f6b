//! Server-side apply and `metadata.managedFields`, with the semantics of the Kubernetes
//! apiserver (structured-merge-diff v6 under `k8s.io/apimachinery/pkg/util/managedfields`).
//!
//! Every write records who owns which fields. [`apply`] merges an applied configuration into
//! the live object: fields in the configuration are set and owned by the applier; fields the
//! applier owned last time but no longer sets are removed unless another manager owns them;
//! setting a field another manager owns to a different value is a conflict (409) unless
//! forced, in which case ownership moves. [`track_update`] records the fields a create,
//! update or patch changed as owned by its manager (operation `Update`) and takes them from
//! everyone else.
//!
//! The schema is the kind's OpenAPI v3 structural schema, walked here directly:
//! objects with `properties` are structs (their fields are "named"), `additionalProperties`
//! maps own each key, `x-kubernetes-list-type: map` lists own items by
//! `x-kubernetes-list-map-keys`, `set` lists own each value, every other list and
//! `x-kubernetes-map-type: atomic` maps are owned as a whole. Without a schema, objects are
//! maps and lists are atomic (upstream's "deduced" type). Under `metadata` only `labels`,
//! `annotations`, `finalizers` (a set) and `ownerReferences` (a map keyed by `uid`) are
//! tracked; `apiVersion`, `kind` and the rest of `metadata` never are.
//!
//! Where this is simpler than upstream (all safe for Slipway's single-version kinds):
//! - one version per kind, so no conversion between versions of managed sets;
//! - no cap on the number of `Update` managers (upstream folds the oldest into
//!   `ancient-changes` past 10) and no `last-applied-configuration` interplay with
//!   client-side apply;
//! - when a field changes type (e.g. an object becomes a string) it is compared as one leaf;
//! - a `null` in an applied configuration sets the field to null for conflict detection and
//!   ownership, then the field is dropped unless the schema says `nullable` (what upstream's
//!   pruning of non-nullable nulls does to custom resources after the merge);
//! - a no-op apply by a brand-new manager stamps `time` (upstream leaves it unset).

pub mod fieldset;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde_json::{Map, Value};

use crate::field::{FieldError, FieldErrorType, FieldPath};
use crate::status::{ApiError, StatusCause};
use fieldset::{FieldSet, Path, PathElement, values_equal};

/// Longest `manager` name upstream accepts.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;
/// Longest `subresource` name upstream accepts in a managed fields entry.
pub const MAX_SUBRESOURCE_NAME_LENGTH: usize = 256;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The main resource of a kind without a `/status` subresource: every field.
    Object,
    /// The main resource of a kind with a `/status` subresource: everything but `status`,
    /// which an apply leaves as it is and which no manager of the main resource owns.
    Main,
    /// The `/status` subresource: only `status`.
    Status,
}

impl Scope {
    /// The scope of a request to `subresource` (None for the main resource) of a kind that
    /// does or does not serve `/status`.
    pub fn new(status_subresource: bool, subresource: Option<&str>) -> Self {
        match subresource {
            Some("status") => Self::Status,
            _ if status_subresource => Self::Main,
            _ => Self::Object,
        }
    }

    /// The `subresource` recorded in managed fields entries.
    pub fn subresource(self) -> Option<&'static str> {
        match self {
            Self::Status => Some("status"),
            Self::Object | Self::Main => None,
        }
    }
}

/// `operation` of a managed fields entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// One `metadata.managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedFieldsEntry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    /// RFC 3339 time of the manager's last change.
    pub time: Option<String>,
    pub subresource: Option<String>,
    pub fields: FieldSet,
}

impl ManagedFieldsEntry {
    /// Whether `self` and `other` are the same manager. As upstream: appliers are one manager
    /// whatever version they apply, updaters are one manager per API version.
    fn same_manager(&self, other: &ManagedFieldsEntry) -> bool {
        self.is(
            &other.manager,
            other.operation,
            &other.api_version,
            other.subresource.as_deref(),
        )
    }

    fn is(
        &self,
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: Option<&str>,
    ) -> bool {
        self.manager == manager
            && self.operation == operation
            && self.subresource.as_deref() == subresource
            && (operation == Operation::Apply || self.api_version == api_version)
    }

    /// The entry as upstream serializes it.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), Value::String(self.manager.clone()));
        m.insert(
            "operation".into(),
            Value::String(self.operation.as_str().into()),
        );
        m.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            m.insert("time".into(), Value::String(time.clone()));
        }
        m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        m.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if let Some(sub) = &self.subresource {
            m.insert("subresource".into(), Value::String(sub.clone()));
        }
        Value::Object(m)
    }

    /// Decode one entry, reporting every problem with its field path.
    fn from_json(v: &Value, path: &FieldPath) -> Result<Self, Vec<FieldError>> {
        let Value::Object(m) = v else {
            return Err(vec![FieldError::type_invalid(path, v, "must be an object")]);
        };
        let mut errs = Vec::new();
        let mut string = |name: &str| -> Option<String> {
            match m.get(name) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => {
                    errs.push(FieldError::type_invalid(
                        &path.child(name),
                        other,
                        "must be a string",
                    ));
                    None
                }
            }
        };
        let manager = string("manager").unwrap_or_default();
        let operation = string("operation");
        let api_version = string("apiVersion").unwrap_or_default();
        let fields_type = string("fieldsType");
        let time = string("time");
        let subresource = string("subresource").filter(|s| !s.is_empty());

        let operation = match operation.as_deref() {
            Some("Apply") => Some(Operation::Apply),
            Some("Update") => Some(Operation::Update),
            other => {
                errs.push(FieldError::invalid(
                    &path.child("operation"),
                    &Value::String(other.unwrap_or_default().into()),
                    "must be `Apply` or `Update`",
                ));
                None
            }
        };
        if api_version.is_empty() {
            errs.push(FieldError::required(&path.child("apiVersion"), ""));
        }
        match fields_type.as_deref() {
            Some("FieldsV1") => {}
            None | Some("") => errs.push(FieldError::required(
                &path.child("fieldsType"),
                "must be `FieldsV1`",
            )),
            Some(other) => errs.push(FieldError::invalid(
                &path.child("fieldsType"),
                &Value::String(other.into()),
                "must be `FieldsV1`",
            )),
        }
        errs.extend(validate_field_manager(&manager, &path.child("manager")));
        if let Some(sub) = &subresource
            && sub.len() > MAX_SUBRESOURCE_NAME_LENGTH
        {
            errs.push(too_long(
                &path.child("subresource"),
                MAX_SUBRESOURCE_NAME_LENGTH,
            ));
        }
        if let Some(t) = &time
            && t.parse::<jiff::Timestamp>().is_err()
        {
            errs.push(FieldError::invalid(
                &path.child("time"),
                &Value::String(t.clone()),
                "must be an RFC 3339 date-time such as 2025-01-01T00:00:00Z",
            ));
        }
        let fields = match m.get("fieldsV1") {
            None | Some(Value::Null) => FieldSet::new(),
            Some(raw) => match FieldSet::from_fields_v1(raw) {
                Ok(set) => set,
                Err(detail) => {
                    errs.push(FieldError::invalid(&path.child("fieldsV1"), raw, detail));
                    FieldSet::new()
                }
            },
        };
        match operation {
            Some(operation) if errs.is_empty() => Ok(Self {
                manager,
                operation,
                api_version,
                time,
                subresource,
                fields,
            }),
            _ => Err(errs),
        }
    }
}

fn too_long(path: &FieldPath, max: usize) -> FieldError {
    FieldError {
        kind: FieldErrorType::TooLong,
        field: path.clone(),
        value: None,
        detail: format!("may not be more than {max} bytes"),
    }
}

/// Upstream's `ValidateFieldManager`: at most 128 bytes, printable characters only. The
/// server applies it to the `fieldManager` query parameter too.
pub fn validate_field_manager(manager: &str, path: &FieldPath) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if manager.len() > FIELD_MANAGER_MAX_LENGTH {
        errs.push(too_long(path, FIELD_MANAGER_MAX_LENGTH));
    }
    for (i, c) in manager.char_indices() {
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            errs.push(FieldError::invalid(
                path,
                &Value::String(manager.into()),
                format!("invalid character U+{:04X} (at position {i})", u32::from(c)),
            ));
        }
    }
    errs
}

/// Whether a client's `managedFields` asks to reset tracking: an empty list, or a list of
/// one empty entry (upstream's `isResetManagedFields`).
fn is_reset(items: &[Value]) -> bool {
    match items {
        [] => true,
        [Value::Object(m)] => m.values().all(|v| v.is_null() || v.as_str() == Some("")),
        _ => false,
    }
}

/// The managed fields entries of an object. Entries that cannot be decoded are skipped;
/// when two entries name the same manager the later one wins, as upstream.
pub fn managed_fields(obj: &Value) -> Vec<ManagedFieldsEntry> {
    let Some(Value::Array(items)) = obj.pointer("/metadata/managedFields") else {
        return Vec::new();
    };
    let path = FieldPath::root("metadata").child("managedFields");
    let mut entries: Vec<ManagedFieldsEntry> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Ok(entry) = ManagedFieldsEntry::from_json(item, &path.index(i)) {
            push_entry(&mut entries, entry);
        }
    }
    entries
}

fn push_entry(entries: &mut Vec<ManagedFieldsEntry>, entry: ManagedFieldsEntry) {
    match entries.iter_mut().find(|e| e.same_manager(&entry)) {
        Some(existing) => *existing = entry,
        None => entries.push(entry),
    }
}

/// Every entry, or an error: the strict reading of a client's `managedFields`.
fn decode_strict(value: &Value) -> Option<Vec<ManagedFieldsEntry>> {
    let Value::Array(items) = value else {
        return None;
    };
    let path = FieldPath::root("metadata").child("managedFields");
    let mut entries = Vec::new();
    for (i, item) in items.iter().enumerate() {
        push_entry(
            &mut entries,
            ManagedFieldsEntry::from_json(item, &path.index(i)).ok()?,
        );
    }
    Some(entries)
}

/// Check the `metadata.managedFields` a client sent on create or update: each problem with
/// its path (`metadata.managedFields[0].operation: Invalid value: "Patch": must be `Apply`
/// or `Update``), for a 422. `[]` and `[{}]` (reset requests) are valid.
pub fn validate_managed_fields(obj: &Value) -> Vec<FieldError> {
    let path = FieldPath::root("metadata").child("managedFields");
    match obj.pointer("/metadata/managedFields") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) if is_reset(items) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| ManagedFieldsEntry::from_json(item, &path.index(i)).err())
            .flatten()
            .collect(),
        Some(other) => vec![FieldError::type_invalid(
            &path,
            other,
            "must be a list of managed fields entries",
        )],
    }
}

fn time_seconds(time: Option<&str>) -> i64 {
    time.and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or(0, |t| t.as_second())
}

/// Upstream's order: Apply before Update, then oldest first, then by manager, version and
/// subresource.
fn sort_entries(entries: &mut [ManagedFieldsEntry]) {
    entries.sort_by(|p, q| {
        p.operation
            .cmp(&q.operation)
            .then_with(|| time_seconds(p.time.as_deref()).cmp(&time_seconds(q.time.as_deref())))
            .then_with(|| p.manager.cmp(&q.manager))
            .then_with(|| p.api_version.cmp(&q.api_version))
            .then_with(|| p.subresource.cmp(&q.subresource))
    });
}

/// Store `entries` (without empty ones) as `metadata.managedFields`, or drop the member when
/// none is left.
fn write_managed_fields(obj: &mut Value, mut entries: Vec<ManagedFieldsEntry>) {
    entries.retain(|e| !e.fields.is_empty());
    sort_entries(&mut entries);
    if entries.is_empty() {
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.shift_remove("managedFields");
        }
        return;
    }
    let list = entries.iter().map(ManagedFieldsEntry::to_json).collect();
    crate::meta::metadata_mut(obj).insert("managedFields".into(), Value::Array(list));
}

/// One conflict of an apply: a field another manager owns with a different value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    /// The field, as upstream prints it: `.spec.nodePools[name="general"].replicas`.
    pub field: String,
}

impl Conflict {
    /// `"kubectl"` for an applier, `"kubectl-edit" using v1` for an updater.
    fn who(&self) -> String {
        match self.operation {
            Operation::Apply => format!("{:?}", self.manager),
            Operation::Update => format!("{:?} using {}", self.manager, self.api_version),
        }
    }
}

/// Why an apply was refused: every conflicting field with its manager.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub struct ApplyConflicts {
    /// Sorted by manager, then by field.
    pub conflicts: Vec<Conflict>,
}

impl ApplyConflicts {
    /// Upstream's message: `Apply failed with 1 conflict: conflict with "x" using v1: .spec.a`,
    /// or for several, one `conflicts with "x":` block per manager listing `- .spec.a`.
    pub fn message(&self) -> String {
        if let [one] = self.conflicts.as_slice() {
            return format!(
                "Apply failed with 1 conflict: conflict with {}: {}",
                one.who(),
                one.field
            );
        }
        let mut lines = Vec::new();
        let mut current: Option<String> = None;
        for c in &self.conflicts {
            let who = c.who();
            if current.as_deref() != Some(who.as_str()) {
                lines.push(format!("conflicts with {who}:"));
                current = Some(who);
            }
            lines.push(format!("- {}", c.field));
        }
        format!(
            "Apply failed with {} conflicts: {}",
            self.conflicts.len(),
            lines.join("\n")
        )
    }

    /// The 409 `Conflict` upstream answers, one `FieldManagerConflict` cause per field.
    pub fn to_api_error(&self) -> ApiError {
        let mut err = ApiError::new(409, "Conflict", self.message());
        err.causes = self
            .conflicts
            .iter()
            .map(|c| StatusCause {
                reason: "FieldManagerConflict".into(),
                message: format!("conflict with {}", c.who()),
                field: c.field.clone(),
            })
            .collect();
        err
    }
}

/// Why [`apply`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// Fields owned by other managers (409).
    #[error(transparent)]
    Conflicts(#[from] ApplyConflicts),
    /// A configuration that cannot be applied: not an object, carrying `managedFields` (400),
    /// list items without their keys or duplicated (422).
    #[error("{0}")]
    Rejected(Box<ApiError>),
}

impl ApplyError {
    pub fn to_api_error(&self) -> ApiError {
        match self {
            Self::Conflicts(c) => c.to_api_error(),
            Self::Rejected(e) => (**e).clone(),
        }
    }
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> Self {
        match e {
            ApplyError::Conflicts(c) => c.to_api_error(),
            ApplyError::Rejected(e) => *e,
        }
    }
}

/// Server-side apply: the object that results from applying `config` (an apply
/// configuration: a partial object with apiVersion, kind and metadata.name) as `manager` to
/// `live` (None to create), with its managed fields updated. `now` is the RFC 3339 time
/// stamped on the applier's entry when something changed. `live` is returned unchanged
/// (byte for byte) when the apply changes nothing, so the caller can skip the write.
///
/// With [`Scope::Main`] the `status` of `live` is kept whatever `config` says; with
/// [`Scope::Status`] only `status` changes (the caller answers 404 when `live` is None).
/// The caller still defaults, validates and checks `metadata.resourceVersion` and `uid`
/// preconditions on the result, as for an update.
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    schema: &Value,
    manager: &str,
    force: bool,
    scope: Scope,
    now: &str,
) -> Result<Value, ApplyError> {
    let reject = |e: ApiError| ApplyError::Rejected(Box::new(e));
    if !config.is_object() {
        return Err(reject(ApiError::bad_request(
            "error decoding YAML: an apply configuration must be an object",
        )));
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|v| !v.is_null())
    {
        return Err(reject(ApiError::bad_request(
            "metadata.managedFields must be nil",
        )));
    }
    let root = Ty::Root { schema, scope };
    let empty = Value::Object(Map::new());
    let live_obj = live.unwrap_or(&empty);

    // What the configuration sets, and so what the applier will own.
    let mut applied = FieldSet::new();
    let mut errs = Vec::new();
    config_fields(
        config,
        root,
        &mut Vec::new(),
        &FieldPath::default(),
        &mut applied,
        &mut errs,
    );
    if !errs.is_empty() {
        return Err(reject(invalid_config(config, &errs)));
    }

    let subresource = scope.subresource();
    let api_version = config
        .get("apiVersion")
        .or_else(|| live_obj.get("apiVersion"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut entries = managed_fields(live_obj);
    let mine = |e: &ManagedFieldsEntry| e.is(manager, Operation::Apply, "", subresource);

    let mut merged = merge(live, config, root);

    // Remove what the applier owned last time, sets no more, and nobody else owns.
    let last = entries
        .iter()
        .find(|e| mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    if !last.is_empty() {
        let owned = entries
            .iter()
            .filter(|e| !mine(e))
            .fold(applied.clone(), |acc, e| acc.union(&e.fields));
        prune(&mut merged, root, &mut Vec::new(), &last, &owned);
    }

    // Fields the apply changes that others own are conflicts; forced, they change hands.
    let diff = compare(Some(live_obj), Some(&merged), root);
    let changed = diff.modified.union(&diff.added);
    let mut conflicts: Vec<(&ManagedFieldsEntry, Path)> = Vec::new();
    for e in entries.iter().filter(|e| !mine(e)) {
        for p in e.fields.intersection(&changed).iter() {
            conflicts.push((e, p.clone()));
        }
    }
    if !force && !conflicts.is_empty() {
        conflicts.sort_by(|(a, pa), (b, pb)| {
            (&a.manager, a.operation, &a.api_version)
                .cmp(&(&b.manager, b.operation, &b.api_version))
                .then_with(|| pa.cmp(pb))
        });
        let conflicts = conflicts
            .into_iter()
            .map(|(e, p)| Conflict {
                manager: e.manager.clone(),
                operation: e.operation,
                api_version: e.api_version.clone(),
                field: p.to_string(),
            })
            .collect();
        return Err(ApplyError::Conflicts(ApplyConflicts { conflicts }));
    }
    for e in entries.iter_mut().filter(|e| !mine(e)) {
        e.fields = e.fields.difference(&changed).difference(&diff.removed);
    }
    drop_nulls(&mut merged, root);

    let object_changed = !values_equal(
        &without_managed_fields(live_obj),
        &without_managed_fields(&merged),
    );
    match entries.iter_mut().find(|e| mine(e)) {
        Some(e) => {
            if object_changed || e.fields != applied || e.api_version != api_version {
                e.time = Some(now.to_string());
            }
            e.fields = applied;
            e.api_version = api_version;
        }
        None => entries.push(ManagedFieldsEntry {
            manager: manager.to_string(),
            operation: Operation::Apply,
            api_version,
            time: Some(now.to_string()),
            subresource: subresource.map(str::to_string),
            fields: applied,
        }),
    }
    write_managed_fields(&mut merged, entries);
    if let Some(live) = live
        && values_equal(live, &merged)
    {
        return Ok(live.clone());
    }
    Ok(merged)
}

/// Record a non-apply write (create, update, patch) by `manager`: `new` with its managed
/// fields updated. Fields the write added or changed (every set field on create) become
/// owned by `manager` with operation `Update` and leave every other manager's set; removed
/// fields leave every set. `now` stamps the manager's entry when it took any field.
///
/// The `managedFields` of `new` are honoured as upstream does: absent (or undecodable), the
/// live ones are kept; `[]` or `[{}]` reset tracking, leaving only what this write changed;
/// anything else replaces the live entries. Writes to `/status` always keep the live ones.
/// Call [`validate_managed_fields`] first to answer malformed entries with a 422.
pub fn track_update(
    old: Option<&Value>,
    mut new: Value,
    schema: &Value,
    manager: &str,
    scope: Scope,
    now: &str,
) -> Value {
    #[cfg(test)]
    let expected = track_update_decoded(old, new.clone(), schema, manager, scope, now);
    let out = match stored_entries(old, &mut new, scope) {
        Some(stored) => track_update_stored(old, new, stored, schema, manager, scope, now),
        None => track_update_decoded(old, new, schema, manager, scope, now),
    };
    #[cfg(test)]
    assert_eq!(
        serde_json::to_string(&out).ok(),
        serde_json::to_string(&expected).ok(),
        "the in-place managedFields update must write what decoding them all writes"
    );
    out
}

/// The stored managedFields entries the update starts from, as stored, when that is what
/// decoding would start from too: a `/status` write (whatever the request carries), or a
/// write whose request carries no managedFields or the stored ones unchanged (a patch
/// merged over the stored object). Taken out of `new` when it holds them, else copied.
/// None when the request sent other entries: those are decoded, strictly.
fn stored_entries(old: Option<&Value>, new: &mut Value, scope: Scope) -> Option<Vec<Value>> {
    let stored: &[Value] = match old.and_then(|o| o.pointer("/metadata/managedFields")) {
        None => &[],
        Some(Value::Array(items)) => items,
        Some(_) => return None,
    };
    let sent = new.pointer_mut("/metadata/managedFields");
    match sent {
        Some(Value::Array(items)) if items.as_slice() == stored && !is_reset(items) => {
            Some(std::mem::take(items))
        }
        _ if scope == Scope::Status => Some(stored.to_vec()),
        None | Some(Value::Null) => Some(stored.to_vec()),
        Some(_) => None,
    }
}

/// [`track_update`] over the stored entries without decoding them: every stored list was
/// written by [`write_managed_fields`] (or by an apply, which writes through it too), so it
/// is canonical, sorted and without duplicates. Only the entries the write takes fields from,
/// and the writer's own when it gains fields, are decoded and written again; the others
/// stay as stored, byte for byte, which is what decoding and encoding them would give.
fn track_update_stored(
    old: Option<&Value>,
    mut new: Value,
    mut entries: Vec<Value>,
    schema: &Value,
    manager: &str,
    scope: Scope,
    now: &str,
) -> Value {
    let empty = Value::Object(Map::new());
    let old_obj = old.unwrap_or(&empty);
    let (changed, removed) = changes(old_obj, &new, schema, scope);
    let api_version = if changed.is_empty() {
        String::new()
    } else {
        writer_api_version(old_obj, &new)
    };
    let subresource = scope.subresource();
    let mut own_found = false;
    let mut edited = false;
    let entry_path = FieldPath::root("metadata").child("managedFields");
    for (i, entry) in entries.iter_mut().enumerate() {
        let own = !changed.is_empty()
            && !own_found
            && raw_entry_is(entry, manager, Operation::Update, &api_version, subresource);
        own_found |= own;
        let fields = entry.get("fieldsV1").unwrap_or(&Value::Null);
        let owns_any = |set: &FieldSet| set.iter().any(|p| fieldset::fields_v1_owns(fields, p));
        let decode = owns_any(&removed)
            || if own {
                !changed.iter().all(|p| fieldset::fields_v1_owns(fields, p))
            } else {
                owns_any(&changed)
            };
        if decode {
            edited = true;
            *entry = match ManagedFieldsEntry::from_json(entry, &entry_path.index(i)) {
                Ok(mut e) => {
                    e.fields.remove_all(&changed);
                    e.fields.remove_all(&removed);
                    if own {
                        e.fields.add_all(&changed);
                        e.time = Some(now.to_string());
                    }
                    if e.fields.is_empty() {
                        Value::Null
                    } else {
                        e.to_json()
                    }
                }
                // Never for a stored entry; decoding would have skipped it.
                Err(_) => Value::Null,
            };
        } else if own {
            edited = true;
            if let Some(m) = entry.as_object_mut() {
                m.insert("time".into(), Value::String(now.to_string()));
            }
        }
    }
    if !changed.is_empty() && !own_found {
        edited = true;
        entries.push(
            ManagedFieldsEntry {
                manager: manager.to_string(),
                operation: Operation::Update,
                api_version,
                time: Some(now.to_string()),
                subresource: subresource.map(str::to_string),
                fields: changed,
            }
            .to_json(),
        );
    }
    if edited {
        entries.retain(|e| !e.is_null());
        entries.sort_by_cached_key(raw_entry_order);
    }
    if entries.is_empty() {
        if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.shift_remove("managedFields");
        }
    } else {
        crate::meta::metadata_mut(&mut new).insert("managedFields".into(), Value::Array(entries));
    }
    new
}

/// What a write from `old` to `new` set (added or modified fields) and removed.
fn changes(old: &Value, new: &Value, schema: &Value, scope: Scope) -> (FieldSet, FieldSet) {
    let diff = compare(Some(old), Some(new), Ty::Root { schema, scope });
    let mut changed = diff.modified;
    changed.add_all(&diff.added);
    (changed, diff.removed)
}

/// The API version an update's entry records: the request's, else the stored object's.
fn writer_api_version(old: &Value, new: &Value) -> String {
    new.get("apiVersion")
        .or_else(|| old.get("apiVersion"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn raw_str<'a>(entry: &'a Value, name: &str) -> &'a str {
    entry.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// [`ManagedFieldsEntry::is`] on a stored entry.
fn raw_entry_is(
    entry: &Value,
    manager: &str,
    operation: Operation,
    api_version: &str,
    subresource: Option<&str>,
) -> bool {
    let sub = Some(raw_str(entry, "subresource")).filter(|s| !s.is_empty());
    raw_str(entry, "manager") == manager
        && raw_str(entry, "operation") == operation.as_str()
        && sub == subresource
        && (operation == Operation::Apply || raw_str(entry, "apiVersion") == api_version)
}

/// [`sort_entries`]'s order, for stored entries.
fn raw_entry_order(entry: &Value) -> (bool, i64, String, String, Option<String>) {
    let time = entry.get("time").and_then(Value::as_str);
    (
        raw_str(entry, "operation") != Operation::Apply.as_str(),
        time_seconds(time),
        raw_str(entry, "manager").to_string(),
        raw_str(entry, "apiVersion").to_string(),
        Some(raw_str(entry, "subresource").to_string()).filter(|s| !s.is_empty()),
    )
}

/// [`track_update`] by decoding every entry and writing them all again.
fn track_update_decoded(
    old: Option<&Value>,
    mut new: Value,
    schema: &Value,
    manager: &str,
    scope: Scope,
    now: &str,
) -> Value {
    let empty = Value::Object(Map::new());
    let old_obj = old.unwrap_or(&empty);
    let mut entries = match (scope, new.pointer("/metadata/managedFields")) {
        (Scope::Status, _) | (_, None | Some(Value::Null)) => managed_fields(old_obj),
        (_, Some(Value::Array(items))) if is_reset(items) => Vec::new(),
        (_, Some(sent)) => match decode_strict(sent) {
            Some(entries) if !entries.is_empty() => entries,
            _ => managed_fields(old_obj),
        },
    };

    let (changed, removed) = changes(old_obj, &new, schema, scope);
    for e in &mut entries {
        e.fields.remove_all(&changed);
        e.fields.remove_all(&removed);
    }
    if !changed.is_empty() {
        let api_version = writer_api_version(old_obj, &new);
        let subresource = scope.subresource();
        match entries
            .iter_mut()
            .find(|e| e.is(manager, Operation::Update, &api_version, subresource))
        {
            Some(e) => {
                e.fields.add_all(&changed);
                e.time = Some(now.to_string());
            }
            None => entries.push(ManagedFieldsEntry {
                manager: manager.to_string(),
                operation: Operation::Update,
                api_version,
                time: Some(now.to_string()),
                subresource: subresource.map(str::to_string),
                fields: changed,
            }),
        }
    }
    write_managed_fields(&mut new, entries);
    new
}

fn without_managed_fields(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.shift_remove("managedFields");
    }
    obj
}

fn invalid_config(config: &Value, errs: &[FieldError]) -> ApiError {
    let kind = config
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(group, _)| group);
    let name = crate::meta::name(config).unwrap_or_default();
    ApiError::invalid(kind, group, name, errs)
}

// ---------------------------------------------------------------------------------------
// The type of each node, from the schema.

/// What a node of the object is, for ownership purposes.
#[derive(Debug, Clone, Copy)]
enum Ty<'s> {
    /// The whole object.
    Root {
        schema: &'s Value,
        scope: Scope,
    },
    /// A node described by a schema, or deduced from its value when there is none.
    Schema(Option<&'s Value>),
    Metadata,
    Finalizers,
    OwnerReferences,
    OwnerReference,
    /// Not tracked; an applied value replaces the live one (`apiVersion`, `metadata.name`).
    Untracked,
    /// Outside the write's scope: not tracked, and an apply keeps the live value.
    Frozen,
}

/// How a node is owned.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// Fields, each owned separately.
    Object,
    /// Items owned by their key fields.
    ListMap(Vec<String>),
    /// Items owned by value.
    ListSet,
    /// Owned as a whole: scalars, atomic lists and maps.
    Leaf,
    /// Not tracked.
    Skip,
}

const OWNER_REFERENCE_FIELDS: [&str; 6] = [
    "apiVersion",
    "kind",
    "name",
    "uid",
    "controller",
    "blockOwnerDeletion",
];

impl<'s> Ty<'s> {
    fn tracked(self) -> bool {
        !matches!(self, Ty::Untracked | Ty::Frozen)
    }

    /// Whether the node itself can be owned (the root and `metadata` never are).
    fn tracks_self(self) -> bool {
        self.tracked() && !matches!(self, Ty::Root { .. } | Ty::Metadata)
    }

    fn shape(self, v: &Value) -> Shape {
        match self {
            Ty::Untracked | Ty::Frozen => Shape::Skip,
            Ty::Root { .. } | Ty::Metadata | Ty::OwnerReference | Ty::Schema(None) => {
                if v.is_object() {
                    Shape::Object
                } else {
                    Shape::Leaf
                }
            }
            Ty::Finalizers if v.is_array() => Shape::ListSet,
            Ty::OwnerReferences if v.is_array() => Shape::ListMap(vec!["uid".into()]),
            Ty::Finalizers | Ty::OwnerReferences => Shape::Leaf,
            Ty::Schema(Some(s)) => schema_shape(s, v),
        }
    }

    /// The type of field `name` of an object node, and whether it is a declared ("named")
    /// field rather than a map key.
    fn field(self, name: &str) -> (Ty<'s>, bool) {
        match self {
            Ty::Root { schema, scope } => match (name, scope) {
                ("apiVersion" | "kind", _) => (Ty::Untracked, true),
                ("status", Scope::Status) => schema_field(schema, name),
                (_, Scope::Status) => (Ty::Frozen, true),
                ("status", Scope::Main) => (Ty::Frozen, true),
                ("metadata", _) => (Ty::Metadata, true),
                _ => schema_field(schema, name),
            },
            Ty::Metadata => match name {
                "labels" | "annotations" => (Ty::Schema(None), true),
                "finalizers" => (Ty::Finalizers, true),
                "ownerReferences" => (Ty::OwnerReferences, true),
                "managedFields" => (Ty::Frozen, true),
                _ => (Ty::Untracked, true),
            },
            Ty::OwnerReference => (Ty::Schema(None), OWNER_REFERENCE_FIELDS.contains(&name)),
            Ty::Schema(Some(s)) => schema_field(s, name),
            Ty::Schema(None) | Ty::Finalizers | Ty::OwnerReferences => (Ty::Schema(None), false),
            Ty::Untracked | Ty::Frozen => (self, false),
        }
    }

    /// The type of the items of a list node.
    fn item(self) -> Ty<'s> {
        match self {
            Ty::OwnerReferences => Ty::OwnerReference,
            Ty::Schema(Some(s)) => Ty::Schema(s.get("items")),
            _ => Ty::Schema(None),
        }
    }

    /// The schema default of key field `key` of a map-typed list's items.
    fn key_default(self, key: &str) -> Option<&'s Value> {
        match self {
            Ty::Schema(Some(s)) => s.pointer(&format!(
                "/items/properties/{}/default",
                key.replace('~', "~0").replace('/', "~1")
            )),
            _ => None,
        }
    }

    fn nullable(self) -> bool {
        matches!(self, Ty::Schema(Some(s)) if s.get("nullable") == Some(&Value::Bool(true)))
    }
}

fn schema_shape(s: &Value, v: &Value) -> Shape {
    if s.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return Shape::Leaf;
    }
    let declared = s.get("type").and_then(Value::as_str);
    match v {
        Value::Object(_) if declared.is_none_or(|t| t == "object") => {
            if s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic") {
                Shape::Leaf
            } else {
                Shape::Object
            }
        }
        Value::Array(_) if declared.is_none_or(|t| t == "array") => {
            match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("map") => {
                    let keys: Vec<String> = s
                        .get("x-kubernetes-list-map-keys")
                        .and_then(Value::as_array)
                        .map(|keys| {
                            keys.iter()
                                .filter_map(|k| k.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    if keys.is_empty() {
                        Shape::Leaf
                    } else {
                        Shape::ListMap(keys)
                    }
                }
                Some("set") => Shape::ListSet,
                _ => Shape::Leaf,
            }
        }
        _ => Shape::Leaf,
    }
}

fn schema_field<'s>(s: &'s Value, name: &str) -> (Ty<'s>, bool) {
    if let Some(prop) = s.get("properties").and_then(|p| p.get(name)) {
        return (Ty::Schema(Some(prop)), true);
    }
    match s.get("additionalProperties") {
        Some(ap @ Value::Object(_)) => (Ty::Schema(Some(ap)), false),
        _ => (Ty::Schema(None), false),
    }
}

/// Why a list item has no path element, in structured-merge-diff's words.
fn item_element(shape: &Shape, list: Ty<'_>, item: &Value) -> Result<PathElement, &'static str> {
    match shape {
        Shape::ListMap(keys) => {
            let obj = match item {
                Value::Null => {
                    return Err("associative list with keys may not have a null element");
                }
                Value::Object(obj) => obj,
                _ => return Err("associative list with keys may not have non-map elements"),
            };
            let mut fields = Vec::with_capacity(keys.len());
            for key in keys {
                match obj.get(key).or_else(|| list.key_default(key)) {
                    Some(v) => fields.push((key.clone(), v.clone())),
                    None => {
                        return Err(
                            "associative list with keys has an element that omits key field",
                        );
                    }
                }
            }
            Ok(PathElement::key(fields))
        }
        _ => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type")
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements"),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null")
            }
            v => Ok(PathElement::Value(v.clone())),
        },
    }
}

/// Path elements of a list's items, skipping items without one and repeated ones.
fn index_items<'v>(
    shape: &Shape,
    list: Ty<'_>,
    items: &'v [Value],
) -> Vec<(PathElement, &'v Value)> {
    let mut seen = BTreeSet::new();
    items
        .iter()
        .filter_map(|item| {
            let pe = item_element(shape, list, item).ok()?;
            seen.insert(pe.clone()).then_some((pe, item))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The four walks: what a configuration sets, how two objects differ, merging and pruning.

/// The fields an apply configuration sets (structured-merge-diff's `ToFieldSet`): leaves,
/// list items, map keys, and declared fields only when null or empty. Items without keys and
/// duplicates are reported.
fn config_fields(
    v: &Value,
    ty: Ty<'_>,
    path: &mut Vec<PathElement>,
    at: &FieldPath,
    set: &mut FieldSet,
    errs: &mut Vec<FieldError>,
) {
    let shape = ty.shape(v);
    match (&shape, v) {
        (Shape::Skip, _) => {}
        (Shape::Object, Value::Object(obj)) => {
            for (k, child) in obj {
                let (cty, declared) = ty.field(k);
                if !cty.tracked() {
                    continue;
                }
                path.push(PathElement::Field(k.clone()));
                config_fields(child, cty, path, &at.child(k), set, errs);
                let empty = child.is_null() || child.as_object().is_some_and(Map::is_empty);
                if cty.tracks_self() && (empty || !declared) {
                    set.insert(Path(path.clone()));
                }
                path.pop();
            }
        }
        (Shape::ListMap(_) | Shape::ListSet, Value::Array(items)) => {
            let item_ty = ty.item();
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let at = at.index(i);
                let pe = match item_element(&shape, ty, item) {
                    Ok(pe) => pe,
                    Err(why) => {
                        errs.push(item_error(&at, item, &shape, why, ty));
                        continue;
                    }
                };
                if !seen.insert(pe.clone()) {
                    errs.push(FieldError::duplicate(&at, &element_value(&pe)));
                    continue;
                }
                path.push(pe);
                config_fields(item, item_ty, path, &at, set, errs);
                set.insert(Path(path.clone()));
                path.pop();
            }
        }
        _ => {
            if ty.tracks_self() {
                set.insert(Path(path.clone()));
            }
        }
    }
}

fn item_error(at: &FieldPath, item: &Value, shape: &Shape, why: &str, list: Ty<'_>) -> FieldError {
    if let Shape::ListMap(keys) = shape
        && let Some(missing) = keys
            .iter()
            .find(|k| item.get(k.as_str()).is_none() && list.key_default(k).is_none())
        && item.is_object()
    {
        return FieldError::required(
            &at.child(missing),
            format!("{why} {missing:?} (and doesn't have default value)"),
        );
    }
    FieldError::invalid(at, item, why)
}

/// The JSON shown for a duplicate item: its key fields, or its value.
fn element_value(pe: &PathElement) -> Value {
    match pe {
        PathElement::Key(fields) => Value::Object(fields.iter().cloned().collect()),
        PathElement::Value(v) => v.clone(),
        PathElement::Field(f) => Value::String(f.clone()),
        PathElement::Index(i) => Value::from(*i),
    }
}

/// Fields added, removed and changed from one object to another (structured-merge-diff's
/// `Compare`): every node of an added or removed subtree, and changed leaves.
#[derive(Debug, Default)]
struct Comparison {
    added: FieldSet,
    removed: FieldSet,
    modified: FieldSet,
}

fn compare(l: Option<&Value>, r: Option<&Value>, ty: Ty<'_>) -> Comparison {
    let mut out = Comparison::default();
    compare_into(l, r, ty, &mut Vec::new(), &mut out);
    out
}

fn compare_into(
    l: Option<&Value>,
    r: Option<&Value>,
    ty: Ty<'_>,
    path: &mut Vec<PathElement>,
    out: &mut Comparison,
) {
    if !ty.tracked() {
        return;
    }
    let ls = l.map(|v| ty.shape(v));
    let rs = r.map(|v| ty.shape(v));
    let shape = match (ls, rs) {
        (Some(a), Some(b)) if a != b => Shape::Leaf,
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => return,
    };
    let empty = |v: Option<&Value>| match v {
        None => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    match shape {
        Shape::Skip => {}
        Shape::Object | Shape::ListMap(_) | Shape::ListSet if empty(l) && empty(r) => {
            compare_leaf(l, r, ty, path, out);
        }
        Shape::Object => {
            let lo = l.and_then(Value::as_object);
            let ro = r.and_then(Value::as_object);
            let keys = lo.into_iter().flat_map(Map::keys).chain(
                ro.into_iter()
                    .flat_map(Map::keys)
                    .filter(|k| lo.is_none_or(|lo| !lo.contains_key(*k))),
            );
            for k in keys {
                let (cty, _) = ty.field(k);
                path.push(PathElement::Field(k.clone()));
                compare_into(
                    lo.and_then(|m| m.get(k)),
                    ro.and_then(|m| m.get(k)),
                    cty,
                    path,
                    out,
                );
                path.pop();
            }
            compare_self(l, r, ty, path, out);
        }
        Shape::ListMap(_) | Shape::ListSet => {
            let item_ty = ty.item();
            let li = index_items(
                &shape,
                ty,
                l.and_then(Value::as_array).map_or(&[], Vec::as_slice),
            );
            let ri = index_items(
                &shape,
                ty,
                r.and_then(Value::as_array).map_or(&[], Vec::as_slice),
            );
            let lmap: BTreeMap<&PathElement, &Value> = li.iter().map(|(pe, v)| (pe, *v)).collect();
            let rmap: BTreeMap<&PathElement, &Value> = ri.iter().map(|(pe, v)| (pe, *v)).collect();
            for (pe, lv) in &li {
                path.push(pe.clone());
                compare_into(Some(lv), rmap.get(pe).copied(), item_ty, path, out);
                path.pop();
            }
            for (pe, rv) in ri.iter().filter(|(pe, _)| !lmap.contains_key(pe)) {
                path.push(pe.clone());
                compare_into(None, Some(rv), item_ty, path, out);
                path.pop();
            }
            compare_self(l, r, ty, path, out);
        }
        Shape::Leaf => compare_leaf(l, r, ty, path, out),
    }
}

fn compare_leaf(
    l: Option<&Value>,
    r: Option<&Value>,
    ty: Ty<'_>,
    path: &[PathElement],
    out: &mut Comparison,
) {
    if !ty.tracks_self() {
        return;
    }
    match (l, r) {
        (None, Some(_)) => out.added.insert(Path(path.to_vec())),
        (Some(_), None) => out.removed.insert(Path(path.to_vec())),
        (Some(a), Some(b)) if !values_equal(a, b) => out.modified.insert(Path(path.to_vec())),
        _ => false,
    };
}

fn compare_self(
    l: Option<&Value>,
    r: Option<&Value>,
    ty: Ty<'_>,
    path: &[PathElement],
    out: &mut Comparison,
) {
    if !ty.tracks_self() {
        return;
    }
    if l.is_none() {
        out.added.insert(Path(path.to_vec()));
    } else if r.is_none() {
        out.removed.insert(Path(path.to_vec()));
    }
}

/// Merge an apply configuration `r` into the live value `l`: objects field by field,
/// map-typed and set-typed lists item by item (items keep the configuration's order, live-only
/// items stay where they were), everything else replaced.
fn merge(l: Option<&Value>, r: &Value, ty: Ty<'_>) -> Value {
    let shape = ty.shape(r);
    match (&shape, r) {
        (Shape::Object, Value::Object(ro)) => {
            let mut out = match l {
                Some(Value::Object(lo)) => lo.clone(),
                _ => Map::new(),
            };
            for (k, rv) in ro {
                let (cty, _) = ty.field(k);
                // A null for an untracked field (`creationTimestamp: null`) means nothing; a
                // tracked one is kept until ownership is settled, then dropped.
                if matches!(cty, Ty::Frozen) || (rv.is_null() && !cty.tracked()) {
                    continue;
                }
                let merged = merge(out.get(k), rv, cty);
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (Shape::ListMap(_) | Shape::ListSet, Value::Array(ritems)) => {
            let litems = match l {
                Some(Value::Array(items)) => items.as_slice(),
                _ => &[],
            };
            merge_list(&shape, ty, litems, ritems)
        }
        _ => r.clone(),
    }
}

fn merge_list(shape: &Shape, ty: Ty<'_>, litems: &[Value], ritems: &[Value]) -> Value {
    let item_ty = ty.item();
    let Some(rpes) = ritems
        .iter()
        .map(|item| item_element(shape, ty, item).ok())
        .collect::<Option<Vec<PathElement>>>()
    else {
        return Value::Array(ritems.to_vec());
    };
    let lpes: Vec<Option<PathElement>> = litems
        .iter()
        .map(|item| item_element(shape, ty, item).ok())
        .collect();
    let mut rpos: BTreeMap<&PathElement, usize> = BTreeMap::new();
    for (i, pe) in rpes.iter().enumerate() {
        rpos.entry(pe).or_insert(i);
    }
    let mut lfirst: BTreeMap<&PathElement, usize> = BTreeMap::new();
    for (j, pe) in lpes.iter().enumerate() {
        if let Some(pe) = pe {
            lfirst.entry(pe).or_insert(j);
        }
    }
    let mut out = Vec::with_capacity(litems.len().max(ritems.len()));
    let mut next = 0;
    let emit = |upto: usize, next: &mut usize, out: &mut Vec<Value>| {
        while *next <= upto && *next < ritems.len() {
            let live = lfirst.get(&rpes[*next]).map(|&j| &litems[j]);
            out.push(merge(live, &ritems[*next], item_ty));
            *next += 1;
        }
    };
    for (j, item) in litems.iter().enumerate() {
        match lpes[j].as_ref().and_then(|pe| rpos.get(pe)) {
            Some(&target) => emit(target, &mut next, &mut out),
            None => out.push(item.clone()),
        }
    }
    emit(ritems.len(), &mut next, &mut out);
    Value::Array(out)
}

/// Whether `set` owns the node at `p`: as a member, or, for a declared field, through a
/// descendant (structured-merge-diff's `EnsureNamedFieldsAreMembers`).
fn owns(set: &FieldSet, p: &Path, declared: bool) -> bool {
    set.contains(p) || (declared && set.has_descendant(p))
}

/// Remove the nodes `last` owned that `owned` (every manager's set, with the applier's new
/// one) does not; a container emptied this way goes too. Returns whether anything went.
fn prune(
    v: &mut Value,
    ty: Ty<'_>,
    path: &mut Vec<PathElement>,
    last: &FieldSet,
    owned: &FieldSet,
) -> bool {
    let shape = ty.shape(v);
    let mut removed_any = false;
    match (&shape, v) {
        (Shape::Object, Value::Object(obj)) => {
            let keys: Vec<String> = obj.keys().cloned().collect();
            for k in keys {
                let (cty, declared) = ty.field(&k);
                if !cty.tracked() {
                    continue;
                }
                path.push(PathElement::Field(k.clone()));
                let p = Path(path.clone());
                if cty.tracks_self() && owns(last, &p, declared) && !owns(owned, &p, declared) {
                    obj.shift_remove(&k);
                    removed_any = true;
                } else if let Some(child) = obj.get_mut(&k)
                    && prune(child, cty, path, last, owned)
                {
                    removed_any = true;
                    if is_empty_container(child) && cty.tracks_self() {
                        obj.shift_remove(&k);
                    }
                }
                path.pop();
            }
        }
        (Shape::ListMap(_) | Shape::ListSet, Value::Array(items)) => {
            let item_ty = ty.item();
            let mut kept = Vec::with_capacity(items.len());
            for mut item in items.drain(..) {
                let Ok(pe) = item_element(&shape, ty, &item) else {
                    kept.push(item);
                    continue;
                };
                path.push(pe);
                let p = Path(path.clone());
                if last.contains(&p) && !owned.contains(&p) {
                    removed_any = true;
                } else {
                    removed_any |= prune(&mut item, item_ty, path, last, owned);
                    kept.push(item);
                }
                path.pop();
            }
            *items = kept;
        }
        _ => {}
    }
    removed_any
}

/// Drop the nulls an apply configuration set, except where the schema says `nullable`.
fn drop_nulls(v: &mut Value, ty: Ty<'_>) {
    let shape = ty.shape(v);
    match (&shape, v) {
        (Shape::Object, Value::Object(obj)) => {
            obj.retain(|k, child| {
                let (cty, _) = ty.field(k);
                if !cty.tracked() {
                    return true;
                }
                if child.is_null() {
                    return cty.nullable();
                }
                drop_nulls(child, cty);
                true
            });
        }
        (Shape::ListMap(_) | Shape::ListSet, Value::Array(items)) => {
            let item_ty = ty.item();
            for item in items {
                drop_nulls(item, item_ty);
            }
        }
        _ => {}
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests;
