//! The kube-system objects behind a control-plane join: Secrets (bootstrap tokens and
//! `kubeadm-certs`), and the namespaced RBAC `upload-certs` creates (Roles, RoleBindings), with
//! the two controllers that end a `kubeadm-certs` upload: the token cleaner (deletes a
//! bootstrap-token Secret once its `expiration` has passed) and the garbage collector (deletes
//! an object whose controller owner no longer exists). Both run when the store is read, so an
//! expired upload is gone the moment it is asked for; the real ones take up to a few seconds.
//!
//! Bootstrap tokens created through the API are stored and expire, but only the tokens of
//! [`crate::Config::tokens`] authenticate requests (a model limit: no test needs more).

use crate::auth::{RequestInfo, User};
use crate::objects::{
    FieldError, List, ManagedFieldsEntry, ObjectMeta, OwnerReference, Status, SECRETS,
};
use crate::util;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

pub(crate) const NAMESPACE: &str = "kube-system";
pub(crate) const TOKEN_TYPE: &str = "bootstrap.kubernetes.io/token";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// `core/v1` Secret, fields in Go's order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Secret {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<&'static str>,
    pub metadata: ObjectMeta,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    #[serde(rename = "type")]
    pub type_: String,
}

#[derive(Debug, Clone)]
struct StoredSecret {
    uid: String,
    rv: u64,
    created: SystemTime,
    type_: String,
    data: BTreeMap<String, Vec<u8>>,
    owners: Vec<OwnerReference>,
    manager: String,
    /// A bootstrap token's `expiration`.
    expires: Option<SystemTime>,
}

#[derive(Debug, Clone, Default)]
struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
}

#[derive(Debug, Clone)]
struct StoredRbac {
    uid: String,
    rv: u64,
    created: SystemTime,
    /// The object as sent, for reads.
    body: Value,
    rules: Vec<Rule>,
    /// (kind, name) of the role a binding refers to.
    role_ref: (String, String),
    /// (kind, name) of each subject.
    subjects: Vec<(String, String)>,
}

#[derive(Default)]
struct Store {
    rv: u64,
    secrets: BTreeMap<String, StoredSecret>,
    roles: BTreeMap<String, StoredRbac>,
    bindings: BTreeMap<String, StoredRbac>,
}

impl Store {
    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// The token cleaner, then the garbage collector, until nothing changes.
    fn collect(&mut self, now: SystemTime) {
        loop {
            let before = self.secrets.len();
            self.secrets
                .retain(|_, s| !(s.type_ == TOKEN_TYPE && s.expires.is_some_and(|e| e <= now)));
            let alive: Vec<(String, String)> = self
                .secrets
                .iter()
                .map(|(n, s)| (n.clone(), s.uid.clone()))
                .collect();
            self.secrets.retain(|_, s| {
                s.owners.iter().all(|o| {
                    o.kind != "Secret" || alive.iter().any(|(n, u)| *n == o.name && *u == o.uid)
                })
            });
            if self.secrets.len() == before {
                return;
            }
        }
    }
}

/// The kube-system object store.
pub(crate) struct KubeSystem {
    store: Mutex<Store>,
}

impl std::fmt::Debug for KubeSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeSystem").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a new Secret says.
#[derive(Debug, Clone, Default)]
pub(crate) struct NewSecret {
    pub name: String,
    pub type_: String,
    pub data: BTreeMap<String, Vec<u8>>,
    pub owners: Vec<OwnerReference>,
    /// A bootstrap token's expiry to the instant (its `expiration` data has whole seconds);
    /// `None`: read from `expiration`.
    pub expires: Option<SystemTime>,
}

impl KubeSystem {
    pub(crate) fn new() -> KubeSystem {
        KubeSystem {
            store: Mutex::new(Store {
                rv: 500,
                ..Store::default()
            }),
        }
    }

    // ---- Secrets ------------------------------------------------------------------------

    pub(crate) fn secret(&self, name: &str) -> Option<Secret> {
        let mut store = lock(&self.store);
        store.collect(SystemTime::now());
        store.secrets.get(name).map(|s| secret_json(name, s))
    }

    /// The decoded data of a Secret.
    pub(crate) fn secret_data(&self, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let mut store = lock(&self.store);
        store.collect(SystemTime::now());
        store.secrets.get(name).map(|s| s.data.clone())
    }

