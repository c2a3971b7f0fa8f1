//! [`KubernetesVersion`]: a Kubernetes release as `kubeadm-config` and `kubelet --version` name it
//! (`v1.28.7`, `v1.24.0-alpha.1`, `Kubernetes v1.30.2`), ordered as semantic versions so that a
//! pre-release comes before its release (`v1.24.0-alpha.1 < v1.24.0-beta.0 < v1.24.0`).
//!
//! Build metadata (`+k3s1`, `+rke2r1`) and the `-dirty`/git suffixes a distribution appends to the
//! pre-release are kept for display; only the leading pre-release identifiers matter for order.

use std::cmp::Ordering;
use std::fmt;

/// One pre-release identifier: numeric ones compare as numbers and sort before alphanumeric ones
/// (semver §11.4).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ident {
    Num(u64),
    Alpha(String),
}

impl Ord for Ident {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Ident::Num(a), Ident::Num(b)) => a.cmp(b),
            (Ident::Num(_), Ident::Alpha(_)) => Ordering::Less,
            (Ident::Alpha(_), Ident::Num(_)) => Ordering::Greater,
            (Ident::Alpha(a), Ident::Alpha(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Ident {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// A Kubernetes version: `major.minor.patch`, optional pre-release, optional build metadata
/// (which, as in semver, takes no part in equality or order).
#[derive(Debug, Clone)]
pub struct KubernetesVersion {
    major: u32,
    minor: u32,
    patch: u32,
    pre: Vec<Ident>,
    build: String,
}

/// Why a version string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a Kubernetes version (expected e.g. v1.28.7 or v1.24.0-alpha.1)")]
pub struct VersionError(pub String);

impl KubernetesVersion {
    /// `major.minor.patch` without pre-release.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
            pre: Vec::new(),
            build: String::new(),
        }
    }

    /// Parses `v1.28.7`, `1.28.7`, `v1.28` (patch 0), `v1.24.0-alpha.1`, `v1.30.2+k3s1`.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let bad = || VersionError(text.to_string());
        let s = text.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let (s, build) = match s.split_once('+') {
            Some((v, b)) => (v, b.to_string()),
            None => (s, String::new()),
        };
        let (core, pre) = match s.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (s, None),
        };
        let mut nums = core.split('.');
        let mut num = |required: bool| -> Result<u32, VersionError> {
            match nums.next() {
                Some(n) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse().map_err(|_| bad())
                }
                None if !required => Ok(0),
                _ => Err(bad()),
            }
        };
        let major = num(true)?;
        let minor = num(true)?;
        let patch = num(false)?;
        if nums.next().is_some() {
            return Err(bad());
        }
        let pre = match pre {
            None => Vec::new(),
            Some("") => return Err(bad()),
            Some(p) => p
                .split('.')
                .map(|id| {
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        Err(bad())
                    } else if id.bytes().all(|b| b.is_ascii_digit()) {
                        id.parse().map(Ident::Num).map_err(|_| bad())
                    } else {
                        Ok(Ident::Alpha(id.to_string()))
                    }
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            major,
            minor,
            patch,
            pre,
            build,
        })
    }

    /// The version in the output of `kubelet --version` (`Kubernetes v1.30.2`).
    pub fn from_kubelet_output(output: &str) -> Result<Self, VersionError> {
        let line = output.lines().next().unwrap_or("").trim();
        let v = line.strip_prefix("Kubernetes ").unwrap_or(line);
        Self::parse(v).map_err(|_| VersionError(line.to_string()))
    }

    pub fn major(&self) -> u32 {
        self.major
    }

    pub fn minor(&self) -> u32 {
        self.minor
    }

    pub fn patch(&self) -> u32 {
        self.patch
    }

    /// Has a pre-release part (`-alpha.1`, `-rc.0`).
    pub fn is_pre_release(&self) -> bool {
        !self.pre.is_empty()
    }

    /// `v1.X.0` of this minor.
    pub fn minor_release(&self) -> Self {
        Self::new(self.major, self.minor, 0)
    }
}

impl Ord for KubernetesVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A pre-release comes before its release.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialEq for KubernetesVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for KubernetesVersion {}

impl PartialOrd for KubernetesVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for KubernetesVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)?;
        for (i, id) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            match id {
                Ident::Num(n) => write!(f, "{n}")?,
                Ident::Alpha(s) => f.write_str(s)?,
            }
        }
        if !self.build.is_empty() {
            write!(f, "+{}", self.build)?;
        }
        Ok(())
    }
}

impl std::str::FromStr for KubernetesVersion {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubernetesVersion {
        KubernetesVersion::parse(s).unwrap()
    }

    #[test]
    fn parses_what_clusters_and_kubelets_print() {
        assert_eq!(v("v1.28.7"), KubernetesVersion::new(1, 28, 7));
        assert_eq!(v("1.28.7"), KubernetesVersion::new(1, 28, 7));
        assert_eq!(v("v1.30"), KubernetesVersion::new(1, 30, 0));
        assert_eq!(v("v1.24.0-alpha.1").to_string(), "v1.24.0-alpha.1");
        assert_eq!(v("v1.30.2+k3s1").to_string(), "v1.30.2+k3s1");
        assert_eq!(v("v1.30.2+k3s1").minor(), 30);
        assert_eq!(
            KubernetesVersion::from_kubelet_output("Kubernetes v1.23.17\n").unwrap(),
            KubernetesVersion::new(1, 23, 17)
        );
        for bad in [
            "",
            "v",
            "1",
            "v1.",
            "v1.x.0",
            "v1.2.3.4",
            "v1.2.3-",
            "v1.2.3-a..b",
            "latest",
            "v1.2.3-a_b",
        ] {
            assert!(KubernetesVersion::parse(bad).is_err(), "{bad:?}");
        }
        let e = KubernetesVersion::from_kubelet_output("kubelet: command not found").unwrap_err();
        assert!(e.to_string().contains("kubelet: command not found"), "{e}");
    }

    #[test]
    fn orders_pre_releases_before_their_release() {
        let order = [
            "v1.23.17",
            "v1.24.0-alpha.1",
            "v1.24.0-alpha.4",
            "v1.24.0-beta.0",
            "v1.24.0-rc.1",
            "v1.24.0",
            "v1.24.1",
            "v1.25.0-alpha.3",
            "v1.25.0",
        ];
        for w in order.windows(2) {
            assert!(v(w[0]) < v(w[1]), "{} < {}", w[0], w[1]);
        }
        assert!(
            v("v1.2.3-alpha.10") > v("v1.2.3-alpha.9"),
            "numeric identifiers"
        );
        assert_eq!(v("v1.2.3+a"), v("v1.2.3+b"));
        assert_eq!(v("v1.24.7").minor_release(), v("v1.24.0"));
    }
}
