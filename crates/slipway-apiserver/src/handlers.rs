//! The resource endpoints: CRUD, list, watch, patch and apply on every served kind.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Method, StatusCode, header};
use serde_json::{Value, json};
use slipway_apimachinery::selector::{FieldSelector, LabelSelector};
use slipway_apimachinery::table::{self, IncludeObject};
use slipway_apimachinery::{ApiError, ResourceDef};
use slipway_registry::{
    DeleteOptions, Deleted, FENCE_HEADER, Fence, FieldValidation, ListParams, ObjectList, Patch,
    Propagation, Subresource, WatchEventType, WatchParams, WriteOptions,
};

use crate::ApiServer;
use crate::metrics::{RequestLabels, VerbLabels};
use crate::request::{self, BodyFormat, Query, Representation, ResourcePath};
use crate::response::{self, Reply};

mod subresources;

/// One resource request, decoded.
struct Call<'a> {
    server: &'a ApiServer,
    def: Arc<ResourceDef>,
    path: ResourcePath,
    query: Query,
    headers: &'a HeaderMap,
}

pub async fn handle(
    server: Arc<ApiServer>,
    method: Method,
    path: ResourcePath,
    query: Query,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let started = Instant::now();
    let Some(def) = server
        .registry
        .resource(&path.group, &path.version, &path.resource)
    else {
        return Reply::error(ApiError::path_not_found(&format!(
            "{}/{}",
            if path.group.is_empty() {
                "api".to_string()
            } else {
                format!("apis/{}", path.group)
            },
            path.resource
        )));
    };
    let call = Call {
        server: &server,
        def,
        path,
        query,
        headers: &headers,
    };
    let (verb, reply) = call.dispatch(&method, body).await;
    let resource = call.def.plural.clone();
    server
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            verb: verb.into(),
            resource: resource.clone(),
            code: reply.status.as_u16().to_string(),
        })
        .inc();
    if verb != "watch" {
        server
            .metrics
            .duration
            .get_or_create(&VerbLabels {
                verb: verb.into(),
                resource,
            })
            .observe(started.elapsed().as_secs_f64());
    }
    reply
}