    pub(crate) fn list_secrets(&self) -> List<Secret> {
        let mut store = lock(&self.store);
        store.collect(SystemTime::now());
        List {
            kind: "SecretList",
            api_version: "v1",
            metadata: ObjectMeta {
                resource_version: store.rv.to_string(),
                ..ObjectMeta::default()
            },
            items: store
                .secrets
                .iter()
                .map(|(n, s)| {
                    let mut j = secret_json(n, s);
                    j.kind = None;
                    j.api_version = None;
                    j
                })
                .collect(),
        }
    }

    /// Creates (`update` false: 409 if it exists) or replaces (`update` true: 404 if it does
    /// not) a Secret.
    pub(crate) fn put_secret(
        &self,
        new: NewSecret,
        update: bool,
        manager: &str,
    ) -> Result<Secret, Status> {
        let mut store = lock(&self.store);
        store.collect(SystemTime::now());
        let exists = store.secrets.contains_key(&new.name);
        if update && !exists {
            return Err(Status::not_found(SECRETS, &new.name));
        }
        if !update && exists {
            return Err(Status::already_exists(SECRETS, &new.name));
        }
        let type_ = if new.type_.is_empty() {
            "Opaque".to_string()
        } else {
            new.type_
        };
        let expires = if type_ != TOKEN_TYPE {
            None
        } else if new.expires.is_some() {
            new.expires
        } else {
            new.data
                .get("expiration")
                .and_then(|e| std::str::from_utf8(e).ok())
                .and_then(parse_rfc3339)
        };
        let rv = store.next_rv();
        let (uid, created) = match store.secrets.get(&new.name) {
            Some(old) => (old.uid.clone(), old.created),
            None => (util::uuid(), SystemTime::now()),
        };
        let stored = StoredSecret {
            uid,
            rv,
            created,
            type_,
            data: new.data,
            owners: new.owners,
            manager: manager.to_string(),
            expires,
        };
        let json = secret_json(&new.name, &stored);
        store.secrets.insert(new.name, stored);
        Ok(json)
    }

    pub(crate) fn delete_secret(&self, name: &str) -> Result<Status, Status> {
        let mut store = lock(&self.store);
        store.collect(SystemTime::now());
        match store.secrets.remove(name) {
            Some(s) => Ok(Status::deleted(SECRETS, name, &s.uid)),
            None => Err(Status::not_found(SECRETS, name)),
        }
    }

    /// Ends a bootstrap token now, as if its `expiration` had come (the token cleaner and the
    /// garbage collector then remove it and what it owns). `false` if there is no such token.
    pub(crate) fn expire_token(&self, name: &str) -> bool {
        let mut store = lock(&self.store);
        let now = SystemTime::now();
        let Some(s) = store.secrets.get_mut(name) else {
            return false;
        };
        s.expires = Some(now);
        s.data
            .insert("expiration".into(), util::rfc3339(now).into_bytes());
        store.collect(now);
        true
    }

