//! Fault survival: the real `kubejoin` binary against a test control plane that misbehaves.
//!
//! Under each **transient** fault (down then up, 500/503/429 with `Retry-After` on each endpoint
//! class, a reset mid-body, a stalled request, watch streams cut, a certificate issued late, a
//! lagging bootstrap signer, a concurrency cap) the join must complete: exit 0, the node's files
//! on disk with the certificate the server issued, exactly one CSR. The server's request log
//! shows the retries: how many, and that none came earlier than a `Retry-After` asked.
//!
//! Under each **permanent** one (token rejected, RBAC, wrong pin, bad JWS, malformed data, CSR
//! denied, a Ready node of the same name) it must stop promptly, well before its deadline, with
//! the documented exit class and a reason that names the problem, and install nothing.
//!
//! Under a **restart of the control plane** (the port refusing, then the startup window of a
//! kube-apiserver whose caches are not synced: 403 to anonymous requests, 401 to the token) at
//! each stage of the join, and a cold start of several nodes before the control plane is up,
//! every join completes; the request log shows the refusals seen and retried.
//!
//! Every run is a child process into its own temporary `--root` (nothing on this machine is
//! touched; host preparation is skipped for a root other than `/`), with `--handoff none` (the
//! default), loopback only, killed after a minute; fault windows are a second or two.

// Helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin_testcp::{
    Action, Approval, Config, DownMode, Faults, Handle, InFlightLimit, NodeSpec, RequestFault,
    RequestRecord, Restart, TokenSpec, WatchCut,
};
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const BIN: &str = env!("CARGO_BIN_EXE_kubejoin");
const NODE: &str = "fault-node";
const SECRET: &str = "0123456789abcdef";
const CLUSTER_INFO: &str = "/api/v1/namespaces/kube-public/configmaps/cluster-info";
const CONFIGMAPS: &str = "/api/v1/namespaces/kube-system/configmaps";
const CSRS: &str = "/apis/certificates.k8s.io/v1/certificatesigningrequests";
/// Bound of one run of the binary.
const RUN_LIMIT: Duration = Duration::from_secs(60);
/// Slack for comparing the server's arrival times with a `Retry-After` (clock granularity).
const SLACK: Duration = Duration::from_millis(50);

fn start(config: Config) -> Handle {
    kubejoin_testcp::start(config).expect("test control plane starts")
}

fn with_faults(faults: Faults) -> Handle {
    start(Config {
        faults,
        ..Config::default()
    })
}

fn status(code: u16, retry_after: Option<&str>) -> Action {
    Action::Status {
        code,
        retry_after: retry_after.map(str::to_string),
    }
}

// ---- running the binary ----

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

/// Runs the binary with `args`; killed (and the test failed) after [`RUN_LIMIT`].
fn kubejoin(args: &[String]) -> Run {
    let t0 = Instant::now();
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubejoin");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "kubejoin {args:?} ran longer than {RUN_LIMIT:?}:\n{}",
                err_t.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let run = Run {
        code: status.code().unwrap_or(-1),
        stdout: out_t.join().unwrap(),
        stderr: err_t.join().unwrap(),
        took: t0.elapsed(),
    };
    // Shown with --nocapture: what an operator would read.
    eprintln!("{}", run.show());
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "the token secret was printed:\n{}",
        run.show()
    );
    run
}

