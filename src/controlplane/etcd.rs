//! etcd's v3 JSON gateway (grpc-gateway on the client port): the member calls a joining stacked
//! control plane makes, as a pure codec plus a small client on the crate's HTTP/TLS stack
//! (mTLS with a client certificate of the etcd CA, e.g. `etcd/healthcheck-client`).
//!
//! Wire conventions (etcd `api/etcdserverpb/rpc.proto` through grpc-gateway's JSONPb marshaller
//! with `OrigName`: proto field names, uint64 as decimal strings, zero values omitted):
//! `POST /v3/cluster/member/list` `{}` → `{"header":{"cluster_id":"…","member_id":"…",
//! "raft_term":"…"},"members":[{"ID":"…","name":"…","peerURLs":[…],"clientURLs":[…],
//! "isLearner":true}]}`; `POST /v3/cluster/member/add` `{"peerURLs":[…],"isLearner":true}` →
//! `{"header":…,"member":{…},"members":[…]}`; `POST /v3/cluster/member/promote` `{"ID":"…"}` →
//! `{"header":…,"members":[…]}`. Errors: a non-2xx status with `{"error":"…","code":N,
//! "message":"…"}` (gRPC code N; `message` e.g. "etcdserver: can only promote a learner member
//! which is in sync with leader").
//!
//! kubeadm (`cmd/kubeadm/app/util/etcd/etcd.go`, `phases/etcd/local.go`; read in a recent
//! release): endpoints come from the etcd static Pods' annotation
//! `kubeadm.kubernetes.io/etcd.advertise-client-urls` (Pods `component=etcd,tier=control-plane`
//! in kube-system); `AddMember`/`AddMemberAsLearner` then build `--initial-cluster` from the
//! answer's member list, naming the new member (matched by its peer URL) with the node name and
//! any other unnamed member by its ID in hex; a learner is promoted once it is in sync
//! (`MemberPromote`, retried).
//!
//! Learners (`EtcdLearnerMode`, kubeadm `features.go`): absent before v1.27; alpha (off) v1.27–
//! v1.28; beta (on) v1.29–v1.31; GA from v1.32, and the newest local.go adds every joining member
//! as a learner unconditionally (read). The alpha/beta/GA minors are inferred from release notes.

use super::cluster::ClusterConfig;
use super::manifests::InitialMember;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Paths of the gateway.
pub const MEMBER_LIST: &str = "/v3/cluster/member/list";
pub const MEMBER_ADD: &str = "/v3/cluster/member/add";
pub const MEMBER_PROMOTE: &str = "/v3/cluster/member/promote";
/// The annotation kubeadm puts on etcd Pods and reads endpoints from.
pub const ADVERTISE_ANNOTATION: &str = "kubeadm.kubernetes.io/etcd.advertise-client-urls";

/// Whether kubeadm of this version adds a joining member as a learner (then promotes it).
pub fn adds_as_learner(cfg: &ClusterConfig) -> bool {
    match cfg.minor() {
        0..=26 => false,
        27..=28 => cfg.feature_gate("EtcdLearnerMode", false),
        29..=31 => cfg.feature_gate("EtcdLearnerMode", true),
        _ => true,
    }
}

/// uint64 as grpc-gateway writes it (a decimal string), also accepting a JSON number.
mod u64_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum N {
            S(String),
            N(u64),
        }
        match N::deserialize(d)? {
            N::S(s) => s.parse().map_err(serde::de::Error::custom),
            N::N(n) => Ok(n),
        }
    }
}

/// `etcdserverpb.ResponseHeader`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    #[serde(default, with = "u64_string")]
    pub cluster_id: u64,
    #[serde(default, with = "u64_string")]
    pub member_id: u64,
    #[serde(default, with = "u64_string")]
    pub raft_term: u64,
}

/// `etcdserverpb.Member`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    #[serde(rename = "ID", default, with = "u64_string")]
    pub id: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(rename = "peerURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default, skip_serializing_if = "Vec::is_empty")]
    pub client_urls: Vec<String>,
    #[serde(
        rename = "isLearner",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_learner: bool,
}

/// `MemberListResponse` / `MemberPromoteResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
}

/// `MemberAddRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddRequest {
    #[serde(rename = "peerURLs")]
    pub peer_urls: Vec<String>,
    #[serde(
        rename = "isLearner",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub is_learner: bool,
}

/// `MemberAddResponse`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub member: Member,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<Member>,
}

/// `MemberPromoteRequest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromoteRequest {
    #[serde(rename = "ID", with = "u64_string")]
    pub id: u64,
}

/// The gateway's error body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct GatewayError {
    #[serde(default)]
    pub error: String,
    #[serde(default)]
    pub code: i32,
    #[serde(default)]
    pub message: String,
}

