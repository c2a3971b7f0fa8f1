//! Who is asking (authentication: client certificate, bootstrap token, anonymous), what they are
//! asking for (the apiserver's RequestInfo), and whether the Node + RBAC authorizers that
//! `kubeadm init` sets up would allow it (spec §7).

use crate::util;
use crate::TokenSpec;
use std::collections::BTreeMap;
use std::time::SystemTime;

pub(crate) const DEFAULT_NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
pub(crate) const MASTERS: &str = "system:masters";
pub(crate) const NODES_GROUP: &str = "system:nodes";
pub(crate) const AUTHENTICATED: &str = "system:authenticated";
pub(crate) const ANONYMOUS: &str = "system:anonymous";

/// An authenticated (or anonymous) user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct User {
    pub name: String,
    pub groups: Vec<String>,
}

impl User {
    pub(crate) fn anonymous() -> User {
        User {
            name: ANONYMOUS.to_string(),
            groups: vec!["system:unauthenticated".to_string()],
        }
    }

    pub(crate) fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node name of a node identity (`system:node:<name>` in `system:nodes`).
    pub(crate) fn node_name(&self) -> Option<&str> {
        if !self.in_group(NODES_GROUP) {
            return None;
        }
        self.name
            .strip_prefix("system:node:")
            .filter(|n| !n.is_empty())
    }
}

/// The outcome of authentication. `Rejected` is a 401 whatever the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Authn {
    User(User),
    Rejected,
}

/// Client certificate first, then the bearer token, then anonymous: the order of the
/// apiserver's union authenticator. `cert` is the verified peer certificate's (CN, O).
pub(crate) fn authenticate(
    cert: Option<&(String, Vec<String>)>,
    authorization: Option<&str>,
    tokens: &[TokenSpec],
    now: SystemTime,
) -> Authn {
    if let Some((cn, orgs)) = cert {
        let mut groups = orgs.clone();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        return Authn::User(User {
            name: cn.clone(),
            groups,
        });
    }
    let Some(header) = authorization else {
        return Authn::User(User::anonymous());
    };
    // Like the bearer token authenticator: anything that is not `Bearer <non-empty>` is not
    // a token at all, so the request goes on as anonymous.
    let mut parts = header.splitn(3, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Authn::User(User::anonymous());
    }
    match bootstrap_token_user(token, tokens, now) {
        Some(user) => Authn::User(user),
        // No token authenticator accepted it: 401, whatever the reason (malformed, unknown id,
        // wrong secret, expired, no authentication usage). The body never says which.
        None => Authn::Rejected,
    }
}

fn bootstrap_token_user(token: &str, tokens: &[TokenSpec], now: SystemTime) -> Option<User> {
    let (id, secret) = token.split_once('.')?;
    if !valid_token_part(id, 6) || !valid_token_part(secret, 16) {
        return None;
    }
    let spec = tokens.iter().find(|t| t.id == id)?;
    if !util::ct_eq(spec.secret.as_bytes(), secret.as_bytes()) {
        return None;
    }
    if spec.expires.is_some_and(|e| e <= now) || !spec.authentication {
        return None;
    }
    let mut groups = vec!["system:bootstrappers".to_string()];
    groups.extend(spec.extra_groups.iter().cloned());
    groups.push(AUTHENTICATED.to_string());
    Some(User {
        name: format!("system:bootstrap:{id}"),
        groups,
    })
}

