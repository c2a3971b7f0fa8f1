//! The join of every supported Kubernetes version, through the real binary into a temporary
//! root, against the test control plane behaving as that version (`kubejoin_testcp::Config::
//! kubernetes_version`): the CSR usages the server saw, the exact bytes of kubeadm-flags.env,
//! which kubelet-config ConfigMap was read, the requests made; the local kubelet's `--version`
//! where kubeadm decides by it; the errors when the control plane refuses the usages.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin_testcp::{Approval, Config, Handle};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kubejoin");
const CONFIGMAPS: &str = "/api/v1/namespaces/kube-system/configmaps/";
const CONTAINERD: &str = "unix:///var/run/containerd/containerd.sock";
const WITH_KEY_ENCIPHERMENT: [&str; 3] = ["digital signature", "key encipherment", "client auth"];
const NON_RSA: [&str; 2] = ["digital signature", "client auth"];
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn start(config: Config) -> Handle {
    kubejoin_testcp::start(config).expect("test control plane starts")
}

fn at(version: &str) -> Handle {
    start(Config {
        kubernetes_version: version.into(),
        ..Config::default()
    })
}

struct Joined {
    out: Output,
    root: tempfile::TempDir,
}

impl Joined {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn code(&self) -> i32 {
        self.out.status.code().unwrap_or(-1)
    }

    fn ok(&self) -> &Self {
        assert_eq!(self.code(), 0, "{}", self.stderr());
        self
    }

    fn flags(&self) -> String {
        std::fs::read_to_string(self.root.path().join("var/lib/kubelet/kubeadm-flags.env")).unwrap()
    }
}

/// `kubejoin join` against `cp` as `node`, with `extra` flags, into a fresh temporary root.
fn join(cp: &Handle, node: &str, extra: &[&str]) -> Joined {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(support::join_args(cp, &cp.token(), node, root.path()))
        .args(extra)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = support::run_bounded(cmd, RUN_LIMIT);
    Joined { out, root }
}

/// The usages of the one CSR the server holds.
fn csr_usages(cp: &Handle) -> Vec<String> {
    let csrs = cp.csrs();
    assert_eq!(csrs.len(), 1, "{csrs:#?}");
    csrs[0]["spec"]["usages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect()
}

/// The kube-system ConfigMaps read, in order.
fn configmaps_read(cp: &Handle) -> Vec<(String, u16)> {
    cp.requests()
        .iter()
        .filter(|r| r.method == "GET")
        .filter_map(|r| {
            r.path
                .strip_prefix(CONFIGMAPS)
                .map(|n| (n.to_string(), r.status))
        })
        .collect()
}

fn flags_line(args: &[&str]) -> String {
    format!("KUBELET_KUBEADM_ARGS=\"{}\"\n", args.join(" "))
}

/// Joins a control plane of `version` and checks what the join chose and read.
fn check_version(version: &str, node: &str, usages: &[&str], flags: &[&str]) -> Joined {
    let cp = at(version);
    let j = join(&cp, node, &[]);
    j.ok();
    assert_eq!(csr_usages(&cp), usages, "{version}");
    assert_eq!(j.flags(), flags_line(flags), "{version}");
    assert_eq!(
        configmaps_read(&cp),
        vec![
            ("kubeadm-config".to_string(), 200),
            ("kubelet-config".to_string(), 200)
        ],
        "{version}: kubeadm-config first, then the one kubelet-config of that version"
    );
    assert_eq!(cp.requests().len(), 6, "{version}: {:#?}", cp.requests());
    assert!(
        j.stderr().contains(&format!("cluster version {version}")),
        "{}",
        j.stderr()
    );
    // Exec handoff reads the same file back: nothing to re-derive there.
    assert!(
        !j.stderr().contains("warning: the cluster runs"),
        "{}",
        j.stderr()
    );
    j
}

impl Joined {
    fn file(&self, node_path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.path().join(node_path.trim_start_matches('/'))).ok()
    }

    /// kubeadm's NodeLocalCRISocket layout: the socket in instance-config.yaml and config.yaml.
    fn has_instance_config(&self, cluster_config: &str) {
        assert_eq!(
            self.file("/var/lib/kubelet/instance-config.yaml")
                .as_deref(),
            Some(format!("containerRuntimeEndpoint: \"{CONTAINERD}\"\n").as_str())
        );
        let want = cluster_config.replace(
            "containerRuntimeEndpoint: \"\"\n",
            &format!("containerRuntimeEndpoint: {CONTAINERD}\n"),
        );
        assert_ne!(
            want, cluster_config,
            "the cluster's config has the empty endpoint line"
        );
        assert_eq!(self.file("/var/lib/kubelet/config.yaml").unwrap(), want);
        assert!(
            !self.flags().contains("container-runtime-endpoint"),
            "{}",
            self.flags()
        );
    }

    /// The flag layout: config.yaml is the cluster's, byte for byte, and no instance file.
    fn has_no_instance_config(&self, cluster_config: &str) {
        assert_eq!(self.file("/var/lib/kubelet/instance-config.yaml"), None);
        assert_eq!(
            self.file("/var/lib/kubelet/config.yaml").unwrap(),
            cluster_config
        );
        assert!(self
            .flags()
            .contains(&format!("--container-runtime-endpoint={CONTAINERD}")));
    }
}

