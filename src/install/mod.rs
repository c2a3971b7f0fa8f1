//! Every file the kubelet needs (spec §6), written only through the atomic writer, under a root.
//!
//! The install is planned as data ([`plan`] → [`Step`]s), so a dry run can print exactly what
//! would be written, and applied in an order that leaves the node in the old state or the new
//! one at every instant: `ca.crt`, the client PEM, the `kubelet-client-current.pem` symlink,
//! `config.yaml`, `kubeadm-flags.env`, and **`kubelet.conf` last** (it is what makes the kubelet
//! and a re-run of kubejoin consider the node joined, so it must never point at a file that
//! does not exist yet). Then the pending key is removed. No `bootstrap-kubelet.conf` is written:
//! kubejoin already did the bootstrap, and the token never touches the disk.
//!
//! That a process killed at any instant of this leaves a node a kubelet and a re-run can use
//! is proven, not argued: every instant is a [`crate::fs::failpoint`], and `tests/crash.rs` kills the real
//! binary at each one and checks the root it leaves.

pub mod failpoints;
pub mod flags;
pub mod instance;

use crate::error::{Class, Classify};
use crate::fs::atomic::{self, WriteError};
use crate::fs::root::Root;
use crate::kube::kubeconfig::Kubeconfig;
use std::fmt;
use std::path::Path;
use std::time::SystemTime;

pub const CA_CRT: &str = "/etc/kubernetes/pki/ca.crt";
pub const KUBELET_CONF: &str = "/etc/kubernetes/kubelet.conf";
pub const KUBELET_CONFIG: &str = "/var/lib/kubelet/config.yaml";
pub const FLAGS_ENV: &str = "/var/lib/kubelet/kubeadm-flags.env";
pub const PKI_DIR: &str = "/var/lib/kubelet/pki";
pub const CLIENT_CURRENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
pub const CLIENT_UPDATED: &str = "/var/lib/kubelet/pki/kubelet-client-updated.pem";
/// Where the key waits for its certificate (the legacy kubelet's path).
pub const KEY_TMP: &str = "/var/lib/kubelet/pki/kubelet-client.key.tmp";
pub const RESULT_JSON: &str = "/run/kubejoin/result.json";
/// PID 1's timeline of the boot (phases, steps, durations; no secrets), beside `result.json`.
pub const TIMELINE_JSON: &str = "/run/kubejoin/timeline.json";
/// Cluster API's bootstrap-success sentinel, for machines provisioned by CAPI.
pub const CAPI_SENTINEL: &str = "/run/cluster-api/bootstrap-success.complete";

/// Directories kubejoin may create, parents first, each with the mode it gets when created
/// (kubeadm: 0755 for /etc/kubernetes, 0700 for /var/lib/kubelet; client-go: 0755 for the pki
/// dir). Existing directories keep their mode.
pub const DIRS: &[(&str, u32)] = &[
    ("/etc/kubernetes", 0o755),
    ("/etc/kubernetes/pki", 0o755),
    ("/var/lib", 0o755),
    ("/var/lib/kubelet", 0o700),
    ("/var/lib/kubelet/pki", 0o755),
    ("/run/kubejoin", 0o755),
    ("/run/cluster-api", 0o755),
];

/// Creates the [`DIRS`] that contain `node_path`, in order, so each gets its own mode.
pub fn ensure_dirs_for(root: &Root, node_path: &str) -> Result<(), WriteError> {
    for (dir, mode) in DIRS {
        let prefix = format!("{dir}/");
        if node_path.starts_with(&prefix) {
            atomic::create_dirs(root, Path::new(dir), *mode)?;
        }
    }
    Ok(())
}

/// Why installing failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("serialising {what}: {why}")]
    Serialise { what: &'static str, why: String },
    #[error("reading back {path} under {root}: {why}")]
    ReadBack {
        path: &'static str,
        root: String,
        why: String,
    },
}

