//! download-certs: `kube-system/kubeadm-certs` → the files every control plane shares.
//!
//! Upstream (read): `cmd/kubeadm/app/phases/copycerts/copycerts.go`.
//! - Entry names are the file names relative to `certificatesDir` with `/` replaced by `-`
//!   (`certOrKeyNameToSecretName`): `ca.crt`, `ca.key`, `front-proxy-ca.crt`,
//!   `front-proxy-ca.key`, `sa.key`, `sa.pub`, and for stacked etcd `etcd-ca.crt`/`etcd-ca.key`
//!   (files `etcd/ca.crt`, `etcd/ca.key`); for external etcd `external-etcd-ca.crt`,
//!   `external-etcd.crt`, `external-etcd.key`, written to the paths of the ClusterConfiguration's
//!   `etcd.external.caFile`/`certFile`/`keyFile` (`certsToTransfer`).
//! - `getDataFromSecret` decrypts every non-empty entry; any failure fails the whole download
//!   (no partial result). Empty entries (a file missing at upload, e.g. plain-http external
//!   etcd) are kept empty and then not written (`DownloadCerts`: "Not saving ... since it is
//!   empty"). An expected entry absent from the Secret is an error naming it.
//! - Mode: a value that parses as a private key PEM is written by `keyutil.WriteKey` (0600),
//!   one that parses as public keys (a `PUBLIC KEY` or a certificate) by `certutil.WriteCert`
//!   (0644); anything else is "unknown data found in Secret entry" (`writeCertOrKey`).
//! - The Secret is owned (ownerReference, controller) by a bootstrap token Secret created with
//!   `DefaultCertTokenDuration` = 2 h, so the garbage collector deletes it when the token
//!   cleaner removes the expired token: an expired Secret is a 404 (`getSecret` says "This
//!   Secret might have expired").
//! - RBAC (`createRBAC`): Role `kubeadm:kubeadm-certs` (get on secrets, resourceNames
//!   `kubeadm-certs`) bound to the group `system:bootstrappers:kubeadm:default-node-token`.

use super::certkey::{self, CertificateKey, DecryptError};
use super::cluster::Etcd;
use super::{join_path, NodeFile};
use base64::Engine as _;
use std::collections::BTreeMap;

/// `kubeadmconstants.KubeadmCertsSecret`.
pub const SECRET_NAME: &str = "kubeadm-certs";
/// `kubeadmconstants.KubeadmCertsClusterRoleName` (a Role despite the constant's name).
pub const ROLE_NAME: &str = "kubeadm:kubeadm-certs";
/// The API path of the Secret.
pub const SECRET_PATH: &str = "/api/v1/namespaces/kube-system/secrets/kubeadm-certs";
/// How long the Secret lives (`constants.DefaultCertTokenDuration`).
pub const SECRET_TTL_SECONDS: u64 = 2 * 3600;

/// What a user can do about every failure of this phase.
pub const HINT: &str =
    "run `kubeadm init phase upload-certs --upload-certs` on an existing control \
plane: it uploads the certificates again and prints a new certificate key to join with \
(the Secret is deleted 2 hours after each upload)";

/// One expected entry: its Secret name and where it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Name in the Secret (`etcd-ca.crt`).
    pub entry: String,
    /// Node path (`/etc/kubernetes/pki/etcd/ca.crt`), empty when the ClusterConfiguration names
    /// no path for an external-etcd file.
    pub path: String,
}

/// kubeadm's `certsToTransfer` for this cluster, in a fixed order.
pub fn transfers(certificates_dir: &str, etcd: &Etcd) -> Vec<Transfer> {
    let mut names = vec![
        "ca.crt",
        "ca.key",
        "front-proxy-ca.crt",
        "front-proxy-ca.key",
        "sa.key",
        "sa.pub",
    ];
    let mut out: Vec<Transfer> = Vec::new();
    let mut push = |file: &str, path: String| {
        out.push(Transfer {
            entry: file.replace('/', "-"),
            path,
        })
    };
    match etcd {
        Etcd::Local(_) => names.extend(["etcd/ca.crt", "etcd/ca.key"]),
        Etcd::External(x) => {
            for n in &names {
                push(n, join_path(certificates_dir, n));
            }
            push("external-etcd-ca.crt", x.ca_file.clone());
            push("external-etcd.crt", x.cert_file.clone());
            push("external-etcd.key", x.key_file.clone());
            return out;
        }
    }
    for n in &names {
        push(n, join_path(certificates_dir, n));
    }
    out
}

/// Why the shared certificates could not be downloaded. Never carries the key or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DownloadError {
    #[error(
        "Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace: it is deleted \
         with its bootstrap token 2 hours after `kubeadm init phase upload-certs` uploaded it \
         (it has expired), or it was never uploaded"
    )]
    NotFound,
    #[error(
        "the bootstrap token may not read Secret kube-system/kubeadm-certs (403 Forbidden): the \
         Role \"kubeadm:kubeadm-certs\" or its binding to \
         system:bootstrappers:kubeadm:default-node-token is missing"
    )]
    Forbidden,
    #[error(
        "the certificate key does not decrypt kubeadm-certs: wrong key, or the Secret was \
         re-uploaded with another key (entry {entry:?}: {cause})"
    )]
    WrongKey { entry: String, cause: DecryptError },
    #[error("Secret kube-system/kubeadm-certs is malformed: {0}")]
    Malformed(String),
    #[error(
        "Secret kube-system/kubeadm-certs does not include the required entry {entry:?} (for {path})"
    )]
    MissingEntry { entry: String, path: String },
    #[error(
        "entry {entry:?} of Secret kube-system/kubeadm-certs is neither a private key nor \
         certificates/public keys in PEM"
    )]
    UnknownData { entry: String },
    #[error(
        "entry {entry:?} of Secret kube-system/kubeadm-certs holds a file, but the cluster's \
         ClusterConfiguration names no path for it under etcd.external"
    )]
    NoPath { entry: String },
}

