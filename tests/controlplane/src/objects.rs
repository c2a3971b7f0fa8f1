//! The API objects this server returns, as typed structs so that their JSON keys come out in the
//! order Go's encoding/json writes them (struct field order; maps sorted).

use serde::Serialize;
use std::collections::BTreeMap;

fn is_zero(v: &u16) -> bool {
    *v == 0
}

fn is_empty_str(s: &&str) -> bool {
    s.is_empty()
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectMeta {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub creation_timestamp: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<ManagedFieldsEntry>,
}

/// `metav1.OwnerReference`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManagedFieldsEntry {
    pub manager: String,
    pub operation: &'static str,
    pub api_version: &'static str,
    pub time: String,
    pub fields_type: &'static str,
    #[serde(rename = "fieldsV1")]
    pub fields_v1: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subresource: Option<&'static str>,
}

impl ManagedFieldsEntry {
    pub(crate) fn update(manager: &str, time: String, fields: serde_json::Value) -> Self {
        ManagedFieldsEntry {
            manager: manager.to_string(),
            operation: "Update",
            api_version: "v1",
            time,
            fields_type: "FieldsV1",
            fields_v1: fields,
            subresource: None,
        }
    }
}

/// The always-empty `metadata` of a Status.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct EmptyMeta {}

/// `metav1.Status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Status {
    kind: &'static str,
    api_version: &'static str,
    metadata: EmptyMeta,
    pub status: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Box<StatusDetails>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub code: u16,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct StatusDetails {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct StatusCause {
    #[serde(skip_serializing_if = "is_empty_str")]
    pub reason: &'static str,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// A group and a resource, printed the way `schema.GroupResource.String()` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupResource {
    pub group: &'static str,
    pub resource: &'static str,
}

impl std::fmt::Display for GroupResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.group.is_empty() {
            f.write_str(self.resource)
        } else {
            write!(f, "{}.{}", self.resource, self.group)
        }
    }
}

pub(crate) const CSRS: GroupResource = GroupResource {
    group: "certificates.k8s.io",
    resource: "certificatesigningrequests",
};
pub(crate) const NODES: GroupResource = GroupResource {
    group: "",
    resource: "nodes",
};
pub(crate) const CONFIGMAPS: GroupResource = GroupResource {
    group: "",
    resource: "configmaps",
};
pub(crate) const SECRETS: GroupResource = GroupResource {
    group: "",
    resource: "secrets",
};
pub(crate) const PODS: GroupResource = GroupResource {
    group: "",
    resource: "pods",
};

/// One entry of a field.ErrorList, as apimachinery's `field.Error` renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldError {
    pub reason: &'static str,
    pub field: String,
    pub body: String,
}

impl FieldError {
    pub(crate) fn required(field: &str, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueRequired",
            field: field.to_string(),
            body: with_detail("Required value", detail),
        }
    }

    /// `value` is already formatted the Go way (`%q` for strings, `%d`, `%#v` for byte slices).
    pub(crate) fn invalid(field: &str, value: &str, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueInvalid",
            field: field.to_string(),
            body: with_detail(&format!("Invalid value: {value}"), detail),
        }
    }

    pub(crate) fn duplicate(field: &str, value: &str) -> Self {
        FieldError {
            reason: "FieldValueDuplicate",
            field: field.to_string(),
            body: format!("Duplicate value: {value}"),
        }
    }

    pub(crate) fn not_supported(field: &str, value: &str, supported: &[&str]) -> Self {
        let quoted: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        FieldError {
            reason: "FieldValueNotSupported",
            field: field.to_string(),
            body: format!(
                "Unsupported value: {value}: supported values: {}",
                quoted.join(", ")
            ),
        }
    }

    pub(crate) fn forbidden(field: &str, detail: &str) -> Self {
        FieldError {
            reason: "FieldValueForbidden",
            field: field.to_string(),
            body: with_detail("Forbidden", detail),
        }
    }

    fn message(&self) -> String {
        format!("{}: {}", self.field, self.body)
    }
}

fn with_detail(head: &str, detail: &str) -> String {
    if detail.is_empty() {
        head.to_string()
    } else {
        format!("{head}: {detail}")
    }
}

/// Go's `%q` for the strings this server quotes (names, usages).
pub(crate) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