impl Classify for Error {
    fn class(&self) -> Class {
        Class::Other
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::Write(_) => {
                Some("check that the root filesystem is writable and has space".into())
            }
            _ => None,
        }
    }
}

/// One planned action, as the node sees paths.
#[derive(Clone, PartialEq, Eq)]
pub enum Step {
    File {
        path: String,
        mode: u32,
        contents: Vec<u8>,
        what: &'static str,
    },
    /// `link` → `target`, swapped in through `staging`.
    Symlink {
        link: String,
        staging: String,
        target: String,
    },
    Remove {
        path: String,
        what: &'static str,
    },
}

impl fmt::Debug for Step {
    // Contents may hold the private key: print sizes only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::File {
                path,
                mode,
                contents,
                what,
            } => {
                write!(
                    f,
                    "File({path}, {mode:04o}, {} bytes, {what})",
                    contents.len()
                )
            }
            Step::Symlink { link, target, .. } => write!(f, "Symlink({link} -> {target})"),
            Step::Remove { path, .. } => write!(f, "Remove({path})"),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::File {
                path, mode, what, ..
            } => write!(f, "write   {path} ({mode:04o}): {what}"),
            Step::Symlink { link, target, .. } => write!(f, "symlink {link} -> {target}"),
            Step::Remove { path, what } => write!(f, "remove  {path}: {what}"),
        }
    }
}

/// Everything the install writes.
#[derive(Clone)]
pub struct Inputs<'a> {
    /// `server:` from cluster-info.
    pub server: &'a str,
    /// The trusted cluster CAs (the pinned ones, for token discovery with pins), PEM
    /// re-encoded from their DER.
    pub ca_pem: &'a [u8],
    /// The verified certificate chain (PEM, leaf first).
    pub cert_chain_pem: &'a str,
    /// The node's private key (PEM).
    pub key_pem: &'a str,
    /// The cluster's KubeletConfiguration, verbatim.
    pub kubelet_config: &'a str,
    /// The rendered kubeadm-flags.env.
    pub flags_env: &'a str,
    /// The kubelet instance configuration, where the cluster's kubeadm writes one
    /// ([`instance`]).
    pub instance_config: Option<&'a str>,
    /// Names the client PEM (`kubelet-client-<YYYY-MM-DD-HH-MM-SS>.pem`, UTC). A join passes
    /// the certificate's notBefore, so a re-run after a crash that resumes the same CSR (and
    /// gets the same certificate) rewrites the same file rather than leaving a second one.
    pub now: SystemTime,
}

impl fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inputs")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// `kubelet.conf` as the kubelet writes it after its own bootstrap (spec §6.4), in client-go
/// ≥0.34 style (no `preferences: {}` line), through discovery's byte-exact emitter.
pub fn kubelet_conf(server: &str, ca_pem: &[u8]) -> String {
    let mut k = Kubeconfig::kubelet(server, ca_pem, CLIENT_CURRENT);
    k.preferences = false;
    k.render()
}

/// The client PEM's name for `now` (Go layout `2006-01-02-15-04-05`; UTC, the only zone an
/// initramfs reliably has).
pub fn client_pem_path(now: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = crate::time::calendar::civil(unix_secs(now));
    format!("{PKI_DIR}/kubelet-client-{y:04}-{mo:02}-{d:02}-{h:02}-{mi:02}-{s:02}.pem")
}

