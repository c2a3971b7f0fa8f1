//! What a join must do differently for each Kubernetes minor, from the cluster's own version
//! (`kube-system/kubeadm-config` → `ClusterConfiguration.kubernetesVersion`) and, where kubeadm
//! decides by it, the local kubelet's `--version`.
//!
//! Every rule names the upstream source it was taken from (kubernetes/kubernetes unless noted;
//! "PR n" is a kubernetes/kubernetes pull request, whose release note states the behaviour and
//! whose merge date places it in a release). The README's version table is this table in prose.
//!
//! **CSR usages** (signer `kubernetes.io/kube-apiserver-client-kubelet`):
//! - The csrapproving controller (`pkg/controller/certificates/approver/sarapprove.go`) only
//!   recognises a kubelet client request that passes `ValidateKubeletClientCSR`
//!   (`pkg/apis/certificates/helpers.go`); a request it does not recognise gets no condition at
//!   all and stays Pending. The csrsigning controller (`pkg/controller/certificates/signer/
//!   signer.go`) runs the same validation on an approved request and, when it fails, adds
//!   `Failed`/`SignerValidationFailure` with the validation error as message.
//! - Up to v1.24 that validation requires exactly {digital signature, key encipherment, client
//!   auth} ("usages did not match [client auth digital signature key encipherment]"); from
//!   v1.25 (PR 111061) it also accepts {digital signature, client auth}.
//! - The kubelet itself asked for {digital signature, key encipherment, client auth} whatever its
//!   key before v1.27; from v1.27 (PR 111660, `pkg/kubelet/certificate/kubelet.go`
//!   `DefaultKubeletClientGetUsages`) it asks for {digital signature, client auth} for a non-RSA
//!   key. kubejoin asks for what the kubelet of the cluster's version asks for, which that
//!   version's approver and signer accept; for a cluster whose version is unknown, the set with
//!   key encipherment, which every supported version accepts.
//!
//! **kubelet-config ConfigMap name** (kubeadm's `UnversionedKubeletConfigMap` feature gate,
//! `cmd/kubeadm/app/features/features.go`, `cmd/kubeadm/app/componentconfigs/kubelet.go`):
//! alpha and off in v1.22–v1.23 (`kubelet-config-1.X`, PR 105741), beta and on by default in
//! v1.24 (PR 108027; `featureGates: {UnversionedKubeletConfigMap: false}` in the
//! ClusterConfiguration keeps `kubelet-config-1.24`), GA and locked on in v1.25 (PR 110327),
//! removed in v1.26 (PR 113448): `kubelet-config` ever since.
//!
//! **kubeadm-flags.env** (`cmd/kubeadm/app/phases/kubelet/flags.go`):
//! - `--container-runtime=remote` next to `--container-runtime-endpoint` up to v1.25; kubeadm
//!   v1.26 stopped writing it (PR 112000; its upgrade path strips it, "Temporary workaround.
//!   Remove in 1.27", `cmd/kubeadm/app/phases/upgrade/postupgrade.go`), and kubelet v1.27
//!   removed the flag.
//! - kubeadm v1.24 asks the host's kubelet for its version (`preflight.GetKubeletVersion`, PR
//!   106973): a kubelet older than v1.24 with the dockershim socket
//!   (`unix:///var/run/dockershim.sock`) gets `--network-plugin=cni` and no runtime flags (the
//!   built-in dockershim); every other combination gets the remote runtime flags.
//! - `--pod-infra-container-image=<imageRepository>/pause:<PauseVersion>`
//!   (`cmd/kubeadm/app/constants/constants.go` `PauseVersion`, `cmd/kubeadm/app/images/images.go`
//!   `GetPauseImage`) up to v1.34; kubeadm v1.35 stopped writing it (PR 133778) and kubelet
//!   v1.35 removed the flag (PR 133779).
//!
//! **Kubelet instance configuration** (kubeadm's `NodeLocalCRISocket` gate, KEP-4656,
//! `cmd/kubeadm/app/features/features.go`, `cmd/kubeadm/app/phases/kubelet/config.go`): the
//! node's CRI socket goes into `/var/lib/kubelet/instance-config.yaml`, is patched into
//! `config.yaml` as `containerRuntimeEndpoint`, and `kubeadm-flags.env` has no
//! `--container-runtime-endpoint`. Alpha and off in v1.32–v1.33, beta and on by default in v1.34
//! (PR 131981; `featureGates: {NodeLocalCRISocket: false}` in the ClusterConfiguration keeps the
//! flag), GA and locked on in v1.36 (PR 135742), the gate removed in v1.37 (PR 138645).

