//! Strategies of the built-in kinds.

use serde_json::{Value, json};
use slipway_api::{
    config_map_resource, event_resource, lease_resource, namespace_resource, secret_resource,
};
use slipway_apimachinery::FieldError;

fn fields(errs: &[FieldError]) -> Vec<(String, &'static str)> {
    errs.iter()
        .map(|e| (e.field.to_string(), e.kind.reason()))
        .collect()
}

fn pairs(expected: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
    expected
        .iter()
        .map(|(f, r)| ((*f).to_string(), *r))
        .collect()
}

#[test]
fn namespace_phase_defaults_to_active_and_names_are_labels() {
    let def = namespace_resource();
    let mut ns =
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-payments"}});
    def.strategy.default(&mut ns);
    assert_eq!(ns["status"], json!({"phase": "Active"}));
    let once = ns.clone();
    def.strategy.default(&mut ns);
    assert_eq!(ns, once);
    assert_eq!(def.strategy.validate(&ns, None), vec![]);

    let mut terminating = json!({"metadata": {"name": "x"}, "status": {"phase": "Terminating"}});
    def.strategy.default(&mut terminating);
    assert_eq!(terminating["status"]["phase"], "Terminating");

    let bad = json!({"metadata": {"name": "team.payments"}, "status": {"phase": "Gone"}, "spec": {"finalizers": ["kubernetes", "bad finalizer"]}});
    assert_eq!(
        fields(&def.strategy.validate(&bad, None)),
        pairs(&[
            ("metadata.name", "FieldValueInvalid"),
            ("status.phase", "FieldValueNotSupported"),
            ("spec.finalizers[1]", "FieldValueInvalid"),
        ])
    );
}

#[test]
fn secret_type_defaults_and_string_data_is_merged_as_base64() {
    let def = secret_resource();
    let mut secret = json!({
        "metadata": {"name": "db", "namespace": "team-a"},
        "data": {"user": "YWRtaW4="},
        "stringData": {"password": "s3cret", "user": "root"},
    });
    def.strategy.default(&mut secret);
    assert_eq!(secret["type"], "Opaque");
    assert!(secret.get("stringData").is_none());
    assert_eq!(
        secret["data"],
        json!({"user": "cm9vdA==", "password": "czNjcmV0"}),
        "stringData wins, as upstream"
    );
    assert_eq!(def.strategy.validate(&secret, None), vec![]);

    let mut typed = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls"});
    def.strategy.default(&mut typed);
    assert_eq!(typed["type"], "kubernetes.io/tls");
    assert_eq!(
        fields(&def.strategy.validate(&typed, None)),
        pairs(&[
            ("data[tls.crt]", "FieldValueRequired"),
            ("data[tls.key]", "FieldValueRequired")
        ])
    );
}

#[test]
fn secret_data_must_be_base64_with_valid_keys() {
    let def = secret_resource();
    let secret = json!({"metadata": {"name": "db"}, "type": "Opaque", "data": {"ok": "b2s=", "plain": "not base64!", "bad/key": "b2s="}});
    let errs = def.strategy.validate(&secret, None);
    assert_eq!(
        fields(&errs),
        pairs(&[
            ("data[plain]", "FieldValueInvalid"),
            ("data[bad/key]", "FieldValueInvalid")
        ])
    );
    assert!(
        !errs[0].to_string().contains("not base64!"),
        "secret contents are not echoed: {}",
        errs[0]
    );

    let big = "a".repeat(1024 * 1024 + 1);
    let huge = json!({"metadata": {"name": "db"}, "stringData": {"big": big}});
    assert_eq!(
        fields(&def.strategy.validate(&huge, None)),
        pairs(&[("data", "FieldValueTooLong")])
    );
}

#[test]
fn secret_type_and_immutable_data_cannot_change() {
    let def = secret_resource();
    let old = json!({"metadata": {"name": "db"}, "type": "Opaque", "immutable": true, "data": {"a": "YQ=="}});
    let mut new = old.clone();
    new["type"] = json!("kubernetes.io/basic-auth");
    new["data"] = json!({"username": "YQ=="});
    assert_eq!(
        fields(&def.strategy.validate(&new, Some(&old))),
        pairs(&[
            ("type", "FieldValueInvalid"),
            ("data", "FieldValueForbidden")
        ])
    );
    let mut relabelled = old.clone();
    relabelled["metadata"]["labels"] = json!({"a": "b"});
    assert_eq!(def.strategy.validate(&relabelled, Some(&old)), vec![]);
    let mut unlocked = old.clone();
    unlocked["immutable"] = json!(false);
    assert_eq!(
        fields(&def.strategy.validate(&unlocked, Some(&old))),
        pairs(&[("immutable", "FieldValueForbidden")])
    );
}

#[test]
fn config_map_keys_and_binary_data() {
    let def = config_map_resource();
    let ok = json!({"metadata": {"name": "c"}, "data": {"app.yaml": "x: 1"}, "binaryData": {"logo.png": "iVBORw=="}});
    assert_eq!(def.strategy.validate(&ok, None), vec![]);
    let bad = json!({"metadata": {"name": "c"}, "data": {"a": "1", "..b": "2"}, "binaryData": {"a": "MQ==", "c": "%%%"}});
    assert_eq!(
        fields(&def.strategy.validate(&bad, None)),
        pairs(&[
            ("data[a]", "FieldValueInvalid"),
            ("data[..b]", "FieldValueInvalid"),
            ("binaryData[c]", "FieldValueInvalid"),
        ])
    );
    let old = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
    let mut changed = old.clone();
    changed["data"]["a"] = json!("2");
    assert_eq!(
        fields(&def.strategy.validate(&changed, Some(&old))),
        pairs(&[("data", "FieldValueForbidden")])
    );
}

#[test]
fn events_and_leases() {
    let events = event_resource();
    let ok = json!({"metadata": {"name": "e", "namespace": "a"}, "type": "Warning", "reason": "Failed", "involvedObject": {"kind": "Cluster", "name": "c", "namespace": "a"}});
    assert_eq!(events.strategy.validate(&ok, None), vec![]);
    let bad = json!({"metadata": {"name": "e", "namespace": "a"}, "type": "Oops", "count": -1, "involvedObject": {"name": "c", "namespace": "b"}});
    assert_eq!(
        fields(&events.strategy.validate(&bad, None)),
        pairs(&[
            ("type", "FieldValueNotSupported"),
            ("involvedObject.namespace", "FieldValueInvalid"),
            ("count", "FieldValueInvalid")
        ])
    );

    let leases = lease_resource();
    let ok = json!({"metadata": {"name": "controller"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 0}});
    assert_eq!(leases.strategy.validate(&ok, None), vec![]);
    let bad: Value = json!({"metadata": {"name": "l"}, "spec": {"leaseDurationSeconds": 0, "leaseTransitions": -1, "preferredHolder": "b"}});
    assert_eq!(
        fields(&leases.strategy.validate(&bad, None)),
        pairs(&[
            ("spec.leaseDurationSeconds", "FieldValueInvalid"),
            ("spec.leaseTransitions", "FieldValueInvalid"),
            ("spec.strategy", "FieldValueRequired"),
        ])
    );
}