/// kubeadm's `AddMember` result: every member for `--initial-cluster`, in the answer's order.
pub fn initial_cluster(answer: &[Member], name: &str, peer_url: &str) -> Vec<InitialMember> {
    answer
        .iter()
        .filter_map(|m| {
            let first = m.peer_urls.first()?;
            let name = if first == peer_url {
                name.to_string()
            } else if m.name.is_empty() {
                format!("{:x}", m.id)
            } else {
                m.name.clone()
            };
            Some(InitialMember {
                name,
                peer_url: first.clone(),
            })
        })
        .collect()
}

/// The member whose first peer URL is `peer_url` (kubeadm's `GetMemberID`).
pub fn member_by_peer<'a>(members: &'a [Member], peer_url: &str) -> Option<&'a Member> {
    members
        .iter()
        .find(|m| m.peer_urls.first().map(String::as_str) == Some(peer_url))
}

/// The endpoints kubeadm discovers: the annotation of each etcd Pod of a Pod list, in order.
pub fn endpoints_from_pods(pod_list: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for pod in pod_list
        .get("items")
        .and_then(|i| i.as_array())
        .into_iter()
        .flatten()
    {
        if let Some(url) = pod
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(ADVERTISE_ANNOTATION))
            .and_then(|u| u.as_str())
        {
            if !url.is_empty() && !out.iter().any(|e| e == url) {
                out.push(url.to_string());
            }
        }
    }
    out
}

/// Why an etcd call failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("building the etcd client for {endpoint}: {detail}")]
    Client { endpoint: String, detail: String },
    #[error("{call} on {endpoint}: {source}")]
    Request {
        call: &'static str,
        endpoint: String,
        #[source]
        source: crate::kube::RequestError,
    },
    #[error("{call} on {endpoint}: etcd answered {status}: {message}")]
    Refused {
        call: &'static str,
        endpoint: String,
        status: u16,
        /// The gateway's message (`etcdserver: …`).
        message: String,
        /// gRPC code.
        code: i32,
    },
    #[error("{call} on {endpoint}: the answer is not what etcd sends: {detail}")]
    Decode {
        call: &'static str,
        endpoint: String,
        detail: String,
    },
    #[error("no etcd endpoint to call")]
    NoEndpoint,
}

impl EtcdError {
    /// "can only promote a learner member which is in sync with leader": retry later.
    pub fn is_learner_not_ready(&self) -> bool {
        matches!(self, Self::Refused { message, .. } if message.contains("in sync with leader"))
    }
}

/// A client of the gateways of a list of endpoints, tried in order (as clientv3 balances).
#[derive(Debug)]
pub struct Client {
    clients: Vec<crate::kube::Client>,
}

