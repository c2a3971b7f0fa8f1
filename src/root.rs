//! Paths under an injectable root.
//!
//! Every host path kubejoin touches is written as the node sees it (`/etc/kubernetes/kubelet.conf`)
//! and turned into a real path with [`Root::join`]. On a booted node the root is `/`; from an
//! initramfs it is `/sysroot`; in tests it is a temporary directory. Paths that would climb out
//! of the root (`..`) are refused, so a hostile or buggy input cannot write outside it.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// The directory that stands for the node's `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

/// A node path that cannot be placed under the root.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path {path:?} escapes the root directory {root:?} (it contains `..`)")]
pub struct RootError {
    pub root: PathBuf,
    pub path: PathBuf,
}

impl Root {
    /// A root at `dir` (`/` for the running system).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self(dir.into())
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Whether this is the running system's `/`.
    pub fn is_host(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// The real path of `node_path` (absolute as the node sees it, or relative to the root).
    /// `.` components are dropped; `..` is refused rather than resolved, because resolving it
    /// lexically could still leave the root once symlinks are involved.
    pub fn join(&self, node_path: impl AsRef<Path>) -> Result<PathBuf, RootError> {
        let node_path = node_path.as_ref();
        let mut out = self.0.clone();
        for c in node_path.components() {
            match c {
                Component::RootDir | Component::CurDir => {}
                Component::Normal(part) => out.push(part),
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(RootError {
                        root: self.0.clone(),
                        path: node_path.to_path_buf(),
                    })
                }
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_absolute_and_relative_node_paths() {
        let r = Root::new("/sysroot");
        assert_eq!(
            r.join("/etc/kubernetes/kubelet.conf").unwrap(),
            PathBuf::from("/sysroot/etc/kubernetes/kubelet.conf")
        );
        assert_eq!(
            r.join("var/lib/./kubelet").unwrap(),
            PathBuf::from("/sysroot/var/lib/kubelet")
        );
        assert_eq!(
            Root::new("/").join("/etc/x").unwrap(),
            PathBuf::from("/etc/x")
        );
        assert!(Root::new("/").is_host());
        assert!(!r.is_host());
    }

    #[test]
    fn refuses_parent_components() {
        let r = Root::new("/sysroot");
        for bad in ["/../etc/shadow", "etc/../../x", ".."] {
            let e = r.join(bad).unwrap_err();
            assert_eq!(e.path, PathBuf::from(bad));
            assert!(e.to_string().contains("escapes the root"), "{e}");
        }
    }
}