impl Status {
    fn failure(code: u16, reason: &str, message: String, details: Option<StatusDetails>) -> Self {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyMeta {},
            status: "Failure",
            message,
            reason: reason.to_string(),
            details: details.map(Box::new),
            code,
        }
    }

    pub(crate) fn unauthorized() -> Self {
        Status::failure(401, "Unauthorized", "Unauthorized".to_string(), None)
    }

    /// `apierrors.NewForbidden(gr, name, err)`; a non-resource request has an empty resource.
    pub(crate) fn forbidden(gr: Option<(&str, &str)>, name: &str, why: &str) -> Self {
        let (message, details) = match gr {
            None => (format!("forbidden: {why}"), StatusDetails::default()),
            Some((group, resource)) => {
                let gr = if group.is_empty() {
                    resource.to_string()
                } else {
                    format!("{resource}.{group}")
                };
                let message = if name.is_empty() {
                    format!("{gr} is forbidden: {why}")
                } else {
                    format!("{gr} {} is forbidden: {why}", quote(name))
                };
                let details = StatusDetails {
                    name: name.to_string(),
                    group: group.to_string(),
                    kind: resource.to_string(),
                    ..StatusDetails::default()
                };
                (message, details)
            }
        };
        Status::failure(403, "Forbidden", message, Some(details))
    }

    pub(crate) fn not_found(gr: GroupResource, name: &str) -> Self {
        Status::failure(
            404,
            "NotFound",
            format!("{gr} {} not found", quote(name)),
            Some(StatusDetails {
                name: name.to_string(),
                group: gr.group.to_string(),
                kind: gr.resource.to_string(),
                ..StatusDetails::default()
            }),
        )
    }

    /// The 404 of a path that names no resource this server knows.
    pub(crate) fn no_such_resource() -> Self {
        Status::failure(
            404,
            "NotFound",
            "the server could not find the requested resource".to_string(),
            Some(StatusDetails::default()),
        )
    }

    pub(crate) fn already_exists(gr: GroupResource, name: &str) -> Self {
        Status::failure(
            409,
            "AlreadyExists",
            format!("{gr} {} already exists", quote(name)),
            Some(StatusDetails {
                name: name.to_string(),
                group: gr.group.to_string(),
                kind: gr.resource.to_string(),
                ..StatusDetails::default()
            }),
        )
    }

    pub(crate) fn conflict(gr: GroupResource, name: &str, why: &str) -> Self {
        Status::failure(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {gr} {}: {why}",
                quote(name)
            ),
            Some(StatusDetails {
                name: name.to_string(),
                group: gr.group.to_string(),
                kind: gr.resource.to_string(),
                ..StatusDetails::default()
            }),
        )
    }

    /// `apierrors.NewInvalid(groupKind, name, errs)`: one error reads plainly, several as `[a, b]`.
    pub(crate) fn invalid(group: &str, kind: &str, name: &str, errs: &[FieldError]) -> Self {
        let mut messages: Vec<String> = Vec::new();
        for e in errs {
            let m = e.message();
            if !messages.contains(&m) {
                messages.push(m);
            }
        }
        let joined = if messages.len() == 1 {
            messages.concat()
        } else {
            format!("[{}]", messages.join(", "))
        };
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        Status::failure(
            422,
            "Invalid",
            format!("{qualified} {} is invalid: {joined}", quote(name)),
            Some(StatusDetails {
                name: name.to_string(),
                group: group.to_string(),
                kind: kind.to_string(),
                causes: errs
                    .iter()
                    .map(|e| StatusCause {
                        reason: e.reason,
                        message: e.body.clone(),
                        field: e.field.clone(),
                    })
                    .collect(),
                ..StatusDetails::default()
            }),
        )
    }

    pub(crate) fn bad_request(message: String) -> Self {
        Status::failure(400, "BadRequest", message, None)
    }

    pub(crate) fn method_not_allowed() -> Self {
        Status::failure(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".to_string(),
            Some(StatusDetails::default()),
        )
    }

    /// An injected failure, worded as kube-apiserver words these statuses (429 is its
    /// max-in-flight filter, 503/504 its timeout and availability filters).
    pub(crate) fn injected(code: u16, retry_after_seconds: Option<u64>) -> Self {
        let (reason, message) = match code {
            429 => (
                "TooManyRequests",
                "Too many requests, please try again later.",
            ),
            500 => ("InternalError", "Internal error occurred: injected fault"),
            503 => (
                "ServiceUnavailable",
                "the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "Timeout: request did not complete within the allotted timeout",
            ),
            _ => ("", "injected fault"),
        };
        let details = retry_after_seconds.map(|s| StatusDetails {
            retry_after_seconds: Some(s),
            ..StatusDetails::default()
        });
        Status::failure(code, reason, message.to_string(), details)
    }

    pub(crate) fn too_large(limit: usize) -> Self {
        Status::failure(
            413,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
            None,
        )
    }

    pub(crate) fn expired(message: String) -> Self {
        Status::failure(410, "Expired", message, None)
    }

    pub(crate) fn internal(why: &str) -> Self {
        Status::failure(
            500,
            "InternalError",
            format!("Internal error occurred: {why}"),
            Some(StatusDetails {
                causes: vec![StatusCause {
                    reason: "",
                    message: why.to_string(),
                    field: String::new(),
                }],
                ..StatusDetails::default()
            }),
        )
    }

    /// What a successful DELETE of a CSR returns.
    pub(crate) fn deleted(gr: GroupResource, name: &str, uid: &str) -> Self {
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: EmptyMeta {},
            status: "Success",
            message: String::new(),
            reason: String::new(),
            details: Some(Box::new(StatusDetails {
                name: name.to_string(),
                group: gr.group.to_string(),
                kind: gr.resource.to_string(),
                uid: uid.to_string(),
                ..StatusDetails::default()
            })),
            code: 0,
        }
    }
}

