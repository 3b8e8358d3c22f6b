//! Create, read, update, patch, delete and list, with Kubernetes semantics.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Map, Value, json};
use slipway_apimachinery::{
    Admission, ApiError, FieldError, FieldPath, Lookup, ResourceDef, meta, patch, schema, ssa,
};
use slipway_store::{ListOptions, Revision, StoreError};

use crate::codec::{self, parse_resource_version};
use crate::{
    DeleteOptions, Deleted, FieldValidation, ListParams, ObjectList, Patch, Propagation, Registry,
    Subresource, WriteOptions, Written, store_error,
};

/// Finalizer the garbage collector honours for foreground deletion.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";
/// Finalizer the garbage collector honours for orphaning deletion.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// Namespace `spec.finalizers` entry that keeps a namespace until it is empty.
pub const NAMESPACE_FINALIZER: &str = "kubernetes";

/// The current time as Kubernetes writes timestamps (RFC 3339, seconds).
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn is_namespace(def: &ResourceDef) -> bool {
    def.group.is_empty() && def.plural == "namespaces"
}

/// The namespace a request addresses: the URL's, for namespaced kinds (required), none otherwise.
fn scope<'a>(def: &ResourceDef, ns: Option<&'a str>) -> Result<Option<&'a str>, ApiError> {
    match (def.namespaced, ns) {
        (true, Some(ns)) if !ns.is_empty() => Ok(Some(ns)),
        (true, _) => Err(ApiError::bad_request(format!(
            "{} is namespaced: a namespace is required",
            def.group_resource()
        ))),
        (false, _) => Ok(None),
    }
}

impl Registry {
    /// Read one object. The read is consistent: it sees every write acknowledged before it.
    pub async fn get(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.get_shared(def, ns, name)
            .await
            .map(Arc::unwrap_or_clone)
    }

    /// [`Registry::get`] without a copy: the watch cache's own object.
    pub async fn get_shared(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Arc<Value>, ApiError> {
        let key = self.caught_up(def, ns, name).await?;
        match self.cache.get(&key) {
            Some(obj) => Ok(obj),
            None => Err(ApiError::not_found(&def.plural, &def.group, name)),
        }
    }

    /// The uid and resourceVersion of one object, read as [`Registry::get_shared`] reads it
    /// (consistently, from the watch cache) but without decoding the object: for a reader
    /// that keeps something derived from an object and only needs to know whether it changed.
    pub async fn get_version(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<(Box<str>, Revision), ApiError> {
        let key = self.caught_up(def, ns, name).await?;
        self.cache
            .version(&key)
            .ok_or_else(|| ApiError::not_found(&def.plural, &def.group, name))
    }

    /// The key of one object, once the watch cache has caught up with the store
    /// ([`Registry::cache_caught_up`]): a read of it from the cache is consistent, without
    /// reading and decoding the store again.
    async fn caught_up(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<String, ApiError> {
        let ns = scope(def, ns)?;
        let key = self.keys.key(def, ns, name);
        self.cache_caught_up().await?;
        Ok(key)
    }

    /// List objects of a kind (in one namespace, or all when `ns` is `None`).
    pub async fn list(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        params: &ListParams,
    ) -> Result<ObjectList, ApiError> {
        let ns = if def.namespaced {
            ns.filter(|n| !n.is_empty())
        } else {
            None
        };
        let prefix = self.keys.prefix(def, ns);
        let limit = params.limit.filter(|l| *l > 0);
        let exact = params.resource_version_match.as_deref() == Some("Exact");
        if let Some(m) = params.resource_version_match.as_deref()
            && !matches!(m, "Exact" | "NotOlderThan")
        {
            return Err(ApiError::bad_request(format!(
                "resourceVersionMatch {m:?} is not supported: use Exact or NotOlderThan"
            )));
        }
        if params.resource_version_match.is_some() && params.resource_version.is_none() {
            return Err(ApiError::bad_request(
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            ));
        }
        if params.continue_token.is_some()
            && params
                .resource_version
                .as_deref()
                .is_some_and(|rv| !rv.is_empty() && rv != "0")
        {
            return Err(ApiError::bad_request(
                "specifying resource version is not allowed when using continue",
            ));
        }
        if params.continue_token.is_some() || limit.is_some() || exact {
            return self.list_from_store(&prefix, params, limit, exact).await;
        }
        match params.resource_version.as_deref() {
            Some("0") => {}
            None | Some("") => {
                self.cache_caught_up().await?;
            }
            Some(rv) => {
                let wanted = parse_resource_version(rv)?;
                self.cache.wait_for(wanted, self.config.cache_wait).await?;
            }
        }
        let (items, revision) = self.cache.list(&prefix);
        let items = items.into_iter().filter(|o| selected(params, o)).collect();
        Ok(ObjectList {
            items,
            resource_version: revision,
            continue_token: None,
            remaining_item_count: None,
        })
    }

    async fn list_from_store(
        &self,
        prefix: &str,
        params: &ListParams,
        limit: Option<usize>,
        exact: bool,
    ) -> Result<ObjectList, ApiError> {
        let (mut revision, mut start_after) = match &params.continue_token {
            Some(token) => {
                let (rev, key) = decode_continue(token, prefix)?;
                (Some(rev), Some(key))
            }
            None => {
                let rev = match params.resource_version.as_deref() {
                    Some(rv) if exact => Some(parse_resource_version(rv)?),
                    _ => None,
                };
                (rev, None)
            }
        };
        let page_size = limit.map(|l| l.max(100));
        let mut items = Vec::new();
        loop {
            let page = self
                .store
                .list(prefix, ListOptions { revision, start_after: start_after.clone(), limit: page_size })
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if params.continue_token.is_some() => ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ),
                    other => store_error(other),
                })?;
            revision = Some(page.revision);
            let mut last_key = None;
            for kv in &page.items {
                last_key = Some(kv.key.clone());
                let obj = codec::decode(&kv.value, kv.mod_revision)?;
                if selected(params, &obj) {
                    items.push(Arc::new(obj));
                    if limit.is_some_and(|l| items.len() >= l) {
                        break;
                    }
                }
            }
            // More keys remain if the store said so or if this page was cut short.
            let more = page.more || last_key.as_ref() != page.items.last().map(|kv| &kv.key);
            let full = limit.is_some_and(|l| items.len() >= l);
            if full || !more {
                let revision = page.revision;
                let continue_token = last_key
                    .filter(|_| more)
                    .map(|k| encode_continue(revision, &k));
                return Ok(ObjectList {
                    items,
                    resource_version: revision,
                    continue_token,
                    remaining_item_count: None,
                });
            }
            start_after = last_key;
        }
    }

