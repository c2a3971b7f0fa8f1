//! All kernel-facing effects behind one narrow trait (youki's syscall seam).
//!
//! [`Sys`] holds the privileged or process-global calls kubejoin makes; [`RealSys`] is one line
//! per method; [`RecordingSys`] records typed [`Call`]s and can inject failures, so the logic
//! around these calls (handoff argv/env, hostname-derived node names) is unit-tested without root
//! and without replacing the test process. The seam is passed in explicitly (`&dyn Sys`), never
//! chosen with `cfg!(test)`.
//!
//! No `unsafe` is needed: exec goes through `std::os::unix::process::CommandExt::exec` and the
//! hostname through `nix`.

pub mod clock;
pub mod configdrive;
pub mod entropy;
pub mod host;
pub mod init;

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub mod net;
mod rtnl;

/// The `PATH` of programs kubejoin starts (the kubelet runs iptables, mount, nsenter… by name).
pub const KUBELET_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The privileged effects kubejoin performs.
pub trait Sys: fmt::Debug + Send + Sync {
    /// Replaces this process with `path`, running with exactly `argv` (argv[0] included) and
    /// exactly `env` (nothing inherited). Returns only when the exec failed.
    fn execve(&self, path: &Path, argv: &[OsString], env: &[(OsString, OsString)]) -> io::Error;

    /// The kernel's hostname (UTS namespace), as `uname -n` prints it.
    fn hostname(&self) -> io::Result<String>;

    /// Runs `path` with `args` in an empty environment (only `PATH`), no stdin, and returns its
    /// standard output once it exits 0; killed and `TimedOut` after `timeout`. For
    /// `kubelet --version`.
    fn output(&self, path: &Path, args: &[&str], timeout: Duration) -> io::Result<Vec<u8>>;
}

/// The real system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealSys;

impl Sys for RealSys {
    fn execve(&self, path: &Path, argv: &[OsString], env: &[(OsString, OsString)]) -> io::Error {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = std::process::Command::new(path);
        if let Some((arg0, rest)) = argv.split_first() {
            cmd.arg0(arg0).args(rest);
        }
        // env_clear first: nothing kubejoin was started with (a token in the environment, a
        // proxy setting) may leak into the kubelet.
        cmd.env_clear().envs(env.iter().map(|(k, v)| (k, v))).exec()
    }

    fn hostname(&self) -> io::Result<String> {
        nix::unistd::gethostname()
            .map_err(io::Error::from)
            .map(|h| h.to_string_lossy().into_owned())
    }

    fn output(&self, path: &Path, args: &[&str], timeout: Duration) -> io::Result<Vec<u8>> {
        use std::io::Read as _;
        use std::process::{Command, Stdio};
        let mut child = Command::new(path)
            .args(args)
            .env_clear()
            .env("PATH", KUBELET_PATH_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        // A version query prints a line and exits; a program that hangs must not hold the join.
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} did not exit within {timeout:?}", path.display()),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let mut out = Vec::new();
        if let Some(mut stdout) = child.stdout.take() {
            // Bounded: a version line is short.
            stdout.by_ref().take(64 * 1024).read_to_end(&mut out)?;
        }
        if !status.success() {
            return Err(io::Error::other(format!(
                "{} exited with {status}",
                path.display()
            )));
        }
        Ok(out)
    }
}

/// One recorded call on [`RecordingSys`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Execve {
        path: PathBuf,
        argv: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
    },
    Hostname,
    Output {
        path: PathBuf,
        args: Vec<String>,
    },
}

/// A fake that records every call and answers from its configuration.
///
/// `execve` never replaces the process: it records the call and returns an error (by default of
/// kind `Other`, "exec not performed"), exactly as a real exec that returned would.
#[derive(Debug)]
pub struct RecordingSys {
    calls: Mutex<Vec<Call>>,
    hostname: Result<String, io::ErrorKind>,
    execve_error: io::ErrorKind,
    output: Result<Vec<u8>, io::ErrorKind>,
}