#[test]
fn v1_24_strict_usages_container_runtime_remote_and_pause_3_7_from_k8s_gcr_io() {
    check_version(
        "v1.24.17",
        "v124",
        &WITH_KEY_ENCIPHERMENT,
        &[
            "--container-runtime=remote",
            &format!("--container-runtime-endpoint={CONTAINERD}"),
            "--hostname-override=v124",
            "--pod-infra-container-image=k8s.gcr.io/pause:3.7",
        ],
    );
}

#[test]
fn v1_25_kubelet_usages_container_runtime_remote_and_pause_3_8() {
    check_version(
        "v1.25.16",
        "v125",
        &WITH_KEY_ENCIPHERMENT,
        &[
            "--container-runtime=remote",
            &format!("--container-runtime-endpoint={CONTAINERD}"),
            "--hostname-override=v125",
            "--pod-infra-container-image=registry.k8s.io/pause:3.8",
        ],
    );
}

#[test]
fn v1_27_non_rsa_usages_no_container_runtime_flag_pause_3_9() {
    check_version(
        "v1.27.16",
        "v127",
        &NON_RSA,
        &[
            &format!("--container-runtime-endpoint={CONTAINERD}"),
            "--hostname-override=v127",
            "--pod-infra-container-image=registry.k8s.io/pause:3.9",
        ],
    );
}

#[test]
fn v1_30_pause_3_9() {
    check_version(
        "v1.30.14",
        "v130",
        &NON_RSA,
        &[
            &format!("--container-runtime-endpoint={CONTAINERD}"),
            "--hostname-override=v130",
            "--pod-infra-container-image=registry.k8s.io/pause:3.9",
        ],
    );
}

#[test]
fn v1_31_v1beta4_and_pause_3_10() {
    check_version(
        "v1.31.14",
        "v131",
        &NON_RSA,
        &[
            &format!("--container-runtime-endpoint={CONTAINERD}"),
            "--hostname-override=v131",
            "--pod-infra-container-image=registry.k8s.io/pause:3.10",
        ],
    );
}

#[test]
fn v1_34_pause_3_10_1_and_the_cri_socket_in_the_instance_configuration() {
    let j = check_version(
        "v1.34.2",
        "v134",
        &NON_RSA,
        &[
            "--hostname-override=v134",
            "--pod-infra-container-image=registry.k8s.io/pause:3.10.1",
        ],
    );
    j.has_instance_config(&kubelet_config_of("v1.34.2"));
}

/// The KubeletConfiguration a test control plane of `version` serves.
fn kubelet_config_of(version: &str) -> String {
    at(version).kubelet_config()
}