/// The install, in its safe order.
pub fn plan(i: &Inputs<'_>) -> Vec<Step> {
    let pem_path = client_pem_path(i.now);
    let mut client_pem = i.cert_chain_pem.to_string();
    if !client_pem.is_empty() && !client_pem.ends_with('\n') {
        client_pem.push('\n');
    }
    client_pem.push_str(i.key_pem);
    let mut steps = vec![
        Step::File {
            path: CA_CRT.into(),
            mode: 0o644,
            contents: i.ca_pem.to_vec(),
            what: "cluster CA certificates trusted by discovery",
        },
        Step::File {
            path: pem_path.clone(),
            mode: 0o600,
            contents: client_pem.into_bytes(),
            what: "node client certificate chain and private key",
        },
        Step::Symlink {
            link: CLIENT_CURRENT.into(),
            staging: CLIENT_UPDATED.into(),
            target: pem_path,
        },
    ];
    if let Some(instance) = i.instance_config {
        steps.push(Step::File {
            path: instance::INSTANCE_CONFIG.into(),
            mode: 0o644,
            contents: instance.as_bytes().to_vec(),
            what: "kubelet instance configuration (the node's CRI socket)",
        });
    }
    steps.extend([
        Step::File {
            path: KUBELET_CONFIG.into(),
            mode: 0o644,
            contents: i.kubelet_config.as_bytes().to_vec(),
            what: "KubeletConfiguration from kube-system/kubelet-config",
        },
        Step::File {
            path: FLAGS_ENV.into(),
            mode: 0o644,
            contents: i.flags_env.as_bytes().to_vec(),
            what: "node-specific kubelet flags",
        },
        Step::File {
            path: KUBELET_CONF.into(),
            mode: 0o600,
            contents: kubelet_conf(i.server, i.ca_pem).into_bytes(),
            what: "kubelet kubeconfig (node identity)",
        },
        Step::Remove {
            path: KEY_TMP.into(),
            what: "the pending key, now part of the client PEM",
        },
    ]);
    steps
}

/// Applies `steps` in order under `root` (every path resolved inside it: see [`crate::fs::root`]).
pub fn apply(root: &Root, steps: &[Step]) -> Result<(), Error> {
    for step in steps {
        match step {
            Step::File {
                path,
                mode,
                contents,
                ..
            } => {
                ensure_dirs_for(root, path)?;
                atomic::write_file(root, Path::new(path), contents, *mode, 0o755)?;
            }
            Step::Symlink {
                link,
                staging,
                target,
            } => {
                ensure_dirs_for(root, link)?;
                // The target is absolute as the node sees it: correct once the root is `/`.
                atomic::swap_symlink(
                    root,
                    Path::new(link),
                    Path::new(staging),
                    Path::new(target),
                    0o755,
                )?;
            }
            Step::Remove { path, .. } => atomic::remove_file(root, Path::new(path))?,
        }
        crate::debug!("{step}");
    }
    Ok(())
}

/// The completion contract: `/run/kubejoin/result.json`. No secrets.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JoinResult {
    /// `joined` or `already-joined`.
    pub outcome: String,
    pub node: String,
    pub csr: Option<String>,
    /// RFC 3339, UTC.
    pub certificate_not_after: Option<String>,
    pub server: String,
    pub ca_pin: Option<String>,
    pub phases: Vec<crate::log::PhaseRecord>,
    /// What the clock phase did (time source, offset, the step), when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock: Option<crate::clock::phase::ClockRecord>,
    /// A control-plane join only: `finishing` while etcd-join, mark-control-plane and
    /// wait-control-plane have not ended (their own status is in
    /// `/run/kubejoin/control-plane.json`), then `ready` or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control_plane: Option<String>,
}

/// `result.json`'s `control_plane` while the phases after the kubelet have not ended.
pub const CONTROL_PLANE_FINISHING: &str = "finishing";

/// Writes `result.json` alone (0644): PID 1's report of a failed boot, or a carried-over one.
pub fn write_result_json(root: &Root, json: &[u8]) -> Result<(), Error> {
    write_run_file(root, RESULT_JSON, "join result", json)
}

/// Writes `timeline.json` (0644), atomically as every file kubejoin writes.
pub fn write_timeline_json(root: &Root, json: &[u8]) -> Result<(), Error> {
    write_run_file(root, TIMELINE_JSON, "boot timeline", json)
}

