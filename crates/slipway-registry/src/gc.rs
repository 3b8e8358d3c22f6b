//! Background loops that give deletion its Kubernetes meaning:
//!
//! - the garbage collector deletes objects whose owners (by `ownerReferences` uid) are all
//!   gone, drops references to owners that are gone while others remain, deletes the
//!   dependents of an owner being deleted in the foreground and then releases it, and orphans
//!   the dependents of an owner deleted with `propagationPolicy=Orphan`;
//! - the namespace finalizer deletes everything in a terminating namespace and removes the
//!   namespace once it is empty.
//!
//! Both are level-triggered: each pass looks at the whole state in the watch cache and does
//! what is missing, so a restart at any moment converges. They act through the registry's own
//! operations (with compare-and-swap), never on the store directly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use serde_json::Value;
use slipway_apimachinery::{ResourceDef, meta};

use crate::ops::{FOREGROUND_FINALIZER, ORPHAN_FINALIZER};
use crate::{DeleteOptions, Patch, Propagation, Registry, Subresource, WriteOptions};

const MANAGER: &str = "slipway-garbage-collector";

pub(crate) fn spawn(registry: &Arc<Registry>) {
    let weak = Arc::downgrade(registry);
    tokio::spawn(async move { run(weak).await });
}

/// Between the starts of two passes, at least this many times the last pass's length.
const PASS_SPACING: u32 = 5;

async fn run(registry: Weak<Registry>) {
    let mut last_seen = None;
    // A pass looks at every object, so its length grows with the registry, and while a large
    // fleet is being built every creation moves the epoch: passes back to back would take a
    // whole core. Spacing their starts by a multiple of the last one's length bounds the
    // collector to a fifth of a core at any size; a small registry's passes take
    // microseconds, so its collector stays as prompt as before.
    let mut not_before: Option<tokio::time::Instant> = None;
    loop {
        if let Some(at) = not_before.take()
            && at > tokio::time::Instant::now()
        {
            tokio::time::sleep_until(at).await;
        }
        let Some(reg) = registry.upgrade() else {
            return;
        };
        let interval = reg.config.gc_interval;
        // Decide on a cache that has caught up with every write made so far (including the
        // ones that woke this pass), so a pass never acts on a state older than its trigger.
        if let Ok(current) = reg.store.current_revision().await {
            let _ = reg.cache.wait_for(current, reg.config.cache_wait).await;
        }
        // Only a change that can matter to ownership or deletion calls for a pass: a
        // creation (of an object with owners, finalizers or a deletionTimestamp, or of any
        // while something is being deleted), a deletion, or a change of ownerReferences,
        // finalizers or deletionTimestamp. Status writes, heartbeats and Events do not, so
        // an idle fleet costs no passes. A pass that left something undecided (a conflict)
        // asks for another one.
        let epoch = reg.cache.collector_epoch();
        let retry = reg
            .gc_retry
            .swap(false, std::sync::atomic::Ordering::AcqRel);
        if retry || last_seen != Some(epoch) {
            last_seen = Some(epoch);
            let started = tokio::time::Instant::now();
            if let Err(e) = reg.collect_once().await {
                tracing::warn!(error = %e, "garbage collection pass failed; retrying");
                last_seen = None;
            }
            not_before = Some(started + started.elapsed() * PASS_SPACING);
        }
        // Deletions (and a pass's own retries) wake the collector at once. Any other change
        // that moves the ownership epoch wakes it too, but no sooner than `interval` after
        // the last look, so a fleet's build-up (a creation after another) costs a pass per
        // interval, not one per creation. Nothing else does: an idle registry has no timer
        // at all. The waits hold no reference to the registry, so dropping it ends this loop.
        let wakeup = Arc::clone(&reg.gc_wakeup);
        let moved = reg.cache.collector_moved();
        drop(reg);
        let looked = tokio::time::Instant::now();
        tokio::select! {
            () = wakeup.notified() => {}
            () = moved.notified() => {
                tokio::select! {
                    () = wakeup.notified() => {}
                    () = tokio::time::sleep_until(looked + interval) => {}
                }
            }
        }
    }
}

