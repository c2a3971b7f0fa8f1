//! Kubeconfig files: a parser for what discovery reads, and a byte-exact emitter of what
//! kubejoin writes.
//!
//! The emitter reproduces client-go's `clientcmd.Write` output (JSON field order sorted by
//! sigs.k8s.io/yaml, block sequences at the parent's indent, `""` for empty strings, `null` for
//! empty lists, `{}` for empty maps). That matters twice: the bytes kubeadm signs in
//! `cluster-info` are this format, and files kubejoin writes should be indistinguishable from
//! the ones kubeadm/the kubelet write. Byte-exactness is guaranteed for the values kubejoin
//! writes (URLs, names, paths, base64); exotic strings (multi-line, or long strings with spaces
//! that go-yaml would fold at 80 columns) are emitted as valid YAML but may differ in layout.

use base64::Engine as _;
use std::collections::BTreeSet;
use std::fmt;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A kubeconfig, reduced to the fields kubejoin reads or writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kubeconfig {
    pub clusters: Vec<NamedCluster>,
    pub contexts: Vec<NamedContext>,
    pub users: Vec<NamedUser>,
    pub current_context: String,
    /// Emit the `preferences: {}` line: client-go up to v0.33 always wrote it, v0.34+ omits it.
    /// Parsing sets it when the input had a `preferences` key.
    pub preferences: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

/// One cluster entry. Empty/`false` fields are omitted on output, as Go's `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cluster {
    /// `server:` (always written, even when empty).
    pub server: String,
    /// `certificate-authority:` a path to a PEM file.
    pub certificate_authority: Option<String>,
    /// `certificate-authority-data:` the PEM bytes (base64 on disk).
    pub certificate_authority_data: Option<Vec<u8>>,
    pub insecure_skip_tls_verify: bool,
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    pub cluster: String,
    /// `user:` the name of a users entry.
    pub user: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedUser {
    pub name: String,
    pub user: AuthInfo,
}

/// Credentials of a users entry. `Debug` redacts every secret-bearing field.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub client_certificate: Option<String>,
    pub client_certificate_data: Option<Vec<u8>>,
    pub client_key: Option<String>,
    pub client_key_data: Option<Vec<u8>>,
    pub password: Option<String>,
    pub token: Option<String>,
    pub username: Option<String>,
}

impl fmt::Debug for AuthInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |set: bool| if set { Some("<redacted>") } else { None };
        f.debug_struct("AuthInfo")
            .field("client_certificate", &self.client_certificate)
            .field(
                "client_certificate_data",
                &self.client_certificate_data.as_ref().map(|d| d.len()),
            )
            .field("client_key", &self.client_key)
            .field("client_key_data", &redact(self.client_key_data.is_some()))
            .field("password", &redact(self.password.is_some()))
            .field("token", &redact(self.token.is_some()))
            .field("username", &self.username)
            .finish()
    }
}

impl AuthInfo {
    /// client-go's `HasAuthenticationCredentials`: a token, user+password, or cert+key.
    pub fn has_credentials(&self) -> bool {
        let set = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        let set_b = |b: &Option<Vec<u8>>| b.as_deref().is_some_and(|b| !b.is_empty());
        set(&self.token)
            || (set(&self.username) && set(&self.password))
            || ((set(&self.client_certificate) || set_b(&self.client_certificate_data))
                && (set(&self.client_key) || set_b(&self.client_key_data)))
    }
}

/// Why a kubeconfig could not be used. Never carries credential values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KubeconfigError {
    #[error("the kubeconfig is not valid YAML: {0}")]
    Yaml(String),
    #[error("{field} of {entry} {name:?} is not valid base64")]
    Base64 {
        entry: &'static str,
        name: String,
        field: &'static str,
    },
    #[error("the kubeconfig has two {entry} entries named {name:?}")]
    Duplicate { entry: &'static str, name: String },
    #[error("the kubeconfig has no unnamed cluster and its current context {context:?} names no cluster it defines")]
    NoCluster { context: String },
}

