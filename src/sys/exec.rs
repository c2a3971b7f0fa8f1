//! Process effects: replacing this process (the kubelet handoff, switch-root's init, the
//! failure shell), running a program for its output (`kubelet --version`), and the kernel's
//! hostname (the default node name).
//!
//! No `unsafe` is needed: exec goes through `std::os::unix::process::CommandExt::exec` and the
//! hostname through `nix`.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The `PATH` of programs kubejoin starts (the kubelet runs iptables, mount, nsenter… by name).
pub const KUBELET_PATH_ENV: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The privileged effects kubejoin performs.
pub trait Exec: fmt::Debug + Send + Sync {
    /// Replaces this process with `path`, running with exactly `argv` (argv[0] included) and
    /// exactly `env` (nothing inherited). Returns only when the exec failed.
    fn execve(&self, path: &Path, argv: &[OsString], env: &[(OsString, OsString)]) -> io::Error;

    /// The kernel's hostname (UTS namespace), as `uname -n` prints it.
    fn hostname(&self) -> io::Result<String>;

    /// Runs `path` with `args` in an empty environment (only `PATH`), no stdin, and returns its
    /// standard output once it exits 0; killed and `TimedOut` after `timeout`. For
    /// `kubelet --version`.
    fn output(&self, path: &Path, args: &[&str], timeout: Duration) -> io::Result<Vec<u8>>;

    /// Starts `path` with exactly `argv` and `env` as a detached child in a session of its own
    /// (no stdin; stdout and stderr shared with this process, the console under PID 1), and
    /// returns its pid without waiting: PID 1 starts the control-plane join's finish step this
    /// way just before it execs the kubelet, which then is the child's parent.
    fn spawn_detached(
        &self,
        path: &Path,
        argv: &[OsString],
        env: &[(OsString, OsString)],
    ) -> io::Result<u32>;
}

/// The real system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealExec;

impl Exec for RealExec {
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

    fn spawn_detached(
        &self,
        path: &Path,
        argv: &[OsString],
        env: &[(OsString, OsString)],
    ) -> io::Result<u32> {
        use std::os::unix::process::CommandExt as _;
        use std::process::{Command, Stdio};
        let mut cmd = Command::new(path);
        if let Some((arg0, rest)) = argv.split_first() {
            cmd.arg0(arg0).args(rest);
        }
        // A session of its own: the console's hangup or a signal to PID 1's process group
        // (the kubelet's, after the exec) does not reach the finish step. `process_group(0)`
        // is the safe subset std offers (setsid needs a pre_exec hook, i.e. unsafe).
        cmd.env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .process_group(0);
        // Not waited for: the kubelet, exec'd into this process, becomes its parent.
        cmd.spawn().map(|c| c.id())
    }
}

/// One recorded call on [`RecordingExec`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecCall {
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
    SpawnDetached {
        path: PathBuf,
        argv: Vec<OsString>,
        env: Vec<(OsString, OsString)>,
    },
}

/// A fake that records every call and answers from its configuration.
///
/// `execve` never replaces the process: it records the call and returns an error (by default of
/// kind `Other`, "exec not performed"), exactly as a real exec that returned would.
#[derive(Debug)]
pub struct RecordingExec {
    calls: Mutex<Vec<ExecCall>>,
    hostname: Result<String, io::ErrorKind>,
    execve_error: io::ErrorKind,
    output: Result<Vec<u8>, io::ErrorKind>,
    spawn: Result<u32, io::ErrorKind>,
}

impl RecordingExec {
    /// A fake whose hostname is `hostname`.
    pub fn new(hostname: &str) -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            hostname: Ok(hostname.to_string()),
            execve_error: io::ErrorKind::Other,
            output: Err(io::ErrorKind::NotFound),
            spawn: Ok(4242),
        }
    }

    /// Makes `spawn_detached()` fail with `kind` (by default it answers pid 4242).
    pub fn failing_spawn(mut self, kind: io::ErrorKind) -> Self {
        self.spawn = Err(kind);
        self
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
    pub fn calls(&self) -> Vec<ExecCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    fn record(&self, call: ExecCall) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(call);
        }
    }
}