impl Client {
    /// `endpoints` as `https://host:2379`; `ca_pem` the etcd CA; `cert_pem`/`key_pem` a client
    /// certificate it issued.
    pub fn new(
        endpoints: &[String],
        ca_pem: &[u8],
        cert_pem: &[u8],
        key_pem: &[u8],
        timeout: Duration,
    ) -> Result<Self, EtcdError> {
        let roots: Vec<Vec<u8>> = crate::pki::pem::pem_blocks(ca_pem)
            .into_iter()
            .filter(|(l, _)| *l == "CERTIFICATE")
            .map(|(_, d)| d)
            .collect();
        let trust = crate::kube::Trust::CaBundle(roots);
        let identity = crate::kube::Identity::ClientCert {
            cert_pem: cert_pem.to_vec(),
            key_pem: key_pem.to_vec(),
        };
        // etcd has no start-up window of refusals to wait out (`Timeouts::settle`).
        let timeouts = crate::kube::Timeouts {
            connect: timeout,
            read: Some(timeout),
            settle: false,
        };
        let clients = endpoints
            .iter()
            .map(|e| {
                crate::kube::client(e, &trust, &identity, timeouts).map_err(|err| {
                    EtcdError::Client {
                        endpoint: e.clone(),
                        detail: err.to_string(),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if clients.is_empty() {
            return Err(EtcdError::NoEndpoint);
        }
        Ok(Self { clients })
    }

    async fn call<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        call: &'static str,
        path: &str,
        body: &B,
    ) -> Result<T, EtcdError> {
        let body = serde_json::to_vec(body).map_err(|e| EtcdError::Decode {
            call,
            endpoint: String::new(),
            detail: e.to_string(),
        })?;
        let mut last = EtcdError::NoEndpoint;
        for c in &self.clients {
            let endpoint = c.server().to_string();
            let answer = match c
                .send(
                    http::Method::POST,
                    path,
                    "application/json",
                    Some(body.clone()),
                    crate::kube::MAX_BODY,
                )
                .await
            {
                Ok(a) => a,
                Err(source) => {
                    // Unreachable or broken: the next endpoint may answer.
                    last = EtcdError::Request {
                        call,
                        endpoint,
                        source,
                    };
                    continue;
                }
            };
            if !answer.is_success() {
                let e: GatewayError = serde_json::from_slice(&answer.body).unwrap_or_default();
                let message = if e.message.is_empty() {
                    e.error
                } else {
                    e.message
                };
                // A refusal is etcd's answer for the cluster: asking another member changes
                // nothing.
                return Err(EtcdError::Refused {
                    call,
                    endpoint,
                    status: answer.code,
                    message,
                    code: e.code,
                });
            }
            return serde_json::from_slice(&answer.body).map_err(|e| EtcdError::Decode {
                call,
                endpoint,
                detail: e.to_string(),
            });
        }
        Err(last)
    }

    pub async fn member_list(&self) -> Result<MembersResponse, EtcdError> {
        self.call("member list", MEMBER_LIST, &serde_json::json!({}))
            .await
    }

    pub async fn member_add(
        &self,
        peer_url: &str,
        learner: bool,
    ) -> Result<AddResponse, EtcdError> {
        let req = AddRequest {
            peer_urls: vec![peer_url.to_string()],
            is_learner: learner,
        };
        self.call("member add", MEMBER_ADD, &req).await
    }

    pub async fn member_promote(&self, id: u64) -> Result<MembersResponse, EtcdError> {
        self.call("member promote", MEMBER_PROMOTE, &PromoteRequest { id })
            .await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// Shapes as etcd v3.5's gateway answers (uint64 as strings, `isLearner` omitted when false,
    /// the new member without a name).
    #[test]
    fn decodes_gateway_answers() {
        let add: AddResponse = serde_json::from_str(
            r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","raft_term":"3"},
                "member":{"ID":"3172383487318263808","peerURLs":["https://10.0.2.15:2380"],"isLearner":true},
                "members":[{"ID":"10276657743932975437","name":"cp-1","peerURLs":["https://10.0.2.10:2380"],"clientURLs":["https://10.0.2.10:2379"]},
                           {"ID":"3172383487318263808","peerURLs":["https://10.0.2.15:2380"],"isLearner":true}]}"#,
        )
        .unwrap();
        assert_eq!(add.header.cluster_id, 14841639068965178418);
        assert_eq!(add.member.id, 3172383487318263808);
        assert!(add.member.is_learner && !add.members[0].is_learner);
        assert_eq!(
            initial_cluster(&add.members, "cp-2", "https://10.0.2.15:2380"),
            vec![
                InitialMember {
                    name: "cp-1".into(),
                    peer_url: "https://10.0.2.10:2380".into()
                },
                InitialMember {
                    name: "cp-2".into(),
                    peer_url: "https://10.0.2.15:2380".into()
                },
            ]
        );
        // An unnamed other member is named by its ID in hex (kubeadm, concurrent joins).
        let m = vec![Member {
            id: 255,
            peer_urls: vec!["https://x:2380".into()],
            ..Member::default()
        }];
        assert_eq!(initial_cluster(&m, "n", "https://y:2380")[0].name, "ff");
    }

    #[test]
    fn encodes_requests_like_the_gateway_expects() {
        let r = AddRequest {
            peer_urls: vec!["https://10.0.2.15:2380".into()],
            is_learner: true,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"peerURLs":["https://10.0.2.15:2380"],"isLearner":true}"#
        );
        let r = AddRequest {
            peer_urls: vec!["u".into()],
            is_learner: false,
        };
        assert_eq!(serde_json::to_string(&r).unwrap(), r#"{"peerURLs":["u"]}"#);
        assert_eq!(
            serde_json::to_string(&PromoteRequest { id: u64::MAX }).unwrap(),
            r#"{"ID":"18446744073709551615"}"#
        );
        let p: PromoteRequest = serde_json::from_str(r#"{"ID":42}"#).unwrap();
        assert_eq!(p.id, 42);
    }

    #[test]
    fn endpoints_from_annotations() {
        let pods = serde_json::json!({"items": [
            {"metadata": {"annotations": {ADVERTISE_ANNOTATION: "https://10.0.2.10:2379"}}},
            {"metadata": {"annotations": {}}},
            {"metadata": {"annotations": {ADVERTISE_ANNOTATION: "https://10.0.2.11:2379"}}},
        ]});
        assert_eq!(
            endpoints_from_pods(&pods),
            ["https://10.0.2.10:2379", "https://10.0.2.11:2379"]
        );
    }
}