    /// The controller owner (a Secret's name) of a Secret.
    pub(crate) fn owner_of(&self, name: &str) -> Option<(String, Option<SystemTime>)> {
        let mut store = lock(&self.store);
        store.collect(SystemTime::now());
        let owner = store
            .secrets
            .get(name)?
            .owners
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "Secret")?
            .name
            .clone();
        let expires = store.secrets.get(&owner).and_then(|s| s.expires);
        Some((owner, expires))
    }

    // ---- Roles and RoleBindings -----------------------------------------------------------

    /// Create (`update` false) or replace (`update` true) a Role or RoleBinding from its JSON.
    pub(crate) fn put_rbac(
        &self,
        resource: &str,
        body: &Value,
        name: &str,
        update: bool,
    ) -> Result<Value, Status> {
        let (kind, gr) = match resource {
            "roles" => ("Role", RBAC_ROLES),
            _ => ("RoleBinding", RBAC_BINDINGS),
        };
        let mut errs = Vec::new();
        let rules: Vec<Rule> = body
            .get("rules")
            .and_then(Value::as_array)
            .map(|rs| rs.iter().map(rule).collect())
            .unwrap_or_default();
        let role_ref = (str_at(body, "/roleRef/kind"), str_at(body, "/roleRef/name"));
        let subjects: Vec<(String, String)> = body
            .get("subjects")
            .and_then(Value::as_array)
            .map(|ss| {
                ss.iter()
                    .map(|s| (str_at(s, "/kind"), str_at(s, "/name")))
                    .collect()
            })
            .unwrap_or_default();
        if kind == "RoleBinding" && role_ref.1.is_empty() {
            errs.push(FieldError::required("roleRef.name", ""));
        }
        if !errs.is_empty() {
            return Err(Status::invalid(RBAC_GROUP, kind, name, &errs));
        }
        let mut store = lock(&self.store);
        let rv = store.next_rv();
        let map = if kind == "Role" {
            &mut store.roles
        } else {
            &mut store.bindings
        };
        let exists = map.contains_key(name);
        if update && !exists {
            return Err(Status::not_found(gr, name));
        }
        if !update && exists {
            return Err(Status::already_exists(gr, name));
        }
        let (uid, created) = match map.get(name) {
            Some(old) => (old.uid.clone(), old.created),
            None => (util::uuid(), SystemTime::now()),
        };
        let stored = StoredRbac {
            uid,
            rv,
            created,
            body: body.clone(),
            rules,
            role_ref,
            subjects,
        };
        let json = rbac_json(kind, name, &stored);
        map.insert(name.to_string(), stored);
        Ok(json)
    }

    pub(crate) fn rbac(&self, resource: &str, name: &str) -> Option<Value> {
        let store = lock(&self.store);
        let (kind, map) = match resource {
            "roles" => ("Role", &store.roles),
            _ => ("RoleBinding", &store.bindings),
        };
        map.get(name).map(|r| rbac_json(kind, name, r))
    }

    pub(crate) fn delete_rbac(&self, resource: &str, name: &str) -> Result<Status, Status> {
        let mut store = lock(&self.store);
        let (gr, map) = match resource {
            "roles" => (RBAC_ROLES, &mut store.roles),
            _ => (RBAC_BINDINGS, &mut store.bindings),
        };
        match map.remove(name) {
            Some(r) => Ok(Status::deleted(gr, name, &r.uid)),
            None => Err(Status::not_found(gr, name)),
        }
    }

    /// The RBAC authorizer over the stored kube-system Roles and RoleBindings.
    pub(crate) fn allows(&self, user: &User, ri: &RequestInfo) -> bool {
        if !ri.is_resource || ri.namespace != NAMESPACE {
            return false;
        }
        let store = lock(&self.store);
        let resource = if ri.subresource.is_empty() {
            ri.resource.clone()
        } else {
            format!("{}/{}", ri.resource, ri.subresource)
        };
        store.bindings.values().any(|b| {
            let bound = b.subjects.iter().any(|(kind, name)| match kind.as_str() {
                "Group" => user.in_group(name),
                "User" => user.name == *name,
                _ => false,
            });
            if !bound || b.role_ref.0 != "Role" {
                return false;
            }
            let Some(role) = store.roles.get(&b.role_ref.1) else {
                return false;
            };
            role.rules.iter().any(|r| {
                let has = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
                has(&r.verbs, &ri.verb)
                    && has(&r.api_groups, &ri.api_group)
                    && has(&r.resources, &resource)
                    && (r.resource_names.is_empty() || r.resource_names.contains(&ri.name))
            })
        })
    }
}

const RBAC_ROLES: crate::objects::GroupResource = crate::objects::GroupResource {
    group: RBAC_GROUP,
    resource: "roles",
};
const RBAC_BINDINGS: crate::objects::GroupResource = crate::objects::GroupResource {
    group: RBAC_GROUP,
    resource: "rolebindings",
};

/// RFC 3339 as Go's `time.RFC3339` writes it (`Z` or `±hh:mm`, optional fraction).
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hm = rest.get(1..)?;
            let (h, m) = hm.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn rule(v: &Value) -> Rule {
    Rule {
        verbs: strings(v, "verbs"),
        api_groups: strings(v, "apiGroups"),
        resources: strings(v, "resources"),
        resource_names: strings(v, "resourceNames"),
    }
}

fn rbac_json(kind: &str, name: &str, r: &StoredRbac) -> Value {
    let mut body = r.body.clone();
    if let Value::Object(map) = &mut body {
        map.insert("kind".into(), json!(kind));
        map.insert("apiVersion".into(), json!(format!("{RBAC_GROUP}/v1")));
        let mut meta = map
            .get("metadata")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(NAMESPACE));
        meta.insert("uid".into(), json!(r.uid));
        meta.insert("resourceVersion".into(), json!(r.rv.to_string()));
        meta.insert("creationTimestamp".into(), json!(util::rfc3339(r.created)));
        map.insert("metadata".into(), Value::Object(meta));
    }
    body
}

