//! The few Kubernetes API objects kubejoin reads or writes, with only the fields it uses.
//!
//! JSON shapes follow the Kubernetes API (`core/v1`, `certificates.k8s.io/v1`, `meta/v1`):
//! camelCase names, absent fields default, unknown fields are ignored. Like the generated API
//! types, an object whose `apiVersion` or `kind` is present but different from the expected one
//! does not decode (a `Status` is not a ConfigMap); an absent one is accepted. Byte fields
//! (`spec.request`, `status.certificate`) are standard base64 on the wire.

use base64::Engine as _;
use serde::de::{Deserializer, Error as _, Unexpected};
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;

/// Decodes a string that must equal `want`.
fn fixed<'de, D: Deserializer<'de>>(d: D, want: &'static str) -> Result<(), D::Error> {
    let got = String::deserialize(d)?;
    if got == want {
        Ok(())
    } else {
        Err(D::Error::invalid_value(Unexpected::Str(&got), &want))
    }
}

/// A unit type standing for one fixed `apiVersion` or `kind` value: written as that string,
/// and only that string is accepted on input.
macro_rules! fixed_value {
    ($(#[$doc:meta])* $name:ident = $value:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct $name;

        impl $name {
            pub const VALUE: &'static str = $value;
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str($value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                fixed(d, $value).map(|()| $name)
            }
        }
    };
}

fixed_value!(
    /// `apiVersion: v1`.
    CoreV1 = "v1"
);
fixed_value!(
    /// `apiVersion: certificates.k8s.io/v1`.
    CertificatesV1 = "certificates.k8s.io/v1"
);
fixed_value!(ConfigMapKind = "ConfigMap");
fixed_value!(NodeKind = "Node");
fixed_value!(StatusKind = "Status");
fixed_value!(CsrKind = "CertificateSigningRequest");
fixed_value!(CsrListKind = "CertificateSigningRequestList");

/// Bytes carried as a standard base64 string (`[]byte` in the Go types). `null` is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByteString(pub Vec<u8>);

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(s)
            .map(ByteString)
            .map_err(D::Error::custom)
    }
}

/// `metav1.ObjectMeta`: what kubejoin names, matches (uid) and resumes watches from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
}

/// `metav1.ListMeta`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ListMeta {
    pub resource_version: Option<String>,
}

/// A `core/v1` ConfigMap: only its string data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ConfigMap {
    pub api_version: CoreV1,
    pub kind: ConfigMapKind,
    pub data: Option<BTreeMap<String, String>>,
}

/// A `core/v1` Node: only its conditions (the Ready check).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Node {
    pub api_version: CoreV1,
    pub kind: NodeKind,
    pub status: Option<NodeStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct NodeStatus {
    pub conditions: Option<Vec<Condition>>,
}

/// A condition (of a Node or a CSR): `type`, `status` ("True", "False", "Unknown"), and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    pub reason: Option<String>,
    pub message: Option<String>,
}

/// A `certificates.k8s.io/v1` CertificateSigningRequest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificateSigningRequest {
    pub api_version: CertificatesV1,
    pub kind: CsrKind,
    pub metadata: ObjectMeta,
    pub spec: CertificateSigningRequestSpec,
    #[serde(skip_serializing)]
    pub status: Option<CertificateSigningRequestStatus>,
}

/// What is asked: the PEM request, the signer and the usages (what the kubelet POSTs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificateSigningRequestSpec {
    pub request: ByteString,
    pub signer_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usages: Option<Vec<String>>,
}

/// What was decided: conditions (Approved, Denied, Failed) and the issued PEM certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct CertificateSigningRequestStatus {
    pub conditions: Option<Vec<Condition>>,
    pub certificate: Option<ByteString>,
}

/// A list of CSRs (`CertificateSigningRequestList`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct CertificateSigningRequestList {
    pub api_version: CertificatesV1,
    pub kind: CsrListKind,
    pub metadata: ListMeta,
    pub items: Vec<CertificateSigningRequest>,
}