impl Exec for RecordingExec {
    fn execve(&self, path: &Path, argv: &[OsString], env: &[(OsString, OsString)]) -> io::Error {
        self.record(ExecCall::Execve {
            path: path.to_path_buf(),
            argv: argv.to_vec(),
            env: env.to_vec(),
        });
        io::Error::new(self.execve_error, "exec not performed (recording fake)")
    }

    fn hostname(&self) -> io::Result<String> {
        self.record(ExecCall::Hostname);
        self.hostname
            .clone()
            .map_err(|k| io::Error::new(k, "hostname unavailable (recording fake)"))
    }

    fn output(&self, path: &Path, args: &[&str], _timeout: Duration) -> io::Result<Vec<u8>> {
        self.record(ExecCall::Output {
            path: path.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
        });
        self.output
            .clone()
            .map_err(|k| io::Error::new(k, "no output (recording fake)"))
    }

    fn spawn_detached(
        &self,
        path: &Path,
        argv: &[OsString],
        env: &[(OsString, OsString)],
    ) -> io::Result<u32> {
        self.record(ExecCall::SpawnDetached {
            path: path.to_path_buf(),
            argv: argv.to_vec(),
            env: env.to_vec(),
        });
        self.spawn
            .map_err(|k| io::Error::new(k, "spawn not performed (recording fake)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_hostname_is_not_empty() {
        assert!(!RealExec.hostname().unwrap().is_empty());
    }

    #[test]
    fn real_output_returns_stdout_and_bounds_the_run() {
        let out = RealExec
            .output(
                Path::new("/bin/sh"),
                &["-c", "echo Kubernetes v1.23.17; echo ignored >&2"],
                Duration::from_secs(10),
            )
            .unwrap();
        assert_eq!(out, b"Kubernetes v1.23.17\n");
        let e = RealExec
            .output(
                Path::new("/bin/sh"),
                &["-c", "exit 3"],
                Duration::from_secs(10),
            )
            .unwrap_err();
        assert!(e.to_string().contains("exited with"), "{e}");
        let e = RealExec
            .output(
                Path::new("/bin/sh"),
                &["-c", "sleep 5"],
                Duration::from_millis(100),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let e = RealExec
            .output(
                Path::new("/nonexistent/kubelet"),
                &["--version"],
                Duration::from_secs(1),
            )
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn real_spawn_detached_runs_the_program_with_only_the_given_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let pid = RealExec
            .spawn_detached(
                Path::new("/bin/sh"),
                &[
                    "finish".into(),
                    "-c".into(),
                    format!(
                        "echo \"$0 $PATH ${{HOME:-unset}}\" > {}.tmp && mv {0}.tmp {0}",
                        out.display()
                    )
                    .into(),
                ],
                &[("PATH".into(), "/usr/bin:/bin".into())],
            )
            .unwrap();
        assert!(pid > 0);
        let started = std::time::Instant::now();
        while !out.exists() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "finish /usr/bin:/bin unset\n"
        );
        let e = RealExec
            .spawn_detached(Path::new("/nonexistent/kubejoin"), &["x".into()], &[])
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn real_execve_of_a_missing_program_returns_not_found() {
        let e = RealExec.execve(Path::new("/nonexistent/kubelet"), &["kubelet".into()], &[]);
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn fake_records_calls_and_injects_errors() {
        let fake = RecordingExec::new("Node-A").failing_execve(io::ErrorKind::PermissionDenied);
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
                ExecCall::Hostname,
                ExecCall::Execve {
                    path: "/usr/bin/kubelet".into(),
                    argv: vec!["kubelet".into(), "--v=2".into()],
                    env: vec![("PATH".into(), "/usr/bin".into())],
                }
            ]
        );
        let broken = RecordingExec::new("x").failing_hostname(io::ErrorKind::PermissionDenied);
        assert_eq!(
            broken.hostname().unwrap_err().kind(),
            io::ErrorKind::PermissionDenied
        );
    }
}