fn secret_json(name: &str, s: &StoredSecret) -> Secret {
    let mut data_fields = serde_json::Map::new();
    data_fields.insert(".".into(), json!({}));
    for k in s.data.keys() {
        data_fields.insert(format!("f:{k}"), json!({}));
    }
    let mut fields = serde_json::Map::new();
    fields.insert("f:data".into(), Value::Object(data_fields));
    if !s.owners.is_empty() {
        let mut owners = serde_json::Map::new();
        owners.insert(".".into(), json!({}));
        for o in &s.owners {
            owners.insert(format!("k:{{\"uid\":\"{}\"}}", o.uid), json!({}));
        }
        fields.insert("f:metadata".into(), json!({ "f:ownerReferences": owners }));
    }
    fields.insert("f:type".into(), json!({}));
    Secret {
        kind: Some("Secret"),
        api_version: Some("v1"),
        metadata: ObjectMeta {
            name: name.to_string(),
            namespace: NAMESPACE.to_string(),
            uid: s.uid.clone(),
            resource_version: s.rv.to_string(),
            creation_timestamp: util::rfc3339(s.created),
            owner_references: s.owners.clone(),
            managed_fields: vec![ManagedFieldsEntry::update(
                &s.manager,
                util::rfc3339(s.created),
                Value::Object(fields),
            )],
            ..ObjectMeta::default()
        },
        data: s
            .data
            .iter()
            .map(|(k, v)| (k.clone(), STANDARD.encode(v)))
            .collect(),
        type_: s.type_.clone(),
    }
}

/// A Secret body as the apiserver decodes it: name, type, base64 data, owner references.
pub(crate) fn decode_secret(body: &[u8]) -> Result<NewSecret, Status> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        Status::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })?;
    let cannot = |why: String| {
        Status::bad_request(format!(
            "Secret in version \"v1\" cannot be handled as a Secret: {why}"
        ))
    };
    if let Some(kind) = v.get("kind").and_then(Value::as_str) {
        if !kind.is_empty() && kind != "Secret" {
            return Err(cannot(format!(
                "the object provided is unrecognized (wrong kind {kind:?})"
            )));
        }
    }
    let mut data = BTreeMap::new();
    if let Some(map) = v.get("data").and_then(Value::as_object) {
        for (k, val) in map {
            let bytes = match val {
                Value::Null => Vec::new(),
                Value::String(s) => STANDARD
                    .decode(s)
                    .map_err(|e| cannot(format!("illegal base64 data: {e}")))?,
                _ => return Err(cannot(format!("data[{k:?}] is not a string"))),
            };
            data.insert(k.clone(), bytes);
        }
    }
    if let Some(map) = v.get("stringData").and_then(Value::as_object) {
        for (k, val) in map {
            if let Some(s) = val.as_str() {
                data.insert(k.clone(), s.as_bytes().to_vec());
            }
        }
    }
    let owners = v
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|o| OwnerReference {
                    api_version: str_at(o, "/apiVersion"),
                    kind: str_at(o, "/kind"),
                    name: str_at(o, "/name"),
                    uid: str_at(o, "/uid"),
                    controller: o.get("controller").and_then(Value::as_bool),
                    block_owner_deletion: o.get("blockOwnerDeletion").and_then(Value::as_bool),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(NewSecret {
        name: str_at(&v, "/metadata/name"),
        type_: str_at(&v, "/type"),
        data,
        owners,
        expires: None,
    })
}

/// The Secret of a bootstrap token, as kubeadm's `BootstrapTokenToSecret` writes it.
pub(crate) fn token_secret(
    id: &str,
    secret: &str,
    description: Option<&str>,
    expires: Option<SystemTime>,
    usages: &[&str],
    groups: &[String],
) -> NewSecret {
    let mut data = BTreeMap::new();
    data.insert("token-id".to_string(), id.as_bytes().to_vec());
    data.insert("token-secret".to_string(), secret.as_bytes().to_vec());
    if let Some(d) = description {
        data.insert("description".to_string(), d.as_bytes().to_vec());
    }
    if let Some(e) = expires {
        data.insert("expiration".to_string(), util::rfc3339(e).into_bytes());
    }
    for u in usages {
        data.insert(format!("usage-bootstrap-{u}"), b"true".to_vec());
    }
    if !groups.is_empty() {
        data.insert(
            "auth-extra-groups".to_string(),
            groups.join(",").into_bytes(),
        );
    }
    NewSecret {
        name: format!("bootstrap-token-{id}"),
        type_: TOKEN_TYPE.to_string(),
        data,
        owners: Vec::new(),
        expires,
    }
}