    /// Create an object.
    pub async fn create(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        self.create_with(def, ns, obj, opts, None).await
    }

    /// Create; `managed_fields`, when given, are recorded instead of an Update entry for the
    /// writer (server-side apply creates with its Apply entry in the same single write).
    async fn create_with(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        managed_fields: Option<Value>,
    ) -> Result<Written, ApiError> {
        let ns = scope(def, ns)?;
        check_type(def, &obj)?;
        let meta_map = meta::metadata_mut(&mut obj);
        match (ns, meta_map.get("namespace").and_then(Value::as_str)) {
            (Some(url), Some(body)) if !body.is_empty() && body != url => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (Some(url), _) => {
                meta_map.insert("namespace".into(), json!(url));
            }
            (None, _) => {
                meta_map.remove("namespace");
            }
        }
        let has_name = meta_map
            .get("name")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_name && let Some(prefix) = meta_map.get("generateName").and_then(Value::as_str) {
            let name = format!("{prefix}{}", random_suffix());
            meta_map.insert("name".into(), json!(name));
        }
        for field in [
            "resourceVersion",
            "uid",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta_map.remove(field);
        }
        let now = now();
        meta_map.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        meta_map.insert("creationTimestamp".into(), json!(now));
        if def.tracks_generation {
            meta_map.insert("generation".into(), json!(1));
        } else {
            meta_map.remove("generation");
        }
        if def.status_subresource
            && !def.strategy.status_on_create()
            && let Some(map) = obj.as_object_mut()
        {
            map.remove("status");
        }
        let warnings = self.prepare(def, &mut obj, None, opts)?;
        let obj = match managed_fields {
            Some(entries) => {
                meta::metadata_mut(&mut obj).insert("managedFields".into(), entries);
                obj
            }
            None => ssa::track_update(
                None,
                obj,
                &def.schema,
                opts.manager(),
                scope_of(def, Subresource::Main),
                &now,
            ),
        };
        self.create_prepared(def, ns, obj, opts, warnings).await
    }

    async fn create_prepared(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
        warnings: Vec<String>,
    ) -> Result<Written, ApiError> {
        let name = meta::name(&obj).unwrap_or_default().to_string();
        self.check_fence(opts.fence.as_ref()).await?;
        if let Some(ns) = ns {
            self.check_namespace_open(ns).await?;
        }
        if opts.dry_run {
            return Ok(Written {
                object: Arc::new(obj),
                warnings,
                created: true,
            });
        }
        let key = self.keys.key(def, ns, &name);
        let bytes = codec::encode(&obj)?;
        let handover = self.cache.writing(&key, &bytes, obj);
        match self.store_create(&key, bytes, opts.fence.as_ref()).await? {
            Ok(rev) => Ok(Written {
                object: handover.written(rev)?,
                warnings,
                created: true,
            }),
            Err(StoreError::AlreadyExists { .. }) => {
                Err(ApiError::already_exists(&def.plural, &def.group, &name))
            }
            Err(e) => Err(store_error(e)),
        }
    }

    async fn check_namespace_open(&self, ns: &str) -> Result<(), ApiError> {
        let Some(ns_def) = self.resource("", "v1", "namespaces") else {
            return Ok(());
        };
        let key = self.keys.key(&ns_def, None, ns);
        let found = match self.cache.get(&key) {
            Some(obj) => Some((*obj).clone()),
            None => match self.store.get(&key).await.map_err(store_error)? {
                Some(kv) => Some(codec::decode(&kv.value, kv.mod_revision)?),
                None => None,
            },
        };
        match found {
            None => Err(ApiError::not_found("namespaces", "", ns)),
            Some(obj) if meta::deletion_timestamp(&obj).is_some() => {
                Err(ApiError::forbidden(format!(
                    "unable to create new content in namespace {ns} because it is being terminated"
                )))
            }
            Some(_) => Ok(()),
        }
    }

