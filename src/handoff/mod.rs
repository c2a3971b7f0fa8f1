//! Handing the node over to the kubelet, as a value chosen from the plan.
//!
//! - [`HandoffMode::Exec`]: replace kubejoin with the kubelet (Firecracker jailer style: the
//!   exec returns only on failure). The command line is what the packaging drop-in would run:
//!   `--kubeconfig`, `--config`, then `$KUBELET_KUBEADM_ARGS` read back from
//!   `kubeadm-flags.env` (which already carries `--kubelet-arg` overrides). The environment is
//!   rebuilt from nothing: only `PATH`, so no variable kubejoin was started with (a token, a
//!   proxy) reaches the kubelet.
//! - [`HandoffMode::None`]: return; the process exits 0 and systemd, which ordered
//!   `kubejoin.service` before `kubelet.service`, starts the kubelet.

use crate::error::{Class, Classify};
use crate::fs::root::Root;
use crate::install::{flags, FLAGS_ENV, KUBELET_CONF, KUBELET_CONFIG};
use crate::plan::HandoffMode;
use crate::sys::Exec;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The kubelet's `PATH` (it runs iptables, mount, nsenter… by name).
pub use crate::sys::exec::KUBELET_PATH_ENV;

/// Why the handoff failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the kubelet path {} is not absolute", .0.display())]
    RelativeKubelet(PathBuf),
    #[error("reading {}", path.display())]
    ReadFlags {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {}", path.display())]
    ParseFlags {
        path: PathBuf,
        #[source]
        source: flags::FlagsError,
    },
    #[error("executing the kubelet {}", path.display())]
    Exec {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::RelativeKubelet(_) => Class::Usage,
            _ => Class::Other,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            Error::RelativeKubelet(_) => Some("give --kubelet-path as an absolute path, e.g. /usr/bin/kubelet".into()),
            Error::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Some(
                "install the kubelet there or pass --kubelet-path; the node's files are installed, so \
                 starting the kubelet by other means (or --handoff=none with kubelet.service) also works"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// What exactly is exec'd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSpec {
    pub path: PathBuf,
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
}

/// The kubelet command line from the installed `kubeadm-flags.env` args.
pub fn exec_spec(kubelet: &Path, flags_args: &[String]) -> Result<ExecSpec, Error> {
    if !kubelet.is_absolute() {
        return Err(Error::RelativeKubelet(kubelet.to_path_buf()));
    }
    let mut argv: Vec<OsString> = vec![
        kubelet.as_os_str().to_os_string(),
        format!("--kubeconfig={KUBELET_CONF}").into(),
        format!("--config={KUBELET_CONFIG}").into(),
    ];
    argv.extend(flags_args.iter().map(OsString::from));
    Ok(ExecSpec {
        path: kubelet.to_path_buf(),
        argv,
        env: vec![("PATH".into(), KUBELET_PATH_ENV.into())],
    })
}

/// The args in the installed `kubeadm-flags.env`.
pub fn read_flags(root: &Root) -> Result<Vec<String>, Error> {
    let path = root.join(FLAGS_ENV).map_err(|e| Error::ReadFlags {
        path: PathBuf::from(FLAGS_ENV),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()),
    })?;
    let text = root
        .read_to_string(FLAGS_ENV)
        .map_err(|source| Error::ReadFlags {
            path: path.clone(),
            source,
        })?;
    flags::parse(&text).map_err(|source| Error::ParseFlags { path, source })
}

/// Hands off. `None` returns `Ok(())`; `Exec` returns only if the exec failed.
pub fn handoff(
    mode: HandoffMode,
    kubelet: &Path,
    root: &Root,
    sys: &dyn Exec,
) -> Result<(), Error> {
    match mode {
        HandoffMode::None => {
            crate::info!("handing off to the service manager: kubelet.service can start now");
            Ok(())
        }
        HandoffMode::Exec => {
            let spec = exec_spec(kubelet, &read_flags(root)?)?;
            if !root.is_host() {
                // The kubelet resolves its file arguments from its own `/`: exec'ing it with the
                // node's files under another root is only right after a switch_root.
                crate::warn!(
                    "the node's files are under {root}; the kubelet will read them from its own /"
                );
            }
            crate::info!(
                "executing {}",
                spec.argv
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let source = sys.execve(&spec.path, &spec.argv, &spec.env);
            Err(Error::Exec {
                path: spec.path,
                source,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::exec::{ExecCall, RecordingExec};

    #[test]
    fn exec_passes_installed_flags_and_a_scrubbed_env() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let env = flags::render(&[
            (
                "container-runtime-endpoint".into(),
                "unix:///run/containerd/containerd.sock".into(),
            ),
            ("node-ip".into(), "10.0.0.5".into()),
        ]);
        crate::fs::atomic::write_file(&root, Path::new(FLAGS_ENV), env.as_bytes(), 0o644, 0o755)
            .unwrap();
        let sys = RecordingExec::new("n");
        let e = handoff(
            HandoffMode::Exec,
            Path::new("/usr/bin/kubelet"),
            &root,
            &sys,
        )
        .unwrap_err();
        assert!(matches!(e, Error::Exec { .. }));
        assert_eq!(
            sys.calls(),
            vec![ExecCall::Execve {
                path: "/usr/bin/kubelet".into(),
                argv: vec![
                    "/usr/bin/kubelet".into(),
                    "--kubeconfig=/etc/kubernetes/kubelet.conf".into(),
                    "--config=/var/lib/kubelet/config.yaml".into(),
                    "--container-runtime-endpoint=unix:///run/containerd/containerd.sock".into(),
                    "--node-ip=10.0.0.5".into(),
                ],
                env: vec![("PATH".into(), KUBELET_PATH_ENV.into())],
            }]
        );
    }

    #[test]
    fn none_returns_and_execs_nothing() {
        let sys = RecordingExec::new("n");
        handoff(
            HandoffMode::None,
            Path::new("/usr/bin/kubelet"),
            &Root::new("/nonexistent"),
            &sys,
        )
        .unwrap();
        assert!(sys.calls().is_empty());
    }

    #[test]
    fn failures_are_explained() {
        let e = exec_spec(Path::new("kubelet"), &[]).unwrap_err();
        assert_eq!(e.class(), Class::Usage);
        let t = tempfile::tempdir().unwrap();
        let e = handoff(
            HandoffMode::Exec,
            Path::new("/usr/bin/kubelet"),
            &Root::new(t.path()),
            &RecordingExec::new("n"),
        )
        .unwrap_err();
        assert!(matches!(e, Error::ReadFlags { .. }), "{e:?}");
        let sys = RecordingExec::new("n").failing_execve(std::io::ErrorKind::NotFound);
        crate::fs::atomic::write_file(
            &Root::new(t.path()),
            Path::new(FLAGS_ENV),
            b"KUBELET_KUBEADM_ARGS=\"\"\n",
            0o644,
            0o755,
        )
        .unwrap();
        let e = handoff(
            HandoffMode::Exec,
            Path::new("/usr/bin/kubelet"),
            &Root::new(t.path()),
            &sys,
        )
        .unwrap_err();
        assert!(e.hint().unwrap().contains("--kubelet-path"));
    }
}