use crate::plan::version::KubernetesVersion;

/// The oldest minor whose behaviour is known (older clusters get this row and a warning).
pub const OLDEST_MINOR: u32 = 24;
/// The newest minor whose behaviour is known (newer clusters get this row and a warning).
pub const NEWEST_MINOR: u32 = 36;

/// What kubelets before v1.27 ask for (and every supported control plane accepts).
pub const USAGES_WITH_KEY_ENCIPHERMENT: &[&str] =
    &["digital signature", "key encipherment", "client auth"];
/// What kubelets from v1.27 ask for with an ECDSA key (accepted from v1.25).
pub const USAGES_NON_RSA: &[&str] = &["digital signature", "client auth"];

/// The CRI socket of the kubelet's built-in dockershim (kubeadm's `DefaultDockerCRISocket`).
pub const DOCKERSHIM_SOCKET: &str = "unix:///var/run/dockershim.sock";

/// How the kubelet-config ConfigMap is named in a minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeletConfigNaming {
    /// `UnversionedKubeletConfigMap` exists with this default: `kubelet-config` when on,
    /// `kubelet-config-1.X` when off.
    FeatureGate { default_on: bool },
    /// Always `kubelet-config`.
    Unversioned,
}

/// One minor's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Row {
    pub minor: u32,
    /// The `apiVersion` kubeadm of this minor stores `ClusterConfiguration` in.
    pub kubeadm_config_api: &'static str,
    /// The usages kubejoin asks for (what this minor's kubelet asks for with an ECDSA key).
    pub usages: &'static [&'static str],
    /// The usage sets this minor's approver and signer accept.
    pub accepted_usages: &'static [&'static [&'static str]],
    pub kubelet_config: KubeletConfigNaming,
    /// `--container-runtime=remote` is written.
    pub container_runtime_remote: bool,
    /// kubeadm decides the runtime flags by the host kubelet's version (dockershim skew).
    pub asks_kubelet_version: bool,
    /// The pause tag of a release of this minor; `None`: no `--pod-infra-container-image`.
    pub pause: Option<&'static str>,
}

const BOTH: &[&[&str]] = &[USAGES_WITH_KEY_ENCIPHERMENT, USAGES_NON_RSA];
const STRICT: &[&[&str]] = &[USAGES_WITH_KEY_ENCIPHERMENT];

const fn row(minor: u32, kubeadm_config_api: &'static str, pause: Option<&'static str>) -> Row {
    Row {
        minor,
        kubeadm_config_api,
        usages: if minor < 27 {
            USAGES_WITH_KEY_ENCIPHERMENT
        } else {
            USAGES_NON_RSA
        },
        accepted_usages: if minor < 25 { STRICT } else { BOTH },
        kubelet_config: if minor < 25 {
            KubeletConfigNaming::FeatureGate { default_on: true }
        } else {
            KubeletConfigNaming::Unversioned
        },
        container_runtime_remote: minor < 26,
        asks_kubelet_version: minor == 24,
        pause,
    }
}

const V1BETA3: &str = "kubeadm.k8s.io/v1beta3";
const V1BETA4: &str = "kubeadm.k8s.io/v1beta4";

/// One row per known minor. `kubeadm_config_api`: v1beta3 is what kubeadm v1.22–v1.30 upload,
/// v1beta4 from v1.31 (`cmd/kubeadm/app/apis/kubeadm/v1beta4/doc.go`, "introduced in v1.31").
/// Pause tags are `PauseVersion` of each release branch (PR 125112 moved to 3.10 for v1.31,
/// PR 130713 to 3.10.1 for v1.34).
pub const TABLE: [Row; 13] = [
    row(24, V1BETA3, Some("3.7")),
    row(25, V1BETA3, Some("3.8")),
    row(26, V1BETA3, Some("3.9")),
    row(27, V1BETA3, Some("3.9")),
    row(28, V1BETA3, Some("3.9")),
    row(29, V1BETA3, Some("3.9")),
    row(30, V1BETA3, Some("3.9")),
    row(31, V1BETA4, Some("3.10")),
    row(32, V1BETA4, Some("3.10")),
    row(33, V1BETA4, Some("3.10")),
    row(34, V1BETA4, Some("3.10.1")),
    row(35, V1BETA4, None),
    row(36, V1BETA4, None),
];