/// One object as a pass sees it.
struct Item {
    def: Arc<ResourceDef>,
    /// Its key: `<prefix>[<namespace>/]<name>`.
    key: String,
    summary: Arc<crate::cache::Ownership>,
}

impl Item {
    fn name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or_default()
    }

    fn namespace(&self) -> Option<&str> {
        self.def
            .namespaced
            .then(|| self.key.rsplit('/').nth(1))
            .flatten()
    }
}

impl Registry {
    fn def_for_key(&self, key: &str) -> Option<Arc<ResourceDef>> {
        self.defs
            .iter()
            .find(|d| key.starts_with(&self.keys.prefix(d, None)))
            .cloned()
    }

    /// One level-triggered pass of the garbage collector and the namespace finalizer. It
    /// decides on what the cache keeps of each object's ownership, and reads the objects it
    /// acts on.
    pub(crate) async fn collect_once(&self) -> Result<(), slipway_apimachinery::ApiError> {
        let mut by_uid: HashMap<Box<str>, Arc<ResourceDef>> = HashMap::new();
        let mut dependents: HashMap<Box<str>, Vec<usize>> = HashMap::new();
        let mut objects: Vec<Item> = Vec::new();
        for (key, summary) in self.cache.ownership() {
            let Some(def) = self.def_for_key(&key) else {
                continue;
            };
            if !summary.uid.is_empty() {
                by_uid.insert(summary.uid.clone(), Arc::clone(&def));
            }
            for owner in &summary.owners {
                dependents
                    .entry(owner.clone())
                    .or_default()
                    .push(objects.len());
            }
            objects.push(Item { def, key, summary });
        }

        for item in &objects {
            let owners = &item.summary.owners;
            if owners.is_empty() {
                continue;
            }
            let (alive, gone): (Vec<&Box<str>>, Vec<&Box<str>>) =
                owners.iter().partition(|u| by_uid.contains_key(*u));
            if alive.is_empty() {
                if !item.summary.deleting {
                    tracing::debug!(
                        kind = item.def.kind,
                        name = item.name(),
                        "garbage collecting: every owner is gone"
                    );
                    self.ignore_missing(
                        self.delete(
                            &item.def,
                            item.namespace(),
                            item.name(),
                            &DeleteOptions::default(),
                        )
                        .await,
                    )?;
                }
            } else if !gone.is_empty() {
                let gone: HashSet<&str> = gone.into_iter().map(|u| &**u).collect();
                self.remove_owner_refs(item, |uid| gone.contains(uid))
                    .await?;
            }
        }

        for item in &objects {
            if !item.summary.deleting || item.summary.uid.is_empty() {
                continue;
            }
            let uid = &*item.summary.uid;
            let finalizers = &item.summary.finalizers;
            let deps: Vec<&Item> = dependents
                .get(uid)
                .map(|d| d.iter().map(|i| &objects[*i]).collect())
                .unwrap_or_default();
            if finalizers.iter().any(|f| &**f == ORPHAN_FINALIZER) {
                for dep in &deps {
                    self.remove_owner_refs(dep, |u| u == uid).await?;
                }
                // Release the owner only once no dependent refers to it any more (the next
                // pass sees the patched dependents).
                if deps.is_empty() {
                    self.remove_finalizer(item, ORPHAN_FINALIZER).await?;
                }
            } else if finalizers.iter().any(|f| &**f == FOREGROUND_FINALIZER) {
                if deps.is_empty() {
                    self.remove_finalizer(item, FOREGROUND_FINALIZER).await?;
                }
                for dep in deps {
                    if dep.summary.deleting {
                        continue;
                    }
                    let opts = DeleteOptions {
                        propagation: Some(Propagation::Foreground),
                        ..Default::default()
                    };
                    self.ignore_missing(
                        self.delete(&dep.def, dep.namespace(), dep.name(), &opts)
                            .await,
                    )?;
                }
            }
            if item.def.group.is_empty() && item.def.plural == "namespaces" {
                self.empty_namespace(item, &objects).await?;
            }
        }
        Ok(())
    }