/// `kubejoin join` against `cp` into `root` as node [`NODE`], with short retry intervals;
/// `extra` flags come last.
fn join_args(cp: &Handle, root: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = support::join_args(cp, &cp.token(), NODE, root);
    args.extend(
        ["--discovery-retry-interval", "200ms", "--handoff", "none"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
    );
    args
}

fn join(cp: &Handle, extra: &[&str]) -> (Run, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let run = kubejoin(&join_args(cp, root.path(), extra));
    (run, root)
}

// ---- what a completed or refused join leaves ----

fn p(root: &Path, node_path: &str) -> std::path::PathBuf {
    root.join(node_path.trim_start_matches('/'))
}

/// Exit 0, exactly one CSR on the server, and on disk the kubelet's files with the very
/// certificate the server issued for that CSR.
fn assert_joined(run: &Run, cp: &Handle, root: &Path) {
    assert_eq!(run.code, 0, "{}", run.show());
    let csrs = cp.csrs();
    assert_eq!(csrs.len(), 1, "exactly one CSR: {csrs:?}");
    let issued = csrs[0]["status"]["certificate"]
        .as_str()
        .expect("the CSR has its certificate");
    use base64::Engine as _;
    let issued = base64::engine::general_purpose::STANDARD
        .decode(issued)
        .unwrap();
    let issued = String::from_utf8(issued).unwrap();
    // kubelet-client-current.pem is a symlink to the dated file, by its node path.
    let link = p(root, kubejoin::install::CLIENT_CURRENT);
    let target = std::fs::read_link(&link)
        .unwrap_or_else(|e| panic!("reading the node certificate link: {e}\n{}", run.show()));
    let target = if target.is_absolute() {
        p(root, target.to_str().unwrap())
    } else {
        link.parent().unwrap().join(target)
    };
    let current = std::fs::read_to_string(&target)
        .unwrap_or_else(|e| panic!("reading {}: {e}", target.display()));
    assert!(
        current.contains(issued.trim()) && current.contains("PRIVATE KEY"),
        "kubelet-client-current.pem holds the issued certificate and its key"
    );
    let kubelet_conf = std::fs::read_to_string(p(root, kubejoin::install::KUBELET_CONF)).unwrap();
    assert!(
        kubelet_conf.contains(kubejoin::install::CLIENT_CURRENT)
            && kubelet_conf.contains(&cp.endpoint()),
        "{kubelet_conf}"
    );
    assert!(p(root, kubejoin::install::CA_CRT).is_file());
    assert!(p(root, kubejoin::install::KUBELET_CONFIG).is_file());
    assert!(p(root, kubejoin::install::RESULT_JSON).is_file());
}

/// Nothing a kubelet would read was installed (a pending key may stay for a re-run).
fn assert_not_joined(root: &Path) {
    for f in [
        kubejoin::install::KUBELET_CONF,
        kubejoin::install::CLIENT_CURRENT,
        kubejoin::install::CA_CRT,
        kubejoin::install::KUBELET_CONFIG,
    ] {
        assert!(!p(root, f).exists(), "{f} was installed");
    }
}

// ---- the request log ----

fn path_only(r: &RequestRecord) -> &str {
    r.path.split('?').next().unwrap_or_default()
}

fn is_watch(r: &RequestRecord) -> bool {
    r.path.contains("watch=true") || r.path.contains("watch=1")
}

/// The requests whose path (query excluded) starts with `prefix`.
fn under(cp: &Handle, prefix: &str) -> Vec<RequestRecord> {
    cp.requests()
        .into_iter()
        .filter(|r| path_only(r).starts_with(prefix))
        .collect()
}

fn gap(a: &RequestRecord, b: &RequestRecord) -> Duration {
    b.time.duration_since(a.time).unwrap_or_default()
}

/// Every request in `log` answered `code` is followed in `log` by one that came no earlier than
/// `retry_after` after it; returns how many were faulted.
fn assert_retry_after_honoured(log: &[RequestRecord], code: u16, retry_after: Duration) -> usize {
    let faulted: Vec<usize> = (0..log.len())
        .filter(|&i| log[i].status == code && log[i].fault.is_some())
        .collect();
    for &i in &faulted {
        let next = log
            .get(i + 1)
            .unwrap_or_else(|| panic!("no retry after the {code}: {log:#?}"));
        let g = gap(&log[i], next);
        assert!(
            g + SLACK >= retry_after,
            "retried {g:?} after a {code} with Retry-After {retry_after:?}: {log:#?}"
        );
    }
    faulted.len()
}

// ---- transient faults: the join completes ----

#[test]
fn control_a_healthy_join_and_its_requests() {
    let cp = start(Config::default());
    let (run, root) = join(&cp, &[]);
    assert_joined(&run, &cp, root.path());
    let log: Vec<String> = cp
        .requests()
        .iter()
        .map(|r| format!("{} {} {}", r.method, r.path, r.status))
        .collect();
    println!("a healthy join: {} requests\n{}", log.len(), log.join("\n"));
    assert!(cp.requests().iter().all(|r| r.fault.is_none()));
}

#[test]
fn down_then_up_refused_or_reset() {
    for mode in [DownMode::Refuse, DownMode::Reset] {
        let down = Duration::from_millis(1500);
        let started = SystemTime::now();
        let cp = with_faults(Faults {
            down_for: down,
            down_mode: mode,
            ..Faults::default()
        });
        let (run, root) = join(&cp, &["--discovery-timeout", "20s"]);
        assert_joined(&run, &cp, root.path());
        // Nothing was served while down; the first request came after the server did, and soon
        // (discovery's backoff cap is 2 × 200 ms).
        let first = cp.requests()[0].clone();
        let after = first.time.duration_since(started).unwrap();
        assert!(after + SLACK >= down, "{mode:?}: {after:?}");
        assert!(after < down + Duration::from_secs(3), "{mode:?}: {after:?}");
        assert!(run.took >= down, "{mode:?}");
    }
}

#[test]
fn retry_after_on_cluster_info_is_honoured_503_and_429() {
    for code in [503, 429] {
        let cp = with_faults(Faults {
            requests: vec![RequestFault::first(2, status(code, Some("1"))).under(CLUSTER_INFO)],
            ..Faults::default()
        });
        let (run, root) = join(&cp, &["--discovery-timeout", "20s"]);
        assert_joined(&run, &cp, root.path());
        let log = under(&cp, CLUSTER_INFO);
        assert_eq!(
            assert_retry_after_honoured(&log, code, Duration::from_secs(1)),
            2,
            "{log:#?}"
        );
        // Two faulted, then the insecure fetch (cluster-info names this endpoint: no verified
        // re-fetch, see README "Requests of a join").
        assert_eq!(log.len(), 3, "{log:#?}");
        // The token was never sent to cluster-info.
        assert!(log.iter().all(|r| !r.authorization));
    }
}

/// `t` as an HTTP-date (IMF-fixdate, RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), days >= 0.
    let z = days + 719_468;
    let (era, doe) = (z / 146_097, z % 146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[test]
fn http_dates_are_formatted_like_rfc_9110() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
    assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
    assert_eq!(http_date(t), "Tue, 29 Feb 2000 00:00:00 GMT");
}

/// A `Retry-After` HTTP-date (whole seconds) at least two seconds ahead, and that instant.
fn retry_at() -> (String, SystemTime) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(now + 3);
    (http_date(at), at)
}

/// `prefix` answers its first request 503 with `Retry-After: <HTTP-date>`; the join completes
/// and the retry came no earlier than that date.
fn retry_after_http_date_is_honoured(prefix: &str) {
    let (date, at) = retry_at();
    let cp = with_faults(Faults {
        requests: vec![RequestFault::first(1, status(503, Some(&date))).under(prefix)],
        ..Faults::default()
    });
    let (run, root) = join(&cp, &["--discovery-timeout", "20s"]);
    assert_joined(&run, &cp, root.path());
    let log = under(&cp, prefix);
    assert_eq!(log[0].status, 503, "{log:#?}");
    let retry = log.get(1).unwrap_or_else(|| panic!("no retry: {log:#?}"));
    assert!(
        retry.time + SLACK >= at,
        "retried {:?} before the date the server gave ({date})",
        at.duration_since(retry.time).unwrap_or_default()
    );
}

#[test]
fn retry_after_as_an_http_date_on_cluster_info() {
    retry_after_http_date_is_honoured(CLUSTER_INFO);
}