    /// Replace an object (PUT). `obj.metadata.resourceVersion`, when set, is a precondition.
    pub async fn update(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        subresource: Subresource,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        check_type(def, &obj)?;
        check_name(&obj, name)?;
        let precondition = match meta::resource_version(&obj) {
            Some(rv) if !rv.is_empty() => Some(parse_resource_version(rv)?),
            _ => None,
        };
        self.update_with(
            def,
            ns,
            name,
            precondition,
            subresource,
            opts,
            false,
            |_| Ok(obj.clone()),
        )
        .await
    }

    /// Patch an object. Server-side apply creates it when absent.
    pub async fn patch(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        patch: Patch,
        subresource: Subresource,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        match patch {
            Patch::Merge(p) => {
                let precondition = resource_version_precondition(&p)?;
                self.update_with(
                    def,
                    ns,
                    name,
                    precondition,
                    subresource,
                    opts,
                    false,
                    |current| Ok(patch::apply_merge_patch(current, &p)),
                )
                .await
            }
            Patch::Json(p) => {
                self.update_with(def, ns, name, None, subresource, opts, false, |current| {
                    patch::apply_json_patch(current, &p)
                })
                .await
            }
            Patch::Strategic(p) => {
                if !def.accepts_strategic_merge() {
                    return Err(ApiError::unsupported_media_type(
                        "application/strategic-merge-patch+json",
                    ));
                }
                let precondition = resource_version_precondition(&p)?;
                self.update_with(
                    def,
                    ns,
                    name,
                    precondition,
                    subresource,
                    opts,
                    false,
                    |current| patch::apply_strategic_merge_patch(current, &p),
                )
                .await
            }
            Patch::Apply(config) => self.apply(def, ns, name, config, subresource, opts).await,
        }
    }