mod raw {
    //! The on-disk shape, for serde. Lists may be `null`.
    use serde::Deserialize;

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Config {
        pub clusters: Option<Vec<NamedCluster>>,
        pub contexts: Option<Vec<NamedContext>>,
        pub users: Option<Vec<NamedUser>>,
        #[serde(rename = "current-context")]
        pub current_context: Option<String>,
        pub preferences: Option<serde::de::IgnoredAny>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct NamedCluster {
        pub name: Option<String>,
        pub cluster: Option<Cluster>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "kebab-case")]
    pub struct Cluster {
        pub server: Option<String>,
        pub certificate_authority: Option<String>,
        pub certificate_authority_data: Option<String>,
        pub insecure_skip_tls_verify: Option<bool>,
        pub tls_server_name: Option<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct NamedContext {
        pub name: Option<String>,
        pub context: Option<Context>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct Context {
        pub cluster: Option<String>,
        pub user: Option<String>,
        pub namespace: Option<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub struct NamedUser {
        pub name: Option<String>,
        pub user: Option<AuthInfo>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default, rename_all = "kebab-case")]
    pub struct AuthInfo {
        pub client_certificate: Option<String>,
        pub client_certificate_data: Option<String>,
        pub client_key: Option<String>,
        pub client_key_data: Option<String>,
        pub password: Option<String>,
        pub token: Option<String>,
        pub username: Option<String>,
    }
}

fn decode_b64(
    v: Option<String>,
    entry: &'static str,
    name: &str,
    field: &'static str,
) -> Result<Option<Vec<u8>>, KubeconfigError> {
    match v {
        None => Ok(None),
        Some(s) => {
            // Go's base64 decoder skips CR and LF, so wrapped values load there too.
            let clean: String = s.chars().filter(|c| *c != '\n' && *c != '\r').collect();
            B64.decode(clean.as_bytes())
                .map(|d| if d.is_empty() { None } else { Some(d) })
                .map_err(|_| KubeconfigError::Base64 {
                    entry,
                    name: name.to_string(),
                    field,
                })
        }
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

fn check_unique<'a>(
    entry: &'static str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), KubeconfigError> {
    let mut seen = BTreeSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(KubeconfigError::Duplicate {
                entry,
                name: n.to_string(),
            });
        }
    }
    Ok(())
}

impl Kubeconfig {
    /// Parses a kubeconfig as `clientcmd.Load` would: unknown fields ignored, empty input is an
    /// empty config, duplicate names refused.
    pub fn parse(text: &str) -> Result<Self, KubeconfigError> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        // A document that is only `null` or `~` is an empty config too (an Option of the
        // all-optional struct reads both as None).
        let raw: Option<raw::Config> =
            crate::yaml::from_str(text).map_err(|e| KubeconfigError::Yaml(e.to_string()))?;
        let Some(raw) = raw else {
            return Ok(Self::default());
        };
        let mut clusters = Vec::new();
        for c in raw.clusters.unwrap_or_default() {
            let name = c.name.unwrap_or_default();
            let rc = c.cluster.unwrap_or_default();
            let data = decode_b64(
                rc.certificate_authority_data,
                "cluster",
                &name,
                "certificate-authority-data",
            )?;
            clusters.push(NamedCluster {
                cluster: Cluster {
                    server: rc.server.unwrap_or_default(),
                    certificate_authority: non_empty(rc.certificate_authority),
                    certificate_authority_data: data,
                    insecure_skip_tls_verify: rc.insecure_skip_tls_verify.unwrap_or(false),
                    tls_server_name: non_empty(rc.tls_server_name),
                },
                name,
            });
        }
        let contexts: Vec<NamedContext> = raw
            .contexts
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let rc = c.context.unwrap_or_default();
                NamedContext {
                    name: c.name.unwrap_or_default(),
                    context: Context {
                        cluster: rc.cluster.unwrap_or_default(),
                        user: rc.user.unwrap_or_default(),
                        namespace: non_empty(rc.namespace),
                    },
                }
            })
            .collect();
        let mut users = Vec::new();
        for u in raw.users.unwrap_or_default() {
            let name = u.name.unwrap_or_default();
            let ru = u.user.unwrap_or_default();
            users.push(NamedUser {
                user: AuthInfo {
                    client_certificate: non_empty(ru.client_certificate),
                    client_certificate_data: decode_b64(
                        ru.client_certificate_data,
                        "user",
                        &name,
                        "client-certificate-data",
                    )?,
                    client_key: non_empty(ru.client_key),
                    client_key_data: decode_b64(
                        ru.client_key_data,
                        "user",
                        &name,
                        "client-key-data",
                    )?,
                    password: non_empty(ru.password),
                    token: non_empty(ru.token),
                    username: non_empty(ru.username),
                },
                name,
            });
        }
        check_unique("cluster", clusters.iter().map(|c| c.name.as_str()))?;
        check_unique("context", contexts.iter().map(|c| c.name.as_str()))?;
        check_unique("user", users.iter().map(|u| u.name.as_str()))?;
        Ok(Self {
            clusters,
            contexts,
            users,
            current_context: raw.current_context.unwrap_or_default(),
            preferences: raw.preferences.is_some(),
        })
    }

    /// The context named by `current-context`, if it exists.
    pub fn current(&self) -> Option<&Context> {
        self.contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .map(|c| &c.context)
    }

    /// kubeadm's `GetClusterFromKubeConfig`: the unnamed (`""`) cluster if there is one, else
    /// the cluster of the current context.
    pub fn cluster(&self) -> Result<&NamedCluster, KubeconfigError> {
        if let Some(c) = self.clusters.iter().find(|c| c.name.is_empty()) {
            return Ok(c);
        }
        self.current()
            .and_then(|ctx| self.clusters.iter().find(|c| c.name == ctx.cluster))
            .ok_or_else(|| KubeconfigError::NoCluster {
                context: self.current_context.clone(),
            })
    }

    /// Mutable access to the cluster [`Kubeconfig::cluster`] selects.
    pub fn cluster_mut(&mut self) -> Result<&mut NamedCluster, KubeconfigError> {
        let name = self.cluster()?.name.clone();
        self.clusters
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or(KubeconfigError::NoCluster {
                context: self.current_context.clone(),
            })
    }

    /// The users entry of the current context, if it names one that exists.
    pub fn current_user(&self) -> Option<&NamedUser> {
        let ctx = self.current()?;
        if ctx.user.is_empty() {
            return None;
        }
        self.users.iter().find(|u| u.name == ctx.user)
    }

    /// Mutable access to the users entry of the current context.
    pub fn current_user_mut(&mut self) -> Option<&mut NamedUser> {
        let name = self.current_user()?.name.clone();
        self.users.iter_mut().find(|u| u.name == name)
    }

    /// kubeadm's bootstrap kubeconfig (`CreateWithToken`): cluster `cluster_name`, user
    /// `tls-bootstrap-token-user` with `token`, context `tls-bootstrap-token-user@<cluster>`.
    pub fn with_token(server: &str, cluster_name: &str, ca_pem: &[u8], token: &str) -> Self {
        let user = "tls-bootstrap-token-user";
        let ctx = format!("{user}@{cluster_name}");
        Self {
            clusters: vec![NamedCluster {
                name: cluster_name.to_string(),
                cluster: Cluster {
                    server: server.to_string(),
                    certificate_authority_data: Some(ca_pem.to_vec()),
                    ..Cluster::default()
                },
            }],
            contexts: vec![NamedContext {
                name: ctx.clone(),
                context: Context {
                    cluster: cluster_name.to_string(),
                    user: user.to_string(),
                    namespace: None,
                },
            }],
            users: vec![NamedUser {
                name: user.to_string(),
                user: AuthInfo {
                    token: Some(token.to_string()),
                    ..AuthInfo::default()
                },
            }],
            current_context: ctx,
            preferences: true,
        }
    }

    /// The kubelet's own `kubelet.conf` after a TLS bootstrap (spec §6.4): cluster
    /// `default-cluster`, context `default-context` in namespace `default`, user
    /// `default-auth` reading cert and key from `cert_key_path` (one PEM holding both).
    pub fn kubelet(server: &str, ca_pem: &[u8], cert_key_path: &str) -> Self {
        Self {
            clusters: vec![NamedCluster {
                name: "default-cluster".into(),
                cluster: Cluster {
                    server: server.to_string(),
                    certificate_authority_data: Some(ca_pem.to_vec()),
                    ..Cluster::default()
                },
            }],
            contexts: vec![NamedContext {
                name: "default-context".into(),
                context: Context {
                    cluster: "default-cluster".into(),
                    user: "default-auth".into(),
                    namespace: Some("default".into()),
                },
            }],
            users: vec![NamedUser {
                name: "default-auth".into(),
                user: AuthInfo {
                    client_certificate: Some(cert_key_path.to_string()),
                    client_key: Some(cert_key_path.to_string()),
                    ..AuthInfo::default()
                },
            }],
            current_context: "default-context".into(),
            preferences: true,
        }
    }

    /// Serialises as client-go's `clientcmd.Write` does. See [`render`].
    pub fn render(&self) -> String {
        render(self)
    }
}