pub(crate) fn valid_token_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// `BootstrapGroupPattern`: `\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z`.
pub(crate) fn valid_bootstrap_group(g: &str) -> bool {
    let Some(rest) = g.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// The decoded query string.
#[derive(Debug, Clone, Default)]
pub(crate) struct Query(BTreeMap<String, String>);

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Query {
        let mut map = BTreeMap::new();
        for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            // Like Go's url.Values.Get: the first value wins.
            map.entry(percent_decode(k))
                .or_insert_with(|| percent_decode(v));
        }
        Query(map)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// strconv.ParseBool; absent or unparsable is `None`.
    pub(crate) fn bool(&self, key: &str) -> Option<bool> {
        match self.get(key)? {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
            _ => None,
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FieldTerm {
    pub field: String,
    pub value: String,
    pub equals: bool,
}

/// `fields.ParseSelector`: comma-separated `f=v`, `f==v`, `f!=v`.
pub(crate) fn parse_field_selector(s: &str) -> Result<Vec<FieldTerm>, String> {
    let mut terms = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (field, value, equals) = if let Some((f, v)) = part.split_once("!=") {
            (f, v, false)
        } else if let Some((f, v)) = part.split_once("==") {
            (f, v, true)
        } else if let Some((f, v)) = part.split_once('=') {
            (f, v, true)
        } else {
            return Err(format!(
                "invalid selector: '{s}'; can't understand '{part}'"
            ));
        };
        terms.push(FieldTerm {
            field: field.trim().to_string(),
            value: value.trim().to_string(),
            equals,
        });
    }
    Ok(terms)
}

/// The apiserver's RequestInfo for a path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    pub is_resource: bool,
    pub path: String,
    pub verb: String,
    pub api_group: String,
    pub api_version: String,
    pub namespace: String,
    pub resource: String,
    pub subresource: String,
    pub name: String,
    /// Path segments after the resource name and subresource (none are served here).
    pub extra_parts: usize,
}

impl RequestInfo {
    /// Mirrors `RequestInfoFactory.NewRequestInfo`.
    pub(crate) fn parse(method: &str, path: &str, query: &Query) -> RequestInfo {
        let mut info = RequestInfo {
            path: path.to_string(),
            verb: method.to_ascii_lowercase(),
            ..RequestInfo::default()
        };
        let mut parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if parts.len() == 1 && parts[0].is_empty() {
            parts.clear();
        }
        if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
            return info;
        }
        let prefix = parts.remove(0);
        if prefix == "apis" {
            if parts.len() < 3 {
                return info;
            }
            info.api_group = parts.remove(0).to_string();
        }
        info.is_resource = true;
        info.api_version = parts.remove(0).to_string();
        info.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_string();
        if parts.first() == Some(&"namespaces") {
            if let Some(ns) = parts.get(1) {
                info.namespace = ns.to_string();
                if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
                    parts.drain(..2);
                }
            }
        }
        if let Some(r) = parts.first() {
            info.resource = r.to_string();
        }
        if let Some(n) = parts.get(1) {
            info.name = n.to_string();
        }
        if let Some(s) = parts.get(2) {
            info.subresource = s.to_string();
        }
        info.extra_parts = parts.len().saturating_sub(3);
        if info.name.is_empty() && info.verb == "get" {
            info.verb = if query.bool("watch") == Some(true) {
                "watch"
            } else {
                "list"
            }
            .to_string();
            // A single-object list or watch is authorized as that object.
            if let Some(sel) = query.get("fieldSelector") {
                if let Ok(terms) = parse_field_selector(sel) {
                    if let Some(t) = terms
                        .iter()
                        .find(|t| t.field == "metadata.name" && t.equals)
                    {
                        if valid_path_segment(&t.value) {
                            info.name = t.value.clone();
                        }
                    }
                }
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }
        info
    }
}

pub(crate) fn valid_path_segment(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// What the authorizers need to know about this cluster.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// kubeadm's ClusterRoleBinding `kubeadm:cluster-admins` → `cluster-admin` exists (v1.29+).
    pub cluster_admins: bool,
    pub kube_proxy: bool,
    /// `Some(minor)`: the kubelet-config ConfigMap (and kubeadm's RBAC for it) is the legacy
    /// `kubelet-config-1.<minor>`.
    pub kubelet_config_minor: Option<u32>,
}

impl Policy {
    fn kubelet_config(&self) -> String {
        match self.kubelet_config_minor {
            Some(minor) => format!("kubelet-config-1.{minor}"),
            None => "kubelet-config".to_string(),
        }
    }
}

/// Node + RBAC, as `kubeadm init` configures them. `Err(reason)` is a denial; the reason (from
/// the Node authorizer) is appended to the Forbidden message when not empty.
pub(crate) fn authorize(user: &User, ri: &RequestInfo, policy: Policy) -> Result<(), String> {
    if user.in_group(MASTERS)
        || (policy.cluster_admins && user.in_group(crate::controlplane::CLUSTER_ADMINS_GROUP))
    {
        return Ok(());
    }
    if !ri.is_resource {
        return if ri.verb == "get" && non_resource_allowed(user, &ri.path) {
            Ok(())
        } else {
            Err(String::new())
        };
    }
    let node_reason = match user.node_name() {
        Some(node) => match node_rules(node, ri) {
            NodeDecision::Allow => return Ok(()),
            NodeDecision::NoOpinion(reason) => reason,
        },
        None => String::new(),
    };
    if rbac_allows(user, ri, policy) {
        Ok(())
    } else {
        Err(node_reason)
    }
}

fn non_resource_allowed(user: &User, path: &str) -> bool {
    // system:public-info-viewer, bound to everyone.
    if matches!(
        path,
        "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
    ) {
        return true;
    }
    // system:discovery and system:basic-user, bound to system:authenticated.
    user.in_group(AUTHENTICATED)
        && (matches!(path, "/api" | "/apis" | "/openapi")
            || path.starts_with("/api/")
            || path.starts_with("/apis/")
            || path.starts_with("/openapi/"))
}

