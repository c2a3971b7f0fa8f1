//! The control-plane part of the command line: `serve` flags that make the cluster joinable by
//! control planes, what `serve` prints and leaves in `--state-dir` for them, and
//! `upload-certs`, which re-uploads `kubeadm-certs` through the API exactly as
//! `kubeadm init phase upload-certs --upload-certs` does from a control-plane node (token
//! Secret, GET it for its UID, the encrypted Secret owned by it, Role and RoleBinding).

use super::{duration, write_file, Usage};
use crate::client::Client;
use crate::controlplane::{ControlPlane, EtcdRefusal, EtcdTopology, ExternalEtcd};
use crate::copycerts::{self, CertificateKey};
use crate::etcd::EtcdError;
use crate::kubeconfig::parse_admin_kubeconfig;
use crate::{Error, Handle};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

pub(super) const SERVE_FLAGS: &str = "\
CONTROL PLANE (serve; any of these makes the cluster joinable by control planes):
    --upload-certs             upload kubeadm-certs with a fresh certificate key (printed)
    --certificate-key HEX      upload kubeadm-certs with this key (64 hex digits)
    --control-plane            a control plane without uploaded certificates (kubeadm-certs: 403)
    --etcd stacked|external    etcd topology (default stacked: a fake etcd v3 gateway over mTLS)
    --external-etcd-endpoint URL  etcd.external.endpoints (repeatable; implies --etcd external)
    --external-etcd-tls        external etcd with CA and client files (default: plain http, empty entries)
    --control-plane-endpoint HOST:PORT  ClusterConfiguration.controlPlaneEndpoint
    --pod-subnet CIDR|none     networking.podSubnet (default 10.244.0.0/16)
    --service-subnet CIDR      networking.serviceSubnet (default 10.96.0.0/12)
    --dns-domain DOMAIN        networking.dnsDomain (default cluster.local)
    --apiserver-cert-san NAME  apiServer.certSANs (repeatable)
    --apiserver-extra-arg K=V  apiServer.extraArgs (repeatable; also --controller-manager-extra-arg,
                               --scheduler-extra-arg, --etcd-extra-arg)
    --feature-gate NAME=BOOL   ClusterConfiguration.featureGates (repeatable)
    --first-node NAME          the node kubeadm init ran on (default cp-1)
    --certs-ttl DURATION       lifetime of the token owning kubeadm-certs (default 2h)
    --etcd-refuse-add REASON[:COUNT]  refuse member add (unhealthy, too-many-learners,
                               peer-url-exists, not-enough-started, member-exists), COUNT times or always
    --etcd-promote-not-ready N refuse the first N promotes (learner not in sync with the leader)
    --etcd-member-start DURATION|never  an added member's etcd starts this long after the add (default 0s)
    --register-nodes-after DURATION  the kubelet of a node whose client certificate was issued
                               registers its Node this long after
";

/// The control-plane flags seen so far.
#[derive(Debug, Default)]
pub(super) struct Flags {
    any: bool,
    upload: bool,
    cp: ControlPlane,
    external: Option<ExternalEtcd>,
}

fn pair(flag: &str, v: &str) -> Result<(String, String), Usage> {
    v.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| Usage(format!("{flag} {v:?}: KEY=VALUE")))
}