fn write_run_file(root: &Root, path: &str, what: &'static str, json: &[u8]) -> Result<(), Error> {
    apply(
        root,
        &[Step::File {
            path: path.into(),
            mode: 0o644,
            contents: json.to_vec(),
            what,
        }],
    )
}

/// Writes `result.json` and the Cluster API sentinel (both 0644). A control-plane join whose
/// phases after the kubelet are still to run (`control_plane: finishing`) gets no sentinel yet:
/// Cluster API takes it for "the node is bootstrapped", which kubeadm's node is only once
/// `kubeadm join` has returned; [`control_plane_completion`] writes it then.
pub fn write_completion(root: &Root, result: &JoinResult) -> Result<(), Error> {
    let mut json = serde_json::to_vec_pretty(result).map_err(|e| Error::Serialise {
        what: "result.json",
        why: e.to_string(),
    })?;
    json.push(b'\n');
    let mut steps = vec![Step::File {
        path: RESULT_JSON.into(),
        mode: 0o644,
        contents: json,
        what: "join result",
    }];
    if result.control_plane.as_deref() != Some(CONTROL_PLANE_FINISHING) {
        steps.push(sentinel());
    }
    apply(root, &steps)
}

/// Cluster API's convention: the file holds "success".
fn sentinel() -> Step {
    Step::File {
        path: CAPI_SENTINEL.into(),
        mode: 0o644,
        contents: b"success\n".to_vec(),
        what: "bootstrap sentinel",
    }
}

/// The writes that end a control-plane join once its phases after the kubelet have ended:
/// `result.json` (as the join wrote it, under `root`) with `control_plane` set to `ready` or
/// `failed`, and on `ready` the Cluster API sentinel. Nothing when there is no `result.json`
/// (a finish step run by hand on a node whose `/run` was emptied by a reboot).
pub fn control_plane_completion(root: &Root, ready: bool) -> Result<Vec<Step>, Error> {
    let bad = |why: String| Error::ReadBack {
        path: RESULT_JSON,
        root: root.to_string(),
        why,
    };
    let bytes = match root.read(RESULT_JSON) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(bad(e.to_string())),
    };
    let mut doc: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    let Some(obj) = doc.as_object_mut() else {
        return Err(bad("it is not a JSON object".into()));
    };
    let state = if ready { "ready" } else { "failed" };
    obj.insert("control_plane".into(), serde_json::Value::from(state));
    let mut json = serde_json::to_vec_pretty(&doc).map_err(|e| Error::Serialise {
        what: "result.json",
        why: e.to_string(),
    })?;
    json.push(b'\n');
    let mut steps = vec![Step::File {
        path: RESULT_JSON.into(),
        mode: 0o644,
        contents: json,
        what: "join result (control plane ended)",
    }];
    if ready {
        steps.push(sentinel());
    }
    Ok(steps)
}

/// The completion steps, for a dry run's listing.
pub fn completion_steps() -> Vec<Step> {
    vec![
        Step::File {
            path: RESULT_JSON.into(),
            mode: 0o644,
            contents: Vec::new(),
            what: "join result",
        },
        Step::File {
            path: CAPI_SENTINEL.into(),
            mode: 0o644,
            contents: Vec::new(),
            what: "bootstrap sentinel",
        },
    ]
}

fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;
    use std::time::Duration;

    #[test]
    fn client_pem_is_named_after_its_time() {
        assert_eq!(
            client_pem_path(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_348_576)),
            "/var/lib/kubelet/pki/kubelet-client-2026-11-22-11-56-16.pem"
        );
    }

    #[test]
    fn kubelet_conf_has_the_kubelets_exact_shape() {
        use base64::Engine as _;
        let ca = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let got = kubelet_conf("https://10.0.0.1:6443", ca);
        let b64 = base64::engine::general_purpose::STANDARD.encode(ca);
        assert_eq!(
            got,
            format!(
                "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {b64}
    server: https://10.0.0.1:6443
  name: default-cluster
contexts:
- context:
    cluster: default-cluster
    namespace: default
    user: default-auth
  name: default-context
current-context: default-context
kind: Config
users:
- name: default-auth
  user:
    client-certificate: /var/lib/kubelet/pki/kubelet-client-current.pem
    client-key: /var/lib/kubelet/pki/kubelet-client-current.pem
"
            )
        );
    }

    fn inputs<'a>() -> Inputs<'a> {
        Inputs {
            server: "https://10.0.0.1:6443",
            ca_pem: b"CA\n",
            cert_chain_pem: "CERT\n",
            key_pem: "KEY\n",
            kubelet_config: "kind: KubeletConfiguration\n",
            flags_env: "KUBELET_KUBEADM_ARGS=\"\"\n",
            instance_config: None,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_348_576),
        }
    }

    #[test]
    fn plan_orders_kubelet_conf_after_everything_it_references() {
        let steps = plan(&inputs());
        let order: Vec<String> = steps
            .iter()
            .map(|s| match s {
                Step::File { path, .. } | Step::Remove { path, .. } => path.clone(),
                Step::Symlink { link, .. } => link.clone(),
            })
            .collect();
        assert_eq!(
            order,
            vec![
                CA_CRT,
                "/var/lib/kubelet/pki/kubelet-client-2026-11-22-11-56-16.pem",
                CLIENT_CURRENT,
                KUBELET_CONFIG,
                FLAGS_ENV,
                KUBELET_CONF,
                KEY_TMP,
            ]
        );
        // Debug never shows contents (the key).
        assert!(!format!("{steps:?}").contains("KEY"));
    }

    #[test]
    fn apply_writes_files_modes_and_dirs_under_the_root() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        crate::bootstrap::csr::store_key(
            &root,
            &crate::bootstrap::csr::NodeKey::generate().unwrap(),
        )
        .unwrap();
        apply(&root, &plan(&inputs())).unwrap();
        let p = |s: &str| root.join(s).unwrap();
        let mode = |s: &str| std::fs::symlink_metadata(p(s)).unwrap().mode() & 0o7777;
        assert_eq!(mode(CA_CRT), 0o644);
        assert_eq!(mode(KUBELET_CONF), 0o600);
        assert_eq!(mode(KUBELET_CONFIG), 0o644);
        assert_eq!(mode(FLAGS_ENV), 0o644);
        assert_eq!(
            mode("/var/lib/kubelet/pki/kubelet-client-2026-11-22-11-56-16.pem"),
            0o600
        );
        assert_eq!(mode("/var/lib/kubelet"), 0o700);
        assert_eq!(mode("/var/lib/kubelet/pki"), 0o755);
        assert_eq!(mode("/etc/kubernetes"), 0o755);
        assert_eq!(mode("/var/lib"), 0o755);
        assert_eq!(
            std::fs::read_link(p(CLIENT_CURRENT)).unwrap(),
            std::path::PathBuf::from("/var/lib/kubelet/pki/kubelet-client-2026-11-22-11-56-16.pem")
        );
        assert_eq!(
            std::fs::read_to_string(p(
                "/var/lib/kubelet/pki/kubelet-client-2026-11-22-11-56-16.pem"
            ))
            .unwrap(),
            "CERT\nKEY\n"
        );
        assert!(!p(KEY_TMP).exists());
        let mut pki: Vec<String> = std::fs::read_dir(p(PKI_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        pki.sort();
        assert_eq!(
            pki,
            vec![
                "kubelet-client-2026-11-22-11-56-16.pem",
                "kubelet-client-current.pem"
            ]
        );
        assert!(!p("/etc/kubernetes/bootstrap-kubelet.conf").exists());
    }

    #[test]
    fn completion_files() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let r = JoinResult {
            outcome: "joined".into(),
            node: "n".into(),
            csr: Some("node-csr-x".into()),
            certificate_not_after: Some(crate::time::calendar::rfc3339(0)),
            server: "https://s".into(),
            ca_pin: None,
            phases: vec![],
            clock: None,
            control_plane: None,
        };
        write_completion(&root, &r).unwrap();
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(RESULT_JSON).unwrap()).unwrap(),
        )
        .unwrap();
        assert_eq!(v["outcome"], "joined");
        assert_eq!(v["certificate_not_after"], "1970-01-01T00:00:00Z");
        assert!(v.get("control_plane").is_none(), "{v}");
        assert_eq!(
            std::fs::read_to_string(root.join(CAPI_SENTINEL).unwrap()).unwrap(),
            "success\n"
        );
    }

    /// A control-plane join: result.json says `finishing` and no sentinel until the phases after
    /// the kubelet end; then `ready` with the sentinel, or `failed` without it. The rest of
    /// result.json is kept as the join wrote it.
    #[test]
    fn a_control_plane_join_gets_its_sentinel_only_when_its_control_plane_is_ready() {
        let read = |root: &Root| -> serde_json::Value {
            serde_json::from_slice(&root.read(RESULT_JSON).unwrap()).unwrap()
        };
        let sentinel = |root: &Root| root.join(CAPI_SENTINEL).unwrap().exists();
        for ready in [true, false] {
            let t = tempfile::tempdir().unwrap();
            let root = Root::new(t.path());
            // Without result.json (a /run emptied by a reboot) there is nothing to amend.
            assert!(control_plane_completion(&root, ready).unwrap().is_empty());
            let r = JoinResult {
                outcome: "joined".into(),
                node: "cp-2".into(),
                csr: Some("node-csr-x".into()),
                certificate_not_after: None,
                server: "https://s".into(),
                ca_pin: Some("sha256:ab".into()),
                phases: vec![],
                clock: None,
                control_plane: Some(CONTROL_PLANE_FINISHING.into()),
            };
            write_completion(&root, &r).unwrap();
            assert_eq!(read(&root)["control_plane"], "finishing");
            assert!(
                !sentinel(&root),
                "no sentinel while the control plane finishes"
            );

            let steps = control_plane_completion(&root, ready).unwrap();
            apply(&root, &steps).unwrap();
            let v = read(&root);
            assert_eq!(v["control_plane"], if ready { "ready" } else { "failed" });
            assert_eq!(
                (v["node"].as_str(), v["ca_pin"].as_str()),
                (Some("cp-2"), Some("sha256:ab"))
            );
            assert_eq!(sentinel(&root), ready);
            if ready {
                assert_eq!(root.read(CAPI_SENTINEL).unwrap(), b"success\n");
            }
        }
        // A result.json that is not one is an error naming it, not overwritten.
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        apply(
            &root,
            &[Step::File {
                path: RESULT_JSON.into(),
                mode: 0o644,
                contents: b"[1]".to_vec(),
                what: "x",
            }],
        )
        .unwrap();
        let e = control_plane_completion(&root, true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/run/kubejoin/result.json") && e.contains("not a JSON object"),
            "{e}"
        );
    }

    #[test]
    fn dry_run_listing_names_paths_and_modes() {
        let lines: Vec<String> = plan(&inputs()).iter().map(|s| s.to_string()).collect();
        assert_eq!(
            lines[0],
            "write   /etc/kubernetes/pki/ca.crt (0644): cluster CA certificates trusted by discovery"
        );
        assert!(lines[2].starts_with("symlink /var/lib/kubelet/pki/kubelet-client-current.pem -> /var/lib/kubelet/pki/kubelet-client-"));
        assert_eq!(
            lines[5],
            "write   /etc/kubernetes/kubelet.conf (0600): kubelet kubeconfig (node identity)"
        );
    }
}
