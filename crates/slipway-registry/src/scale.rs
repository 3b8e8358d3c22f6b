//! The `/scale` subresource: an `autoscaling/v1` Scale view of any kind whose
//! [`ResourceDef::scale`] says where its replicas live (Deployment, ReplicaSet, or a custom
//! kind, as a CRD's `subresources.scale`). Reading builds the Scale from the object; writing
//! (PUT, or a merge, JSON or strategic merge patch of the Scale) changes only the object's
//! desired replicas, through the registry's own update at the revision read, so generation,
//! validation and optimistic concurrency work as for any spec change.

use serde_json::{Value, json};
use slipway_apimachinery::selector::LabelSelector;
use slipway_apimachinery::{
    ApiError, FieldError, FieldPath, ResourceDef, ScaleSubresource, meta, patch,
};

use crate::codec::parse_resource_version;
use crate::{Patch, Registry, Subresource, WriteOptions};

/// `.spec.replicas` as a JSON pointer (`/spec/replicas`).
fn pointer(path: &str) -> String {
    path.trim_start_matches('.')
        .split('.')
        .fold(String::new(), |mut p, s| {
            p.push('/');
            p.push_str(s);
            p
        })
}

fn scale_of(def: &ResourceDef) -> Result<&ScaleSubresource, ApiError> {
    def.scale
        .as_ref()
        .ok_or_else(|| ApiError::path_not_found(&format!("{}/scale", def.plural)))
}

/// The `autoscaling/v1` Scale of `obj`.
pub fn to_scale(def: &ResourceDef, obj: &Value) -> Result<Value, ApiError> {
    let scale = scale_of(def)?;
    let replicas = obj
        .pointer(&pointer(&scale.spec_replicas_path))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let observed = obj
        .pointer(&pointer(&scale.status_replicas_path))
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = match &scale.label_selector_path {
        Some(path) => obj
            .pointer(&pointer(path))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        None => obj
            .pointer("/spec/selector")
            .map(LabelSelector::from_json)
            .and_then(Result::ok)
            .map(|s| s.to_string())
            .unwrap_or_default(),
    };
    let mut metadata = json!({});
    for key in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = obj.pointer(&format!("/metadata/{key}")) {
            metadata[key] = v.clone();
        }
    }
    let mut status = json!({"replicas": observed});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": replicas},
        "status": status,
    }))
}

/// The desired replicas a Scale asks for: a non-negative integer (0 when absent, as upstream).
fn desired_replicas(scale: &Value, name: &str) -> Result<i64, ApiError> {
    if let Some(kind) = scale.get("kind").and_then(Value::as_str)
        && kind != "Scale"
    {
        return Err(ApiError::bad_request(format!(
            "expected a Scale body, got kind {kind:?}"
        )));
    }
    let path = FieldPath::root("spec").child("replicas");
    match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => Ok(0),
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 && n <= i64::from(i32::MAX) => Ok(n),
            _ => Err(ApiError::invalid(
                "Scale",
                "autoscaling",
                name,
                &[FieldError::invalid(
                    &path,
                    v,
                    "must be greater than or equal to 0",
                )],
            )),
        },
    }
}

impl Registry {
    /// `GET .../{name}/scale`.
    pub async fn get_scale(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        scale_of(def)?;
        let obj = self.get(def, ns, name).await?;
        to_scale(def, &obj)
    }

    /// `PUT .../{name}/scale`: set the desired replicas. The Scale's
    /// `metadata.resourceVersion`, when set, is a precondition on the object.
    pub async fn update_scale(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        scale: &Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let scale_def = scale_of(def)?;
        if let Some(n) = meta::name(scale)
            && !n.is_empty()
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        let replicas = desired_replicas(scale, name)?;
        let precondition = match meta::resource_version(scale) {
            Some(rv) if !rv.is_empty() => Some(parse_resource_version(rv)?),
            _ => None,
        };
        let target = pointer(&scale_def.spec_replicas_path);
        loop {
            let mut obj = self.get(def, ns, name).await?;
            if let Some(expected) = precondition
                && meta::resource_version(&obj) != Some(expected.to_string().as_str())
            {
                return Err(ApiError::conflict(
                    &def.plural,
                    &def.group,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            set_at(&mut obj, &target, json!(replicas));
            match self
                .update(def, ns, name, obj, Subresource::Main, opts)
                .await
            {
                Ok(written) => return to_scale(def, &written.object),
                // Someone else wrote in between and the client gave no precondition: retry.
                Err(e) if e.code == 409 && precondition.is_none() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// `PATCH .../{name}/scale`: the patch applies to the Scale, then as [`Self::update_scale`].
    /// Server-side apply of a Scale is not supported (415).
    pub async fn patch_scale(
        &self,
        def: &ResourceDef,
        ns: Option<&str>,
        name: &str,
        change: Patch,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        scale_of(def)?;
        loop {
            let current = self.get_scale(def, ns, name).await?;
            let patched = match &change {
                Patch::Merge(p) | Patch::Strategic(p) => patch::apply_merge_patch(&current, p),
                Patch::Json(p) => patch::apply_json_patch(&current, p)?,
                Patch::Apply(_) => {
                    return Err(ApiError::unsupported_media_type(
                        "application/apply-patch+yaml",
                    ));
                }
            };
            // The patch is applied at the revision read unless it names its own.
            let own = meta::resource_version(&patched) == meta::resource_version(&current);
            match self.update_scale(def, ns, name, &patched, opts).await {
                Err(e) if e.code == 409 && own => continue,
                other => return other,
            }
        }
    }
}

fn set_at(obj: &mut Value, pointer: &str, value: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(map) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            map.insert((*part).to_string(), value);
            return;
        }
        cur = map.entry((*part).to_string()).or_insert_with(|| json!({}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_view_and_replicas() {
        assert_eq!(pointer(".spec.replicas"), "/spec/replicas");
        let mut obj = json!({"metadata": {"name": "web"}});
        set_at(&mut obj, "/spec/replicas", json!(3));
        assert_eq!(obj["spec"]["replicas"], 3);
        assert_eq!(
            desired_replicas(&json!({"spec": {"replicas": 2}}), "w").unwrap(),
            2
        );
        assert_eq!(desired_replicas(&json!({}), "w").unwrap(), 0);
        assert_eq!(
            desired_replicas(&json!({"spec": {"replicas": -1}}), "w")
                .unwrap_err()
                .code,
            422
        );
        assert_eq!(
            desired_replicas(&json!({"kind": "Deployment"}), "w")
                .unwrap_err()
                .code,
            400
        );
    }
}