impl Flags {
    /// Takes `flag` (and its value from `rest`) if it is a control-plane flag.
    pub(super) fn take(
        &mut self,
        flag: &str,
        rest: &mut std::vec::IntoIter<String>,
    ) -> Result<bool, Usage> {
        let mut value = || {
            rest.next()
                .ok_or_else(|| Usage(format!("{flag} needs a value")))
        };
        match flag {
            "--upload-certs" => self.upload = true,
            "--certificate-key" => {
                let v = value()?;
                CertificateKey::parse(&v)
                    .map_err(|why| Usage(format!("--certificate-key: {why}")))?;
                self.cp.certificate_key = Some(v);
                self.upload = true;
            }
            "--control-plane" => {}
            "--etcd" => match value()?.as_str() {
                "stacked" => self.external = None,
                "external" => {
                    self.external
                        .get_or_insert_with(|| ExternalEtcd::plain(&["http://127.0.0.1:2379"]));
                }
                other => return Err(Usage(format!("--etcd {other:?}: stacked or external"))),
            },
            "--external-etcd-endpoint" => {
                let v = value()?;
                let x = self
                    .external
                    .get_or_insert_with(|| ExternalEtcd::plain(&[]));
                if x.endpoints == ["http://127.0.0.1:2379"] {
                    x.endpoints.clear();
                }
                x.endpoints.push(v);
            }
            "--external-etcd-tls" => {
                let x = self
                    .external
                    .get_or_insert_with(|| ExternalEtcd::plain(&["http://127.0.0.1:2379"]));
                let tls = ExternalEtcd::tls(&[]);
                x.tls = true;
                x.ca_file = tls.ca_file;
                x.cert_file = tls.cert_file;
                x.key_file = tls.key_file;
            }
            "--control-plane-endpoint" => self.cp.cluster.control_plane_endpoint = Some(value()?),
            "--pod-subnet" => {
                let v = value()?;
                self.cp.cluster.pod_subnet = (v != "none").then_some(v);
            }
            "--service-subnet" => self.cp.cluster.service_subnet = value()?,
            "--dns-domain" => self.cp.cluster.dns_domain = value()?,
            "--apiserver-cert-san" => self.cp.cluster.cert_sans.push(value()?),
            "--apiserver-extra-arg" => {
                let v = value()?;
                self.cp.cluster.api_server_extra_args.push(pair(flag, &v)?);
            }
            "--controller-manager-extra-arg" => {
                let v = value()?;
                self.cp
                    .cluster
                    .controller_manager_extra_args
                    .push(pair(flag, &v)?);
            }
            "--scheduler-extra-arg" => {
                let v = value()?;
                self.cp.cluster.scheduler_extra_args.push(pair(flag, &v)?);
            }
            "--etcd-extra-arg" => {
                let v = value()?;
                let p = pair(flag, &v)?;
                match &mut self.cp.etcd {
                    EtcdTopology::Stacked(l) => l.extra_args.push(p),
                    EtcdTopology::External(_) => {
                        return Err(Usage("--etcd-extra-arg is for stacked etcd".into()))
                    }
                }
            }
            "--feature-gate" => {
                let v = value()?;
                let (name, on) = pair(flag, &v)?;
                let on = on
                    .parse::<bool>()
                    .map_err(|_| Usage(format!("--feature-gate {v:?}: NAME=true|false")))?;
                self.cp.cluster.feature_gates.push((name, on));
            }
            "--first-node" => self.cp.first_node = value()?,
            "--certs-ttl" => self.cp.certs_ttl = duration(flag, &value()?)?,
            "--etcd-refuse-add" => {
                let v = value()?;
                let (name, count) = match v.split_once(':') {
                    Some((n, c)) => (
                        n,
                        Some(c.parse::<u32>().map_err(|_| {
                            Usage(format!("--etcd-refuse-add {v:?}: REASON[:COUNT]"))
                        })?),
                    ),
                    None => (v.as_str(), None),
                };
                let error = EtcdError::by_name(name).ok_or_else(|| {
                    Usage(format!(
                        "--etcd-refuse-add {name:?}: unhealthy, too-many-learners, peer-url-exists, not-enough-started or member-exists"
                    ))
                })?;
                self.cp.etcd_options.refuse_add = Some(EtcdRefusal { error, count });
            }
            "--etcd-promote-not-ready" => {
                let v = value()?;
                self.cp.etcd_options.promote_not_ready = v
                    .parse()
                    .map_err(|_| Usage(format!("--etcd-promote-not-ready {v:?}: a number")))?;
            }
            "--etcd-member-start" => {
                let v = value()?;
                self.cp.etcd_options.member_start = match v.as_str() {
                    "never" => None,
                    d => Some(duration(flag, d)?),
                };
            }
            "--register-nodes-after" => {
                self.cp.register_nodes_after = Some(duration(flag, &value()?)?)
            }
            _ => return Ok(false),
        }
        self.any = true;
        Ok(true)
    }