impl Call<'_> {
    async fn dispatch(&self, method: &Method, body: Bytes) -> (&'static str, Reply) {
        if let Some(served) = self.extra_subresource(method, &body).await {
            return served;
        }
        let sub = match self.path.subresource.as_deref() {
            None => Some(Subresource::Main),
            Some("status") if self.def.status_subresource => Some(Subresource::Status),
            _ => None,
        };
        let Some(sub) = sub else {
            let what = self.path.subresource.clone().unwrap_or_default();
            return (
                "unknown",
                Reply::error(ApiError::path_not_found(&format!(
                    "{}/{what}",
                    self.def.plural
                ))),
            );
        };
        let named = self.path.name.is_some();
        let verb = match (method.as_str(), named) {
            ("GET", _)
                if self.path.watch_prefix
                    || self
                        .query
                        .get("watch")
                        .is_some_and(|w| w == "true" || w == "1") =>
            {
                "watch"
            }
            ("GET", true) => "get",
            ("GET", false) => "list",
            ("POST", false) if sub == Subresource::Main => "create",
            ("PUT", true) => "update",
            ("PATCH", true) => "patch",
            ("DELETE", true) if sub == Subresource::Main => "delete",
            ("DELETE", false) => "deletecollection",
            _ => {
                return (
                    "unknown",
                    Reply::error(ApiError::method_not_allowed(format!(
                        "the server does not allow this method on the requested resource ({method} {})",
                        self.def.group_resource()
                    ))),
                );
            }
        };
        let result = match verb {
            "watch" => self.watch().await,
            "get" => self.get().await,
            "list" => self.list().await,
            "create" => self.create(body).await,
            "update" => self.update(body, sub).await,
            "patch" => self.patch(body, sub).await,
            "delete" => self.delete(body).await,
            _ => self.delete_collection(body).await,
        };
        (verb, result.unwrap_or_else(Reply::error))
    }

    fn namespace(&self) -> Option<&str> {
        self.path.namespace.as_deref()
    }

    fn name(&self) -> &str {
        self.path.name.as_deref().unwrap_or_default()
    }

    fn accept(&self) -> Option<&str> {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
    }

    fn content_type(&self) -> Option<&str> {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }

    /// Namespaced kinds need a namespace on every request but list/watch/deletecollection.
    fn require_namespace(&self) -> Result<(), ApiError> {
        if self.def.namespaced && self.path.namespace.is_none() {
            return Err(ApiError::path_not_found(&format!(
                "{}: a namespace is required (/namespaces/<namespace>/{})",
                self.def.group_resource(),
                self.def.plural
            )));
        }
        if !self.def.namespaced && self.path.namespace.is_some() {
            return Err(ApiError::path_not_found(&format!(
                "{} is not namespaced",
                self.def.group_resource()
            )));
        }
        Ok(())
    }

    fn write_options(&self) -> Result<WriteOptions, ApiError> {
        let field_manager = match self.query.get("fieldManager") {
            Some(m) if m.chars().count() > 128 => {
                return Err(ApiError::bad_request(
                    "fieldManager must be at most 128 characters",
                ));
            }
            Some(m) if !m.is_empty() => Some(m.to_string()),
            _ => self.default_manager(),
        };
        Ok(WriteOptions {
            dry_run: self.query.dry_run()?,
            field_validation: FieldValidation::parse(self.query.get("fieldValidation"))?,
            field_manager,
            force: self.query.flag("force")?,
            fence: self.fence()?,
        })
    }

    /// The fence a leader's client attaches to its writes (`X-Slipway-Fence`), if any.
    fn fence(&self) -> Result<Option<Fence>, ApiError> {
        match self.headers.get(FENCE_HEADER) {
            None => Ok(None),
            Some(v) => {
                let v = v.to_str().map_err(|_| {
                    ApiError::bad_request(format!("{FENCE_HEADER} must be visible ASCII"))
                })?;
                Fence::parse(v).map(Some)
            }
        }
    }

    /// Upstream names the manager of a write without `fieldManager` after the user agent's
    /// program name (`kubectl-edit`, `kubectl-client-side-apply`, ...).
    fn default_manager(&self) -> Option<String> {
        let ua = self.headers.get(header::USER_AGENT)?.to_str().ok()?;
        let program = ua.split('/').next()?.trim();
        (!program.is_empty()).then(|| program.to_string())
    }

    fn decode(
        &self,
        body: &Bytes,
        format: BodyFormat,
        validation: FieldValidation,
    ) -> Result<(Value, Vec<String>), ApiError> {
        let (value, duplicates) = request::decode_body(body, format)?;
        let mut warnings = Vec::new();
        if !duplicates.is_empty() {
            let listed: Vec<String> = duplicates
                .iter()
                .map(|d| format!("json: duplicate field \"{d}\""))
                .collect();
            match validation {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        self.def.kind,
                        self.def.version,
                        self.def.kind,
                        listed.join(", ")
                    )));
                }
                FieldValidation::Warn => warnings.extend(listed),
                FieldValidation::Ignore => {}
            }
        }
        Ok((value, warnings))
    }

    fn list_params(&self) -> Result<ListParams, ApiError> {
        Ok(ListParams {
            label_selector: self.label_selector()?,
            field_selector: self.field_selector()?,
            limit: self.query.number("limit")?.map(|l| l as usize),
            continue_token: self
                .query
                .get("continue")
                .filter(|c| !c.is_empty())
                .map(str::to_string),
            resource_version: self.query.get("resourceVersion").map(str::to_string),
            resource_version_match: self
                .query
                .get("resourceVersionMatch")
                .filter(|m| !m.is_empty())
                .map(str::to_string),
        })
    }

    fn label_selector(&self) -> Result<Option<LabelSelector>, ApiError> {
        match self.query.get("labelSelector") {
            Some(s) if !s.trim().is_empty() => LabelSelector::parse(s).map(Some),
            _ => Ok(None),
        }
    }

    fn field_selector(&self) -> Result<Option<FieldSelector>, ApiError> {
        match self.query.get("fieldSelector") {
            Some(s) if !s.trim().is_empty() => {
                FieldSelector::parse(s, &self.def.field_selector_fields()).map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn get(&self) -> Result<Reply, ApiError> {
        self.require_namespace()?;
        let repr = request::negotiate(self.accept())?;
        let obj = self
            .server
            .registry
            .get(&self.def, self.namespace(), self.name())
            .await?;
        match repr {
            Representation::Object => Ok(Reply::json(StatusCode::OK, &obj)),
            Representation::PartialMetadata => Ok(Reply::json(
                StatusCode::OK,
                &response::partial_metadata(&obj),
            )),
            Representation::Table => {
                let include = IncludeObject::parse(self.query.get("includeObject"))?;
                let list_meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)});
                let table = table::build_table(
                    &self.def,
                    std::slice::from_ref(&obj),
                    include,
                    jiff::Timestamp::now(),
                    list_meta,
                );
                Ok(Reply::json(StatusCode::OK, &table))
            }
        }
    }

    async fn list(&self) -> Result<Reply, ApiError> {
        let repr = request::negotiate(self.accept())?;
        let params = self.list_params()?;
        let list = self
            .server
            .registry
            .list(&self.def, self.namespace(), &params)
            .await?;
        Ok(match repr {
            Representation::Object => Reply::stream(response::list_body(&self.def, list)),
            Representation::PartialMetadata => {
                Reply::json(StatusCode::OK, &response::partial_metadata_list(&list))
            }
            Representation::Table => {
                let include = IncludeObject::parse(self.query.get("includeObject"))?;
                let items: Vec<Value> = list.items.iter().map(|o| (**o).clone()).collect();
                let table = table::build_table(
                    &self.def,
                    &items,
                    include,
                    jiff::Timestamp::now(),
                    list_meta(&list),
                );
                Reply::json(StatusCode::OK, &table)
            }
        })
    }

    async fn watch(&self) -> Result<Reply, ApiError> {
        let repr = request::negotiate(self.accept())?;
        let include = IncludeObject::parse(self.query.get("includeObject"))?;
        let timeout = self
            .query
            .number("timeoutSeconds")?
            .map(|s| Duration::from_secs(s as u64));
        let mut field_selector = self.field_selector()?;
        let mut label_selector = self.label_selector()?;
        // A watch on a named object is a watch with a metadata.name field selector.
        if let Some(name) = &self.path.name {
            field_selector = Some(FieldSelector::parse(
                &format!("metadata.name={name}"),
                &["metadata.name"],
            )?);
            label_selector = label_selector.take();
        }
        let params = WatchParams {
            label_selector,
            field_selector,
            resource_version: self.query.get("resourceVersion").map(str::to_string),
            resource_version_match: self
                .query
                .get("resourceVersionMatch")
                .filter(|m| !m.is_empty())
                .map(str::to_string),
            allow_bookmarks: self.query.flag("allowWatchBookmarks")?,
            send_initial_events: self.query.optional_flag("sendInitialEvents")?,
            timeout,
        };
        let stream = self
            .server
            .registry
            .watch(&self.def, self.namespace(), params)
            .await?;
        let def = Arc::clone(&self.def);
        let metrics_gauge = self.server.metrics.watchers.clone();
        metrics_gauge.inc();
        let guard = GaugeGuard(metrics_gauge);
        let mut first_table = true;
        let body = stream.map(move |event| {
            let _keep = &guard;
            let table_row = repr == Representation::Table
                && matches!(event.type_, WatchEventType::Added | WatchEventType::Modified | WatchEventType::Deleted);
            let partial =
                repr == Representation::PartialMetadata && event.type_ != WatchEventType::Error;
            if !table_row && !partial {
                // The common case: the line every such watcher gets, serialized once.
                return Ok::<Bytes, Infallible>(event.json_line());
            }
            let object = if table_row {
                let mut table = table::build_table(
                    &def,
                    std::slice::from_ref(&*event.object),
                    include,
                    jiff::Timestamp::now(),
                    json!({"resourceVersion": event.object.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null)}),
                );
                if !first_table && let Some(t) = table.as_object_mut() {
                    t.insert("columnDefinitions".into(), json!([]));
                }
                first_table = false;
                serde_json::to_vec(&table)
            } else {
                serde_json::to_vec(&response::partial_metadata(&event.object))
            };
            Ok::<Bytes, Infallible>(event.line_around(&object.unwrap_or_default()))
        });
        Ok(Reply::stream(Body::from_stream(body)))
    }

    async fn create(&self, body: Bytes) -> Result<Reply, ApiError> {
        self.require_namespace()?;
        let opts = self.write_options()?;
        let format = request::body_format(self.content_type(), false)?;
        let (obj, mut warnings) = self.decode(&body, format, opts.field_validation)?;
        let written = self
            .server
            .registry
            .create(&self.def, self.namespace(), obj, &opts)
            .await?;
        warnings.extend(written.warnings);
        Ok(Reply::json(StatusCode::CREATED, &written.object).with_warnings(warnings))
    }

    async fn update(&self, body: Bytes, sub: Subresource) -> Result<Reply, ApiError> {
        self.require_namespace()?;
        let opts = self.write_options()?;
        let format = request::body_format(self.content_type(), false)?;
        let (obj, mut warnings) = self.decode(&body, format, opts.field_validation)?;
        let written = self
            .server
            .registry
            .update(&self.def, self.namespace(), self.name(), obj, sub, &opts)
            .await?;
        warnings.extend(written.warnings);
        Ok(Reply::json(StatusCode::OK, &written.object).with_warnings(warnings))
    }

    async fn patch(&self, body: Bytes, sub: Subresource) -> Result<Reply, ApiError> {
        self.require_namespace()?;
        let mut opts = self.write_options()?;
        let format = request::body_format(self.content_type(), true)?;
        if opts.force && format != BodyFormat::ApplyPatch {
            return Err(ApiError::unprocessable(
                "force is only allowed for server-side apply (application/apply-patch+yaml)",
            ));
        }
        let (value, mut warnings) = self.decode(&body, format, opts.field_validation)?;
        let patch = match format {
            BodyFormat::MergePatch => {
                if !value.is_object() {
                    return Err(ApiError::bad_request("a merge patch must be a JSON object"));
                }
                Patch::Merge(value)
            }
            BodyFormat::JsonPatch => Patch::Json(value),
            // The registry answers 415 for kinds that do not take strategic merge.
            BodyFormat::StrategicMergePatch => Patch::Strategic(value),
            BodyFormat::ApplyPatch => {
                if self.query.get("fieldManager").is_none_or(str::is_empty) {
                    return Err(ApiError::bad_request(
                        "PATCH with apply requires a fieldManager parameter (kubectl sets it: --field-manager)",
                    ));
                }
                // Apply defaults to Strict field validation, as upstream does.
                if self.query.get("fieldValidation").is_none() {
                    opts.field_validation = FieldValidation::Strict;
                }
                Patch::Apply(value)
            }
            BodyFormat::Json | BodyFormat::Yaml | BodyFormat::Protobuf => {
                unreachable!("body_format only returns patch formats for patches")
            }
        };
        let written = self
            .server
            .registry
            .patch(&self.def, self.namespace(), self.name(), patch, sub, &opts)
            .await?;
        warnings.extend(written.warnings);
        let code = if written.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(Reply::json(code, &written.object).with_warnings(warnings))
    }

    fn delete_options(&self, body: &Bytes) -> Result<DeleteOptions, ApiError> {
        let mut opts = DeleteOptions {
            dry_run: self.query.dry_run()?,
            fence: self.fence()?,
            ..Default::default()
        };
        let mut propagation = self.query.get("propagationPolicy").map(str::to_string);
        if self.query.get("orphanDependents") == Some("true") {
            propagation = Some("Orphan".into());
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            let (value, _) = request::decode_body(body, BodyFormat::Json)?;
            if let Some(kind) = value.get("kind").and_then(Value::as_str)
                && kind != "DeleteOptions"
            {
                return Err(ApiError::bad_request(format!(
                    "expected a DeleteOptions body, got kind {kind:?}"
                )));
            }
            if let Some(p) = value.get("propagationPolicy").and_then(Value::as_str) {
                propagation = Some(p.to_string());
            }
            if value.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
                propagation = Some("Orphan".into());
            }
            if let Some(dry) = value.get("dryRun").and_then(Value::as_array) {
                opts.dry_run |= dry.iter().any(|d| d == "All");
            }
            opts.precondition_uid = value
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string);
            opts.precondition_resource_version = value
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string);
        }
        opts.propagation = match propagation.as_deref() {
            None | Some("") => None,
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some("Orphan") => Some(Propagation::Orphan),
            Some(other) => {
                return Err(ApiError::unprocessable(format!(
                    "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                )));
            }
        };
        Ok(opts)
    }

    async fn delete(&self, body: Bytes) -> Result<Reply, ApiError> {
        self.require_namespace()?;
        let opts = self.delete_options(&body)?;
        let deleted = self
            .server
            .registry
            .delete(&self.def, self.namespace(), self.name(), &opts)
            .await?;
        // As upstream: 200 when the object is gone, 202 when it waits for finalizers.
        let code = match deleted {
            Deleted::Gone(_) => StatusCode::OK,
            Deleted::Pending(_) => StatusCode::ACCEPTED,
        };
        Ok(Reply::json(code, deleted.object()))
    }

    async fn delete_collection(&self, body: Bytes) -> Result<Reply, ApiError> {
        let opts = self.delete_options(&body)?;
        let params = self.list_params()?;
        let deleted = self
            .server
            .registry
            .delete_collection(&self.def, self.namespace(), &params, &opts)
            .await?;
        let list = ObjectList {
            items: deleted.into_iter().map(Arc::new).collect(),
            resource_version: self.server.registry.cache_revision(),
            continue_token: None,
            remaining_item_count: None,
        };
        Ok(Reply::stream(response::list_body(&self.def, list)))
    }
}

fn list_meta(list: &ObjectList) -> Value {
    let mut meta = json!({"resourceVersion": list.resource_version.to_string()});
    if let Some(c) = &list.continue_token {
        meta["continue"] = json!(c);
    }
    meta
}

struct GaugeGuard(prometheus_client::metrics::gauge::Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}