    async fn apply(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        config: Value,
        subresource: Subresource,
        opts: &WriteOptions,
    ) -> Result<Written, ApiError> {
        check_type(def, &config)?;
        if config.get("apiVersion").is_none() || config.get("kind").is_none() {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an apply configuration",
            ));
        }
        check_name(&config, name)?;
        let manager = opts.field_manager.as_deref().ok_or_else(|| {
            ApiError::bad_request("PATCH with apply requires a fieldManager parameter")
        })?;
        let precondition = resource_version_precondition(&config)?;
        let ns_checked = scope(def, ns)?;
        let key = self.keys.key(def, ns_checked, name);
        let exists = self.store.get(&key).await.map_err(store_error)?.is_some();
        if !exists {
            if subresource == Subresource::Status {
                return Err(ApiError::not_found(&def.plural, &def.group, name));
            }
            let now = now();
            let mut created = ssa::apply(
                None,
                &config,
                &def.schema,
                manager,
                opts.force,
                scope_of(def, subresource),
                &now,
            )
            .map_err(ApiError::from)?;
            // Apply set the object's fields; the create path stamps identity and validates.
            let managed = created.pointer("/metadata/managedFields").cloned();
            if let Some(map) = created
                .pointer_mut("/metadata")
                .and_then(Value::as_object_mut)
            {
                map.remove("managedFields");
            }
            match self.create_with(def, ns, created, opts, managed).await {
                // Someone created it meanwhile: apply to what is there.
                Err(e) if e.code == 409 && e.reason == "AlreadyExists" => {}
                other => return other,
            }
        }
        let force = opts.force;
        let now = now();
        self.update_with(
            def,
            ns,
            name,
            precondition,
            subresource,
            opts,
            true,
            |current| {
                ssa::apply(
                    Some(current),
                    &config,
                    &def.schema,
                    manager,
                    force,
                    scope_of(def, subresource),
                    &now,
                )
                .map_err(ApiError::from)
            },
        )
        .await
    }

    /// The update loop: read, compute the new object, validate, compare-and-swap; retried on
    /// conflicts unless the caller gave a resourceVersion precondition.
    #[allow(clippy::too_many_arguments)]
    async fn update_with(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        precondition: Option<Revision>,
        subresource: Subresource,
        opts: &WriteOptions,
        applied: bool,
        mutate: impl Fn(&Value) -> Result<Value, ApiError>,
    ) -> Result<Written, ApiError> {
        let ns = scope(def, ns)?;
        let key = self.keys.key(def, ns, name);
        self.check_fence(opts.fence.as_ref()).await?;
        // The first attempt starts from the watch cache's copy, as kube-apiserver's
        // GuaranteedUpdate does: no store read and no decode. The cache may lag the store,
        // so whatever a stale copy could decide wrongly is decided again from the store: a
        // write guarded by its revision that conflicts, a precondition that does not match,
        // and a change that turns out to change nothing.
        let mut cached = self.cache.get(&key).and_then(|obj| {
            let revision = meta::resource_version(&obj)?.parse::<Revision>().ok()?;
            Some((obj, revision))
        });
        loop {
            // Shared with the cache, not copied: the new object is built from it.
            let (current_arc, mod_revision, fresh) = match cached.take() {
                Some((obj, revision)) => (obj, revision, false),
                None => {
                    let Some(kv) = self.store.get(&key).await.map_err(store_error)? else {
                        return Err(ApiError::not_found(&def.plural, &def.group, name));
                    };
                    (
                        Arc::new(codec::decode(&kv.value, kv.mod_revision)?),
                        kv.mod_revision,
                        true,
                    )
                }
            };
            let current: &Value = &current_arc;
            if let Some(expected) = precondition
                && expected != mod_revision
            {
                if !fresh {
                    continue;
                }
                return Err(modified(def, name));
            }
            let requested = mutate(current)?;
            check_type(def, &requested)?;
            check_name(&requested, name)?;
            check_identity(def, current, &requested)?;
            let mut new = self.merge_for_update(def, current, requested, subresource)?;
            let warnings = self.prepare(def, &mut new, Some(current), opts)?;
            bump_generation(def, current, &mut new);
            let now = now();
            if !applied {
                new = ssa::track_update(
                    Some(current),
                    new,
                    &def.schema,
                    opts.manager(),
                    scope_of(def, subresource),
                    &now,
                );
            }
            if unchanged(current, &new) {
                if !fresh {
                    continue;
                }
                return Ok(Written {
                    object: current_arc,
                    warnings,
                    created: false,
                });
            }
            if opts.dry_run {
                return Ok(Written {
                    object: Arc::new(new),
                    warnings,
                    created: false,
                });
            }
            if ready_to_remove(def, &new) {
                return match self
                    .store_delete(&key, Some(mod_revision), opts.fence.as_ref())
                    .await?
                {
                    Ok((rev, _)) => {
                        codec::set_resource_version(&mut new, rev);
                        self.gc_wakeup.notify_one();
                        Ok(Written {
                            object: Arc::new(new),
                            warnings,
                            created: false,
                        })
                    }
                    Err(StoreError::Conflict { .. }) if precondition.is_none() || !fresh => {
                        continue;
                    }
                    Err(StoreError::Conflict { .. }) => Err(modified(def, name)),
                    Err(StoreError::NotFound { .. }) => {
                        Err(ApiError::not_found(&def.plural, &def.group, name))
                    }
                    Err(e) => Err(store_error(e)),
                };
            }
            let bytes = codec::encode(&new)?;
            let handover = self.cache.writing(&key, &bytes, new);
            match self
                .store_update(&key, bytes, mod_revision, opts.fence.as_ref())
                .await?
            {
                Ok(rev) => {
                    return Ok(Written {
                        object: handover.written(rev)?,
                        warnings,
                        created: false,
                    });
                }
                Err(StoreError::Conflict { .. }) if precondition.is_none() || !fresh => continue,
                Err(StoreError::Conflict { .. }) => return Err(modified(def, name)),
                Err(StoreError::NotFound { .. }) => {
                    return Err(ApiError::not_found(&def.plural, &def.group, name));
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    /// Combine the stored object and the requested one according to the subresource rules,
    /// keeping what clients may not change.
    fn merge_for_update(
        &self,
        def: &ResourceDef,
        current: &Value,
        requested: Value,
        subresource: Subresource,
    ) -> Result<Value, ApiError> {
        let mut new = match subresource {
            Subresource::Main => {
                let mut new = requested;
                if def.status_subresource
                    && let Some(map) = new.as_object_mut()
                {
                    match current.get("status") {
                        Some(status) => map.insert("status".into(), status.clone()),
                        None => map.remove("status"),
                    };
                }
                new
            }
            // Everything but the status (and managedFields: apply on /status changes them)
            // stays as stored. Built entry by entry, in the stored order, so that what the
            // request replaces is moved from it rather than copied from `current`.
            Subresource::Status => status_update(current, requested),
        };
        let empty = Map::new();
        let old_meta = current
            .get("metadata")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let meta_map = meta::metadata_mut(&mut new);
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(field) {
                Some(v) => meta_map.insert(field.into(), v.clone()),
                None => meta_map.remove(field),
            };
        }
        meta_map.remove("resourceVersion");
        meta_map.remove("selfLink");
        if is_namespace(def) {
            // Only the namespace finalizer (the registry's own loop) edits spec.finalizers.
            let old_finalizers = current.pointer("/spec/finalizers").cloned();
            if let Some(map) = new.as_object_mut() {
                let spec = map.entry("spec").or_insert_with(|| json!({}));
                if let Some(spec) = spec.as_object_mut() {
                    match old_finalizers {
                        Some(f) => spec.insert("finalizers".into(), f),
                        None => spec.remove("finalizers"),
                    };
                }
            }
        }
        if old_meta.contains_key("deletionTimestamp") {
            let old: Vec<String> = meta::finalizers(current);
            let added: Vec<String> = meta::finalizers(&new)
                .into_iter()
                .filter(|f| !old.contains(f))
                .collect();
            if !added.is_empty() {
                return Err(ApiError::invalid(
                    &def.kind,
                    &def.group,
                    meta::name(current).unwrap_or_default(),
                    &[FieldError::forbidden(
                        &FieldPath::root("metadata").child("finalizers"),
                        format!(
                            "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                        ),
                    )],
                ));
            }
        }
        Ok(new)
    }

    /// Unknown fields, pruning, defaulting and validation of an object about to be written.
    /// Returns the warnings for the client.
    fn prepare(
        &self,
        def: &ResourceDef,
        obj: &mut Value,
        old: Option<&Value>,
        opts: &WriteOptions,
    ) -> Result<Vec<String>, ApiError> {
        let name = meta::name(obj).unwrap_or_default().to_string();
        let mut warnings = Vec::new();
        let unknown = schema::unknown_fields(&def.schema, obj);
        if !unknown.is_empty() {
            match opts.field_validation {
                FieldValidation::Strict => {
                    let listed: Vec<String> = unknown
                        .iter()
                        .map(|f| format!("unknown field \"{f}\""))
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        def.kind,
                        def.version,
                        def.kind,
                        listed.join(", ")
                    )));
                }
                FieldValidation::Warn => {
                    warnings.extend(unknown.iter().map(|f| format!("unknown field \"{f}\"")));
                }
                FieldValidation::Ignore => {}
            }
            schema::prune(&def.schema, obj);
        }
        let type_errors = schema::validate_update(&def.schema, obj, old);
        if !type_errors.is_empty() {
            return Err(ApiError::invalid(
                &def.kind,
                &def.group,
                &name,
                &type_errors,
            ));
        }
        let admission: Vec<&Arc<dyn Admission>> = self
            .config
            .admission
            .iter()
            .filter(|a| a.group() == def.group && a.kind() == def.kind)
            .collect();
        let lookup = CacheLookup { registry: self };
        let mut errors = Vec::new();
        for plugin in &admission {
            errors.extend(plugin.mutate(obj, old, &lookup));
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(&def.kind, &def.group, &name, &errors));
        }
        schema::apply_defaults(&def.schema, obj);
        def.strategy.default(obj);
        errors.extend(meta::validate_metadata(obj, is_namespace(def)));
        // Entries this write did not touch were valid when stored (ratcheting, as for the schema).
        if old.is_none_or(|o| {
            o.pointer("/metadata/managedFields") != obj.pointer("/metadata/managedFields")
        }) {
            errors.extend(ssa::validate_managed_fields(obj));
        }
        if errors.is_empty() {
            errors.extend(schema::validate_update(&def.schema, obj, old));
            errors.extend(def.strategy.validate(obj, old));
        }
        if errors.is_empty() {
            for plugin in &admission {
                errors.extend(plugin.validate(obj, old, &lookup));
            }
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid(&def.kind, &def.group, &name, &errors));
        }
        Ok(warnings)
    }

    /// Delete an object. With finalizers it is only marked (deletionTimestamp) and goes away
    /// when the last finalizer is removed.
    pub async fn delete(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let ns = scope(def, ns)?;
        let key = self.keys.key(def, ns, name);
        self.check_fence(opts.fence.as_ref()).await?;
        loop {
            let Some(kv) = self.store.get(&key).await.map_err(store_error)? else {
                return Err(ApiError::not_found(&def.plural, &def.group, name));
            };
            let current = codec::decode(&kv.value, kv.mod_revision)?;
            if let Some(uid) = &opts.precondition_uid
                && meta::uid(&current) != Some(uid.as_str())
            {
                return Err(ApiError::conflict(
                    &def.plural,
                    &def.group,
                    name,
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::uid(&current).unwrap_or_default()
                    ),
                ));
            }
            if let Some(rv) = &opts.precondition_resource_version
                && parse_resource_version(rv)? != kv.mod_revision
            {
                return Err(ApiError::conflict(
                    &def.plural,
                    &def.group,
                    name,
                    &format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                        kv.mod_revision
                    ),
                ));
            }
            let mut finalizers = meta::finalizers(&current);
            match opts.propagation {
                Some(Propagation::Foreground) => push_unique(&mut finalizers, FOREGROUND_FINALIZER),
                Some(Propagation::Orphan) => push_unique(&mut finalizers, ORPHAN_FINALIZER),
                _ => {}
            }
            let namespace_kind = is_namespace(def);
            if namespace_kind && matches!(name, "default" | "kube-system" | "kube-public") {
                return Err(ApiError::forbidden(format!(
                    "namespace \"{name}\" is forbidden: this namespace may not be deleted"
                )));
            }
            if finalizers.is_empty() && !namespace_kind {
                if opts.dry_run {
                    return Ok(Deleted::Gone(current));
                }
                match self
                    .store_delete(&key, Some(kv.mod_revision), opts.fence.as_ref())
                    .await?
                {
                    Ok((rev, _)) => {
                        let mut last = current;
                        codec::set_resource_version(&mut last, rev);
                        self.gc_wakeup.notify_one();
                        return Ok(Deleted::Gone(last));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(StoreError::NotFound { .. }) => {
                        return Err(ApiError::not_found(&def.plural, &def.group, name));
                    }
                    Err(e) => return Err(store_error(e)),
                }
            }
            // Graceful: mark and let finalizers (or the namespace finalizer) do their work.
            let mut marked = current.clone();
            let meta_map = meta::metadata_mut(&mut marked);
            meta_map
                .entry("deletionTimestamp")
                .or_insert_with(|| json!(now()));
            meta_map
                .entry("deletionGracePeriodSeconds")
                .or_insert(json!(0));
            if !finalizers.is_empty() {
                meta_map.insert("finalizers".into(), json!(finalizers));
            }
            if namespace_kind && let Some(map) = marked.as_object_mut() {
                let spec = map.entry("spec").or_insert_with(|| json!({}));
                if let Some(spec) = spec.as_object_mut() {
                    let list = spec.entry("finalizers").or_insert_with(|| json!([]));
                    if let Some(list) = list.as_array_mut()
                        && !list.iter().any(|f| f == NAMESPACE_FINALIZER)
                    {
                        list.push(json!(NAMESPACE_FINALIZER));
                    }
                }
                map.insert("status".into(), json!({"phase": "Terminating"}));
            }
            if unchanged(&current, &marked) {
                return Ok(Deleted::Pending(current));
            }
            if opts.dry_run {
                return Ok(Deleted::Pending(marked));
            }
            let bytes = codec::encode(&marked)?;
            match self
                .store_update(&key, bytes, kv.mod_revision, opts.fence.as_ref())
                .await?
            {
                Ok(rev) => {
                    codec::set_resource_version(&mut marked, rev);
                    self.gc_wakeup.notify_one();
                    return Ok(Deleted::Pending(marked));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound { .. }) => {
                    return Err(ApiError::not_found(&def.plural, &def.group, name));
                }
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    /// Delete every object a list selects (`deletecollection`). Returns what was deleted or marked.
    pub async fn delete_collection(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        params: &ListParams,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let list = self.list(def, ns, params).await?;
        let mut out = Vec::with_capacity(list.items.len());
        for obj in list.items {
            let name = meta::name(&obj).unwrap_or_default();
            match self.delete(def, meta::namespace(&obj), name, opts).await {
                Ok(d) => out.push(d.object().clone()),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Remove the namespace finalizer and the namespace itself (once empty).
    pub(crate) async fn finalize_namespace(
        &self,
        def: &ResourceDef,
        name: &str,
    ) -> Result<(), ApiError> {
        let key = self.keys.key(def, None, name);
        let Some(kv) = self.store.get(&key).await.map_err(store_error)? else {
            return Ok(());
        };
        let mut obj = codec::decode(&kv.value, kv.mod_revision)?;
        if let Some(list) = obj
            .pointer_mut("/spec/finalizers")
            .and_then(Value::as_array_mut)
        {
            list.retain(|f| f != NAMESPACE_FINALIZER);
        }
        let result = if ready_to_remove(def, &obj) {
            self.store
                .delete(&key, Some(kv.mod_revision))
                .await
                .map(|_| ())
        } else {
            self.store
                .update(&key, codec::encode(&obj)?, kv.mod_revision)
                .await
                .map(|_| ())
        };
        match result {
            Ok(()) | Err(StoreError::NotFound { .. }) => Ok(()),
            // Changed meanwhile, perhaps by a write that does not move the collector epoch
            // (a status write): decide again on the next pass rather than wait for one.
            Err(StoreError::Conflict { .. }) => {
                self.retry_gc();
                Ok(())
            }
            Err(e) => Err(store_error(e)),
        }
    }
}

fn scope_of(def: &ResourceDef, subresource: Subresource) -> ssa::Scope {
    ssa::Scope::new(def.status_subresource, subresource.name())
}

/// A non-empty `metadata.resourceVersion` in a patch or apply configuration is a precondition.
fn resource_version_precondition(body: &Value) -> Result<Option<Revision>, ApiError> {
    meta::resource_version(body)
        .filter(|rv| !rv.is_empty())
        .map(parse_resource_version)
        .transpose()
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|f| f == item) {
        list.push(item.to_string());
    }
}

fn modified(def: &ResourceDef, name: &str) -> ApiError {
    ApiError::conflict(
        &def.plural,
        &def.group,
        name,
        "the object has been modified; please apply your changes to the latest version and try again",
    )
}

/// True when an object being deleted has no finalizer left (for namespaces: none in
/// `spec.finalizers` either).
fn ready_to_remove(def: &ResourceDef, obj: &Value) -> bool {
    if meta::deletion_timestamp(obj).is_none() || !meta::finalizers(obj).is_empty() {
        return false;
    }
    !is_namespace(def)
        || obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|l| l.is_empty())
}

/// Objects are equal apart from resourceVersion and managedFields timestamps.
/// Whether `new` is `current` but for its resourceVersion and managedFields timestamps.
fn unchanged(current: &Value, new: &Value) -> bool {
    same_except(current, new, None, |k, a, b| {
        if k == "metadata" {
            same_except(a, b, Some("resourceVersion"), |k, a, b| {
                if k == "managedFields" {
                    same_managed_fields(a, b)
                } else {
                    a == b
                }
            })
        } else {
            a == b
        }
    })
}

/// managedFields entries equal but for their `time`.
fn same_managed_fields(a: &Value, b: &Value) -> bool {
    let (Some(a), Some(b)) = (a.as_array(), b.as_array()) else {
        return a == b;
    };
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(ea, eb)| same_except(ea, eb, Some("time"), |_, x, y| x == y))
}

/// Two values equal, except that as objects the key `skip` is ignored and the other keys'
/// values are compared with `same`.
fn same_except(
    a: &Value,
    b: &Value,
    skip: Option<&str>,
    same: impl Fn(&str, &Value, &Value) -> bool,
) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let kept = |k: &String| Some(k.as_str()) != skip;
    a.keys().filter(|k| kept(k)).count() == b.keys().filter(|k| kept(k)).count()
        && a.iter()
            .filter(|(k, _)| kept(k))
            .all(|(k, va)| b.get(k).is_some_and(|vb| same(k, va, vb)))
}