    /// The `Config::control_plane` these flags ask for.
    pub(super) fn finish(self) -> Result<Option<ControlPlane>, Usage> {
        if !self.any {
            return Ok(None);
        }
        let mut cp = self.cp;
        if let Some(x) = self.external {
            if matches!(&cp.etcd, EtcdTopology::Stacked(l) if !l.extra_args.is_empty()) {
                return Err(Usage("--etcd-extra-arg is for stacked etcd".into()));
            }
            if !cp
                .etcd_options
                .eq(&crate::controlplane::EtcdOptions::default())
            {
                return Err(Usage("--etcd-* faults are for stacked etcd".into()));
            }
            cp.etcd = EtcdTopology::External(x);
        }
        if self.upload && cp.certificate_key.is_none() {
            cp.certificate_key = Some(CertificateKey::generate().to_hex());
        }
        Ok(Some(cp))
    }
}

/// What `serve` leaves in `--state-dir` for control planes: the shared PKI under `pki/` as
/// on the first node (keys 0600), `certificate-key` (0600) and `etcd-endpoint`.
pub(super) fn write_state(handle: &Handle, dir: &Path) -> Result<(), Error> {
    let files = handle.shared_files();
    if files.is_empty() {
        return Ok(());
    }
    let pki = dir.join("pki");
    for (name, content) in files {
        if content.is_empty() {
            continue;
        }
        let path = pki.join(&name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| Error::Io {
                action: "creating",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let secret = name.ends_with(".key");
        write_private(&path, &content, secret)?;
    }
    if let Some(key) = handle.certificate_key() {
        write_private(
            &dir.join("certificate-key"),
            format!("{key}\n").as_bytes(),
            true,
        )?;
    }
    if let Some(url) = handle.etcd_url() {
        write_file(dir, "etcd-endpoint", &format!("{url}\n"))?;
    }
    Ok(())
}

fn write_private(path: &Path, content: &[u8], secret: bool) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mode = if secret { 0o600 } else { 0o644 };
    let io = |source| Error::Io {
        action: "writing",
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(content).map_err(io)
}

/// The lines `serve` prints for control planes, like `kubeadm init --upload-certs`.
pub(super) fn print(handle: &Handle, out: &mut impl std::io::Write) {
    if let Some(url) = handle.etcd_url() {
        let _ = writeln!(out, "etcd (v3 JSON gateway, mTLS with the etcd CA): {url}");
    }
    match handle.control_plane_join_command() {
        Some(line) => {
            let ttl = handle
                .kubeadm_certs_expiry()
                .and_then(|e| e.duration_since(std::time::SystemTime::now()).ok())
                .map_or_else(|| "soon".to_string(), |d| format!("in {}", human(d)));
            let _ = writeln!(
                out,
                "join a control plane with:\n  {line}\nThe certificate key gives access to cluster sensitive data, keep it secret!\nAs a safeguard, uploaded-certs will be deleted {ttl}; `kubejoin-testcp upload-certs --state-dir DIR` uploads them again."
            );
        }
        None if !handle.shared_files().is_empty() => {
            let _ = writeln!(
                out,
                "control plane: certificates not uploaded (kubejoin-testcp upload-certs --state-dir DIR uploads them)"
            );
        }
        None => {}
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs() + u64::from(d.subsec_millis() >= 500);
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `upload-certs`: as `kubeadm init phase upload-certs --upload-certs` with admin.conf and the
/// PKI under `DIR/pki`.
pub(super) fn upload_certs(
    state_dir: &Path,
    key: Option<String>,
    ttl: Duration,
) -> Result<(), Error> {
    let path = state_dir.join("admin.conf");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    let creds = parse_admin_kubeconfig(&text)
        .map_err(|e| Error::Client(format!("reading {}: {e}", path.display())))?;
    let key = match key {
        Some(k) => CertificateKey::parse(&k)
            .map_err(|why| Error::Config(format!("certificate key: {why}")))?,
        None => CertificateKey::generate(),
    };
    // certsToTransfer: stacked when the etcd CA is there, else the external files.
    let pki = state_dir.join("pki");
    let mut names: Vec<&str> = vec![
        "ca.crt",
        "ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "sa.key",
        "sa.pub",
    ];
    if pki.join("etcd").is_dir() {
        names.extend(["etcd/ca.crt", "etcd/ca.key"]);
    } else {
        names.extend([
            "external-etcd-ca.crt",
            "external-etcd.crt",
            "external-etcd.key",
        ]);
    }
    let mut entries = Vec::new();
    for name in names {
        let file = pki.join(name);
        let content = match std::fs::read(&file) {
            Ok(c) => c,
            // A file that does not exist travels as an empty entry, as kubeadm uploads it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => {
                return Err(Error::Io {
                    action: "reading",
                    path: file,
                    source,
                })
            }
        };
        entries.push((name.to_string(), content));
    }
    let sealed = copycerts::seal_entries(&key, &copycerts::entries(&entries))
        .ok_or_else(|| Error::ControlPlane("encrypting the certificates failed".into()))?;
    let client = Client::new(&creds)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    println!(
        "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace"
    );
    runtime.block_on(async {
        const SECRETS: &str = "/api/v1/namespaces/kube-system/secrets";
        let id = random_part(6);
        let token_name = format!("bootstrap-token-{id}");
        let expiration = crate::util::rfc3339(std::time::SystemTime::now() + ttl);
        let b64 = |s: &str| STANDARD.encode(s.as_bytes());
        let token = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": token_name, "namespace": "kube-system"},
            "type": crate::kubesystem::TOKEN_TYPE,
            "data": {
                "description": b64(copycerts::PROXY_TOKEN_DESCRIPTION),
                "expiration": b64(&expiration),
                "token-id": b64(&id),
                "token-secret": b64(&random_part(16)),
            },
        });
        send(&client, "POST", SECRETS, &token).await?;
        let got = send(
            &client,
            "GET",
            &format!("{SECRETS}/{token_name}"),
            &json!(null),
        )
        .await?;
        let uid = got["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let data: serde_json::Map<String, serde_json::Value> = sealed
            .iter()
            .map(|(k, v)| (k.clone(), json!(STANDARD.encode(v))))
            .collect();
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": copycerts::SECRET_NAME,
                "namespace": "kube-system",
                "ownerReferences": [{
                    "apiVersion": "v1", "kind": "Secret", "name": token_name, "uid": uid,
                    "controller": true, "blockOwnerDeletion": true,
                }],
            },
            "data": data,
        });
        create_or_update(&client, SECRETS, copycerts::SECRET_NAME, &secret).await?;
        let (role, binding) = crate::kubesystem::kubeadm_certs_rbac();
        let rbac = "/apis/rbac.authorization.k8s.io/v1/namespaces/kube-system";
        create_or_update(
            &client,
            &format!("{rbac}/roles"),
            copycerts::ROLE_NAME,
            &role,
        )
        .await?;
        create_or_update(
            &client,
            &format!("{rbac}/rolebindings"),
            copycerts::ROLE_NAME,
            &binding,
        )
        .await?;
        Ok::<(), Error>(())
    })?;
    println!("[upload-certs] Using certificate key:\n{}", key.to_hex());
    Ok(())
}

