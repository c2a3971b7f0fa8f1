//! The Kubernetes version this control plane behaves as, and what differs by version in what a
//! worker join touches. Taken from upstream at the version tags (kubernetes/kubernetes; "PR n"
//! is a pull request whose release note states the behaviour), independently of kubejoin's own
//! table, so the join is checked against a second reading of the sources:
//!
//! - kubelet client CSRs (`pkg/apis/certificates/helpers.go` `ValidateKubeletClientCSR`, used
//!   by the approver `pkg/controller/certificates/approver/sarapprove.go` and the signer
//!   `pkg/controller/certificates/signer/signer.go`): up to v1.24 the usages must be exactly
//!   {digital signature, key encipherment, client auth}; from v1.25 (PR 111061) also
//!   {digital signature, client auth}.
//! - The kubelet-config ConfigMap (kubeadm `UnversionedKubeletConfigMap`): `kubelet-config-1.X`
//!   by default up to v1.23 (PR 105741), `kubelet-config` by default in v1.24 (PR 108027, the
//!   gate may still be set false), always from v1.25 (PR 110327).
//! - The `ClusterConfiguration` kubeadm uploads to `kubeadm-config`: `kubeadm.k8s.io/v1beta2`
//!   up to v1.21, `v1beta3` v1.22–v1.30, `v1beta4` from v1.31.
//! - kubeadm's default `imageRepository`: `k8s.gcr.io` up to v1.24, `registry.k8s.io` from
//!   v1.25 (PR 109938).

use crate::Error;

/// A parsed `vMAJOR.MINOR.PATCH[-pre][+build]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServerVersion {
    pub major: u32,
    pub minor: u32,
    /// As given, with a `v` prefix (`v1.24.0-alpha.1`).
    pub text: String,
}

impl ServerVersion {
    /// `v1.28.7`, `1.28.7`, or `X.Y` (taken as `vX.Y.0`).
    pub(crate) fn parse(s: &str) -> Result<ServerVersion, Error> {
        let bad = || {
            Error::Config(format!(
                "{s:?} is not a Kubernetes version like v1.28.7 or 1.28"
            ))
        };
        let bare = s.trim().trim_start_matches('v');
        let core = bare.split(['-', '+']).next().unwrap_or_default();
        let nums: Vec<&str> = core.split('.').collect();
        if !(2..=3).contains(&nums.len())
            || nums
                .iter()
                .any(|n| n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(bad());
        }
        let major = nums[0].parse().map_err(|_| bad())?;
        let minor = nums[1].parse().map_err(|_| bad())?;
        let text = if nums.len() == 2 {
            format!("v{bare}.0")
        } else {
            format!("v{bare}")
        };
        Ok(ServerVersion { major, minor, text })
    }

    /// The kubelet client CSR usages must be exactly the set with key encipherment.
    pub(crate) fn strict_kubelet_client_usages(&self) -> bool {
        self.major == 1 && self.minor < 25
    }

    /// `apiVersion` of the `ClusterConfiguration` kubeadm of this version uploads.
    pub(crate) fn kubeadm_config_api(&self) -> &'static str {
        match self.minor {
            m if self.major == 1 && m < 22 => "kubeadm.k8s.io/v1beta2",
            m if self.major == 1 && m < 31 => "kubeadm.k8s.io/v1beta3",
            _ => "kubeadm.k8s.io/v1beta4",
        }
    }

    /// kubeadm's default `imageRepository` for this version.
    pub(crate) fn default_image_repository(&self) -> &'static str {
        if self.major == 1 && self.minor < 25 {
            "k8s.gcr.io"
        } else {
            "registry.k8s.io"
        }
    }

    /// The kubelet-config ConfigMap name with `UnversionedKubeletConfigMap` set to `gate`
    /// (`None`: this version's default). Setting it to false from v1.25 is refused, as kubeadm
    /// refuses a locked gate.
    pub(crate) fn kubelet_config_map(&self, gate: Option<bool>) -> Result<String, Error> {
        let unversioned = match (self.major == 1, self.minor, gate) {
            (true, m, g) if m < 24 => g.unwrap_or(false),
            (true, 24, g) => g.unwrap_or(true),
            (_, _, Some(false)) => {
                return Err(Error::Config(format!(
                    "UnversionedKubeletConfigMap is locked to true from v1.25 (this is {})",
                    self.text
                )))
            }
            _ => true,
        };
        Ok(if unversioned {
            "kubelet-config".to_string()
        } else {
            format!("kubelet-config-{}.{}", self.major, self.minor)
        })
    }
}

/// `Some(N)` for `kubelet-config-1.N`, `None` for `kubelet-config`; anything else is refused.
pub(crate) fn legacy_minor(name: &str) -> Result<Option<u32>, Error> {
    if name == "kubelet-config" {
        return Ok(None);
    }
    name.strip_prefix("kubelet-config-1.")
        .and_then(|m| m.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            Error::Config(format!(
                "kubelet-config ConfigMap name {name:?}: expected kubelet-config or kubelet-config-1.N"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> ServerVersion {
        ServerVersion::parse(s).unwrap()
    }

    #[test]
    fn parses_and_derives_per_version_facts() {
        assert_eq!(v("1.24").text, "v1.24.0");
        assert_eq!(v("v1.24.0-alpha.1").text, "v1.24.0-alpha.1");
        assert_eq!(v("v1.24.0-alpha.1").minor, 24);
        assert!(ServerVersion::parse("latest").is_err());
        assert!(ServerVersion::parse("v1").is_err());
        assert_eq!(v("v1.21.14").kubeadm_config_api(), "kubeadm.k8s.io/v1beta2");
        assert_eq!(v("v1.30.1").kubeadm_config_api(), "kubeadm.k8s.io/v1beta3");
        assert_eq!(v("v1.31.0").kubeadm_config_api(), "kubeadm.k8s.io/v1beta4");
        assert!(v("v1.24.9").strict_kubelet_client_usages());
        assert!(!v("v1.25.0").strict_kubelet_client_usages());
        assert_eq!(
            v("v1.23.1").kubelet_config_map(None).unwrap(),
            "kubelet-config-1.23"
        );
        assert_eq!(
            v("v1.24.1").kubelet_config_map(None).unwrap(),
            "kubelet-config"
        );
        assert_eq!(
            v("v1.24.1").kubelet_config_map(Some(false)).unwrap(),
            "kubelet-config-1.24"
        );
        assert!(v("v1.25.0").kubelet_config_map(Some(false)).is_err());
        assert_eq!(v("v1.24.1").default_image_repository(), "k8s.gcr.io");
        assert_eq!(v("v1.25.1").default_image_repository(), "registry.k8s.io");
    }
}