#[test]
fn retry_after_as_an_http_date_on_the_configmap_reads() {
    retry_after_http_date_is_honoured(CONFIGMAPS);
}

#[test]
fn retry_after_as_an_http_date_on_the_csr_post() {
    retry_after_http_date_is_honoured(CSRS);
}

#[test]
fn a_500_on_cluster_info_is_retried_with_backoff() {
    let cp = with_faults(Faults {
        requests: vec![RequestFault::first(3, status(500, None)).under(CLUSTER_INFO)],
        ..Faults::default()
    });
    let (run, root) = join(&cp, &["--discovery-timeout", "20s"]);
    assert_joined(&run, &cp, root.path());
    let statuses: Vec<u16> = under(&cp, CLUSTER_INFO).iter().map(|r| r.status).collect();
    // cluster-info names this endpoint: no verified re-fetch (README, "Requests of a join").
    assert_eq!(statuses, vec![500, 500, 500, 200]);
}

/// The configmap reads of the bootstrap phase (kubeadm-config, kubelet-config).
#[test]
fn retry_after_on_the_configmap_reads_is_honoured() {
    for code in [503, 429] {
        let cp = with_faults(Faults {
            requests: vec![RequestFault::first(2, status(code, Some("1"))).under(CONFIGMAPS)],
            ..Faults::default()
        });
        let (run, root) = join(&cp, &[]);
        assert_joined(&run, &cp, root.path());
        let log = under(&cp, CONFIGMAPS);
        assert_eq!(
            assert_retry_after_honoured(&log, code, Duration::from_secs(1)),
            2,
            "{log:#?}"
        );
    }
}

/// Without `Retry-After` (the backoff schedule decides; `Retry-After` is proven above).
#[test]
fn errors_on_the_configmap_reads_are_retried() {
    for code in [500, 503, 429] {
        let cp = with_faults(Faults {
            requests: vec![RequestFault::first(2, status(code, None)).under(CONFIGMAPS)],
            ..Faults::default()
        });
        let (run, root) = join(&cp, &[]);
        assert_joined(&run, &cp, root.path());
        let log = under(&cp, CONFIGMAPS);
        let faulted = log.iter().filter(|r| r.fault.is_some()).count();
        assert_eq!(faulted, 2, "{code}: {log:#?}");
        assert!(log.len() > faulted, "{code}: answered after the faults");
    }
}

#[test]
fn retry_after_on_the_csr_post_is_honoured() {
    for code in [503, 429] {
        let cp = with_faults(Faults {
            requests: vec![RequestFault::first(2, status(code, Some("1"))).under(CSRS)],
            ..Faults::default()
        });
        let (run, root) = join(&cp, &[]);
        assert_joined(&run, &cp, root.path());
        let posts: Vec<RequestRecord> = under(&cp, CSRS)
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect();
        assert_eq!(
            assert_retry_after_honoured(&posts, code, Duration::from_secs(1)),
            2,
            "{posts:#?}"
        );
        assert_eq!(posts.len(), 3, "{posts:#?}");
    }
}

#[test]
fn errors_on_the_csr_post_are_retried() {
    for code in [500, 503, 429] {
        let cp = with_faults(Faults {
            requests: vec![RequestFault::first(2, status(code, None)).under(CSRS)],
            ..Faults::default()
        });
        let (run, root) = join(&cp, &[]);
        assert_joined(&run, &cp, root.path());
        let posts: Vec<u16> = under(&cp, CSRS)
            .iter()
            .filter(|r| r.method == "POST")
            .map(|r| r.status)
            .collect();
        // The POST is the first request under the CSR path: both faults hit it.
        assert_eq!(posts, vec![code, code, 201], "{code}");
    }
}

/// The fault on the CSR path skips the POST (first request there) and hits what follows it:
/// the wait's watch (and any get or list it makes).
fn csr_wait_faults(action: Action, count: u64) -> Faults {
    Faults {
        requests: vec![RequestFault::first(count, action).after(1).under(CSRS)],
        ..Faults::default()
    }
}

#[test]
fn errors_on_the_csr_watch_are_retried() {
    for code in [500, 503, 429] {
        let cp = start(Config {
            faults: csr_wait_faults(status(code, None), 2),
            // Approved once the wait has had time to fail twice.
            approval_delay: Duration::from_millis(500),
            ..Config::default()
        });
        let (run, root) = join(&cp, &[]);
        assert_joined(&run, &cp, root.path());
        let log = under(&cp, CSRS);
        assert_eq!(log[0].method, "POST");
        let faulted = log.iter().filter(|r| r.fault.is_some()).count();
        assert_eq!(faulted, 2, "{code}: {log:#?}");
        assert!(log.len() >= 4, "{code}: {log:#?}");
    }
}

#[test]
fn retry_after_on_the_csr_watch_is_honoured() {
    for code in [503, 429] {
        let cp = start(Config {
            faults: csr_wait_faults(status(code, Some("1")), 2),
            approval_delay: Duration::from_millis(500),
            ..Config::default()
        });
        let (run, root) = join(&cp, &[]);
        assert_joined(&run, &cp, root.path());
        let log: Vec<RequestRecord> = under(&cp, CSRS).into_iter().skip(1).collect();
        assert_eq!(
            assert_retry_after_honoured(&log, code, Duration::from_secs(1)),
            2,
            "{log:#?}"
        );
    }
}

#[test]
fn a_reset_mid_body_is_retried_on_every_class() {
    let cp = with_faults(Faults {
        requests: vec![
            RequestFault::first(1, Action::ResetMidBody).under(CLUSTER_INFO),
            RequestFault::first(1, Action::ResetMidBody).under(CONFIGMAPS),
            // The CSR answer lost: the retried POST meets our own CSR and adopts it.
            RequestFault::first(1, Action::ResetMidBody).under(CSRS),
        ],
        ..Faults::default()
    });
    let (run, root) = join(&cp, &["--discovery-timeout", "20s"]);
    assert_joined(&run, &cp, root.path());
    let resets = cp
        .requests()
        .iter()
        .filter(|r| r.fault.as_deref() == Some("reset mid-body"))
        .count();
    assert_eq!(resets, 3);
    let posts: Vec<u16> = under(&cp, CSRS)
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| r.status)
        .collect();
    assert_eq!(posts.len(), 2, "{posts:?}");
    assert_eq!(posts[1], 409, "{posts:?}");
}

