//! kubejoin's SNTP client (`kubejoin::clock::client`) against the test SNTP servers of
//! `kubejoin-testcp` (`kubejoin_testcp::sntp`) on loopback: the offset it computes, the bounded
//! wait when nobody answers, the vote that outvotes a liar or refuses disagreeing servers,
//! kiss-o'-death, forged and unsynchronised answers, and the step of a (fake) clock stuck in 2015.
//!
//! The servers are an implementation of the RFC's packet layout separate from kubejoin's codec,
//! and they tell this machine's real time shifted by a chosen offset. Every test is bounded by
//! the client's own policy (a few seconds at most); only 127.0.0.1 is used.

// Test code: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kubejoin::clock::client::{query, Policy, Server, ServerFailure, SntpError, Verdict};
use kubejoin::clock::floor;
use kubejoin::clock::sntp::KissCode;
use kubejoin::clock::step::{self, StepOutcome};
use kubejoin::sys::clock::{ClockCall, RealClock, RecordingClock};
use kubejoin::time::{Offset, WallTime};
use kubejoin_testcp::sntp::{start, Behaviour, SntpConfig, SntpServer};
use std::time::{Duration, Instant, SystemTime};

const YEAR: f64 = 365.25 * 86_400.0;
const Y2015: WallTime = WallTime::from_unix_secs(1_420_070_400);

fn server(offset_secs: f64, behaviour: Behaviour) -> SntpServer {
    start(SntpConfig {
        offset_secs,
        behaviour,
        ..SntpConfig::default()
    })
    .unwrap()
}

/// A server telling the truth shifted by `offset_secs`. Negative shifts beyond a few seconds
/// would be refused: the clock floor of a test build is the last commit's time.
fn good(offset_secs: f64) -> SntpServer {
    server(offset_secs, Behaviour::Answer)
}

fn spec(s: &SntpServer) -> Server {
    Server::parse(&s.addr().to_string()).unwrap()
}

/// Short attempts so that the silent cases stay quick; still far above loopback round trips.
fn quick() -> Policy {
    Policy {
        attempt_timeout: Duration::from_millis(400),
        attempts: 3,
        overall: Duration::from_secs(3),
        ..Policy::default()
    }
}

fn real_now() -> WallTime {
    WallTime::from_system(SystemTime::now())
}

/// |a - b| <= within.
fn close(a: Offset, b: Offset, within: Duration) -> bool {
    (a.nanos() - b.nanos()).unsigned_abs() <= within.as_nanos()
}

#[tokio::test]
async fn the_offset_is_what_the_servers_say() {
    let servers = [good(120.0), good(120.0), good(120.0)];
    let specs: Vec<Server> = servers.iter().map(spec).collect();
    let a = query(&specs, &quick(), &RealClock, floor::floor())
        .await
        .unwrap();
    assert!(
        close(
            a.offset,
            Offset::from_secs_f64(120.0),
            Duration::from_millis(100)
        ),
        "{}",
        a.offset
    );
    assert_eq!(a.agreeing, 3);
    for r in &a.servers {
        let s = r.result.as_ref().unwrap();
        assert_eq!(r.verdict, Some(Verdict::Agreed));
        assert_eq!(s.stratum, 1);
        assert!(s.delay.abs() < Duration::from_millis(100), "{}", s.delay);
    }
    // One request each: nothing is asked twice once answered.
    assert!(servers.iter().all(|s| s.requests() == 1));
}

#[tokio::test]
async fn a_machine_stuck_in_2015_learns_the_time_and_steps_its_clock() {
    let servers = [good(0.0), good(0.0), good(0.0)];
    let specs: Vec<Server> = servers.iter().map(spec).collect();
    let clock = RecordingClock::at(Y2015);
    let a = query(&specs, &quick(), &clock, floor::floor())
        .await
        .unwrap();
    let truth = real_now().since(Y2015);
    assert!(
        close(a.offset, truth, Duration::from_millis(500)),
        "{} vs {truth}",
        a.offset
    );

    let out = step::apply(&clock, a.offset, step::STEP_THRESHOLD).unwrap();
    let StepOutcome::Stepped(s) = out else {
        panic!("not stepped: {out:?}");
    };
    assert_eq!(s.old, Y2015);
    assert_eq!(
        clock.calls(),
        [ClockCall::SetRealtime {
            from: Y2015,
            to: s.new
        }]
    );
    // The fake clock now reads today.
    assert!(
        close(
            s.new.since(real_now()),
            Offset::ZERO,
            Duration::from_millis(500)
        ),
        "{}",
        s.new
    );
}