/// Bump metadata.generation when anything but metadata and status changed.
/// The object a `/status` write makes of `current`: the requested status (none if the
/// request has none) and, when the request carries them, its managedFields; the rest as
/// stored, in the stored order.
fn status_update(current: &Value, mut requested: Value) -> Value {
    let Some(stored) = current.as_object() else {
        return current.clone();
    };
    let mut status = requested.as_object_mut().and_then(|m| m.remove("status"));
    let mut managed = requested
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("managedFields"));
    let mut new = Map::new();
    for (k, v) in stored {
        match k.as_str() {
            "status" => {
                if let Some(status) = status.take() {
                    new.insert(k.clone(), status);
                }
            }
            "metadata" if managed.is_some() => {
                let mut meta = Map::new();
                if let Some(stored_meta) = v.as_object() {
                    for (mk, mv) in stored_meta {
                        if mk == "managedFields" {
                            if let Some(mf) = managed.take() {
                                meta.insert(mk.clone(), mf);
                            }
                        } else {
                            meta.insert(mk.clone(), mv.clone());
                        }
                    }
                }
                if let Some(mf) = managed.take() {
                    meta.insert("managedFields".into(), mf);
                }
                new.insert(k.clone(), Value::Object(meta));
            }
            _ => {
                new.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(status) = status {
        new.insert("status".into(), status);
    }
    Value::Object(new)
}

fn bump_generation(def: &ResourceDef, current: &Value, new: &mut Value) {
    if !def.tracks_generation {
        return;
    }
    // Everything but metadata, status, apiVersion and kind is spec.
    fn spec(o: &Value) -> std::collections::HashMap<&str, &Value> {
        o.as_object()
            .into_iter()
            .flatten()
            .filter(|(k, _)| !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind"))
            .map(|(k, v)| (k.as_str(), v))
            .collect()
    }
    let generation = current
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let next = if spec(current) != spec(new) {
        generation + 1
    } else {
        generation
    };
    meta::metadata_mut(new).insert("generation".into(), json!(next));
}

/// The body's apiVersion and kind, when present, must be the endpoint's.
fn check_type(def: &ResourceDef, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "the body must be a {} object",
            def.kind
        )));
    }
    let api_version = def.api_version();
    if let Some(v) = obj.get("apiVersion")
        && v.as_str() != Some(api_version.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({}) does not match the expected API version ({api_version})",
            v.as_str().unwrap_or("<not a string>")
        )));
    }
    if let Some(k) = obj.get("kind")
        && k.as_str() != Some(def.kind.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({}) does not match the expected kind ({})",
            k.as_str().unwrap_or("<not a string>"),
            def.kind
        )));
    }
    Ok(())
}