/// `certificates.k8s.io/v1` CertificateSigningRequest.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Csr {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    pub metadata: ObjectMeta,
    pub spec: CsrSpec,
    pub status: CsrStatus,
}

impl Csr {
    /// The object as an item of a list: lists carry kind and apiVersion once, at the top.
    pub(crate) fn as_item(&self) -> Csr {
        Csr {
            kind: None,
            api_version: None,
            ..self.clone()
        }
    }

    pub(crate) fn has_condition(&self, kind: &str) -> bool {
        self.status.conditions.iter().any(|c| c.type_ == kind)
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CsrSpec {
    pub request: String,
    pub signer_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_seconds: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub usages: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct CsrStatus {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CsrCondition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CsrCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_update_time: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_transition_time: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct List<T> {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub metadata: ObjectMeta,
    pub items: Vec<T>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConfigMap {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    pub metadata: ObjectMeta,
    pub data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Node {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    pub metadata: ObjectMeta,
    pub spec: NodeSpecJson,
    pub status: NodeStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeSpecJson {
    #[serde(rename = "podCIDR")]
    pub pod_cidr: String,
    #[serde(rename = "podCIDRs")]
    pub pod_cidrs: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Taint {
    pub key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub value: String,
    pub effect: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub time_added: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeStatus {
    pub conditions: Vec<NodeCondition>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    pub daemon_endpoints: serde_json::Value,
    pub node_info: NodeInfo,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeCondition {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub status: &'static str,
    pub last_heartbeat_time: String,
    pub last_transition_time: String,
    pub reason: &'static str,
    pub message: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct NodeAddress {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub address: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeInfo {
    #[serde(rename = "machineID")]
    pub machine_id: String,
    #[serde(rename = "systemUUID")]
    pub system_uuid: String,
    #[serde(rename = "bootID")]
    pub boot_id: String,
    pub kernel_version: String,
    pub os_image: String,
    pub container_runtime_version: String,
    pub kubelet_version: String,
    pub kube_proxy_version: String,
    pub operating_system: String,
    pub architecture: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SelfSubjectReview {
    pub kind: &'static str,
    pub api_version: &'static str,
    pub metadata: ObjectMeta,
    pub status: SelfSubjectReviewStatus,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SelfSubjectReviewStatus {
    pub user_info: UserInfoJson,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct UserInfoJson {
    pub username: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ApiVersions {
    pub kind: &'static str,
    pub versions: Vec<&'static str>,
    #[serde(rename = "serverAddressByClientCIDRs")]
    pub server_address_by_client_cidrs: Vec<ServerAddress>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerAddress {
    #[serde(rename = "clientCIDR")]
    pub client_cidr: &'static str,
    pub server_address: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct VersionInfo {
    pub major: String,
    pub minor: String,
    pub git_version: String,
    pub git_commit: &'static str,
    pub git_tree_state: &'static str,
    pub build_date: &'static str,
    pub go_version: &'static str,
    pub compiler: &'static str,
    pub platform: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct WatchEvent<'a, T: Serialize> {
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub object: &'a T,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(v: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(v).unwrap()
    }

    fn fixture(name: &str) -> serde_json::Value {
        let path = format!(
            "{}/../fixtures/apiserver/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn statuses_match_the_captures() {
        assert_eq!(
            json(&Status::unauthorized()),
            fixture("error-401-wrong-token.json")
        );
        assert_eq!(
            json(&Status::not_found(CSRS, "does-not-exist")),
            fixture("error-404-csr-not-found.json")
        );
        assert_eq!(
            json(&Status::not_found(NODES, "test-node")),
            fixture("extra/bootstrap-get-node-missing.json")
        );
        assert_eq!(
            json(&Status::already_exists(CSRS, "x-ok-expiry3600-1795347852")),
            fixture("extra/error-409-duplicate-csr-name.json")
        );
        assert_eq!(
            json(&Status::invalid(
                "certificates.k8s.io",
                "CertificateSigningRequest",
                "x-422-dupusage",
                &[FieldError::duplicate("spec.usages[2]", "\"client auth\"")]
            )),
            fixture("extra/error-422-duplicate-usage.json")
        );
    }

    #[test]
    fn several_field_errors_are_bracketed() {
        let s = Status::invalid(
            "certificates.k8s.io",
            "CertificateSigningRequest",
            "x",
            &[
                FieldError::required("spec.usages", ""),
                FieldError::required("spec.signerName", ""),
            ],
        );
        assert_eq!(
            s.message,
            "CertificateSigningRequest.certificates.k8s.io \"x\" is invalid: [spec.usages: Required value, spec.signerName: Required value]"
        );
    }

    #[test]
    fn key_order_follows_go_structs() {
        let s = serde_json::to_string(&Status::unauthorized()).unwrap();
        assert_eq!(
            s,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        );
    }
}