/// Pre-releases of a minor that still carried the previous pause tag: versions from the first
/// entry up to (not including) the second get the third. From the tags' `PauseVersion`
/// (what `kubeadm config images list` of each tag prints): v1.24.0-alpha.1…alpha.4 had 3.6
/// (beta.0 moved to 3.7), v1.25.0-alpha.x 3.7, v1.26.0-alpha.x/beta.0 3.8 (rc.0 moved to
/// 3.9), v1.34.0-alpha.x/beta.0 3.10.
const PAUSE_PRE_RELEASES: &[(&str, &str, &str)] = &[
    ("v1.24.0-alpha.0", "v1.24.0-beta.0", "3.6"),
    ("v1.25.0-alpha.0", "v1.25.0-beta.0", "3.7"),
    ("v1.26.0-alpha.0", "v1.26.0-rc.0", "3.8"),
    ("v1.34.0-alpha.0", "v1.34.0-rc.0", "3.10"),
];

/// The rules for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterRules {
    /// The cluster's version, when `kubeadm-config` told it.
    pub version: Option<KubernetesVersion>,
    pub row: Row,
    /// Set when the version is unknown or outside the known range.
    pub warning: Option<String>,
}

impl ClusterRules {
    /// The rules for a cluster of `version` (`None`: `kubeadm-config` had no usable
    /// `kubernetesVersion`).
    pub fn for_cluster(version: Option<&KubernetesVersion>) -> Self {
        let newest = TABLE[TABLE.len() - 1];
        let Some(v) = version else {
            return Self {
                version: None,
                row: Row {
                    // Unknown version: the usage set every supported control plane accepts.
                    usages: USAGES_WITH_KEY_ENCIPHERMENT,
                    ..newest
                },
                warning: Some(format!(
                    "the cluster's Kubernetes version is unknown (kube-system/kubeadm-config has no usable \
                     kubernetesVersion); writing the kubelet flags of v1.{NEWEST_MINOR} and asking for the CSR \
                     usages every version accepts"
                )),
            };
        };
        let known = |minor: u32| TABLE.iter().find(|r| r.minor == minor).copied();
        match known(v.minor()).filter(|_| v.major() == 1) {
            Some(row) => Self {
                version: Some(v.clone()),
                row,
                warning: None,
            },
            None if v.major() < 1 || (v.major() == 1 && v.minor() < OLDEST_MINOR) => Self {
                version: Some(v.clone()),
                row: TABLE[0],
                warning: Some(format!(
                    "the cluster runs Kubernetes {v}, older than the oldest supported v1.{OLDEST_MINOR}; \
                     joining as for v1.{OLDEST_MINOR}"
                )),
            },
            None => Self {
                version: Some(v.clone()),
                row: newest,
                warning: Some(format!(
                    "the cluster runs Kubernetes {v}, newer than the newest known v1.{NEWEST_MINOR}; \
                     joining as for v1.{NEWEST_MINOR}"
                )),
            },
        }
    }

    /// The version the row is applied as: the cluster's own when it is in the table, else the
    /// row's minor release.
    fn effective_version(&self) -> KubernetesVersion {
        match &self.version {
            Some(v) if v.major() == 1 && v.minor() == self.row.minor => v.clone(),
            _ => KubernetesVersion::new(1, self.row.minor, 0),
        }
    }

