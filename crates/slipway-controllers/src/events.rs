//! Events on important transitions (a cluster becoming Ready or not, a machine failing or
//! being replaced, a TTL running out, a pool running dry), as core `v1` Events in the platform
//! API, so that `kubectl get events` and `kubectl describe` show them. Best effort, as in
//! Kubernetes: an Event that cannot be written is logged, never a reconcile failure.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use kube::{Resource, ResourceExt};
use slipway_client::{Api, PostParams};

use crate::{Context, MANAGER, now};

/// Whether an event reports something expected or a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Warning,
}

/// Record `reason`/`message` about `obj` (cluster-scoped objects' events go to `default`).
pub(crate) async fn record<K>(ctx: &Context, obj: &K, kind: Kind, reason: &str, message: String)
where
    K: Resource<DynamicType = ()>,
{
    let namespace = obj.namespace().unwrap_or_else(|| "default".to_string());
    let name = obj.name_any();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let at = now();
    let event = Event {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{name}.{}", &suffix[..16])),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: Some(name.clone()),
            namespace: obj.namespace(),
            uid: obj.uid(),
            resource_version: obj.resource_version(),
            ..Default::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message),
        type_: Some(
            match kind {
                Kind::Normal => "Normal",
                Kind::Warning => "Warning",
            }
            .to_string(),
        ),
        count: Some(1),
        first_timestamp: Some(at.clone()),
        last_timestamp: Some(at),
        source: Some(EventSource {
            component: Some(MANAGER.to_string()),
            host: None,
        }),
        reporting_component: Some(MANAGER.to_string()),
        ..Default::default()
    };
    let events: Api<Event> = Api::namespaced(Arc::clone(&ctx.client), &namespace);
    if let Err(e) = events.create(&PostParams::default(), &event).await {
        tracing::warn!(object = %name, reason, error = %e, "could not record an event");
    }
}