/// The Role and RoleBinding `upload-certs` creates (`copycerts.go` `createRBAC`).
pub(crate) fn kubeadm_certs_rbac() -> (Value, Value) {
    let name = crate::copycerts::ROLE_NAME;
    let role = json!({
        "kind": "Role",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "rules": [{
            "verbs": ["get"],
            "apiGroups": [""],
            "resources": ["secrets"],
            "resourceNames": [crate::copycerts::SECRET_NAME],
        }],
    });
    let binding = json!({
        "kind": "RoleBinding",
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "subjects": [{
            "kind": "Group",
            "apiGroup": "rbac.authorization.k8s.io",
            "name": crate::auth::DEFAULT_NODE_TOKEN_GROUP,
        }],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
    });
    (role, binding)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn user(groups: &[&str]) -> User {
        User {
            name: "system:bootstrap:abcdef".into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn get(name: &str) -> RequestInfo {
        RequestInfo {
            is_resource: true,
            verb: "get".into(),
            api_version: "v1".into(),
            namespace: NAMESPACE.into(),
            resource: "secrets".into(),
            name: name.into(),
            ..RequestInfo::default()
        }
    }

    #[test]
    fn the_token_cleaner_and_the_garbage_collector_end_an_upload() {
        let ks = KubeSystem::new();
        let soon = SystemTime::now() + Duration::from_secs(3600);
        let token = ks
            .put_secret(
                token_secret(
                    "a0rhq0",
                    "0123456789abcdef",
                    Some("d"),
                    Some(soon),
                    &[],
                    &[],
                ),
                false,
                "kubeadm",
            )
            .unwrap();
        let owner = OwnerReference {
            api_version: "v1".into(),
            kind: "Secret".into(),
            name: token.metadata.name.clone(),
            uid: token.metadata.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let certs = NewSecret {
            name: "kubeadm-certs".into(),
            data: [("ca.crt".to_string(), b"x".to_vec())].into(),
            owners: vec![owner],
            ..NewSecret::default()
        };
        let s = ks.put_secret(certs, false, "kubeadm").unwrap();
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["type"], "Opaque");
        assert_eq!(j["data"]["ca.crt"], "eA==");
        assert_eq!(
            j["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
            true
        );
        // Go's ObjectMeta order: ownerReferences before managedFields; Secret: data, type.
        let text = serde_json::to_string(&s).unwrap();
        let at = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
        assert!(at("ownerReferences") < at("managedFields"));
        assert!(at("managedFields") < at("data") && at("data") < at("type"));
        assert_eq!(
            ks.owner_of("kubeadm-certs").unwrap().0,
            "bootstrap-token-a0rhq0"
        );
        assert!(ks.expire_token("bootstrap-token-a0rhq0"));
        assert!(ks.secret("kubeadm-certs").is_none());
        assert!(ks.secret("bootstrap-token-a0rhq0").is_none());
    }

    #[test]
    fn rfc3339_round_trips() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_347_852);
        assert_eq!(parse_rfc3339(&util::rfc3339(t)), Some(t));
        assert_eq!(
            parse_rfc3339("2026-12-06T21:38:14+02:00"),
            parse_rfc3339("2026-12-06T19:38:14Z")
        );
        assert_eq!(
            parse_rfc3339("2026-12-06T19:38:14.25Z"),
            parse_rfc3339("2026-12-06T19:38:14Z")
        );
        assert!(parse_rfc3339("2026-13-06T19:38:14Z").is_none());
        assert!(parse_rfc3339("soon").is_none());
    }

    #[test]
    fn roles_bind_groups() {
        let ks = KubeSystem::new();
        let member = user(&[crate::auth::DEFAULT_NODE_TOKEN_GROUP]);
        assert!(!ks.allows(&member, &get("kubeadm-certs")));
        let (role, binding) = kubeadm_certs_rbac();
        ks.put_rbac("roles", &role, crate::copycerts::ROLE_NAME, false)
            .unwrap();
        assert!(
            !ks.allows(&member, &get("kubeadm-certs")),
            "a Role alone grants nothing"
        );
        ks.put_rbac("rolebindings", &binding, crate::copycerts::ROLE_NAME, false)
            .unwrap();
        assert!(ks.allows(&member, &get("kubeadm-certs")));
        assert!(!ks.allows(&member, &get("bootstrap-token-abcdef")));
        assert!(!ks.allows(&user(&["system:bootstrappers"]), &get("kubeadm-certs")));
        let mut list = get("");
        list.verb = "list".into();
        assert!(!ks.allows(&member, &list));
        assert_eq!(
            ks.put_rbac("roles", &role, crate::copycerts::ROLE_NAME, false)
                .unwrap_err()
                .code,
            409
        );
    }
}