#[tokio::test]
async fn silence_is_bounded_and_says_so() {
    let silent = [
        server(0.0, Behaviour::Silent),
        server(0.0, Behaviour::Silent),
    ];
    // And a port where nothing listens (ICMP port unreachable on loopback).
    let closed = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let mut specs: Vec<Server> = silent.iter().map(spec).collect();
    specs.push(Server::parse(&closed.to_string()).unwrap());
    let policy = quick();
    let started = Instant::now();
    let e = query(&specs, &policy, &RealClock, floor::floor())
        .await
        .unwrap_err();
    let took = started.elapsed();
    // 3 attempts of 400 ms, well within the 3 s bound (and never beyond it).
    assert!(took >= Duration::from_millis(1150), "{took:?}");
    assert!(
        took < policy.overall + Duration::from_millis(500),
        "{took:?}"
    );
    let SntpError::NoAnswer(reports) = &e else {
        panic!("{e:?}");
    };
    for r in reports {
        assert!(
            matches!(r.result, Err(ServerFailure::NoAnswer { attempts: 3, .. })),
            "{r}"
        );
    }
    assert!(silent.iter().all(|s| s.requests() == 3));
    let text = e.to_string();
    assert!(
        text.starts_with("no NTP server gave an acceptable answer: "),
        "{text}"
    );
    assert!(text.contains("no answer to 3 request(s)"), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    assert!(kubejoin::error::Classify::hint(&e)
        .unwrap()
        .contains("kubejoin.ntp="));
}

#[tokio::test]
async fn the_overall_bound_cuts_attempts_short() {
    let silent = server(0.0, Behaviour::Silent);
    let policy = Policy {
        attempt_timeout: Duration::from_secs(5),
        attempts: 5,
        overall: Duration::from_millis(700),
        ..Policy::default()
    };
    let started = Instant::now();
    let e = query(&[spec(&silent)], &policy, &RealClock, floor::floor())
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(matches!(e, SntpError::NoAnswer(_)), "{e}");
    assert_eq!(silent.requests(), 1);
}

#[tokio::test]
async fn a_liar_among_three_is_outvoted() {
    let servers = [good(0.0), good(10.0 * YEAR), good(0.0)];
    let specs: Vec<Server> = servers.iter().map(spec).collect();
    let a = query(&specs, &quick(), &RealClock, floor::floor())
        .await
        .unwrap();
    assert!(
        close(a.offset, Offset::ZERO, Duration::from_millis(100)),
        "{}",
        a.offset
    );
    assert_eq!(a.agreeing, 2);
    let verdicts: Vec<_> = a.servers.iter().map(|r| r.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Some(Verdict::Agreed),
            Some(Verdict::Outvoted),
            Some(Verdict::Agreed)
        ]
    );
    // The liar's own offset is kept in its report (for the timeline and result.json).
    let liar = a.servers[1].result.as_ref().unwrap();
    assert!(liar.offset.abs() > Duration::from_secs(9 * 365 * 86_400));
}

#[tokio::test]
async fn servers_that_all_disagree_are_refused() {
    let servers = [good(0.0), good(100.0), good(200.0)];
    let specs: Vec<Server> = servers.iter().map(spec).collect();
    let e = query(&specs, &quick(), &RealClock, floor::floor())
        .await
        .unwrap_err();
    let SntpError::Inconsistent {
        servers: reports, ..
    } = &e
    else {
        panic!("{e:?}");
    };
    assert!(reports.iter().all(|r| r.verdict == Some(Verdict::Refused)));
    assert!(
        e.to_string()
            .starts_with("the NTP servers disagree by more than 1s"),
        "{e}"
    );

    // Two that disagree: neither can be told from the other, so both are refused.
    let pair = [good(0.0), good(3600.0)];
    let specs: Vec<Server> = pair.iter().map(spec).collect();
    let e = query(&specs, &quick(), &RealClock, floor::floor())
        .await
        .unwrap_err();
    assert!(matches!(e, SntpError::Inconsistent { .. }), "{e}");
    assert_eq!(e.to_string().matches(", refused").count(), 2, "{e}");
}

