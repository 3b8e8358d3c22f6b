//! The subresources beyond `/status`: `/scale` (GET, PUT, PATCH of an `autoscaling/v1`
//! Scale, for kinds whose `ResourceDef::scale` is set) and `/eviction` (POST of a
//! `policy/v1` Eviction, for Pods). The semantics live in the registry
//! (`slipway_registry::{scale, eviction}`); this decodes requests and renders replies.

use bytes::Bytes;
use http::{Method, StatusCode};
use slipway_apimachinery::ApiError;
use slipway_registry::Patch;
use slipway_registry::eviction::Eviction;

use super::Call;
use crate::request::{self, BodyFormat};
use crate::response::Reply;

impl Call<'_> {
    /// Serve `/scale` and `/eviction` when this kind has them; `None` for any other
    /// subresource.
    pub(super) async fn extra_subresource(
        &self,
        method: &Method,
        body: &Bytes,
    ) -> Option<(&'static str, Reply)> {
        let (verb, result) = match (self.path.subresource.as_deref(), method.as_str()) {
            (Some("scale"), m) if self.def.scale.is_some() => match m {
                "GET" => ("get", self.get_scale().await),
                "PUT" => ("update", self.update_scale(body).await),
                "PATCH" => ("patch", self.patch_scale(body).await),
                _ => ("unknown", Err(self.not_allowed(method))),
            },
            (Some("eviction"), m) if self.def.eviction => match m {
                "POST" => ("create", self.evict(body).await),
                _ => ("unknown", Err(self.not_allowed(method))),
            },
            _ => return None,
        };
        Some((verb, result.unwrap_or_else(Reply::error)))
    }

    fn not_allowed(&self, method: &Method) -> ApiError {
        ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method} {}/{})",
            self.def.group_resource(),
            self.path.subresource.as_deref().unwrap_or_default()
        ))
    }

    fn named(&self) -> Result<(), ApiError> {
        self.require_namespace()?;
        if self.path.name.is_none() {
            return Err(ApiError::path_not_found(&format!(
                "{}: a name is required",
                self.def.plural
            )));
        }
        Ok(())
    }

    async fn get_scale(&self) -> Result<Reply, ApiError> {
        self.named()?;
        let scale = self
            .server
            .registry
            .get_scale(&self.def, self.namespace(), self.name())
            .await?;
        Ok(Reply::json(StatusCode::OK, &scale))
    }

    async fn update_scale(&self, body: &Bytes) -> Result<Reply, ApiError> {
        self.named()?;
        let opts = self.write_options()?;
        let format = request::body_format(self.content_type(), false)?;
        let (scale, warnings) = self.decode(body, format, opts.field_validation)?;
        let written = self
            .server
            .registry
            .update_scale(&self.def, self.namespace(), self.name(), &scale, &opts)
            .await?;
        Ok(Reply::json(StatusCode::OK, &written).with_warnings(warnings))
    }

    async fn patch_scale(&self, body: &Bytes) -> Result<Reply, ApiError> {
        self.named()?;
        let opts = self.write_options()?;
        let format = request::body_format(self.content_type(), true)?;
        let (value, warnings) = self.decode(body, format, opts.field_validation)?;
        let patch = match format {
            BodyFormat::MergePatch if value.is_object() => Patch::Merge(value),
            BodyFormat::MergePatch => {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            BodyFormat::StrategicMergePatch => Patch::Strategic(value),
            BodyFormat::JsonPatch => Patch::Json(value),
            _ => {
                return Err(ApiError::unsupported_media_type(
                    self.content_type().unwrap_or_default(),
                ));
            }
        };
        let written = self
            .server
            .registry
            .patch_scale(&self.def, self.namespace(), self.name(), patch, &opts)
            .await?;
        Ok(Reply::json(StatusCode::OK, &written).with_warnings(warnings))
    }

    async fn evict(&self, body: &Bytes) -> Result<Reply, ApiError> {
        self.named()?;
        let format = request::body_format(self.content_type(), false)?;
        let (value, _) = request::decode_body(body, format)?;
        let mut eviction = Eviction::from_body(&value, self.name())?;
        if self.query.dry_run()? {
            eviction.dry_run = true;
            eviction.delete.dry_run = true;
        }
        let status = self
            .server
            .registry
            .evict(
                &self.def,
                self.namespace().unwrap_or_default(),
                self.name(),
                &eviction,
            )
            .await?;
        Ok(Reply::json(StatusCode::CREATED, &status))
    }
}