impl RecordingSys {
    /// A fake whose hostname is `hostname`.
    pub fn new(hostname: &str) -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            hostname: Ok(hostname.to_string()),
            execve_error: io::ErrorKind::Other,
            output: Err(io::ErrorKind::NotFound),
        }
    }

    /// Makes `output()` return `stdout` (by default it fails with `NotFound`, as for a
    /// program that is not installed).
    pub fn with_output(mut self, stdout: &[u8]) -> Self {
        self.output = Ok(stdout.to_vec());
        self
    }

    /// Makes `hostname()` fail with `kind`.
    pub fn failing_hostname(mut self, kind: io::ErrorKind) -> Self {
        self.hostname = Err(kind);
        self
    }

    /// Makes `execve()` return an error of `kind` (e.g. `NotFound` for a missing kubelet).
    pub fn failing_execve(mut self, kind: io::ErrorKind) -> Self {
        self.execve_error = kind;
        self
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: Call) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }
}

impl Sys for RecordingSys {
    fn execve(&self, path: &Path, argv: &[OsString], env: &[(OsString, OsString)]) -> io::Error {
        self.record(Call::Execve {
            path: path.to_path_buf(),
            argv: argv.to_vec(),
            env: env.to_vec(),
        });
        io::Error::new(self.execve_error, "exec not performed (recording fake)")
    }

    fn hostname(&self) -> io::Result<String> {
        self.record(Call::Hostname);
        self.hostname
            .clone()
            .map_err(|k| io::Error::new(k, "hostname unavailable (recording fake)"))
    }

    fn output(&self, path: &Path, args: &[&str], _timeout: Duration) -> io::Result<Vec<u8>> {
        self.record(Call::Output {
            path: path.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
        });
        self.output
            .clone()
            .map_err(|k| io::Error::new(k, "no output (recording fake)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_hostname_is_not_empty() {
        assert!(!RealSys.hostname().unwrap().is_empty());
    }

    #[test]
    fn real_output_returns_stdout_and_bounds_the_run() {
        let out = RealSys
            .output(
                Path::new("/bin/sh"),
                &["-c", "echo Kubernetes v1.23.17; echo ignored >&2"],
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(out, b"Kubernetes v1.23.17\n");
        let e = RealSys
            .output(
                Path::new("/bin/sh"),
                &["-c", "exit 3"],
                Duration::from_secs(10),
            )
            .unwrap_err();
        assert!(e.to_string().contains("exited with"), "{e}");
        let e = RealSys
            .output(
                Path::new("/bin/sh"),
                &["-c", "sleep 5"],
                Duration::from_millis(100),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let e = RealSys
            .output(
                Path::new("/nonexistent/kubelet"),
                &["--version"],
                Duration::from_secs(1),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn real_execve_of_a_missing_program_returns_not_found() {
        let e = RealSys.execve(Path::new("/nonexistent/kubelet"), &["kubelet".into()], &[]);
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn fake_records_calls_and_injects_errors() {
        let fake = RecordingSys::new("Node-A").failing_execve(io::ErrorKind::PermissionDenied);
        assert_eq!(fake.hostname().unwrap(), "Node-A");
        let e = fake.execve(
            Path::new("/usr/bin/kubelet"),
            &["kubelet".into(), "--v=2".into()],
            &[("PATH".into(), "/usr/bin".into())],
        );
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert_eq!(
            fake.calls(),
            vec![
                Call::Hostname,
                Call::Execve {
                    path: "/usr/bin/kubelet".into(),
                    argv: vec!["kubelet".into(), "--v=2".into()],
                    env: vec![("PATH".into(), "/usr/bin".into())],
                }
            ]
        );
        let broken = RecordingSys::new("x").failing_hostname(io::ErrorKind::PermissionDenied);
        assert_eq!(
            broken.hostname().unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
    }
}