#[tokio::test]
async fn one_answer_is_believed_only_from_the_only_server() {
    let alone = good(30.0);
    let a = query(&[spec(&alone)], &quick(), &RealClock, floor::floor())
        .await
        .unwrap();
    assert!(close(
        a.offset,
        Offset::from_secs_f64(30.0),
        Duration::from_millis(100)
    ));

    let one = good(30.0);
    let quiet = [
        server(0.0, Behaviour::Silent),
        server(0.0, Behaviour::Silent),
    ];
    let specs = vec![spec(&one), spec(&quiet[0]), spec(&quiet[1])];
    let e = query(&specs, &quick(), &RealClock, floor::floor())
        .await
        .unwrap_err();
    assert!(matches!(e, SntpError::Unconfirmed(_)), "{e}");
    assert!(
        e.to_string()
            .starts_with("only one of 3 NTP servers answered"),
        "{e}"
    );
}

#[tokio::test]
async fn kiss_o_death_ends_the_questions_to_that_server() {
    let deny = server(0.0, Behaviour::Kiss(*b"DENY"));
    let rate = server(0.0, Behaviour::Kiss(*b"RATE"));
    let servers = [good(5.0), good(5.0), good(5.0)];
    let mut specs = vec![spec(&deny), spec(&rate)];
    specs.extend(servers.iter().map(spec));
    let a = query(&specs, &quick(), &RealClock, floor::floor())
        .await
        .unwrap();
    assert!(close(
        a.offset,
        Offset::from_secs_f64(5.0),
        Duration::from_millis(100)
    ));
    assert_eq!(
        a.servers[0].result,
        Err(ServerFailure::Kiss(KissCode::DENY))
    );
    assert_eq!(
        a.servers[1].result,
        Err(ServerFailure::Kiss(KissCode::RATE))
    );
    assert_eq!(
        (deny.requests(), rate.requests()),
        (1, 1),
        "not asked again"
    );
    assert!(a.servers[0].to_string().contains("kiss-o'-death DENY"));
}

#[tokio::test]
async fn forged_and_unsynchronised_answers_are_not_believed() {
    let forged = server(0.0, Behaviour::WrongOriginate);
    let e = query(&[spec(&forged)], &quick(), &RealClock, floor::floor())
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("discarded a packet: its originate timestamp does not match"),
        "{text}"
    );
    assert_eq!(
        forged.requests(),
        3,
        "each attempt waits out its time, then asks again"
    );

    let unsync = server(0.0, Behaviour::Unsynchronised);
    let e = query(&[spec(&unsync)], &quick(), &RealClock, floor::floor())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("refused its answer: leap indicator 3"),
        "{e}"
    );
}

#[tokio::test]
async fn names_resolve_through_the_system_resolver() {
    let s = good(7.0);
    let by_name = Server::parse(&format!("localhost:{}", s.addr().port())).unwrap();
    let a = query(&[by_name], &quick(), &RealClock, floor::floor())
        .await
        .unwrap();
    assert!(close(
        a.offset,
        Offset::from_secs_f64(7.0),
        Duration::from_millis(100)
    ));
    let e = query(
        &[Server::parse("no-such-host.invalid").unwrap()],
        &quick(),
        &RealClock,
        floor::floor(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e.servers()[0].result, Err(ServerFailure::Resolve(_))),
        "{e}"
    );
}

#[tokio::test]
async fn a_server_whose_time_is_before_the_build_is_refused_before_the_vote() {
    // Two servers agree on a time ten years ago (before this binary was built): not a
    // majority of believable answers, whatever their number.
    let past = [good(-10.0 * YEAR), good(-10.0 * YEAR)];
    let now = good(0.0);
    let specs = vec![spec(&past[0]), spec(&past[1]), spec(&now)];
    let e = query(&specs, &quick(), &RealClock, floor::floor())
        .await
        .unwrap_err();
    assert!(matches!(e, SntpError::Unconfirmed(_)), "{e}");
    assert!(
        e.to_string().contains("is before this kubejoin was built"),
        "{e}"
    );
    // Alone, it is refused too.
    let e = query(&[spec(&past[0])], &quick(), &RealClock, floor::floor())
        .await
        .unwrap_err();
    assert!(matches!(e, SntpError::NoAnswer(_)), "{e}");
}