#[test]
fn a_stalled_request_is_cut_by_the_per_request_timeout_and_retried() {
    // Never answered; the server would hold the connection for a minute: only the client's
    // own per-request timeout can end the wait.
    let cp = with_faults(Faults {
        requests: vec![RequestFault::first(
            1,
            Action::Stall {
                max: Duration::from_secs(60),
            },
        )
        .under(CONFIGMAPS)],
        ..Faults::default()
    });
    let (run, root) = join(&cp, &[]);
    assert_joined(&run, &cp, root.path());
    let log = under(&cp, CONFIGMAPS);
    assert_eq!(log[0].fault.as_deref(), Some("stall"), "{log:#?}");
    let g = gap(&log[0], &log[1]);
    assert!(
        g < Duration::from_secs(30),
        "the retry came {g:?} later: the stall was not cut by a per-request timeout"
    );
    println!("a stalled configmap read was retried after {g:?}");
}

#[test]
fn truncated_json_on_the_configmap_reads_is_retried() {
    for name in ["kubelet-config", "kubeadm-config"] {
        let path = format!("{CONFIGMAPS}/{name}");
        let cp = with_faults(Faults {
            requests: vec![RequestFault::first(1, Action::TruncateJson).under(&path)],
            ..Faults::default()
        });
        let (run, root) = join(&cp, &[]);
        assert_joined(&run, &cp, root.path());
        let log = under(&cp, &path);
        assert_eq!(log.len(), 2, "{name}: read again: {log:#?}");
        assert_eq!(log[0].fault.as_deref(), Some("truncated json"));
        assert_eq!(log[1].status, 200);
    }
}

#[test]
fn watch_streams_cut_every_event_cleanly_or_abruptly() {
    for abrupt in [false, true] {
        let cp = start(Config {
            faults: Faults {
                watch_cut: Some(WatchCut { every: 1, abrupt }),
                // Approval, then the certificate, as separate events on separate streams.
                certificate_delay: Duration::from_millis(300),
                ..Faults::default()
            },
            approval_delay: Duration::from_millis(300),
            ..Config::default()
        });
        let (run, root) = join(&cp, &[]);
        assert_joined(&run, &cp, root.path());
        let watches = under(&cp, CSRS).iter().filter(|r| is_watch(r)).count();
        assert!(watches >= 2, "abrupt={abrupt}: re-watched {watches} times");
    }
}

#[test]
fn a_certificate_filled_in_after_the_approval() {
    let delay = Duration::from_millis(1500);
    let cp = start(Config {
        faults: Faults {
            certificate_delay: delay,
            ..Faults::default()
        },
        ..Config::default()
    });
    let (run, root) = join(&cp, &[]);
    assert_joined(&run, &cp, root.path());
    assert!(run.took >= delay, "{:?}", run.took);
}

#[test]
fn a_slow_bootstrap_signer() {
    let delay = Duration::from_millis(1500);
    let cp = start(Config {
        signer_delay: delay,
        ..Config::default()
    });
    let (run, root) = join(&cp, &["--discovery-timeout", "20s"]);
    assert_joined(&run, &cp, root.path());
    let log = under(&cp, CLUSTER_INFO);
    // Polled without the JWS, then found it; every poll anonymous.
    assert!(log.len() >= 3, "{log:#?}");
    assert!(log.iter().all(|r| r.status == 200 && !r.authorization));
    assert!(run.took >= delay);
}

#[test]
fn a_fleet_against_a_concurrency_cap_all_join() {
    const NODES: usize = 6;
    let cp = Arc::new(start(Config {
        faults: Faults {
            max_in_flight: Some(InFlightLimit::with_default_ratio(1)),
            ..Faults::default()
        },
        ..Config::default()
    }));
    let runs: Vec<_> = (0..NODES)
        .map(|i| {
            let cp = cp.clone();
            std::thread::spawn(move || {
                let root = tempfile::tempdir().unwrap();
                let mut args = join_args(&cp, root.path(), &["--discovery-timeout", "30s"]);
                let at = args.iter().position(|a| a == NODE).unwrap();
                args[at] = format!("fleet-{i}");
                (kubejoin(&args), root)
            })
        })
        .collect();
    for (i, t) in runs.into_iter().enumerate() {
        let (run, root) = t.join().unwrap();
        assert_eq!(run.code, 0, "node {i}: {}", run.show());
        assert!(p(root.path(), kubejoin::install::KUBELET_CONF).is_file());
    }
    assert_eq!(cp.csrs().len(), NODES);
    let log = cp.requests();
    let shed = log.iter().filter(|r| r.status == 429).count();
    println!(
        "{NODES} joins against a cap of 1 in flight: {} requests, {shed} answered 429",
        log.len()
    );
}

// ---- the control plane restarts: down, then its startup window ----

/// How long a restarted control plane refuses connections.
const RESTART_DOWN: Duration = Duration::from_secs(1);
/// Its startup window: longer than any pause kubejoin can be in (a backed-off retry after 1 s of
/// refused connections is at most 2 s away) with 1.5 s to spare for a loaded machine's
/// scheduling (2.5 s was missed once under a load of 15 on 2 cores), so that every join meets
/// it, and shorter than the 5 s over which a refusal must persist to be final.
const STARTUP_WINDOW: Duration = Duration::from_millis(3500);

fn startup_refusals(log: &[RequestRecord]) -> Vec<&RequestRecord> {
    log.iter()
        .filter(|r| r.fault.as_deref() == Some("startup window"))
        .collect()
}