impl DownloadError {
    /// What the user can do, when there is something.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Self::NoPath { .. } => None,
            _ => Some(HINT),
        }
    }
}

/// The decoded `data` of a Secret: entry name → raw (still encrypted) bytes.
pub fn secret_data(secret: &serde_json::Value) -> Result<BTreeMap<String, Vec<u8>>, DownloadError> {
    if secret.get("kind").and_then(|k| k.as_str()) != Some("Secret") {
        return Err(DownloadError::Malformed(
            "the answer is not a Secret".into(),
        ));
    }
    let mut out = BTreeMap::new();
    let data = match secret.get("data") {
        None | Some(serde_json::Value::Null) => return Ok(out),
        Some(serde_json::Value::Object(m)) => m,
        Some(_) => return Err(DownloadError::Malformed("data is not an object".into())),
    };
    for (name, v) in data {
        let s = v
            .as_str()
            .ok_or_else(|| DownloadError::Malformed(format!("entry {name:?} is not a string")))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|_| DownloadError::Malformed(format!("entry {name:?} is not base64")))?;
        out.insert(name.clone(), bytes);
    }
    Ok(out)
}

/// The outcome of a download: the files to write, and the entries kubeadm would skip because
/// they are empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    pub files: Vec<NodeFile>,
    pub skipped_empty: Vec<String>,
}

/// Decrypts the Secret's `data` with `key` and maps it to files as kubeadm's `DownloadCerts`.
pub fn files(
    data: &BTreeMap<String, Vec<u8>>,
    key: &CertificateKey,
    certificates_dir: &str,
    etcd: &Etcd,
) -> Result<Downloaded, DownloadError> {
    // Decrypt everything first: one bad entry fails the whole download, as upstream.
    let mut plain: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (name, value) in data {
        if value.is_empty() {
            plain.insert(name, Vec::new());
            continue;
        }
        let p = certkey::decrypt(key, value).map_err(|cause| DownloadError::WrongKey {
            entry: name.clone(),
            cause,
        })?;
        plain.insert(name, p);
    }
    let mut out = Downloaded {
        files: Vec::new(),
        skipped_empty: Vec::new(),
    };
    for t in transfers(certificates_dir, etcd) {
        let Some(content) = plain.get(t.entry.as_str()) else {
            return Err(DownloadError::MissingEntry {
                entry: t.entry,
                path: t.path,
            });
        };
        if content.is_empty() {
            out.skipped_empty.push(t.entry);
            continue;
        }
        if t.path.is_empty() {
            return Err(DownloadError::NoPath { entry: t.entry });
        }
        match classify(content) {
            Some(Kind::PrivateKey) => out.files.push(NodeFile::secret(t.path, content.clone())),
            Some(Kind::Public) => out
                .files
                .push(NodeFile::new(t.path, 0o644, content.clone())),
            None => return Err(DownloadError::UnknownData { entry: t.entry }),
        }
    }
    Ok(out)
}

enum Kind {
    PrivateKey,
    Public,
}

/// client-go's `keyutil.ParsePrivateKeyPEM` first (the first private-key block decides), then
/// `ParsePublicKeysPEM` (public keys or certificates).
fn classify(pem: &[u8]) -> Option<Kind> {
    let blocks = crate::pki::pem::pem_blocks(pem);
    if blocks
        .iter()
        .any(|(label, _)| matches!(*label, "RSA PRIVATE KEY" | "PRIVATE KEY" | "EC PRIVATE KEY"))
    {
        return Some(Kind::PrivateKey);
    }
    if blocks
        .iter()
        .any(|(label, _)| matches!(*label, "PUBLIC KEY" | "CERTIFICATE"))
    {
        return Some(Kind::Public);
    }
    None
}

/// Encrypts files into a Secret's `data` as kubeadm's `UploadCerts` (used by the test control
/// plane and tests): `entries` are (entry name, plaintext); an empty plaintext stays empty.
pub fn encrypt_entries(
    key: &CertificateKey,
    entries: &[(String, Vec<u8>)],
) -> Result<BTreeMap<String, String>, ring::error::Unspecified> {
    let mut out = BTreeMap::new();
    for (name, plain) in entries {
        let sealed = if plain.is_empty() {
            Vec::new()
        } else {
            certkey::encrypt(key, plain)?
        };
        out.insert(
            name.clone(),
            base64::engine::general_purpose::STANDARD.encode(sealed),
        );
    }
    Ok(out)
}

/// Maps an API answer to the Secret GET onto this phase's errors (`None`: not an error of ours).
pub fn classify_status(status: u16) -> Option<DownloadError> {
    match status {
        404 => Some(DownloadError::NotFound),
        403 => Some(DownloadError::Forbidden),
        _ => None,
    }
}