/// A body may repeat the stored uid and namespace but not change them.
fn check_identity(def: &ResourceDef, current: &Value, requested: &Value) -> Result<(), ApiError> {
    if let Some(ns) = meta::namespace(requested).filter(|n| !n.is_empty())
        && Some(ns) != meta::namespace(current)
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    if let Some(uid) = meta::uid(requested).filter(|u| !u.is_empty())
        && Some(uid) != meta::uid(current)
    {
        return Err(ApiError::invalid(
            &def.kind,
            &def.group,
            meta::name(current).unwrap_or_default(),
            &[FieldError::invalid(
                &FieldPath::root("metadata").child("uid"),
                &Value::String(uid.to_string()),
                "field is immutable",
            )],
        ));
    }
    Ok(())
}

fn check_name(obj: &Value, name: &str) -> Result<(), ApiError> {
    match meta::name(obj) {
        Some(n) if n != name => Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ => Ok(()),
    }
}

fn selected(params: &ListParams, obj: &Value) -> bool {
    params
        .label_selector
        .as_ref()
        .is_none_or(|s| s.matches(meta::labels(obj)))
        && params
            .field_selector
            .as_ref()
            .is_none_or(|s| s.matches(obj))
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid::Uuid::new_v4();
    id.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

/// Continue tokens: `{"v":"meta.k8s.io/v1","rv":N,"start":"<key relative to prefix>"}`, base64.
fn encode_continue(revision: Revision, last_key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": format!("{last_key}\u{0}")});
    base64::engine::general_purpose::STANDARD.encode(token.to_string())
}

fn decode_continue(token: &str, prefix: &str) -> Result<(Revision, String), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid continue token {token:?}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let rev = value
        .get("rv")
        .and_then(Value::as_i64)
        .filter(|r| *r > 0)
        .ok_or_else(bad)?;
    let start = value.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let last = start.strip_suffix('\u{0}').unwrap_or(start);
    if !last.starts_with(prefix) {
        return Err(bad());
    }
    Ok((rev, last.to_string()))
}