/// `12 × 403 GET /api/…, 1 × 401 GET /api/…`, in order of first appearance.
fn tally(records: &[&RequestRecord]) -> String {
    let mut seen: Vec<(String, usize)> = Vec::new();
    for r in records {
        let key = format!("{} {} {}", r.status, r.method, path_only(r));
        match seen.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => seen.push((key, 1)),
        }
    }
    seen.iter()
        .map(|(k, n)| format!("{n} × {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every request refused in the startup window was tried again, and its path was then served.
fn assert_refusals_retried(log: &[RequestRecord]) {
    for (i, r) in log.iter().enumerate() {
        if r.fault.as_deref() != Some("startup window") {
            continue;
        }
        let path = path_only(r);
        assert!(
            log[i + 1..].iter().any(|later| path_only(later) == path
                && later.fault.is_none()
                // A Node GET is answered 404 (no such Node yet), the rest 200/201.
                && ((200..300).contains(&later.status) || later.status == 404)),
            "{} {path} refused in the startup window and never served after: {log:#?}",
            r.status
        );
    }
}

/// One join through one restart: `trigger` sets it off; returns the run and the request log.
fn join_through_a_restart(
    what: &str,
    restart: Restart,
    config: Config,
) -> (Run, Vec<RequestRecord>) {
    let cp = start(Config {
        faults: Faults {
            restarts: vec![restart],
            startup_window: STARTUP_WINDOW,
            ..Faults::default()
        },
        ..config
    });
    // The node comes after the first startup window: the refusals seen are the restart's.
    std::thread::sleep(STARTUP_WINDOW);
    let (run, root) = join(&cp, &["--discovery-timeout", "30s", "--timeout", "45s"]);
    assert_joined(&run, &cp, root.path());
    assert_eq!(cp.restarts(), 1, "{what}: the control plane restarted");
    let log = cp.requests();
    assert_eq!(
        log.iter()
            .filter(|r| r.fault.as_deref() == Some("restart"))
            .count(),
        1,
        "{what}: {log:#?}"
    );
    let refused = startup_refusals(&log);
    assert!(!refused.is_empty(), "{what}: no refusal seen: {log:#?}");
    assert_refusals_retried(&log);
    println!(
        "{what}: joined in {:.1} s; {} requests, {} refused in the startup window ({}), 1 cut by the restart",
        run.took.as_secs_f64(),
        log.len(),
        refused.len(),
        tally(&refused)
    );
    (run, log)
}

#[test]
fn a_restart_before_discovery() {
    // The first cluster-info GET sets the restart off and is cut.
    let (_, log) = join_through_a_restart(
        "restart before discovery",
        Restart::on_request(CLUSTER_INFO, RESTART_DOWN),
        Config::default(),
    );
    // The anonymous GET met the window's 403 (RBAC not synced) and was retried.
    let refused = startup_refusals(&log);
    assert!(
        refused
            .iter()
            .all(|r| r.status == 403 && path_only(r) == CLUSTER_INFO && !r.authorization),
        "{refused:#?}"
    );
}

#[test]
fn a_restart_between_discovery_and_the_csr() {
    // The Node GET (after the ConfigMap reads, just before the CSR) sets it off and is cut.
    let (_, log) = join_through_a_restart(
        "restart between discovery and the CSR",
        Restart::on_request("/api/v1/nodes/", RESTART_DOWN),
        Config::default(),
    );
    let refused = startup_refusals(&log);
    assert!(
        refused
            .iter()
            .all(|r| r.status == 401 && r.authorization && r.user.is_empty()),
        "the token was refused: {refused:#?}"
    );
    // Discovery was over before the restart: cluster-info was fetched once.
    assert_eq!(
        log.iter().filter(|r| path_only(r) == CLUSTER_INFO).count(),
        1
    );
}

#[test]
fn a_restart_during_the_approval_wait() {
    // The CSR watch (the second request under the CSR path, after the POST) sets it off; the
    // auto-approver decides 2 s after the POST, while the control plane is down or starting.
    let (_, log) = join_through_a_restart(
        "restart during the approval wait",
        Restart::on_request(CSRS, RESTART_DOWN).nth(2),
        Config {
            approval_delay: Duration::from_secs(2),
            ..Config::default()
        },
    );
    let refused = startup_refusals(&log);
    assert!(
        refused
            .iter()
            .all(|r| r.status == 401 && path_only(r) == CSRS && r.method == "GET"),
        "the CSR list/watch was refused: {refused:#?}"
    );
    assert_eq!(
        log.iter()
            .filter(|r| r.method == "POST" && path_only(r) == CSRS)
            .count(),
        1,
        "one POST: the CSR was not submitted again"
    );
}

#[test]
fn after_a_restart_the_first_connection_waits_out_a_short_startup_window() {
    // The port refuses for 1 s, then the control plane refuses tokens for 300 ms: the first
    // connection that succeeds after a refused one waits 0.5-1 s before its request
    // (kubejoin::http::settle), so no request meets the window and none is sent twice for it.
    const SHORT_WINDOW: Duration = Duration::from_millis(300);
    let cp = start(Config {
        faults: Faults {
            restarts: vec![Restart::on_request("/api/v1/nodes/", RESTART_DOWN)],
            startup_window: SHORT_WINDOW,
            ..Faults::default()
        },
        ..Config::default()
    });
    // After the first startup window, as in join_through_a_restart.
    std::thread::sleep(SHORT_WINDOW);
    let (run, root) = join(&cp, &["--discovery-timeout", "30s", "--timeout", "45s"]);
    assert_joined(&run, &cp, root.path());
    assert_eq!(cp.restarts(), 1);
    let log = cp.requests();
    assert!(startup_refusals(&log).is_empty(), "{log:#?}");
    // The cut GET and its one retry after the restart: nothing else was asked twice.
    let node_gets = log
        .iter()
        .filter(|r| path_only(r).starts_with("/api/v1/nodes/"))
        .count();
    assert_eq!(node_gets, 2, "{log:#?}");
    // The wait is in the run's record, with its reason.
    let result = std::fs::read_to_string(p(root.path(), kubejoin::install::RESULT_JSON)).unwrap();
    assert!(
        result.contains("refused connections until now"),
        "no settle step in result.json: {result}"
    );
}

#[test]
fn a_slow_api_server_gets_the_csr_spread_out_and_a_quick_one_does_not() {
    // The Node GET (the last read before the CSR) answers 150 ms late, as a server busy with a
    // fleet does: the CSR's POST is sent at a random point of a window of 12 x the server's
    // share of that round trip (~1.8 s; kubejoin::http::retry::write_spread), recorded in
    // result.json.
    const LATE: Duration = Duration::from_millis(150);
    let cp = start(Config {
        faults: Faults {
            requests: vec![RequestFault::always(Action::Delay { by: LATE }).under("/api/v1/nodes/")],
            ..Faults::default()
        },
        ..Config::default()
    });
    let (run, root) = join(&cp, &[]);
    assert_joined(&run, &cp, root.path());
    let log = cp.requests();
    let node_get = log
        .iter()
        .find(|r| path_only(r).starts_with("/api/v1/nodes/"))
        .expect("a Node GET");
    assert_eq!(node_get.fault.as_deref(), Some("delay"), "{log:#?}");
    let post = log
        .iter()
        .find(|r| r.method == "POST" && path_only(r) == CSRS)
        .expect("a CSR POST");
    // Not before the delayed answer (the spread's random part may be anything up to ~1.8 s).
    assert!(gap(node_get, post) >= LATE, "{log:#?}");
    // "1.79s (the last answer took 151ms, …": the window is 12 x (>= 150 ms less a loopback
    // connect).
    let window = csr_spread_window(root.path()).expect("a spread step in result.json");
    assert!(
        (Duration::from_millis(1600)..=Duration::from_secs(4)).contains(&window),
        "{window:?}"
    );

    // The same join against a server that answers at once (on loopback, ~1 ms; a debug build
    // under the other tests' load may take a few): no spread step, or a window of a few
    // milliseconds, never the busy server's.
    let cp = start(Config::default());
    let (run, root) = join(&cp, &[]);
    assert_joined(&run, &cp, root.path());
    if let Some(window) = csr_spread_window(root.path()) {
        assert!(
            window < Duration::from_millis(400),
            "a quick server's window: {window:?}"
        );
    }
}

/// The window the CSR was spread over, from the timeline step in the run's `result.json`
/// ("spreading the certificate signing request over 1.79s (…"); `None` without that step.
fn csr_spread_window(root: &Path) -> Option<Duration> {
    let result = std::fs::read_to_string(p(root, kubejoin::install::RESULT_JSON)).unwrap();
    let step = result
        .split("spreading the certificate signing request over ")
        .nth(1)?;
    let window = step.split(' ').next().unwrap_or_default();
    let parsed = match window.strip_suffix("ms") {
        Some(ms) => ms.parse::<u64>().ok().map(Duration::from_millis),
        None => window
            .strip_suffix('s')
            .and_then(|s| s.parse::<f64>().ok())
            .map(Duration::from_secs_f64),
    };
    Some(parsed.unwrap_or_else(|| panic!("an unreadable window {window:?} in {step:.120}")))
}

#[test]
fn a_cold_start_nodes_before_the_control_plane() {
    // The nodes boot with their control plane (a site powering up): connections refused for
    // 20 s, then the startup window. Three nodes at once; discovery polls every 1 s (backoff
    // capped at 2 s), so each one's first request after the control plane comes up lands in
    // the window.
    const NODES: usize = 3;
    const DOWN: Duration = Duration::from_secs(20);
    let started = SystemTime::now();
    let cp = Arc::new(start(Config {
        faults: Faults {
            down_for: DOWN,
            startup_window: STARTUP_WINDOW,
            ..Faults::default()
        },
        ..Config::default()
    }));
    let runs: Vec<_> = (0..NODES)
        .map(|i| {
            let cp = cp.clone();
            std::thread::spawn(move || {
                let root = tempfile::tempdir().unwrap();
                let mut args = join_args(
                    &cp,
                    root.path(),
                    &[
                        "--discovery-retry-interval",
                        "1s",
                        "--discovery-timeout",
                        "50s",
                        "--timeout",
                        "55s",
                    ],
                );
                let at = args.iter().position(|a| a == NODE).unwrap();
                args[at] = format!("cold-{i}");
                (kubejoin(&args), root)
            })
        })
        .collect();
    let mut took = Vec::new();
    for (i, t) in runs.into_iter().enumerate() {
        let (run, root) = t.join().unwrap();
        assert_eq!(run.code, 0, "node {i}: {}", run.show());
        assert!(p(root.path(), kubejoin::install::KUBELET_CONF).is_file());
        assert!(
            run.took >= DOWN,
            "node {i} joined before the control plane was up"
        );
        took.push(run.took);
    }
    assert_eq!(cp.csrs().len(), NODES);
    let log = cp.requests();
    let first = log[0].time.duration_since(started).unwrap();
    assert!(
        first + SLACK >= DOWN,
        "nothing served while down: {first:?}"
    );
    let refused = startup_refusals(&log);
    let anonymous = refused.iter().filter(|r| r.status == 403).count();
    // Every node met the window on its first cluster-info GET.
    assert!(anonymous >= NODES, "{refused:#?}");
    assert_refusals_retried(&log);
    println!(
        "cold start of {NODES} nodes (down {DOWN:?}, window {STARTUP_WINDOW:?}): joined after {}; {} requests, {} refused in the window ({anonymous} 403, {} 401)",
        took.iter()
            .map(|t| format!("{:.1} s", t.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        log.len(),
        refused.len(),
        refused.len() - anonymous
    );
}

// ---- giving up: the count, the time and the last cause ----

#[test]
fn a_cluster_info_that_keeps_failing_gives_up_with_the_count_and_last_cause() {
    let cp = with_faults(Faults {
        requests: vec![RequestFault::always(status(500, None)).under(CLUSTER_INFO)],
        ..Faults::default()
    });
    let (run, root) = join(&cp, &["--discovery-timeout", "2s"]);
    assert_eq!(run.code, 5, "{}", run.show());
    let seen = under(&cp, CLUSTER_INFO).len();
    assert!(seen >= 3, "{seen}");
    // The server may have seen one request more than the join counted: the one in flight when
    // the deadline cut it (its answer never arrived, so it is not a completed attempt).
    let reported: usize = run
        .stderr
        .split("gave up after ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no attempt count: {}", run.show()));
    // The server records a request once it has answered it: let the last record catch up.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let mut seen = seen;
    while seen < reported && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(20));
        seen = under(&cp, CLUSTER_INFO).len();
    }
    assert!(
        reported == seen || reported + 1 == seen,
        "the join counted {reported} attempts, the server saw {seen}: {}",
        run.show()
    );
    assert!(
        run.stderr
            .contains(&format!("gave up after {reported} attempts over "))
            && run
                .stderr
                .contains("500 InternalError: Internal error occurred: injected fault"),
        "{}",
        run.show()
    );
    assert!(run.took < Duration::from_secs(5), "{:?}", run.took);
    assert_not_joined(root.path());
}

/// Only `--discovery-timeout` ran out: the advice is about that flag, not `--timeout`.
#[test]
fn the_discovery_timeout_is_named_not_the_overall_one() {
    let cp = with_faults(Faults {
        requests: vec![RequestFault::always(status(503, None)).under(CLUSTER_INFO)],
        ..Faults::default()
    });
    let (run, root) = join(&cp, &["--discovery-timeout", "1s", "--timeout", "10m"]);
    assert_eq!(run.code, 5, "{}", run.show());
    assert!(
        run.stderr.contains("gave up in discovery after "),
        "{}",
        run.show()
    );
    assert!(run.stderr.contains("--discovery-timeout"), "{}", run.show());
    assert!(!run.stderr.contains("raise --timeout"), "{}", run.show());
    assert_not_joined(root.path());
}

/// The overall deadline ran out during discovery: the advice is `--timeout`.
#[test]
fn the_overall_timeout_is_named_when_it_cut_discovery() {
    let cp = with_faults(Faults {
        requests: vec![RequestFault::always(status(503, None)).under(CLUSTER_INFO)],
        ..Faults::default()
    });
    let (run, root) = join(&cp, &["--discovery-timeout", "5m", "--timeout", "1s"]);
    assert_eq!(run.code, 5, "{}", run.show());
    assert!(
        run.stderr.contains("gave up in discovery after ")
            && run.stderr.contains("(overall deadline 1s)")
            && run.stderr.contains("raise --timeout"),
        "{}",
        run.show()
    );
    assert!(run.took < Duration::from_secs(5), "{:?}", run.took);
    assert_not_joined(root.path());
}

// ---- permanent faults: stop promptly ----

/// A generous deadline that a permanent failure must not come near.
const GENEROUS: [&str; 6] = [
    "--timeout",
    "60s",
    "--discovery-timeout",
    "30s",
    "--tls-bootstrap-timeout",
    "30s",
];

/// Stopped with `code`, well before half of the generous deadline, for a reason containing
/// `words`, and nothing installed.
fn assert_stopped_promptly(what: &str, run: &Run, root: &Path, code: i32, words: &[&str]) {
    assert_eq!(run.code, code, "{what}: {}", run.show());
    assert!(
        run.took < Duration::from_secs(15),
        "{what}: took {:?}, the deadline was 30s",
        run.took
    );
    assert!(
        run.stderr.contains("kubejoin: error: "),
        "{what}: {}",
        run.show()
    );
    for w in words {
        assert!(
            run.stderr.contains(w),
            "{what}: {w:?} missing: {}",
            run.show()
        );
    }
    assert_not_joined(root);
}

/// A refusal was retried until it persisted (kubejoin's rule: the same status on 3 answers over
/// at least 5 s), then reported with its count: `log` holds those answers, all `code`.
fn assert_persisted(what: &str, run: &Run, log: &[RequestRecord], code: u16) {
    assert!(log.len() >= 3, "{what}: {log:#?}");
    assert!(log.iter().all(|r| r.status == code), "{what}: {log:#?}");
    let span = gap(&log[0], &log[log.len() - 1]);
    assert!(span + SLACK >= Duration::from_secs(5), "{what}: {span:?}");
    let reason = if code == 401 {
        "Unauthorized"
    } else {
        "Forbidden"
    };
    let said = format!(
        "(it persisted: {code} {reason} on {} attempts over ",
        log.len()
    );
    assert!(
        run.stderr.contains(&said),
        "{what}: {said:?} missing: {}",
        run.show()
    );
    println!(
        "{what}: stopped after {:.1} s, {} answers {code} over {:.1} s",
        run.took.as_secs_f64(),
        log.len(),
        span.as_secs_f64()
    );
}

#[test]
fn permanent_failures_stop_promptly() {
    // 401: the token signs cluster-info (discovery passes) but does not authenticate.
    let cp = start(Config {
        tokens: vec![TokenSpec {
            authentication: false,
            ..TokenSpec::new("abcdef", SECRET)
        }],
        ..Config::default()
    });
    let (run, root) = join(&cp, &GENEROUS);
    assert_stopped_promptly("401", &run, root.path(), 4, &["401"]);
    assert_persisted("401", &run, &under(&cp, CONFIGMAPS), 401);

    // 403: the token lacks kubeadm's default node group (RBAC).
    let cp = start(Config {
        tokens: vec![TokenSpec {
            extra_groups: Vec::new(),
            ..TokenSpec::new("abcdef", SECRET)
        }],
        ..Config::default()
    });
    let (run, root) = join(&cp, &GENEROUS);
    assert_stopped_promptly(
        "403",
        &run,
        root.path(),
        4,
        &["403", "system:bootstrappers:kubeadm:default-node-token"],
    );
    assert_persisted("403", &run, &under(&cp, CONFIGMAPS), 403);

    // A wrong pin: trust failure, before any token-authenticated request.
    let cp = start(Config::default());
    let root = tempfile::tempdir().unwrap();
    let mut args = join_args(&cp, root.path(), &GENEROUS);
    let at = args.iter().position(|a| *a == cp.signing_ca_pin()).unwrap();
    args[at] = format!("sha256:{}", "0".repeat(64));
    let run = kubejoin(&args);
    assert_stopped_promptly("wrong pin", &run, root.path(), 3, &["sha256:0000"]);
    assert!(cp.requests().iter().all(|r| !r.authorization));

    // A bad JWS: the token id is known, the secret is not the one that signed.
    let cp = start(Config::default());
    let root = tempfile::tempdir().unwrap();
    let mut args = join_args(&cp, root.path(), &GENEROUS);
    let at = args.iter().position(|a| *a == cp.token()).unwrap();
    args[at] = "abcdef.ffffffffffffffff".into();
    let run = kubejoin(&args);
    assert_stopped_promptly("bad JWS", &run, root.path(), 3, &["JWS"]);

    // Malformed data: cluster-info whose JSON is cut in half (a complete HTTP message).
    let cp = with_faults(Faults {
        requests: vec![RequestFault::always(Action::TruncateJson).under(CLUSTER_INFO)],
        ..Faults::default()
    });
    let (run, root) = join(&cp, &GENEROUS);
    assert_stopped_promptly(
        "truncated cluster-info",
        &run,
        root.path(),
        3,
        &["ConfigMap"],
    );
    assert_eq!(under(&cp, CLUSTER_INFO).len(), 1, "not retried");

    // 401 / 403 injected on cluster-info itself (anonymous access revoked).
    for code in [401, 403] {
        let cp = with_faults(Faults {
            requests: vec![RequestFault::always(status(code, None)).under(CLUSTER_INFO)],
            ..Faults::default()
        });
        let (run, root) = join(&cp, &GENEROUS);
        assert_stopped_promptly(
            &format!("{code} on cluster-info"),
            &run,
            root.path(),
            4,
            &[&code.to_string()],
        );
        assert_persisted(
            &format!("{code} on cluster-info"),
            &run,
            &under(&cp, CLUSTER_INFO),
            code,
        );
    }
}

/// A token that expires while the node waits for approval: the control plane restarts, the
/// re-established watch is refused (401) for good, and the join stops with the refusal.
#[test]
fn a_token_expiring_during_the_wait_stops_promptly() {
    let expires = SystemTime::now() + Duration::from_secs(3);
    let cp = Arc::new(start(Config {
        tokens: vec![TokenSpec {
            expires: Some(expires),
            ..TokenSpec::new("abcdef", SECRET)
        }],
        approval: Approval::Manual,
        ..Config::default()
    }));
    let restarter = {
        let cp = cp.clone();
        std::thread::spawn(move || {
            // Once the node waits (its CSR is there) and the token has expired, restart.
            let t0 = Instant::now();
            while cp.csrs().is_empty() && t0.elapsed() < Duration::from_secs(20) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let left = expires
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            std::thread::sleep(left + Duration::from_millis(100));
            assert!(cp.restart(Duration::from_millis(300)));
        })
    };
    let (run, root) = join(&cp, &GENEROUS);
    restarter.join().unwrap();
    assert_stopped_promptly(
        "expired during the wait",
        &run,
        root.path(),
        4,
        &["certificate signing request", "401", "kubeadm token create"],
    );
    let refused: Vec<RequestRecord> = under(&cp, CSRS)
        .into_iter()
        .filter(|r| r.status == 401)
        .collect();
    assert_persisted("expired during the wait", &run, &refused, 401);
}

#[test]
fn a_ready_node_of_the_same_name_stops_promptly() {
    let cp = start(Config {
        nodes: vec![NodeSpec {
            name: NODE.into(),
            ready: true,
        }],
        ..Config::default()
    });
    let (run, root) = join(&cp, &GENEROUS);
    assert_stopped_promptly(
        "ready node",
        &run,
        root.path(),
        4,
        &[
            "already exists in the cluster",
            "kubectl delete node fault-node",
        ],
    );
    assert!(cp.csrs().is_empty(), "no CSR was submitted");
}

#[test]
fn a_denied_csr_stops_promptly() {
    let cp = Arc::new(start(Config {
        approval: Approval::Manual,
        ..Config::default()
    }));
    let denier = {
        let cp = cp.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(20) {
                if let Some(name) = cp
                    .csrs()
                    .first()
                    .and_then(|c| c["metadata"]["name"].as_str().map(str::to_string))
                {
                    cp.deny(&name, "NotInInventory", "unknown machine").unwrap();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (run, root) = join(&cp, &GENEROUS);
    denier.join().unwrap();
    assert_stopped_promptly(
        "denied",
        &run,
        root.path(),
        4,
        &["is denied, reason: NotInInventory"],
    );
}

// ---- the join's futures can run on any worker thread ----

/// Compile-time: discovery (the whole phase, and the library call under it) is `Send`, like
/// what runs after it (`bootstrap_is_send` in tests/load.rs), so a caller may `tokio::spawn` a
/// join on a multi-threaded runtime.
#[allow(dead_code)]
fn discovery_is_send(plan: &kubejoin::plan::JoinPlan, opts: &kubejoin::discovery::Options) {
    fn send<T: Send>(_: T) {}
    let mut run = kubejoin::join::Run::new(Duration::from_secs(1));
    send(kubejoin::join::discover_within(plan, &mut run));
    send(kubejoin::discovery::discover(opts));
}