#[test]
fn v1_34_with_node_local_cri_socket_off_keeps_the_flag() {
    let cp = start(Config {
        kubernetes_version: "v1.34.2".into(),
        feature_gates: vec![("NodeLocalCRISocket".into(), false)],
        ..Config::default()
    });
    let j = join(&cp, "gate-off", &[]);
    j.ok();
    j.has_no_instance_config(&kubelet_config_of("v1.34.2"));
    assert_eq!(
        j.flags(),
        flags_line(&[
            &format!("--container-runtime-endpoint={CONTAINERD}"),
            "--hostname-override=gate-off",
            "--pod-infra-container-image=registry.k8s.io/pause:3.10.1",
        ])
    );
}

#[test]
fn v1_33_with_the_alpha_gate_on_writes_the_instance_configuration() {
    let off = join(&at("v1.33.1"), "alpha-off", &[]);
    off.ok();
    off.has_no_instance_config(&kubelet_config_of("v1.33.1"));
    let cp = start(Config {
        kubernetes_version: "v1.33.1".into(),
        feature_gates: vec![("NodeLocalCRISocket".into(), true)],
        ..Config::default()
    });
    let on = join(&cp, "alpha-on", &[]);
    on.ok();
    on.has_instance_config(&kubelet_config_of("v1.33.1"));
    assert!(
        on.stderr()
            .contains("the CRI socket in the kubelet instance configuration"),
        "{}",
        on.stderr()
    );
}

#[test]
fn v1_36_newest_no_pause_flag_and_the_instance_configuration_whatever_the_gate() {
    let j = check_version("v1.36.3", "v136", &NON_RSA, &["--hostname-override=v136"]);
    j.has_instance_config(&kubelet_config_of("v1.36.3"));
}