    async fn empty_namespace(
        &self,
        namespace: &Item,
        objects: &[Item],
    ) -> Result<(), slipway_apimachinery::ApiError> {
        let ns_name = namespace.name();
        let mut remaining = 0usize;
        for item in objects {
            if !item.def.namespaced || item.namespace() != Some(ns_name) {
                continue;
            }
            remaining += 1;
            if !item.summary.deleting {
                self.ignore_missing(
                    self.delete(
                        &item.def,
                        Some(ns_name),
                        item.name(),
                        &DeleteOptions::default(),
                    )
                    .await,
                )?;
            }
        }
        if remaining == 0 {
            self.finalize_namespace(&namespace.def, ns_name).await?;
        }
        Ok(())
    }

    async fn remove_owner_refs(
        &self,
        item: &Item,
        drop_uid: impl Fn(&str) -> bool,
    ) -> Result<(), slipway_apimachinery::ApiError> {
        // Gone since the pass began: its deletion moved the ownership epoch.
        let Some(object) = self.cache.get(&item.key) else {
            return Ok(());
        };
        let refs = object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let kept: Vec<Value> = refs
            .into_iter()
            .filter(|r| !r.get("uid").and_then(Value::as_str).is_some_and(&drop_uid))
            .collect();
        let patch = serde_json::json!({"metadata": {
            "ownerReferences": if kept.is_empty() { Value::Null } else { Value::Array(kept) },
            "resourceVersion": meta::resource_version(&object),
        }});
        self.patch_quietly(&item.def, &object, patch).await
    }

    async fn remove_finalizer(
        &self,
        item: &Item,
        finalizer: &str,
    ) -> Result<(), slipway_apimachinery::ApiError> {
        let Some(object) = self.cache.get(&item.key) else {
            return Ok(());
        };
        let kept: Vec<String> = meta::finalizers(&object)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        let patch = serde_json::json!({"metadata": {
            "finalizers": if kept.is_empty() { Value::Null } else { serde_json::json!(kept) },
            "resourceVersion": meta::resource_version(&object),
        }});
        self.patch_quietly(&item.def, &object, patch).await
    }

    /// A merge patch conditioned on the resourceVersion seen; a conflict or a vanished object
    /// just means the next pass decides again.
    async fn patch_quietly(
        &self,
        def: &ResourceDef,
        object: &Value,
        patch: Value,
    ) -> Result<(), slipway_apimachinery::ApiError> {
        let name = meta::name(object).unwrap_or_default();
        let opts = WriteOptions {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        let result = self
            .patch(
                def,
                meta::namespace(object),
                name,
                Patch::Merge(patch),
                Subresource::Main,
                &opts,
            )
            .await;
        if result.is_ok() {
            // Decide again soon on what this write changed.
            self.gc_wakeup.notify_one();
        }
        self.ignore_missing(result)
    }

    /// The object changed under a pass (a conflict): decide again on the next pass, even if
    /// the change was one that does not move the collector epoch (a status write).
    pub(crate) fn retry_gc(&self) {
        self.gc_retry
            .store(true, std::sync::atomic::Ordering::Release);
        self.gc_wakeup.notify_one();
    }

    /// A write the pass made that found its object gone (404) or changed (409) is no
    /// failure of the pass; a conflict asks for another pass.
    fn ignore_missing<T>(
        &self,
        result: Result<T, slipway_apimachinery::ApiError>,
    ) -> Result<(), slipway_apimachinery::ApiError> {
        match result {
            Ok(_) => Ok(()),
            // Gone: its deletion moved the ownership epoch, so a pass follows anyway.
            Err(e) if e.code == 404 => Ok(()),
            Err(e) if e.code == 409 => {
                self.retry_gc();
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
}