    /// The CSR usages to ask for.
    pub fn usages(&self) -> &'static [&'static str] {
        self.row.usages
    }

    /// The pause tag for `--pod-infra-container-image`, or `None` when no such flag is written.
    pub fn pause_tag(&self) -> Option<&'static str> {
        let tag = self.row.pause?;
        let v = self.effective_version();
        for (from, to, pre_tag) in PAUSE_PRE_RELEASES {
            let (Ok(from), Ok(to)) = (KubernetesVersion::parse(from), KubernetesVersion::parse(to))
            else {
                continue;
            };
            if from <= v && v < to {
                return Some(pre_tag);
            }
        }
        Some(tag)
    }

    /// The kubelet-config ConfigMap names to try, in order: the one kubeadm of this version
    /// reads (by `UnversionedKubeletConfigMap`, `gate`, when the ClusterConfiguration sets it),
    /// then the other naming, for a cluster that does not match its version's default (e.g.
    /// upgraded by hand).
    pub fn kubelet_config_maps(&self, gate: Option<bool>) -> [String; 2] {
        let (major, minor) = match &self.version {
            Some(v) => (v.major(), v.minor()),
            None => (1, self.row.minor),
        };
        let versioned = format!("kubelet-config-{major}.{minor}");
        let unversioned = "kubelet-config".to_string();
        let on = match &self.version {
            // Below the table the gate did not default on yet (alpha in v1.22–v1.23).
            Some(v) if v.major() == 1 && v.minor() < OLDEST_MINOR => gate.unwrap_or(false),
            _ => match self.row.kubelet_config {
                KubeletConfigNaming::FeatureGate { default_on } => gate.unwrap_or(default_on),
                KubeletConfigNaming::Unversioned => true,
            },
        };
        if on {
            [unversioned, versioned]
        } else {
            [versioned, unversioned]
        }
    }

    /// Whether kubeadm of this version keeps the CRI socket in the kubelet's instance
    /// configuration instead of the `--container-runtime-endpoint` flag (`gate`: the
    /// ClusterConfiguration's `featureGates.NodeLocalCRISocket`, when set).
    pub fn node_local_cri_socket(&self, gate: Option<bool>) -> bool {
        match self.row.minor {
            m if m >= 36 => true,
            34 | 35 => gate.unwrap_or(true),
            32 | 33 => gate.unwrap_or(false),
            _ => false,
        }
    }

    /// Whether the runtime flags depend on the host kubelet's version for `cri_socket`.
    pub fn needs_kubelet_version(&self, cri_socket: &str) -> bool {
        self.row.asks_kubelet_version && cri_socket == DOCKERSHIM_SOCKET
    }

    /// The runtime flags kubeadm of this version writes for `cri_socket` and the host kubelet
    /// (`None`: no kubelet found, taken to be of the cluster's version).
    pub fn runtime_flags(
        &self,
        cri_socket: &str,
        kubelet: Option<&KubernetesVersion>,
    ) -> RuntimeFlags {
        let dockershim_kubelet = kubelet.is_some_and(|k| k.major() == 1 && k.minor() < 24);
        if self.needs_kubelet_version(cri_socket) && dockershim_kubelet {
            RuntimeFlags::Dockershim
        } else if self.row.container_runtime_remote {
            RuntimeFlags::RemoteWithFlag
        } else {
            RuntimeFlags::Remote
        }
    }
}