/// Admission plugins read other objects from the watch cache.
struct CacheLookup<'a> {
    registry: &'a Registry,
}

impl Lookup for CacheLookup<'_> {
    fn get(
        &self,
        group: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Arc<Value>> {
        let def = self.registry.resource_for_kind(group, kind)?;
        let ns = if def.namespaced { namespace } else { None };
        self.registry
            .cache
            .get(&self.registry.keys.key(&def, ns, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The definition `unchanged` implements without copying the objects.
    fn strip_volatile(obj: &Value) -> Value {
        let mut obj = obj.clone();
        if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            if let Some(entries) = meta.get_mut("managedFields").and_then(Value::as_array_mut) {
                for entry in entries {
                    if let Some(e) = entry.as_object_mut() {
                        e.remove("time");
                    }
                }
            }
        }
        obj
    }

    #[test]
    fn a_status_write_takes_only_status_and_managed_fields_from_the_request() {
        let current = json!({
            "apiVersion": "v1", "kind": "X",
            "metadata": {"name": "a", "labels": {"x": "1"},
                         "managedFields": [{"manager": "m"}], "uid": "u"},
            "spec": {"size": 1},
            "status": {"phase": "Old"},
            "extra": true
        });
        let requested = json!({
            "apiVersion": "v1", "kind": "X",
            "metadata": {"name": "a", "labels": {"x": "changed"},
                         "managedFields": [{"manager": "n"}]},
            "spec": {"size": 9},
            "status": {"phase": "New"}
        });
        let new = status_update(&current, requested);
        assert_eq!(
            new,
            json!({
                "apiVersion": "v1", "kind": "X",
                "metadata": {"name": "a", "labels": {"x": "1"},
                             "managedFields": [{"manager": "n"}], "uid": "u"},
                "spec": {"size": 1},
                "status": {"phase": "New"},
                "extra": true
            })
        );
        // The stored order is kept (it is the order the object is served in).
        let keys: Vec<&String> = new.as_object().expect("object").keys().collect();
        assert_eq!(
            keys,
            ["apiVersion", "kind", "metadata", "spec", "status", "extra"]
        );
        let meta_keys: Vec<&String> = new["metadata"].as_object().expect("meta").keys().collect();
        assert_eq!(meta_keys, ["name", "labels", "managedFields", "uid"]);
        // No status in the request: none after; no managedFields in it: the stored ones.
        let new = status_update(&current, json!({"metadata": {"name": "a"}}));
        assert!(new.get("status").is_none());
        assert_eq!(new["metadata"]["managedFields"], json!([{"manager": "m"}]));
        // A status where there was none is added.
        let bare = json!({"metadata": {"name": "a"}, "spec": {}});
        let new = status_update(&bare, json!({"status": {"phase": "P"}}));
        assert_eq!(new["status"], json!({"phase": "P"}));
    }

    #[test]
    fn unchanged_ignores_only_the_resource_version_and_managed_fields_times() {
        let base = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "resourceVersion": "7", "labels": {"x": "1"},
                         "managedFields": [{"manager": "m", "time": "2026-01-01T00:00:00Z",
                                            "fieldsV1": {"f:data": {}}}]},
            "data": {"k": "v"}
        });
        let variants = [
            json!({"metadata": {"resourceVersion": "8"}}),
            json!({"metadata": {"managedFields": [{"manager": "m", "time": "2026-01-02T00:00:00Z", "fieldsV1": {"f:data": {}}}]}}),
            json!({"metadata": {"managedFields": [{"manager": "n", "time": "2026-01-01T00:00:00Z", "fieldsV1": {"f:data": {}}}]}}),
            json!({"metadata": {"managedFields": [{"manager": "m", "fieldsV1": {"f:data": {}}}]}}),
            json!({"metadata": {"managedFields": []}}),
            json!({"metadata": {"labels": {"x": "2"}}}),
            json!({"metadata": {"annotations": {"y": "1"}}}),
            json!({"data": {"k": "w"}}),
            json!({"status": {}}),
        ];
        for patch in variants {
            let other = patch::apply_merge_patch(&base, &patch);
            assert_eq!(
                unchanged(&base, &other),
                strip_volatile(&base) == strip_volatile(&other),
                "{patch}"
            );
            assert_eq!(
                unchanged(&other, &base),
                unchanged(&base, &other),
                "{patch}"
            );
        }
        let mut without_rv = base.clone();
        meta::metadata_mut(&mut without_rv).remove("resourceVersion");
        assert!(unchanged(&base, &without_rv));
        assert!(!unchanged(&base, &json!({"kind": "ConfigMap"})));
    }
}