fn random_part(n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = String::new();
    while out.len() < n {
        let mut b = [0u8; 16];
        crate::util::random_bytes(&mut b);
        for x in b {
            if x < 252 && out.len() < n {
                out.push(char::from(ALPHABET[usize::from(x) % 36]));
            }
        }
    }
    out
}

async fn send(
    client: &Client,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, Error> {
    let body = (!body.is_null()).then(|| body.to_string().into_bytes());
    let r = client.request(method, path, body).await?;
    super::check(r, method, path)
}

/// kubeadm's `CreateOrUpdate*`: create, and on AlreadyExists replace.
async fn create_or_update(
    client: &Client,
    collection: &str,
    name: &str,
    body: &serde_json::Value,
) -> Result<(), Error> {
    let r = client
        .request("POST", collection, Some(body.to_string().into_bytes()))
        .await?;
    if r.status == 409 {
        send(client, "PUT", &format!("{collection}/{name}"), body).await?;
        return Ok(());
    }
    super::check(r, "POST", collection).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(args: &[&str]) -> Result<Option<ControlPlane>, Usage> {
        let mut f = Flags::default();
        let mut rest: std::vec::IntoIter<String> = args
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .into_iter();
        while let Some(flag) = rest.next() {
            if !f.take(&flag, &mut rest)? {
                return Err(Usage(format!("unknown {flag}")));
            }
        }
        f.finish()
    }

    #[test]
    fn control_plane_flags() {
        assert!(flags(&[]).unwrap().is_none());
        let cp = flags(&["--control-plane"]).unwrap().unwrap();
        assert!(cp.certificate_key.is_none());
        let cp = flags(&["--upload-certs"]).unwrap().unwrap();
        assert_eq!(cp.certificate_key.unwrap().len(), 64);
        let key = "ab".repeat(32);
        let cp = flags(&[
            "--certificate-key",
            &key,
            "--control-plane-endpoint",
            "cp.example:6443",
            "--pod-subnet",
            "none",
            "--apiserver-extra-arg",
            "a=b=c",
            "--etcd-extra-arg",
            "x=y",
            "--etcd-refuse-add",
            "too-many-learners:2",
            "--etcd-promote-not-ready",
            "3",
            "--etcd-member-start",
            "never",
            "--register-nodes-after",
            "1s",
            "--certs-ttl",
            "5m",
            "--feature-gate",
            "EtcdLearnerMode=false",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(cp.certificate_key.as_deref(), Some(key.as_str()));
        assert_eq!(
            cp.cluster.control_plane_endpoint.as_deref(),
            Some("cp.example:6443")
        );
        assert!(cp.cluster.pod_subnet.is_none());
        assert_eq!(
            cp.cluster.api_server_extra_args,
            [("a".to_string(), "b=c".to_string())]
        );
        assert_eq!(
            cp.etcd_options.refuse_add,
            Some(EtcdRefusal {
                error: EtcdError::TooManyLearners,
                count: Some(2)
            })
        );
        assert_eq!(cp.etcd_options.promote_not_ready, 3);
        assert_eq!(cp.etcd_options.member_start, None);
        assert_eq!(cp.register_nodes_after, Some(Duration::from_secs(1)));
        assert_eq!(cp.certs_ttl, Duration::from_secs(300));
        assert_eq!(
            cp.cluster.feature_gates,
            [("EtcdLearnerMode".to_string(), false)]
        );
        let cp = flags(&[
            "--external-etcd-endpoint",
            "https://e:2379",
            "--external-etcd-tls",
        ])
        .unwrap()
        .unwrap();
        let EtcdTopology::External(x) = cp.etcd else {
            panic!("external")
        };
        assert_eq!(x.endpoints, ["https://e:2379"]);
        assert!(x.tls && !x.key_file.is_empty());
        for bad in [
            &["--certificate-key", "abc"][..],
            &["--etcd", "remote"],
            &["--etcd-refuse-add", "sometimes"],
            &["--apiserver-extra-arg", "novalue"],
            &["--etcd", "external", "--etcd-promote-not-ready", "1"],
            &["--etcd-extra-arg", "a=b", "--etcd", "external"],
        ] {
            assert!(flags(bad).is_err(), "{bad:?}");
        }
    }
}