/// The container-runtime flags of `kubeadm-flags.env`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeFlags {
    /// `--container-runtime-endpoint` only.
    #[default]
    Remote,
    /// `--container-runtime=remote` and `--container-runtime-endpoint`.
    RemoteWithFlag,
    /// A pre-v1.24 kubelet's built-in dockershim: `--network-plugin=cni`, no runtime flags.
    Dockershim,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(v: &str) -> ClusterRules {
        ClusterRules::for_cluster(Some(&KubernetesVersion::parse(v).unwrap()))
    }

    #[test]
    fn table_rows_cover_the_supported_range_in_order() {
        let minors: Vec<u32> = TABLE.iter().map(|r| r.minor).collect();
        assert_eq!(minors, (OLDEST_MINOR..=NEWEST_MINOR).collect::<Vec<_>>());
        for r in TABLE {
            assert!(
                r.accepted_usages.contains(&r.usages),
                "v1.{}: asks for usages its own approver refuses",
                r.minor
            );
        }
    }

    #[test]
    fn usages_per_version() {
        assert_eq!(rules("v1.24.17").usages(), USAGES_WITH_KEY_ENCIPHERMENT);
        assert_eq!(rules("v1.25.0").usages(), USAGES_WITH_KEY_ENCIPHERMENT);
        assert_eq!(rules("v1.26.15").usages(), USAGES_WITH_KEY_ENCIPHERMENT);
        assert_eq!(rules("v1.27.0").usages(), USAGES_NON_RSA);
        assert_eq!(rules("v1.36.1").usages(), USAGES_NON_RSA);
        assert_eq!(rules("v1.24.0").row.accepted_usages, STRICT);
        assert_eq!(rules("v1.25.0").row.accepted_usages, BOTH);
        // Unknown: the set every version accepts.
        let unknown = ClusterRules::for_cluster(None);
        assert_eq!(unknown.usages(), USAGES_WITH_KEY_ENCIPHERMENT);
        assert!(unknown.warning.unwrap().contains("unknown"));
    }

    #[test]
    fn pause_tags_per_version_and_pre_release() {
        let cases = [
            ("v1.24.0-alpha.1", Some("3.6")),
            ("v1.24.0-beta.0", Some("3.7")),
            ("v1.24.17", Some("3.7")),
            ("v1.25.0-alpha.3", Some("3.7")),
            ("v1.25.16", Some("3.8")),
            ("v1.26.0-beta.0", Some("3.8")),
            ("v1.26.0-rc.0", Some("3.9")),
            ("v1.28.7", Some("3.9")),
            ("v1.30.14", Some("3.9")),
            ("v1.31.0-alpha.1", Some("3.10")),
            ("v1.33.4", Some("3.10")),
            ("v1.34.0-beta.0", Some("3.10")),
            ("v1.34.2", Some("3.10.1")),
            ("v1.35.0", None),
            ("v1.36.3", None),
            // Outside the table: the nearest row as a release.
            ("v1.23.17", Some("3.7")),
            ("v1.40.0", None),
        ];
        for (v, want) in cases {
            assert_eq!(rules(v).pause_tag(), want, "{v}");
        }
    }

    #[test]
    fn runtime_flags_per_version_and_kubelet() {
        let k = |s: &str| KubernetesVersion::parse(s).unwrap();
        let containerd = "unix:///var/run/containerd/containerd.sock";
        assert_eq!(
            rules("v1.24.3").runtime_flags(containerd, None),
            RuntimeFlags::RemoteWithFlag
        );
        assert_eq!(
            rules("v1.25.3").runtime_flags(containerd, None),
            RuntimeFlags::RemoteWithFlag
        );
        assert_eq!(
            rules("v1.26.0").runtime_flags(containerd, None),
            RuntimeFlags::Remote
        );
        // kubeadm v1.24 with a pre-v1.24 kubelet on the dockershim socket.
        let r = rules("v1.24.3");
        assert!(r.needs_kubelet_version(DOCKERSHIM_SOCKET));
        assert!(!r.needs_kubelet_version(containerd));
        assert_eq!(
            r.runtime_flags(DOCKERSHIM_SOCKET, Some(&k("v1.23.17"))),
            RuntimeFlags::Dockershim
        );
        assert_eq!(
            r.runtime_flags(DOCKERSHIM_SOCKET, Some(&k("v1.24.3"))),
            RuntimeFlags::RemoteWithFlag
        );
        assert_eq!(
            r.runtime_flags(DOCKERSHIM_SOCKET, None),
            RuntimeFlags::RemoteWithFlag
        );
        assert_eq!(
            r.runtime_flags(containerd, Some(&k("v1.23.17"))),
            RuntimeFlags::RemoteWithFlag
        );
        // From v1.25 the kubelet's version is not asked.
        assert!(!rules("v1.25.0").needs_kubelet_version(DOCKERSHIM_SOCKET));
    }

    #[test]
    fn the_instance_configuration_follows_the_gate_of_each_version() {
        let at = |v: &str| ClusterRules::for_cluster(Some(&KubernetesVersion::parse(v).unwrap()));
        for (v, default, off, on) in [
            ("v1.31.4", false, false, false),
            ("v1.33.1", false, false, true),
            ("v1.34.2", true, false, true),
            ("v1.35.0", true, false, true),
            ("v1.36.3", true, true, true),
        ] {
            let r = at(v);
            assert_eq!(r.node_local_cri_socket(None), default, "{v}");
            assert_eq!(r.node_local_cri_socket(Some(false)), off, "{v}");
            assert_eq!(r.node_local_cri_socket(Some(true)), on, "{v}");
        }
        assert!(ClusterRules::for_cluster(None).node_local_cri_socket(None));
    }

    #[test]
    fn kubelet_config_map_names() {
        let names = |v: &str, gate| rules(v).kubelet_config_maps(gate);
        assert_eq!(
            names("v1.24.3", None),
            ["kubelet-config", "kubelet-config-1.24"]
        );
        assert_eq!(
            names("v1.24.3", Some(false)),
            ["kubelet-config-1.24", "kubelet-config"]
        );
        assert_eq!(
            names("v1.23.9", None),
            ["kubelet-config-1.23", "kubelet-config"]
        );
        assert_eq!(
            names("v1.23.9", Some(true)),
            ["kubelet-config", "kubelet-config-1.23"]
        );
        // GA and locked from v1.25: the gate value no longer matters.
        assert_eq!(
            names("v1.25.0", Some(false)),
            ["kubelet-config", "kubelet-config-1.25"]
        );
        assert_eq!(
            names("v1.31.1", None),
            ["kubelet-config", "kubelet-config-1.31"]
        );
    }

    #[test]
    fn out_of_range_versions_warn_and_take_the_nearest_row() {
        let old = rules("v1.23.17");
        assert_eq!(old.row.minor, 24);
        assert!(old
            .warning
            .unwrap()
            .contains("older than the oldest supported v1.24"));
        let new = rules("v1.37.0");
        assert_eq!(new.row.minor, NEWEST_MINOR);
        assert!(new.warning.unwrap().contains("newer than the newest known"));
        assert!(rules("v1.30.0").warning.is_none());
        assert_eq!(
            rules("v1.31.0").row.kubeadm_config_api,
            "kubeadm.k8s.io/v1beta4"
        );
        assert_eq!(
            rules("v1.30.0").row.kubeadm_config_api,
            "kubeadm.k8s.io/v1beta3"
        );
    }
}