#[test]
fn v1_24_alpha_1_writes_what_real_kubeadm_v1_24_wrote() {
    // The shared capture: kubeadm built from v1.24.0-alpha.1, imageRepository k8s.gcr.io.
    let cp = at("v1.24.0-alpha.1");
    let j = join(
        &cp,
        "cp-2",
        &["--cri-socket", "unix:///tmp/realcp/run/containerd.sock"],
    );
    j.ok();
    let reference = std::fs::read_to_string(format!(
        "{}/tests/fixtures/kubeadm-v1.24/kubeadm-flags.env",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert_eq!(j.flags(), reference);
    assert_eq!(csr_usages(&cp), WITH_KEY_ENCIPHERMENT);
}

#[test]
fn a_v1_24_cluster_with_versioned_kubelet_config_is_read_by_that_name() {
    let cp = start(Config {
        kubernetes_version: "v1.24.17".into(),
        unversioned_kubelet_config_map: Some(false),
        ..Config::default()
    });
    assert_eq!(cp.kubelet_config_map(), "kubelet-config-1.24");
    let j = join(&cp, "legacy-cm", &[]);
    j.ok();
    assert_eq!(
        configmaps_read(&cp),
        vec![
            ("kubeadm-config".to_string(), 200),
            ("kubelet-config-1.24".to_string(), 200)
        ]
    );
    assert_eq!(cp.requests().len(), 6);
    assert!(
        j.stderr().contains("kube-system/kubelet-config-1.24"),
        "{}",
        j.stderr()
    );
    assert!(j.root.path().join("var/lib/kubelet/config.yaml").exists());
}

#[test]
fn a_kubelet_config_name_that_cannot_be_read_falls_back_to_the_other_naming() {
    // A v1.24 cluster whose kubeadm-config does not say UnversionedKubeletConfigMap: false
    // but which has only kubelet-config-1.24 (and RBAC for that name alone), as one set up or
    // upgraded by other means: kubelet-config is refused (403), kubelet-config-1.24 read.
    let cp = start(Config {
        kubernetes_version: "v1.24.17".into(),
        kubelet_config_map_name: Some("kubelet-config-1.24".into()),
        ..Config::default()
    });
    let j = join(&cp, "fallback", &[]);
    j.ok();
    assert_eq!(
        configmaps_read(&cp),
        vec![
            ("kubeadm-config".to_string(), 200),
            ("kubelet-config".to_string(), 403),
            ("kubelet-config-1.24".to_string(), 200)
        ]
    );
    assert!(
        j.stderr()
            .contains("trying kube-system/kubelet-config-1.24"),
        "{}",
        j.stderr()
    );
    assert_eq!(csr_usages(&cp), WITH_KEY_ENCIPHERMENT);
    assert_eq!(
        cp.requests().len(),
        7,
        "one request more, only in this case"
    );
}

#[test]
fn versions_outside_the_known_range_warn_and_join_as_the_nearest() {
    let old = at("v1.23.17");
    assert_eq!(old.kubelet_config_map(), "kubelet-config-1.23");
    let j = join(&old, "old", &[]);
    j.ok();
    assert!(
        j.stderr().contains(
            "Kubernetes v1.23.17, older than the oldest supported v1.24; joining as for v1.24"
        ),
        "{}",
        j.stderr()
    );
    assert_eq!(csr_usages(&old), WITH_KEY_ENCIPHERMENT);
    assert_eq!(
        configmaps_read(&old),
        vec![
            ("kubeadm-config".to_string(), 200),
            ("kubelet-config-1.23".to_string(), 200)
        ]
    );
    assert_eq!(
        j.flags(),
        flags_line(&[
            "--container-runtime=remote",
            &format!("--container-runtime-endpoint={CONTAINERD}"),
            "--hostname-override=old",
            "--pod-infra-container-image=k8s.gcr.io/pause:3.7",
        ])
    );

    let new = at("v1.40.0");
    let j = join(&new, "new", &[]);
    j.ok();
    assert!(
        j.stderr().contains(
            "Kubernetes v1.40.0, newer than the newest known v1.36; joining as for v1.36"
        ),
        "{}",
        j.stderr()
    );
    assert_eq!(csr_usages(&new), NON_RSA);
    assert_eq!(j.flags(), flags_line(&["--hostname-override=new"]));
    j.has_instance_config(&new.kubelet_config());
}

/// A stand-in kubelet: prints `version_line` for `--version`, and records every invocation's
/// arguments (one line each) in `calls`.
fn stand_in_kubelet(dir: &Path, version_line: &str) -> (PathBuf, PathBuf) {
    let path = dir.join("kubelet");
    let calls = dir.join("calls");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\necho \"$@\" >> {}\nif [ \"$1\" = --version ]; then echo '{version_line}'; fi\nexit 0\n",
            calls.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    (path, calls)
}

#[test]
fn kubeadm_v1_24_keeps_a_pre_v1_24_kubelet_on_its_dockershim() {
    let dir = tempfile::tempdir().unwrap();
    let (kubelet, calls) = stand_in_kubelet(dir.path(), "Kubernetes v1.23.17");
    let cp = at("v1.24.17");
    let j = join(
        &cp,
        "shim",
        &[
            "--cri-socket",
            "unix:///var/run/dockershim.sock",
            "--kubelet-path",
            kubelet.to_str().unwrap(),
        ],
    );
    j.ok();
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), "--version\n");
    assert!(j.stderr().contains("is v1.23.17"), "{}", j.stderr());
    assert_eq!(
        j.flags(),
        flags_line(&[
            "--hostname-override=shim",
            "--network-plugin=cni",
            "--pod-infra-container-image=k8s.gcr.io/pause:3.7",
        ])
    );

    // The same socket with a v1.24 kubelet (cri-dockerd there): the remote runtime flags.
    let dir = tempfile::tempdir().unwrap();
    let (kubelet, calls) = stand_in_kubelet(dir.path(), "Kubernetes v1.24.17");
    let cp = at("v1.24.17");
    let j = join(
        &cp,
        "cri-dockerd",
        &[
            "--cri-socket",
            "unix:///var/run/dockershim.sock",
            "--kubelet-path",
            kubelet.to_str().unwrap(),
        ],
    );
    j.ok();
    assert_eq!(std::fs::read_to_string(&calls).unwrap(), "--version\n");
    assert_eq!(
        j.flags(),
        flags_line(&[
            "--container-runtime=remote",
            "--container-runtime-endpoint=unix:///var/run/dockershim.sock",
            "--hostname-override=cri-dockerd",
            "--pod-infra-container-image=k8s.gcr.io/pause:3.7",
        ])
    );
}

