//! Time before trust, through the real binary: `kubejoin join` on a node whose clock is years
//! off, against `kubejoin-testcp` and its SNTP servers on loopback.
//!
//! The node's clock is faked with `KUBEJOIN_TEST_CLOCK` (Unix seconds the clock reads at start),
//! which only debug builds honour (`sys::clock::node_clock`): the clock phase steps that fake
//! clock, and every TLS verification of the binary judges certificate validity by it, so the
//! test machine's own clock is never read as the node's nor set. The SNTP servers tell this
//! machine's real time (shifted where a test says so).
//!
//! What is proved: with SNTP answering, a node in 2015 (or 2040) steps its clock and joins, and
//! `result.json` and the log say what was stepped from and to, by which servers (a liar is
//! outvoted); with no SNTP answer, a clock in 2040 stops at the first connection verified
//! against the pinned CA with the clock error (window, time used, `kubejoin.ntp=`), bounded in
//! time; a clock in 2015 with no SNTP at all falls back to the build time, then takes the time
//! from the `Date` of an anonymous answer over TLS verified against the pinned CA and steps its
//! clock to it; with network time off (`--ntp off`) the same node stops with the clock error and
//! asks for no `Date`; against a server that sends no `Date` (a testcp fault: a proxy stripping
//! it) the same node stops with the clock error, says no `Date` came and never sends the token; a
//! dry run never steps the clock but checks certificates at the time it
//! learnt (SNTP's or the `Date`) and succeeds; `kubejoin plan` shows the time sources and where
//! they came from.

// Helpers outside #[test] functions panic on purpose: a failed setup is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use kubejoin_testcp::sntp::{start as sntp, Behaviour, SntpConfig, SntpServer};
use kubejoin_testcp::{Config, Handle};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_kubejoin");
const TOKEN: &str = "abcdef.0123456789abcdef";
const Y2015: i64 = 1_420_070_400;
/// 2040-01-01: past the test CA's ten years, so every certificate looks expired.
const Y2040: i64 = 2_208_988_800;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn start_cp() -> Handle {
    kubejoin_testcp::start(Config::default()).expect("test control plane starts")
}