/// `metav1.Status`: the object of a watch `ERROR` event (e.g. 410 Expired).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Status {
    pub api_version: CoreV1,
    pub kind: StatusKind,
    pub code: Option<i32>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/apiserver/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    }

    #[test]
    fn csr_post_body_is_what_the_kubelet_sends() {
        let csr = CertificateSigningRequest {
            metadata: ObjectMeta {
                name: Some("node-csr-x".into()),
                ..Default::default()
            },
            spec: CertificateSigningRequestSpec {
                request: ByteString(b"PEM".to_vec()),
                signer_name: "kubernetes.io/kube-apiserver-client-kubelet".into(),
                usages: Some(vec!["digital signature".into(), "client auth".into()]),
            },
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&csr).unwrap(),
            r#"{"apiVersion":"certificates.k8s.io/v1","kind":"CertificateSigningRequest","metadata":{"name":"node-csr-x"},"spec":{"request":"UEVN","signerName":"kubernetes.io/kube-apiserver-client-kubelet","usages":["digital signature","client auth"]}}"#
        );
        // The captured POST body decodes and re-encodes to the same JSON.
        let captured: serde_json::Value =
            serde_json::from_str(&fixture("csr-request-body.json")).unwrap();
        let ours: CertificateSigningRequest = serde_json::from_value(captured.clone()).unwrap();
        assert_eq!(serde_json::to_value(&ours).unwrap(), captured);
    }

    #[test]
    fn captured_objects_decode() {
        let issued: CertificateSigningRequest =
            serde_json::from_str(&fixture("csr-issued.json")).unwrap();
        assert_eq!(
            issued.metadata.uid.as_deref(),
            Some("16c03c97-3eb7-4276-9870-520db5b279a8")
        );
        assert_eq!(issued.metadata.resource_version.as_deref(), Some("360"));
        let status = issued.status.unwrap();
        assert!(status
            .certificate
            .unwrap()
            .0
            .starts_with(b"-----BEGIN CERTIFICATE-----\n"));
        let c = &status.conditions.unwrap()[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()),
            ("Approved", "True", Some("AutoApproved"))
        );

        let cm: ConfigMap = serde_json::from_str(&fixture("kubelet-config.json")).unwrap();
        assert!(cm.data.unwrap().contains_key("kubelet"));

        let node: Node =
            serde_json::from_str(&fixture("extra/bootstrap-get-node-existing.json")).unwrap();
        assert!(node
            .status
            .unwrap()
            .conditions
            .unwrap()
            .iter()
            .any(|c| c.type_ == "Ready"));

        let line = fixture("watch-error-410-too-old-resource-version.jsonl");
        let v: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
        let s: Status = serde_json::from_value(v["object"].clone()).unwrap();
        assert_eq!((s.code, s.reason.as_deref()), (Some(410), Some("Expired")));
    }

    #[test]
    fn another_kind_or_version_is_refused_and_absent_ones_accepted() {
        let status = r#"{"kind":"Status","apiVersion":"v1","reason":"NotFound","code":404}"#;
        let e = serde_json::from_str::<ConfigMap>(status).unwrap_err();
        assert!(e.to_string().contains("expected ConfigMap"), "{e}");
        assert!(serde_json::from_str::<Node>(r#"{"apiVersion":"apps/v1"}"#).is_err());
        assert!(serde_json::from_str::<CertificateSigningRequestList>(
            r#"{"kind":"CertificateSigningRequest"}"#
        )
        .is_err());
        let cm: ConfigMap = serde_json::from_str(r#"{"data":{"a":"b"},"extra":[1]}"#).unwrap();
        assert_eq!(cm.data.unwrap()["a"], "b");
        assert_eq!(
            serde_json::from_str::<ByteString>("null").unwrap(),
            ByteString(Vec::new())
        );
        assert!(serde_json::from_str::<ByteString>(r#""not base64!""#).is_err());
    }
}