enum NodeDecision {
    Allow,
    NoOpinion(String),
}

/// The Node authorizer: graph-based for secrets/configmaps/volumes (no pods run here, so no
/// relationships exist), the `system:node` rules otherwise.
fn node_rules(node: &str, ri: &RequestInfo) -> NodeDecision {
    match (ri.api_group.as_str(), ri.resource.as_str()) {
        ("", "configmaps" | "secrets" | "persistentvolumeclaims" | "persistentvolumes") => {
            if ri.verb != "get" {
                NodeDecision::NoOpinion(
                    "can only get individual resources of this type".to_string(),
                )
            } else if ri.name.is_empty() {
                NodeDecision::NoOpinion("No Object name found".to_string())
            } else {
                NodeDecision::NoOpinion(format!(
                    "no relationship found between node '{node}' and this object"
                ))
            }
        }
        ("", "nodes") => {
            let allowed = match ri.subresource.as_str() {
                "" => matches!(
                    ri.verb.as_str(),
                    "get" | "list" | "watch" | "create" | "update" | "patch" | "delete"
                ),
                "status" => matches!(ri.verb.as_str(), "patch" | "update"),
                _ => false,
            };
            if allowed {
                NodeDecision::Allow
            } else {
                NodeDecision::NoOpinion(String::new())
            }
        }
        ("certificates.k8s.io", "certificatesigningrequests")
            if ri.subresource.is_empty()
                && matches!(ri.verb.as_str(), "create" | "get" | "list" | "watch") =>
        {
            NodeDecision::Allow
        }
        // system:node's read access to Pods.
        ("", "pods")
            if ri.subresource.is_empty()
                && matches!(ri.verb.as_str(), "get" | "list" | "watch") =>
        {
            NodeDecision::Allow
        }
        _ => NodeDecision::NoOpinion(String::new()),
    }
}

fn rbac_allows(user: &User, ri: &RequestInfo, policy: Policy) -> bool {
    let get_configmap = |ns: &str, names: &[&str]| {
        ri.api_group.is_empty()
            && ri.resource == "configmaps"
            && ri.subresource.is_empty()
            && ri.verb == "get"
            && ri.namespace == ns
            && names.contains(&ri.name.as_str())
    };
    let csr = ri.api_group == "certificates.k8s.io" && ri.resource == "certificatesigningrequests";

    // kubeadm:bootstrap-signer-clusterinfo
    if user.name == ANONYMOUS && get_configmap("kube-public", &["cluster-info"]) {
        return true;
    }
    // system:basic-user
    if user.in_group(AUTHENTICATED)
        && ri.verb == "create"
        && ((ri.api_group == "authentication.k8s.io" && ri.resource == "selfsubjectreviews")
            || (ri.api_group == "authorization.k8s.io"
                && matches!(
                    ri.resource.as_str(),
                    "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
                )))
    {
        return true;
    }
    if user.in_group(DEFAULT_NODE_TOKEN_GROUP) {
        // kubeadm:nodes-kubeadm-config, kubeadm:kubelet-config(-1.X), kube-proxy (addon only)
        let kubelet_config = policy.kubelet_config();
        let mut names = vec!["kubeadm-config", kubelet_config.as_str()];
        if policy.kube_proxy {
            names.push("kube-proxy");
        }
        if get_configmap("kube-system", &names) {
            return true;
        }
        // kubeadm:get-nodes
        if ri.api_group.is_empty()
            && ri.resource == "nodes"
            && ri.subresource.is_empty()
            && ri.verb == "get"
        {
            return true;
        }
        // kubeadm:kubelet-bootstrap -> system:node-bootstrapper
        if csr
            && ri.subresource.is_empty()
            && matches!(ri.verb.as_str(), "create" | "get" | "list" | "watch")
        {
            return true;
        }
        // kubeadm:node-autoapprove-bootstrap -> ...:nodeclient
        if csr && ri.subresource == "nodeclient" && ri.verb == "create" {
            return true;
        }
    }
    if user.in_group(NODES_GROUP) {
        if get_configmap("kube-system", &["kubeadm-config", &policy.kubelet_config()]) {
            return true;
        }
        // kubeadm:node-autoapprove-certificate-rotation -> ...:selfnodeclient
        if csr && ri.subresource == "selfnodeclient" && ri.verb == "create" {
            return true;
        }
    }
    false
}