fn ntp(offset_secs: f64, behaviour: Behaviour) -> SntpServer {
    sntp(SntpConfig {
        offset_secs,
        behaviour,
        ..SntpConfig::default()
    })
    .unwrap()
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// `kubejoin join` into `root` with the node clock starting at `clock` (Unix seconds) and
/// `extra` flags.
fn join(cp: &Handle, root: &Path, clock: i64, extra: &[String]) -> Run {
    let mut args = support::join_args(cp, TOKEN, "time-node", root);
    args.extend(["--timeout".to_string(), "60s".to_string()]);
    args.extend_from_slice(extra);
    let mut cmd = Command::new(BIN);
    cmd.args(&args)
        .env("KUBEJOIN_TEST_CLOCK", clock.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let out = support::run_bounded(cmd, Duration::from_secs(90));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: started.elapsed(),
    }
}

/// A cluster whose certificates are valid only from now: newer than this build (its floor is
/// the last commit's time, or SOURCE_DATE_EPOCH), so the floor cannot vouch for them.
fn backdated_cp() -> Handle {
    let ca_from = now_secs().floor();
    let cp = kubejoin_testcp::start(Config {
        pki_backdate: Duration::ZERO,
        ..Config::default()
    })
    .unwrap();
    let floor = kubejoin::clock::floor::floor().unix_secs() as f64;
    assert!(
        floor < ca_from,
        "this build's clock floor ({floor}) is not older than the test cluster's certificates \
         ({ca_from}): nothing to prove"
    );
    cp
}

fn ntp_flags(servers: &[&SntpServer]) -> Vec<String> {
    servers
        .iter()
        .flat_map(|s| ["--ntp".to_string(), s.addr().to_string()])
        .collect()
}

fn result_json(root: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(root.join("run/kubejoin/result.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn phases(result: &serde_json::Value) -> Vec<String> {
    result["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_node_in_2015_steps_its_clock_from_sntp_and_joins_with_a_liar_outvoted() {
    let cp = start_cp();
    let (a, b) = (ntp(0.0, Behaviour::Answer), ntp(0.0, Behaviour::Answer));
    let liar = ntp(400.0 * 86_400.0, Behaviour::Answer);
    let root = tempfile::tempdir().unwrap();
    let r = join(&cp, root.path(), Y2015, &ntp_flags(&[&a, &b, &liar]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("clock: stepped 2015-01-01T00:00:"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("more than 1s from the others"),
        "{}",
        r.stderr
    );

    let res = result_json(root.path());
    let clock = &res["clock"];
    assert_eq!(clock["source"], "sntp", "{clock}");
    assert_eq!(clock["servers_from"], "flag");
    assert!(clock["clock_at_start"]
        .as_str()
        .unwrap()
        .starts_with("2015-01-01T00:00:"));
    // The step took the clock from 2015 to this machine's real time (the agreeing servers').
    let step = &clock["step"];
    assert!(
        step["from"].as_str().unwrap().starts_with("2015-01-01T"),
        "{step}"
    );
    let expected = now_secs() - Y2015 as f64;
    let offset = step["offset_seconds"].as_f64().unwrap();
    assert!((offset - expected).abs() < 30.0, "{offset} vs {expected}");
    assert_eq!(clock["offset_seconds"].as_f64().unwrap(), offset);
    let mut agreed: Vec<&str> = step["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    agreed.sort_unstable();
    let mut want = vec![a.addr().to_string(), b.addr().to_string()];
    want.sort_unstable();
    assert_eq!(
        agreed, want,
        "the liar is not among the servers that set the clock"
    );
    let verdicts: Vec<(&str, &str)> = clock["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["server"].as_str().unwrap(),
                s["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    let liar_addr = liar.addr().to_string();
    assert!(
        verdicts.contains(&(liar_addr.as_str(), "outvoted")),
        "{verdicts:?}"
    );
    // The clock phase ran first, before any TLS (discovery).
    let p = phases(&res);
    assert_eq!(p.first().map(String::as_str), Some("clock"), "{p:?}");
    assert!(p.iter().position(|x| x == "discovery").unwrap() > 0);
    assert!(a.requests() >= 1 && liar.requests() >= 1);
}

#[test]
fn a_node_in_2040_is_stepped_back_by_a_single_named_server() {
    let cp = start_cp();
    let only = ntp(0.0, Behaviour::Answer);
    let root = tempfile::tempdir().unwrap();
    let r = join(&cp, root.path(), Y2040, &ntp_flags(&[&only]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let clock = &result_json(root.path())["clock"];
    assert_eq!(clock["source"], "sntp");
    let offset = clock["step"]["offset_seconds"].as_f64().unwrap();
    let expected = now_secs() - Y2040 as f64;
    assert!(offset < 0.0 && (offset - expected).abs() < 30.0, "{offset}");
}

#[test]
fn without_an_sntp_answer_a_clock_ahead_stops_at_the_first_verified_connection_with_the_clock_error(
) {
    let cp = start_cp();
    let silent = ntp(0.0, Behaviour::Silent);
    let root = tempfile::tempdir().unwrap();
    let r = join(&cp, root.path(), Y2040, &ntp_flags(&[&silent]));
    // Exit 3: a trust failure (docs/time.md: the clock error).
    assert_eq!(r.code, 3, "{}", r.stderr);
    for needle in [
        // The clock phase: the server was asked, did not answer, and the join went on.
        "no NTP server gave an acceptable answer",
        // The certificate error: what, the window, the time used and the likely cause.
        "has expired: it is valid from",
        "this machine's time is 2040-01-01T",
        "(its clock)",
        "the clock is the likely cause",
        // The fix.
        "kubejoin.ntp=HOST[:PORT]",
        // The API server's Date, for the reader only, and said to be unauthenticated.
        "answered with `Date: ",
        "(not authenticated, so not used to check certificates): if that is right, this machine's clock is off by -",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    assert!(silent.requests() >= 1);
    // Bounded: the SNTP policy's 3 attempts of 1 s, then the first connection verified against
    // the pinned CA (the TLS bootstrap's first request) refuses the certificate, before the
    // token is sent; a clock error is not retried.
    assert!(r.took < Duration::from_secs(30), "{:?}", r.took);
    assert!(!root.path().join("etc/kubernetes/kubelet.conf").exists());
}

#[test]
fn without_sntp_a_clock_in_2015_joins_by_the_date_header_verified_against_the_pinned_ca() {
    let cp = backdated_cp();
    let root = tempfile::tempdir().unwrap();
    let r = join(&cp, root.path(), Y2015, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for needle in [
        "earlier than this kubejoin was built",
        "clock: taking the time from the Date header of https://",
        "over TLS verified against the pinned cluster CA",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    let clock = &result_json(root.path())["clock"];
    assert_eq!(clock["source"], "verified-date-header", "{clock}");
    // The Date taken is the control plane's real time (this machine's), not 2015 nor the floor.
    let date = clock["verified_date"]["date"].as_str().unwrap();
    let year_now = 1970 + (now_secs() / 31_557_600.0) as i64;
    assert!(date.starts_with(&year_now.to_string()), "{date}");
    assert_eq!(clock["checked_at"], clock["verified_date"]["date"]);
    let server = clock["verified_date"]["server"].as_str().unwrap();
    assert!(server.starts_with("https://"), "{server}");
    // The clock was stepped to the Date, exactly as by SNTP: old → new in the log, the step and
    // its offset in result.json, the API server as the one that set it.
    assert!(
        r.stderr.contains("clock: stepped 2015-01-01T00:00:"),
        "{}",
        r.stderr
    );
    let step = &clock["step"];
    assert!(
        step["from"].as_str().unwrap().starts_with("2015-01-01T"),
        "{step}"
    );
    assert_eq!(step["servers"], serde_json::json!([server]));
    let offset = step["offset_seconds"].as_f64().unwrap();
    let expected = now_secs() - Y2015 as f64;
    // The Date has a one-second resolution; the join takes a few seconds.
    assert!((offset - expected).abs() < 30.0, "{offset} vs {expected}");
    assert_eq!(clock["offset_seconds"].as_f64().unwrap(), offset);
    // The answer it came from was anonymous, and came before any request carrying the
    // bootstrap token (which is then verified at the time taken).
    let reqs = cp.requests();
    let probe = reqs
        .iter()
        .position(|q| q.path == "/version")
        .expect("a GET /version");
    assert!(!reqs[probe].authorization, "{:?}", reqs[probe]);
    assert_eq!(reqs[probe].user, "system:anonymous");
    let first_auth = reqs.iter().position(|q| q.authorization).unwrap();
    assert!(probe < first_auth, "{reqs:?}");
    assert!(root.path().join("etc/kubernetes/kubelet.conf").exists());
}

#[test]
fn without_any_time_source_a_build_newer_than_the_cluster_needs_no_date() {
    // The default test cluster's certificates are valid from 5 minutes before its start: when
    // this build is newer than that, the floor vouches for them and no Date is asked for.
    let cp = start_cp();
    let ca_from = now_secs() - 300.0;
    let root = tempfile::tempdir().unwrap();
    let r = join(&cp, root.path(), Y2015, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let floor = kubejoin::clock::floor::floor().unix_secs() as f64;
    let clock = &result_json(root.path())["clock"];
    if floor > ca_from + 5.0 {
        assert_eq!(clock["source"], "build-time-floor");
        assert!(!cp.requests().iter().any(|q| q.path == "/version"));
    } else if floor < ca_from - 5.0 {
        assert_eq!(clock["source"], "verified-date-header");
    }
}

#[test]
fn kubejoin_plan_shows_the_time_sources_and_where_they_came_from() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("proc")).unwrap();
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    let pin = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";
    let plan = |cmdline: &str| {
        std::fs::write(root.path().join("proc/cmdline"), cmdline).unwrap();
        let out = Command::new(BIN)
            .args(["plan", "--root", root.path().to_str().unwrap()])
            .output()
            .unwrap();
        // A refused command line prints no plan: `null` then.
        let j: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        (
            out.status.code(),
            j,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let boot = format!(
        "kubejoin.platform=none kubejoin.endpoint=10.0.0.1:6443 kubejoin.token-file=/etc/t kubejoin.ca-cert-hash={pin}"
    );
    std::fs::write(root.path().join("etc/t"), format!("{TOKEN}\n")).unwrap();
    let mut perms = std::fs::metadata(root.path().join("etc/t"))
        .unwrap()
        .permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
    std::fs::set_permissions(root.path().join("etc/t"), perms).unwrap();

    let (code, j, err) = plan(&format!(
        "{boot} kubejoin.ntp=10.0.0.5 kubejoin.ntp=[fd00::7]:10123\n"
    ));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        j["time"]["servers"],
        serde_json::json!(["10.0.0.5:123", "[fd00::7]:10123"])
    );
    assert_eq!(j["time"]["source"], "cmdline");
    assert_eq!(j["values"]["ntp"]["source"], "cmdline");

    // A config file's `ntp:` when the command line names none.
    std::fs::write(
        root.path().join("etc/kubejoin.yaml"),
        "apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nntp: [time.example.org]\n",
    )
    .unwrap();
    let (code, j, err) = plan(&format!("{boot}\n"));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        j["time"]["summary"],
        "time.example.org:123 (from file:/etc/kubejoin.yaml)"
    );
    // `off` on the command line wins over the file, and is shown as such.
    let (_, j, _) = plan(&format!("{boot} kubejoin.ntp=off\n"));
    assert_eq!(j["time"]["off"], true);
    assert_eq!(j["time"]["summary"], "off (from cmdline)");
    // A bad server is refused where it is read, naming the key.
    let (code, _, err) = plan(&format!("{boot} kubejoin.ntp=bad:host:x\n"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("kubejoin.ntp at byte") && err.contains("NTP server \"bad:host:x\""),
        "{err}"
    );
}

#[test]
fn a_dry_run_asks_the_time_never_sets_the_clock_and_succeeds_at_the_time_it_learnt() {
    // Certificates newer than this build: a dry run checking them at the floor would fail.
    let cp = backdated_cp();
    let only = ntp(0.0, Behaviour::Answer);
    let root = tempfile::tempdir().unwrap();
    let mut extra = ntp_flags(&[&only]);
    extra.push("--dry-run".into());
    let r = join(&cp, root.path(), Y2015, &extra);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("clock: dry run: would step 2015-01-01T00:00:"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("clock: stepped"), "{}", r.stderr);
    assert!(only.requests() >= 1);
    // The printout says by how much the clock would be stepped, and from which source.
    let line = r
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("clock:"))
        .unwrap_or_else(|| panic!("no clock line: {}", r.stdout));
    assert!(
        line.contains("would be stepped by +") && line.contains("from sntp"),
        "{line}"
    );
    let secs: f64 = line
        .split("stepped by ")
        .nth(1)
        .and_then(|x| x.split('s').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!((secs - (now_secs() - Y2015 as f64)).abs() < 30.0, "{line}");
    assert!(!root.path().join("run/kubejoin/result.json").exists());
    assert!(!root.path().join("etc/kubernetes/kubelet.conf").exists());
}

#[test]
fn a_dry_run_without_sntp_takes_the_verified_date_and_says_it_would_step_by_it() {
    let cp = backdated_cp();
    let root = tempfile::tempdir().unwrap();
    let r = join(&cp, root.path(), Y2015, &["--dry-run".to_string()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("clock: taking the time from the Date header of https://"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("clock: dry run: would step 2015-01-01T00:00:"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("clock: stepped"), "{}", r.stderr);
    assert!(
        r.stdout.contains("would be stepped by +")
            && r.stdout.contains("from verified-date-header"),
        "{}",
        r.stdout
    );
    assert!(!root.path().join("run/kubejoin/result.json").exists());
}

#[test]
fn with_network_time_off_a_clock_in_2015_stops_with_the_clock_message_and_asks_for_no_date() {
    // `--ntp off` (`kubejoin.ntp=off`): neither SNTP nor the verified Date; certificates newer
    // than this build are then "not yet valid" at the best time known (the floor).
    let cp = backdated_cp();
    let root = tempfile::tempdir().unwrap();
    let r = join(&cp, root.path(), Y2015, &["--ntp".into(), "off".into()]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    for needle in [
        "network time is off: no SNTP, no verified Date (from flag)",
        "is not yet valid: it is valid from",
        "earlier than this kubejoin was built, so the build time was used",
        "the clock is the likely cause",
        "kubejoin.ntp=HOST[:PORT]",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    assert!(!r.stderr.contains("Date header of"), "{}", r.stderr);
    assert!(
        !cp.requests().iter().any(|q| q.path == "/version"),
        "no Date is asked for when network time is off"
    );
    assert!(
        !cp.requests().iter().any(|q| q.authorization),
        "the token was never sent"
    );
    assert!(r.took < Duration::from_secs(30), "{:?}", r.took);
    assert!(!root.path().join("etc/kubernetes/kubelet.conf").exists());
}

#[test]
fn a_certificate_refused_for_its_time_after_discovery_is_final_at_once_not_retried() {
    // With network time off and a clock in 2015, discovery (the insecure fetch, JWS, pin) passes
    // and the first request verified against the pinned CA, cluster-config's read of
    // kubeadm-config, refuses the server's certificate as not yet valid. The clock stays wrong
    // while kubejoin waits, so that read is not repeated: kubeadm's short retry of that
    // ConfigMap (every 50 ms for 350 ms) and the phase's backoff both stop on it at once.
    let cp = backdated_cp();
    let root = tempfile::tempdir().unwrap();
    let r = join(
        &cp,
        root.path(),
        Y2015,
        &["--ntp".into(), "off".into(), "--verbose".into()],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("getting ConfigMap kube-system/kubeadm-config at https://"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("is not yet valid"), "{}", r.stderr);
    // The server: the one TLS connection of cluster-config was refused by the client, and no
    // verified request reached the API (only discovery's insecure cluster-info fetches did).
    // The server counts a failed handshake when it sees the client's alert or close, which may
    // be a moment after the binary exited: wait (bounded) for the count to settle.
    let until = Instant::now() + Duration::from_secs(2);
    while cp.failed_handshakes() == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(cp.failed_handshakes(), 1, "{}", r.stderr);
    assert!(
        cp.requests()
            .iter()
            .all(|q| q.path.ends_with("/configmaps/cluster-info")),
        "{:?}",
        cp.requests().iter().map(|q| &q.path).collect::<Vec<_>>()
    );
    // The client: no retry was announced (debug log).
    assert!(!r.stderr.contains("retrying"), "{}", r.stderr);
    assert!(!root.path().join("etc/kubernetes/kubelet.conf").exists());
}

#[test]
fn without_sntp_a_server_sending_no_date_leaves_a_clock_in_2015_to_the_clock_error() {
    // kube-apiserver always sends `Date`; a proxy in front of it may strip it (the testcp
    // fault `no_date_header`). With no SNTP and certificates newer than this build, the
    // verified-Date probe then has nothing to take: a warning saying so, then the clock error at
    // the first connection verified against the pinned CA, before the token is sent.
    let ca_from = now_secs().floor();
    let mut config = Config {
        pki_backdate: Duration::ZERO,
        ..Config::default()
    };
    config.faults.no_date_header = true;
    let cp = kubejoin_testcp::start(config).unwrap();
    let floor = kubejoin::clock::floor::floor().unix_secs() as f64;
    assert!(floor < ca_from, "floor {floor} not older than {ca_from}");
    let root = tempfile::tempdir().unwrap();
    let r = join(&cp, root.path(), Y2015, &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    for needle in [
        // The probe ran, over verified TLS, and found no Date.
        "clock: no verified Date taken from https://",
        "/version: the answer has no Date header",
        // The clock error: what, the window, the time used and the likely cause.
        "is not yet valid: it is valid from",
        "earlier than this kubejoin was built, so the build time was used",
        "the clock is the likely cause",
        // What to do.
        "kubejoin.ntp=HOST[:PORT]",
        "--ntp HOST[:PORT] for `kubejoin join`",
    ] {
        assert!(r.stderr.contains(needle), "{needle}: {}", r.stderr);
    }
    assert!(
        !r.stderr.contains("taking the time from the Date"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("clock: stepped"), "{}", r.stderr);
    // The server: the probe's GET /version came, anonymous; no request ever carried the token.
    let reqs = cp.requests();
    let probe = reqs
        .iter()
        .find(|q| q.path == "/version")
        .expect("a GET /version");
    assert!(!probe.authorization, "{probe:?}");
    assert!(
        !reqs.iter().any(|q| q.authorization),
        "the token was sent: {reqs:?}"
    );
    assert!(r.took < Duration::from_secs(30), "{:?}", r.took);
    // Nothing written under the root.
    let mut written = Vec::new();
    let mut dirs = vec![root.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                dirs.push(e.path());
            } else {
                written.push(e.path());
            }
        }
    }
    assert!(written.is_empty(), "{written:?}");
}