/// Serialises a kubeconfig byte for byte as client-go's `clientcmd.Write` (v1 `Config`, JSON
/// keys sorted, go-yaml v2 block style). Entries are sorted by name, because client-go holds
/// them in maps and writes them in key order.
pub fn render(cfg: &Kubeconfig) -> String {
    let mut out = String::from("apiVersion: v1\n");

    let mut clusters: Vec<&NamedCluster> = cfg.clusters.iter().collect();
    clusters.sort_by(|a, b| a.name.cmp(&b.name));
    if clusters.is_empty() {
        out.push_str("clusters: null\n");
    } else {
        out.push_str("clusters:\n");
        for c in clusters {
            let k = &c.cluster;
            out.push_str("- cluster:\n");
            if let Some(v) = k.certificate_authority.as_deref().filter(|v| !v.is_empty()) {
                field(&mut out, 4, "certificate-authority", v);
            }
            if let Some(d) = k
                .certificate_authority_data
                .as_deref()
                .filter(|d| !d.is_empty())
            {
                field(&mut out, 4, "certificate-authority-data", &B64.encode(d));
            }
            if k.insecure_skip_tls_verify {
                out.push_str("    insecure-skip-tls-verify: true\n");
            }
            field(&mut out, 4, "server", &k.server);
            if let Some(v) = k.tls_server_name.as_deref().filter(|v| !v.is_empty()) {
                field(&mut out, 4, "tls-server-name", v);
            }
            field(&mut out, 2, "name", &c.name);
        }
    }

    let mut contexts: Vec<&NamedContext> = cfg.contexts.iter().collect();
    contexts.sort_by(|a, b| a.name.cmp(&b.name));
    if contexts.is_empty() {
        out.push_str("contexts: null\n");
    } else {
        out.push_str("contexts:\n");
        for c in contexts {
            out.push_str("- context:\n");
            field(&mut out, 4, "cluster", &c.context.cluster);
            if let Some(ns) = c.context.namespace.as_deref().filter(|v| !v.is_empty()) {
                field(&mut out, 4, "namespace", ns);
            }
            field(&mut out, 4, "user", &c.context.user);
            field(&mut out, 2, "name", &c.name);
        }
    }

    field(&mut out, 0, "current-context", &cfg.current_context);
    out.push_str("kind: Config\n");
    if cfg.preferences {
        out.push_str("preferences: {}\n");
    }

    let mut users: Vec<&NamedUser> = cfg.users.iter().collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    if users.is_empty() {
        out.push_str("users: null\n");
    } else {
        out.push_str("users:\n");
        for u in users {
            out.push_str("- ");
            field(&mut out, 0, "name", &u.name);
            let a = &u.user;
            let s = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
            let b = |v: &Option<Vec<u8>>| {
                v.as_deref()
                    .filter(|v| !v.is_empty())
                    .map(|d| B64.encode(d))
            };
            let fields = [
                ("client-certificate", s(&a.client_certificate)),
                ("client-certificate-data", b(&a.client_certificate_data)),
                ("client-key", s(&a.client_key)),
                ("client-key-data", b(&a.client_key_data)),
                ("password", s(&a.password)),
                ("token", s(&a.token)),
                ("username", s(&a.username)),
            ];
            if fields.iter().all(|(_, v)| v.is_none()) {
                out.push_str("  user: {}\n");
            } else {
                out.push_str("  user:\n");
                for (k, v) in fields {
                    if let Some(v) = v {
                        field(&mut out, 4, k, &v);
                    }
                }
            }
        }
    }
    out
}