/// The Forbidden text of `responsewriters.forbiddenMessage`.
pub(crate) fn forbidden_message(user: &User, ri: &RequestInfo, reason: &str) -> String {
    let base = if !ri.is_resource {
        format!(
            "User {} cannot {} path {}",
            quote(&user.name),
            ri.verb,
            quote(&ri.path)
        )
    } else {
        let mut resource = ri.resource.clone();
        if !ri.subresource.is_empty() {
            resource = format!("{resource}/{}", ri.subresource);
        }
        if ri.namespace.is_empty() {
            format!(
                "User {} cannot {} resource {} in API group {} at the cluster scope",
                quote(&user.name),
                ri.verb,
                quote(&resource),
                quote(&ri.api_group)
            )
        } else {
            format!(
                "User {} cannot {} resource {} in API group {} in the namespace {}",
                quote(&user.name),
                ri.verb,
                quote(&resource),
                quote(&ri.api_group),
                quote(&ri.namespace)
            )
        }
    };
    if reason.is_empty() {
        base
    } else {
        format!("{base}: {reason}")
    }
}

fn quote(s: &str) -> String {
    crate::objects::quote(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn token(id: &str, secret: &str) -> TokenSpec {
        TokenSpec {
            id: id.into(),
            secret: secret.into(),
            expires: None,
            signing: true,
            authentication: true,
            extra_groups: vec![DEFAULT_NODE_TOKEN_GROUP.into()],
        }
    }

    fn info(method: &str, target: &str) -> RequestInfo {
        let (path, q) = target.split_once('?').unwrap_or((target, ""));
        RequestInfo::parse(method, path, &Query::parse(Some(q)))
    }

    #[test]
    fn bootstrap_tokens() {
        let now = SystemTime::now();
        let tokens = vec![token("abcdef", "0123456789abcdef")];
        let ok = authenticate(None, Some("Bearer abcdef.0123456789abcdef"), &tokens, now);
        assert_eq!(
            ok,
            Authn::User(User {
                name: "system:bootstrap:abcdef".into(),
                groups: vec![
                    "system:bootstrappers".into(),
                    DEFAULT_NODE_TOKEN_GROUP.into(),
                    AUTHENTICATED.into()
                ]
            })
        );
        for bad in [
            "Bearer abcdef.0123456789abcdee",
            "Bearer zzzzzz.0123456789abcdef",
            "Bearer not-a-token",
        ] {
            assert_eq!(
                authenticate(None, Some(bad), &tokens, now),
                Authn::Rejected,
                "{bad}"
            );
        }
        let mut expired = tokens.clone();
        expired[0].expires = Some(now - Duration::from_secs(1));
        assert_eq!(
            authenticate(None, Some("Bearer abcdef.0123456789abcdef"), &expired, now),
            Authn::Rejected
        );
        let mut no_auth = tokens.clone();
        no_auth[0].authentication = false;
        assert_eq!(
            authenticate(None, Some("Bearer abcdef.0123456789abcdef"), &no_auth, now),
            Authn::Rejected
        );
        // Not a bearer header, or an empty token: anonymous, not 401.
        assert_eq!(
            authenticate(None, Some("Basic Zm9vOmJhcg=="), &tokens, now),
            Authn::User(User::anonymous())
        );
        assert_eq!(
            authenticate(None, Some("Bearer "), &tokens, now),
            Authn::User(User::anonymous())
        );
    }

    #[test]
    fn client_certificates_win() {
        let id = (
            "system:node:n1".to_string(),
            vec!["system:nodes".to_string()],
        );
        let user = authenticate(Some(&id), Some("Bearer bad"), &[], SystemTime::now());
        assert_eq!(
            user,
            Authn::User(User {
                name: "system:node:n1".into(),
                groups: vec!["system:nodes".into(), AUTHENTICATED.into()]
            })
        );
    }

    #[test]
    fn request_info_like_the_apiserver() {
        let ri = info(
            "GET",
            "/api/v1/namespaces/kube-public/configmaps/cluster-info",
        );
        assert_eq!(
            (
                ri.verb.as_str(),
                ri.namespace.as_str(),
                ri.resource.as_str(),
                ri.name.as_str()
            ),
            ("get", "kube-public", "configmaps", "cluster-info")
        );
        let ri = info(
            "GET",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests?fieldSelector=metadata.name%3Dcsr-abcde&watch=true",
        );
        assert_eq!(ri.verb, "watch");
        assert_eq!(ri.name, "csr-abcde");
        assert_eq!(ri.api_group, "certificates.k8s.io");
        let ri = info(
            "PUT",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/x/approval",
        );
        assert_eq!(
            (ri.verb.as_str(), ri.subresource.as_str()),
            ("update", "approval")
        );
        let ri = info("GET", "/api/v1/namespaces/kube-system/secrets");
        assert_eq!(
            (ri.verb.as_str(), ri.namespace.as_str()),
            ("list", "kube-system")
        );
        let ri = info("GET", "/apis/certificates.k8s.io/v1");
        assert!(!ri.is_resource);
        let ri = info("DELETE", "/api/v1/nodes");
        assert_eq!(ri.verb, "deletecollection");
    }

    #[test]
    fn rbac_as_kubeadm_sets_it_up() {
        let policy = Policy {
            cluster_admins: false,
            kube_proxy: false,
            kubelet_config_minor: None,
        };
        let bootstrap = User {
            name: "system:bootstrap:abcdef".into(),
            groups: vec![
                "system:bootstrappers".into(),
                DEFAULT_NODE_TOKEN_GROUP.into(),
                AUTHENTICATED.into(),
            ],
        };
        let anon = User::anonymous();
        let allowed = |u: &User, m: &str, t: &str| authorize(u, &info(m, t), policy).is_ok();
        assert!(allowed(
            &anon,
            "GET",
            "/api/v1/namespaces/kube-public/configmaps/cluster-info"
        ));
        assert!(!allowed(
            &bootstrap,
            "GET",
            "/api/v1/namespaces/kube-public/configmaps/cluster-info"
        ));
        assert!(allowed(
            &bootstrap,
            "GET",
            "/api/v1/namespaces/kube-system/configmaps/kubeadm-config"
        ));
        assert!(!allowed(
            &bootstrap,
            "GET",
            "/api/v1/namespaces/kube-system/configmaps/kube-proxy"
        ));
        assert!(authorize(
            &bootstrap,
            &info(
                "GET",
                "/api/v1/namespaces/kube-system/configmaps/kube-proxy"
            ),
            Policy {
                cluster_admins: false,
                kube_proxy: true,
                kubelet_config_minor: None,
            }
        )
        .is_ok());
        assert!(allowed(&bootstrap, "GET", "/api/v1/nodes/n1"));
        assert!(!allowed(&bootstrap, "GET", "/api/v1/nodes"));
        assert!(allowed(
            &bootstrap,
            "POST",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests"
        ));
        assert!(!allowed(
            &bootstrap,
            "DELETE",
            "/apis/certificates.k8s.io/v1/certificatesigningrequests/x"
        ));
        assert!(!allowed(&anon, "GET", "/api"));
        assert!(allowed(&anon, "GET", "/healthz"));
        assert!(allowed(&bootstrap, "GET", "/apis"));
        let other_group = User {
            name: "system:bootstrap:zzzzzz".into(),
            groups: vec!["system:bootstrappers".into(), AUTHENTICATED.into()],
        };
        assert!(!allowed(
            &other_group,
            "GET",
            "/api/v1/namespaces/kube-system/configmaps/kubelet-config"
        ));
        let node = User {
            name: "system:node:n1".into(),
            groups: vec![NODES_GROUP.into(), AUTHENTICATED.into()],
        };
        assert!(allowed(&node, "GET", "/api/v1/nodes/n1"));
        assert!(allowed(
            &node,
            "GET",
            "/api/v1/namespaces/kube-system/configmaps/kubelet-config"
        ));
        assert_eq!(
            authorize(
                &node,
                &info(
                    "GET",
                    "/api/v1/namespaces/kube-system/configmaps/kube-proxy"
                ),
                policy
            ),
            Err("no relationship found between node 'n1' and this object".into())
        );
    }

    #[test]
    fn forbidden_messages() {
        let ri = info("GET", "/api/v1/nodes");
        let user = User {
            name: "system:bootstrap:abcdef".into(),
            groups: vec![],
        };
        assert_eq!(
            forbidden_message(&user, &ri, ""),
            r#"User "system:bootstrap:abcdef" cannot list resource "nodes" in API group "" at the cluster scope"#
        );
        let ri = info("GET", "/foo");
        assert_eq!(
            forbidden_message(&User::anonymous(), &ri, ""),
            r#"User "system:anonymous" cannot get path "/foo""#
        );
    }

    #[test]
    fn bootstrap_group_pattern() {
        assert!(valid_bootstrap_group(DEFAULT_NODE_TOKEN_GROUP));
        assert!(!valid_bootstrap_group("system:bootstrappers:"));
        assert!(!valid_bootstrap_group("system:nodes"));
        assert!(!valid_bootstrap_group("system:bootstrappers:x-"));
    }
}