#[test]
fn the_kubelet_is_not_asked_where_no_rule_depends_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let (kubelet, calls) = stand_in_kubelet(dir.path(), "Kubernetes v1.23.17");
    // A v1.24 cluster with containerd, and a v1.25 cluster with the dockershim socket.
    for (version, socket) in [
        ("v1.24.17", CONTAINERD),
        ("v1.25.16", "unix:///var/run/dockershim.sock"),
    ] {
        let cp = at(version);
        join(
            &cp,
            "no-ask",
            &[
                "--cri-socket",
                socket,
                "--kubelet-path",
                kubelet.to_str().unwrap(),
            ],
        )
        .ok();
    }
    assert!(!calls.exists(), "the kubelet was run");
}

#[test]
fn exec_handoff_passes_the_version_dependent_flags_to_the_kubelet() {
    let dir = tempfile::tempdir().unwrap();
    let (kubelet, calls) = stand_in_kubelet(dir.path(), "Kubernetes v1.25.16");
    let cp = at("v1.25.16");
    let j = join(
        &cp,
        "exec-node",
        &[
            "--handoff",
            "exec",
            "--kubelet-path",
            kubelet.to_str().unwrap(),
        ],
    );
    j.ok();
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        format!(
            "--kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml \
             --container-runtime=remote --container-runtime-endpoint={CONTAINERD} \
             --hostname-override=exec-node --pod-infra-container-image=registry.k8s.io/pause:3.8\n"
        )
    );
}

/// Controllers of v1.24 while kubeadm-config already says v1.27 (an upgrade in progress): the
/// join asks for the v1.27 kubelet's usages, which these controllers refuse.
fn mid_upgrade(approval: Approval) -> Handle {
    start(Config {
        kubernetes_version: "v1.24.17".into(),
        kubeadm_config_kubernetes_version: Some("v1.27.0".into()),
        approval,
        ..Config::default()
    })
}

#[test]
fn usages_the_approver_ignores_end_in_a_timeout_that_says_why() {
    let cp = mid_upgrade(Approval::Auto);
    let started = Instant::now();
    let j = join(&cp, "pending", &["--tls-bootstrap-timeout", "3s"]);
    assert_eq!(j.code(), 5, "{}", j.stderr());
    assert!(started.elapsed() < Duration::from_secs(30));
    let err = j.stderr();
    assert!(
        err.contains("asks for usages [digital signature, client auth]")
            && err.contains("before v1.25 neither auto-approves nor signs"),
        "{err}"
    );
    // The auto-approver never decided: no condition at all.
    let csrs = cp.csrs();
    assert_eq!(csr_usages(&cp), NON_RSA);
    assert!(csrs[0]["status"].get("conditions").is_none(), "{csrs:#?}");
}

#[test]
fn usages_the_signer_refuses_end_at_once_with_its_reason_and_message() {
    let cp = Arc::new(mid_upgrade(Approval::Manual));
    // An administrator approves by hand, as after `kubectl certificate approve`.
    let approver = {
        let cp = Arc::clone(&cp);
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Some(name) = cp
                    .csrs()
                    .first()
                    .and_then(|c| c["metadata"]["name"].as_str().map(str::to_string))
                {
                    std::thread::sleep(Duration::from_millis(200));
                    cp.approve(&name).unwrap();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let j = join(&cp, "refused", &[]);
    approver.join().unwrap();
    assert_eq!(j.code(), 4, "{}", j.stderr());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "not a silent wait"
    );
    let err = j.stderr();
    assert!(
        err.contains(
            "failed, reason: SignerValidationFailure, message: usages did not match \
             [client auth digital signature key encipherment]"
        ),
        "{err}"
    );
    assert!(err.contains("does not accept the usages"), "{err}");
    let conditions = &cp.csrs()[0]["status"]["conditions"];
    assert_eq!(conditions[0]["type"], "Approved");
    assert_eq!(conditions[1]["type"], "Failed");
    assert_eq!(conditions[1]["reason"], "SignerValidationFailure");
    assert!(!j.root.path().join("etc/kubernetes/kubelet.conf").exists());
}