fn field(out: &mut String, indent: usize, key: &str, value: &str) {
    for _ in 0..indent {
        out.push(' ');
    }
    out.push_str(key);
    out.push_str(": ");
    out.push_str(&scalar(value));
    out.push('\n');
}

use crate::goyaml::string_scalar as scalar;

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECTED: &str =
        include_str!("../../tests/fixtures/upstream/token-test-expected-kubeconfig.yaml");
    const DRYRUN: &str =
        include_str!("../../tests/fixtures/upstream/dryrun-cluster-info-kubeconfig.yaml");
    const TOKEN_CA: &[u8] = include_bytes!("../../tests/fixtures/upstream/token-test-ca-cert.pem");
    const BOOTSTRAP_CONF: &str = include_str!(
        "../../tests/fixtures/apiserver/reference-kubeadm-join/bootstrap-kubelet.conf"
    );

    #[test]
    fn emits_token_test_expected_kubeconfig_byte_for_byte() {
        // kubeadm's buildSecureBootstrapKubeConfig("127.0.0.1", ca, "somecluster"), written by a
        // client-go without `preferences` (spec §11.3).
        let cfg = Kubeconfig {
            clusters: vec![NamedCluster {
                name: "somecluster".into(),
                cluster: Cluster {
                    server: "https://127.0.0.1".into(),
                    certificate_authority_data: Some(TOKEN_CA.to_vec()),
                    ..Cluster::default()
                },
            }],
            contexts: vec![NamedContext {
                name: "token-bootstrap-client@somecluster".into(),
                context: Context {
                    cluster: "somecluster".into(),
                    user: "token-bootstrap-client".into(),
                    namespace: None,
                },
            }],
            users: vec![],
            current_context: "token-bootstrap-client@somecluster".into(),
            preferences: false,
        };
        let out = render(&cfg);
        assert_eq!(out.len(), 1686);
        assert_eq!(out, EXPECTED);
        // and parse → render is the identity on it
        assert_eq!(Kubeconfig::parse(EXPECTED).unwrap().render(), EXPECTED);
    }

    #[test]
    fn emits_dry_run_cluster_info_byte_for_byte() {
        let parsed = Kubeconfig::parse(DRYRUN).unwrap();
        assert!(parsed.preferences);
        let c = parsed.cluster().unwrap();
        assert_eq!(c.name, "");
        assert_eq!(c.cluster.server, "https://192.168.0.101:6443");
        let ca = c.cluster.certificate_authority_data.clone().unwrap();
        assert!(ca.starts_with(b"-----BEGIN CERTIFICATE-----"));
        let built = Kubeconfig {
            clusters: vec![NamedCluster {
                name: String::new(),
                cluster: Cluster {
                    server: "https://192.168.0.101:6443".into(),
                    certificate_authority_data: Some(ca),
                    ..Cluster::default()
                },
            }],
            preferences: true,
            ..Kubeconfig::default()
        };
        assert_eq!(render(&built).len(), 1671);
        assert_eq!(render(&built), DRYRUN);
        assert_eq!(parsed.render(), DRYRUN);
    }

    #[test]
    fn emits_kubeadm_bootstrap_kubelet_conf_byte_for_byte() {
        let parsed = Kubeconfig::parse(BOOTSTRAP_CONF).unwrap();
        let c = parsed.cluster().unwrap();
        let ca = c.cluster.certificate_authority_data.clone().unwrap();
        let built = Kubeconfig::with_token(
            "https://127.0.0.1:6443",
            "kubernetes",
            &ca,
            "abcdef.0123456789abcdef",
        );
        assert_eq!(render(&built), BOOTSTRAP_CONF);
        assert_eq!(parsed, built);
        let user = parsed.current_user().unwrap();
        assert_eq!(user.name, "tls-bootstrap-token-user");
        assert!(user.user.has_credentials());
        assert!(!format!("{parsed:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn emits_kubelet_conf_shape() {
        let cfg = Kubeconfig::kubelet(
            "https://192.168.0.101:6443",
            b"PEM",
            "/var/lib/kubelet/pki/kubelet-client-current.pem",
        );
        let want = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: UEVN
    server: https://192.168.0.101:6443
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
preferences: {}
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
";
        assert_eq!(render(&cfg), want);
        assert_eq!(Kubeconfig::parse(want).unwrap(), cfg);
    }

    #[test]
    fn emits_empty_shapes() {
        let cfg = Kubeconfig {
            users: vec![NamedUser {
                name: "u".into(),
                user: AuthInfo::default(),
            }],
            ..Kubeconfig::default()
        };
        assert_eq!(
            render(&cfg),
            "apiVersion: v1\nclusters: null\ncontexts: null\ncurrent-context: \"\"\nkind: Config\nusers:\n- name: u\n  user: {}\n"
        );
    }

    #[test]
    fn entries_are_sorted_by_name() {
        let mk = |n: &str| NamedCluster {
            name: n.into(),
            cluster: Cluster {
                server: format!("https://{n}"),
                ..Cluster::default()
            },
        };
        let cfg = Kubeconfig {
            clusters: vec![mk("b"), mk("a")],
            ..Kubeconfig::default()
        };
        let out = render(&cfg);
        assert!(out.find("name: a").unwrap() < out.find("name: b").unwrap());
    }

    #[test]
    fn scalars_quote_like_go_yaml_v2() {
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("kubernetes"), "kubernetes");
        assert_eq!(scalar("https://10.0.0.1:6443"), "https://10.0.0.1:6443");
        assert_eq!(scalar("10.0.0.1"), "10.0.0.1");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("yes"), "\"yes\"");
        assert_eq!(scalar("null"), "\"null\"");
        assert_eq!(scalar("6443"), "\"6443\"");
        assert_eq!(scalar("0x1f"), "\"0x1f\"");
        assert_eq!(scalar("1.5"), "\"1.5\"");
        assert_eq!(scalar("1e3"), "\"1e3\"");
        assert_eq!(scalar("12:30"), "\"12:30\"");
        assert_eq!(scalar("2024-01-02"), "\"2024-01-02\"");
        assert_eq!(scalar("@home"), "'@home'");
        assert_eq!(scalar("a: b"), "'a: b'");
        assert_eq!(scalar("a #b"), "'a #b'");
        assert_eq!(scalar("- x"), "'- x'");
        assert_eq!(scalar("-x"), "-x");
        assert_eq!(scalar("it's"), "it's");
        assert_eq!(scalar("'q"), "'''q'");
        assert_eq!(scalar(" lead"), "' lead'");
        assert_eq!(scalar("a\nb"), "\"a\\nb\"");
        assert_eq!(scalar("a@b"), "a@b");
        assert_eq!(
            scalar("/var/lib/kubelet/pki/x.pem"),
            "/var/lib/kubelet/pki/x.pem"
        );
    }

    #[test]
    fn quoted_scalars_read_back() {
        for s in [
            "",
            "true",
            "6443",
            "@home",
            "a: b",
            "'q",
            " lead",
            "a\nb\"c\\",
        ] {
            let cfg = Kubeconfig {
                current_context: s.into(),
                ..Kubeconfig::default()
            };
            assert_eq!(
                Kubeconfig::parse(&render(&cfg)).unwrap().current_context,
                s,
                "{s:?}"
            );
        }
    }

    #[test]
    fn cluster_selection_follows_kubeadm() {
        // The unnamed cluster wins over the current context's.
        let text = "clusters:\n- name: a\n  cluster: {server: https://a}\n- name: \"\"\n  cluster: {server: https://unnamed}\ncontexts:\n- name: c\n  context: {cluster: a, user: u}\ncurrent-context: c\n";
        let cfg = Kubeconfig::parse(text).unwrap();
        assert_eq!(cfg.cluster().unwrap().cluster.server, "https://unnamed");
        let text = "clusters:\n- name: a\n  cluster: {server: https://a}\n- name: b\n  cluster: {server: https://b}\ncontexts:\n- name: c\n  context: {cluster: b, user: u}\ncurrent-context: c\n";
        assert_eq!(
            Kubeconfig::parse(text)
                .unwrap()
                .cluster()
                .unwrap()
                .cluster
                .server,
            "https://b"
        );
        let text = "clusters:\n- name: a\n  cluster: {server: https://a}\ncurrent-context: nope\n";
        assert_eq!(
            Kubeconfig::parse(text).unwrap().cluster().unwrap_err(),
            KubeconfigError::NoCluster {
                context: "nope".into()
            }
        );
    }

    #[test]
    fn parses_every_field_kubejoin_reads() {
        let text = "apiVersion: v1
kind: Config
clusters:
- name: k
  cluster:
    server: https://x:6443
    certificate-authority: /etc/ca.crt
    insecure-skip-tls-verify: true
    tls-server-name: api.example
    extensions: []
contexts:
- name: ctx
  context: {cluster: k, user: me, namespace: ns}
current-context: ctx
users:
- name: me
  user:
    token: abcdef.0123456789abcdef
    client-certificate: /c.pem
    client-certificate-data: Y2VydA==
    client-key: /k.pem
    client-key-data: azN5LW1hdGVyaWFs
    username: bob
    password: hunter2
    exec: {command: foo}
";
        let cfg = Kubeconfig::parse(text).unwrap();
        let c = &cfg.cluster().unwrap().cluster;
        assert_eq!(c.certificate_authority.as_deref(), Some("/etc/ca.crt"));
        assert!(c.insecure_skip_tls_verify);
        assert_eq!(c.tls_server_name.as_deref(), Some("api.example"));
        let u = &cfg.current_user().unwrap().user;
        assert_eq!(u.client_certificate_data.as_deref(), Some(&b"cert"[..]));
        assert_eq!(u.client_key_data.as_deref(), Some(&b"k3y-material"[..]));
        assert_eq!(u.username.as_deref(), Some("bob"));
        let dbg = format!("{cfg:?}");
        for secret in ["0123456789abcdef", "hunter2", "k3y-material", "azN5"] {
            assert!(!dbg.contains(secret), "{secret} in {dbg}");
        }
        // re-rendered, every field survives
        assert_eq!(Kubeconfig::parse(&cfg.render()).unwrap(), cfg);
    }

    #[test]
    fn credentials_rules() {
        let s = |v: &str| Some(v.to_string());
        assert!(!AuthInfo::default().has_credentials());
        assert!(AuthInfo {
            token: s("t"),
            ..AuthInfo::default()
        }
        .has_credentials());
        assert!(!AuthInfo {
            username: s("u"),
            ..AuthInfo::default()
        }
        .has_credentials());
        assert!(AuthInfo {
            username: s("u"),
            password: s("p"),
            ..AuthInfo::default()
        }
        .has_credentials());
        assert!(!AuthInfo {
            client_certificate: s("c"),
            ..AuthInfo::default()
        }
        .has_credentials());
        assert!(AuthInfo {
            client_certificate: s("c"),
            client_key_data: Some(b"k".to_vec()),
            ..AuthInfo::default()
        }
        .has_credentials());
    }

    #[test]
    fn parse_errors() {
        assert!(matches!(
            Kubeconfig::parse("foo: [").unwrap_err(),
            KubeconfigError::Yaml(_)
        ));
        assert!(matches!(
            Kubeconfig::parse("clusters: 3").unwrap_err(),
            KubeconfigError::Yaml(_)
        ));
        assert_eq!(Kubeconfig::parse("").unwrap(), Kubeconfig::default());
        assert_eq!(Kubeconfig::parse("~\n").unwrap(), Kubeconfig::default());
        // kubeadm test data: "foo" is a YAML string, not a config
        assert!(Kubeconfig::parse("foo").is_err());
        let e = Kubeconfig::parse(
            "clusters:\n- name: a\n  cluster: {certificate-authority-data: '!!'}\n",
        )
        .unwrap_err();
        assert_eq!(
            e,
            KubeconfigError::Base64 {
                entry: "cluster",
                name: "a".into(),
                field: "certificate-authority-data"
            }
        );
        let e = Kubeconfig::parse("users:\n- name: a\n- name: a\n").unwrap_err();
        assert_eq!(
            e,
            KubeconfigError::Duplicate {
                entry: "user",
                name: "a".into()
            }
        );
        let e = Kubeconfig::parse("users:\n- name: a\n  user: {token: x, client-key-data: '%%'}\n")
            .unwrap_err();
        assert!(!e.to_string().contains("%%"));
    }
}
