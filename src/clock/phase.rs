//! The clock phase: before discovery (before any TLS), ask the join's SNTP servers, take their
//! consistent answer, and step the system clock when it is off by more than the threshold; with
//! no answer, go on with the best time known (the floor, or the clock when later), which is what
//! certificate validity is then checked at (`cert::BestTimeVerifier`). What happened is returned
//! as a [`ClockRecord`] for `result.json`, and a step is also recorded in the timeline
//! (`clock-step`: from, to, offset, the servers that agreed).
//!
//! [`run`] is the one entry point, called by `kubejoin join` (`app::join`) and by PID 1 (the
//! `clock` stage) alike. It fails only when a step was needed and refused (no `CAP_SYS_TIME`):
//! a silent or inconsistent set of servers is not an error here — the join may still work at
//! the best time known, and if it does not, the certificate error says the clock is the likely
//! cause and how to give kubejoin a time source.

use super::client::{self, Policy, Server, ServerReport, Verdict};
use super::floor::{best_known, TimeSource};
use super::step::{self, StepError, StepOutcome, STEP_THRESHOLD};
use crate::error::Classify;
use crate::sys::clock::Clock;
use crate::time::WallTime;

/// The time sources of a join, as its plan names them (`plan::TimePlan`).
#[derive(Debug, Clone, Copy)]
pub struct Sources<'a> {
    pub servers: &'a [Server],
    /// The layer that named them (`flag`, `cmdline`, `file:…`, `dhcp`, `platform:aws`…).
    pub from: Option<&'a str>,
    /// SNTP turned off (`--ntp off`, `kubejoin.ntp=off`).
    pub off: bool,
    /// `--dry-run`: ask and report, but never set the clock.
    pub dry_run: bool,
}

/// One server's part, for `result.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ServerRecord {
    pub server: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stratum: Option<u8>,
    /// `agreed`, `outvoted` or `refused` (answers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'static str>,
    /// Why it gave no usable answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A step of the system clock, for `result.json` and the timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepRecord {
    /// RFC 3339, the clock just before the step.
    pub from: String,
    /// RFC 3339, what it was set to.
    pub to: String,
    pub offset_seconds: f64,
    /// The servers whose agreement set it.
    pub servers: Vec<String>,
}

/// What the clock phase did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClockRecord {
    /// What the join's time rests on: `sntp` (the servers agreed; the clock was stepped or
    /// was already right), `off` (SNTP turned off), or — when SNTP gave nothing — the best
    /// time known: `system-clock` or `build-time-floor`, or `verified-date-header` once
    /// discovery took a verified `Date` (`datehdr`, [`ClockRecord::note_verified_date`]).
    pub source: String,
    /// The layer that named the servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers_from: Option<String>,
    pub servers: Vec<ServerRecord>,
    /// The agreed offset (SNTP), in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<StepRecord>,
    /// RFC 3339: the clock when the phase started.
    pub clock_at_start: String,
    /// RFC 3339: the binary's build time, the clock floor.
    pub floor: String,
    /// Without SNTP: the time certificate validity is checked at (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
    /// Why SNTP gave no answer, when it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sntp_error: Option<String>,
    /// The `Date` header taken over TLS verified against the pinned CA (`datehdr`), when SNTP
    /// gave nothing and the pinned chain was outside its windows at the best time known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_date: Option<VerifiedDateRecord>,
    /// A dry run: the offset, in seconds, the clock would have been stepped by (never set).
    #[serde(skip)]
    pub would_step: Option<f64>,
}

/// A `Date` header taken as the time (`source: verified-date-header`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct VerifiedDateRecord {
    /// The API server that sent it (`https://host:port`).
    pub server: String,
    /// RFC 3339: the `Date` it sent.
    pub date: String,
}

impl ClockRecord {
    /// Records that discovery took the time from a verified `Date` (`datehdr::adopted`): it is
    /// now the source, and the time certificates were checked at.
    pub fn note_verified_date(&mut self, server: &str, date: WallTime) {
        self.source = TimeSource::VerifiedDate.id().to_string();
        self.checked_at = Some(date.to_string());
        self.verified_date = Some(VerifiedDateRecord {
            server: server.to_string(),
            date: date.to_string(),
        });
    }
}

fn server_record(r: &ServerReport) -> ServerRecord {
    let ms = |o: crate::time::Offset| (o.as_secs_f64() * 1e6).round() / 1e3;
    let (sample, error) = match &r.result {
        Ok(s) => (Some(s), None),
        Err(e) => (None, Some(e.to_string())),
    };
    ServerRecord {
        server: r.server.to_string(),
        address: r.address.map(|a| a.to_string()),
        offset_seconds: sample.map(|s| s.offset.as_secs_f64()),
        delay_ms: sample.map(|s| ms(s.delay)),
        stratum: sample.map(|s| s.stratum),
        verdict: r.verdict.map(|v| match v {
            Verdict::Agreed => "agreed",
            Verdict::Outvoted => "outvoted",
            Verdict::Refused => "refused",
        }),
        error,
    }
}

/// The clock phase of `plan`'s time sources on the node's clock (`sys::clock::node_clock`),
/// with the default SNTP policy and the compiled-in floor: what `kubejoin join` and PID 1 call.
pub async fn run_for(
    servers: &[Server],
    from: Option<&str>,
    off: bool,
    dry_run: bool,
) -> Result<ClockRecord, StepError> {
    let clock = crate::sys::clock::node_clock();
    run(
        Sources {
            servers,
            from,
            off,
            dry_run,
        },
        &*clock,
        &Policy::default(),
        super::floor::floor(),
    )
    .await
}

/// The clock phase (see the module docs): `sources` from the plan, the node's `clock`, the SNTP
/// `policy` and the clock `floor` (`floor::floor()` outside tests).
pub async fn run(
    sources: Sources<'_>,
    clock: &dyn Clock,
    policy: &Policy,
    floor: WallTime,
) -> Result<ClockRecord, StepError> {
    let at_start = clock.now();
    let mut record = ClockRecord {
        source: String::new(),
        servers_from: sources.from.map(str::to_string),
        servers: Vec::new(),
        offset_seconds: None,
        step: None,
        clock_at_start: at_start.to_string(),
        floor: floor.to_string(),
        checked_at: None,
        sntp_error: None,
        verified_date: None,
        would_step: None,
    };
    if sources.off || sources.servers.is_empty() {
        let why = if sources.off {
            format!(
                "network time is off: no SNTP, no verified Date (from {})",
                sources.from.unwrap_or("the configuration")
            )
        } else {
            "no NTP server is named (kubejoin.ntp=, ntp:, --ntp, DHCP option 42 or the platform's)"
                .to_string()
        };
        without_sntp(&mut record, &why, clock.now(), floor, !sources.off);
        if sources.off {
            // `off` turns kubejoin's network time off: SNTP and the verified `Date` alike (the
            // clock, raised to the floor, is what certificates are checked at).
            record.source = "off".into();
        } else {
            // The last source may be used: a `Date` over pinned TLS (`datehdr`), in discovery.
            super::datehdr::allow();
        }
        return Ok(record);
    }
    let servers: Vec<String> = sources.servers.iter().map(ToString::to_string).collect();
    crate::info!(
        "clock: asking {} (from {}); the clock says {at_start}",
        servers.join(", "),
        sources.from.unwrap_or("the plan")
    );
    match client::query(sources.servers, policy, clock, floor).await {
        Ok(agreement) => {
            record.servers = agreement.servers.iter().map(server_record).collect();
            record.offset_seconds = Some(agreement.offset.as_secs_f64());
            record.source = "sntp".into();
            let agreed: Vec<String> = agreement
                .servers
                .iter()
                .filter(|r| r.verdict == Some(Verdict::Agreed))
                .map(|r| r.server.to_string())
                .collect();
            let stepped = step_by(
                clock,
                agreement.offset,
                TimeSource::Sntp,
                agreed,
                sources.dry_run,
                &mut record,
            )?;
            if !stepped && !sources.dry_run {
                crate::info!(
                    "clock: right to within {} by {} agreeing server(s); not stepped",
                    agreement.offset,
                    agreement.agreeing
                );
            }
        }
        Err(e) => {
            record.servers = e.servers().iter().map(server_record).collect();
            record.sntp_error = Some(e.to_string());
            crate::warn!(
                "clock: {}",
                crate::error::Report(&e, e.hint())
                    .to_string()
                    .trim_start_matches("error: ")
            );
            without_sntp(&mut record, "SNTP gave no time", clock.now(), floor, true);
            super::datehdr::allow();
        }
    }
    Ok(record)
}

/// Steps `clock` by `offset`, learnt from `servers` (SNTP's agreeing servers, or the API server
/// whose verified `Date` it is), when it is more than the threshold: `old → new` in the log, a
/// `clock-step` in the timeline, the step and offset in `record`. In a `dry_run` the clock is
/// never set: the time learnt stands for it in every certificate check of this process
/// (`floor::learn`), and the log (and `record.would_step`) says by how much it would be stepped.
/// Returns whether the clock was (or, in a dry run, would be) stepped.
fn step_by(
    clock: &dyn Clock,
    offset: crate::time::Offset,
    source: TimeSource,
    servers: Vec<String>,
    dry_run: bool,
    record: &mut ClockRecord,
) -> Result<bool, StepError> {
    record.offset_seconds = Some(offset.as_secs_f64());
    if dry_run {
        let now = clock.now();
        super::floor::learn(now.plus(offset), source);
        if !step::needs_step(offset, STEP_THRESHOLD) {
            return Ok(false);
        }
        crate::info!(
            "clock: dry run: would step {now} → {} (offset {offset}, from {}); not set",
            now.plus(offset),
            servers.join(", ")
        );
        record.would_step = Some(offset.as_secs_f64());
        return Ok(true);
    }
    match step::apply(clock, offset, STEP_THRESHOLD)? {
        StepOutcome::Stepped(s) => {
            let step = StepRecord {
                from: s.old.to_string(),
                to: s.new.to_string(),
                offset_seconds: s.offset.as_secs_f64(),
                servers,
            };
            crate::log::record_event(
                "clock-step",
                serde_json::to_value(&step).unwrap_or_default(),
            );
            record.step = Some(step);
            Ok(true)
        }
        StepOutcome::WithinThreshold { .. } => Ok(false),
    }
}

/// After discovery took the time from a verified `Date` sent by `server` (`datehdr`): the
/// record says so, and the clock is stepped to `now` — that `Date` carried forward to now
/// (`floor::learnt`) — exactly as for an SNTP step, or, in a `dry_run`, only said to be.
pub fn after_verified_date(
    record: &mut ClockRecord,
    clock: &dyn Clock,
    server: &str,
    date: WallTime,
    now: WallTime,
    dry_run: bool,
) -> Result<(), StepError> {
    let again = record
        .verified_date
        .as_ref()
        .is_some_and(|v| v.server == server && v.date == date.to_string());
    if again {
        // A retried discovery (PID 1) that found the same `Date`: already recorded and applied.
        return Ok(());
    }
    record.note_verified_date(server, date);
    let offset = now.since(clock.now());
    let stepped = step_by(
        clock,
        offset,
        TimeSource::VerifiedDate,
        vec![server.to_string()],
        dry_run,
        record,
    )?;
    if !stepped && !dry_run {
        crate::info!("clock: within {offset} of the verified Date; not stepped");
    }
    Ok(())
}

/// Fills in (and logs) the best time known when SNTP gave nothing.
/// `date_next`: the verified `Date` may still be taken in discovery (network time not `off`).
fn without_sntp(
    record: &mut ClockRecord,
    why: &str,
    now: WallTime,
    floor: WallTime,
    date_next: bool,
) {
    let best = best_known(floor, now, None);
    record.source = best.source.id().to_string();
    record.checked_at = Some(best.time.to_string());
    let then = if date_next {
        "until the API server's Date, verified against the pinned CA, gives a later time \
         (docs/time.md); without it, a cluster whose certificates are newer will be refused"
    } else {
        "and a cluster whose certificates are newer will be refused (network time is off: no \
         verified Date either)"
    };
    match best.source {
        TimeSource::Floor => crate::warn!(
            "clock: {why}, and this machine's clock says {now}, earlier than this kubejoin was built \
             ({floor}): it is certainly wrong; certificates are checked at the build time, {then} — \
             name an NTP server with kubejoin.ntp=HOST[:PORT]"
        ),
        _ => crate::info!("clock: {why}; going on with the system clock ({now})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::clock::RecordingClock;

    const Y2015: WallTime = WallTime::from_unix_secs(1_420_070_400);
    const FLOOR: WallTime = WallTime::from_unix_secs(1_796_083_200);

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn without_servers_the_floor_stands_in_for_a_clock_before_the_build() {
        let clock = RecordingClock::at(Y2015);
        let sources = Sources {
            servers: &[],
            from: None,
            off: false,
            dry_run: false,
        };
        let r = rt()
            .block_on(run(sources, &clock, &Policy::default(), FLOOR))
            .unwrap();
        assert_eq!(r.source, "build-time-floor");
        assert_eq!(r.checked_at.as_deref(), Some("2026-12-01T00:00:00.000Z"));
        assert_eq!(r.clock_at_start, "2015-01-01T00:00:00.000Z");
        assert!(r.step.is_none() && r.servers.is_empty());
        assert!(clock.calls().is_empty(), "nothing to step from");
        let off = Sources {
            servers: &[],
            from: Some("cmdline"),
            off: true,
            dry_run: false,
        };
        let later = RecordingClock::at(FLOOR.plus(crate::time::Offset::from_nanos(1)));
        let r = rt()
            .block_on(run(off, &later, &Policy::default(), FLOOR))
            .unwrap();
        assert_eq!(r.source, "off");
        assert_eq!(r.servers_from.as_deref(), Some("cmdline"));
    }

    fn record_2015() -> ClockRecord {
        let clock = RecordingClock::at(Y2015);
        let sources = Sources {
            servers: &[],
            from: None,
            off: false,
            dry_run: false,
        };
        rt().block_on(run(sources, &clock, &Policy::default(), FLOOR))
            .unwrap()
    }

    #[test]
    fn a_verified_date_steps_the_clock_as_sntp_does() {
        let mut record = record_2015();
        let clock = RecordingClock::at(Y2015);
        let date = FLOOR.plus(crate::time::Offset::from_nanos(86_400_000_000_000));
        // Two seconds passed since the Date was taken: the clock goes to the Date carried forward.
        let now = date.plus(crate::time::Offset::from_nanos(2_000_000_000));
        let server = "https://10.0.2.2:6443";
        after_verified_date(&mut record, &clock, server, date, now, false).unwrap();
        assert_eq!(
            clock.calls(),
            [crate::sys::clock::ClockCall::SetRealtime {
                from: Y2015,
                to: now
            }]
        );
        assert_eq!(record.source, "verified-date-header");
        assert_eq!(record.checked_at, Some(date.to_string()));
        let step = record.step.as_ref().unwrap();
        assert_eq!(step.from, Y2015.to_string());
        assert_eq!(step.to, now.to_string());
        assert_eq!(step.servers, [server]);
        let secs = now.since(Y2015).as_secs_f64();
        assert_eq!(step.offset_seconds, secs);
        assert_eq!(record.offset_seconds, Some(secs));
        assert_eq!(record.would_step, None);
        // Within the threshold (a clock already right): nothing is set.
        let mut record = record_2015();
        let right = RecordingClock::at(now);
        after_verified_date(&mut record, &right, server, date, now, false).unwrap();
        assert!(right.calls().is_empty() && record.step.is_none());
        assert_eq!(record.source, "verified-date-header");
        // The same Date again (a retried discovery): recorded and applied once.
        let mut record = record_2015();
        let clock = RecordingClock::at(Y2015);
        after_verified_date(&mut record, &clock, server, date, now, false).unwrap();
        after_verified_date(&mut record, &clock, server, date, now, false).unwrap();
        assert_eq!(clock.calls().len(), 1);
        assert_eq!(record.offset_seconds, Some(secs));
    }

    #[test]
    fn a_refused_step_to_a_verified_date_is_the_step_error() {
        let mut record = record_2015();
        let clock = RecordingClock::at(Y2015).failing_set(std::io::ErrorKind::PermissionDenied);
        let e = after_verified_date(&mut record, &clock, "https://cp:6443", FLOOR, FLOOR, false)
            .unwrap_err();
        assert!(e.hint().unwrap().contains("CAP_SYS_TIME"), "{e}");
        assert!(record.step.is_none());
        assert_eq!(clock.now(), Y2015);
    }

    #[test]
    fn a_silent_server_is_reported_and_the_clock_left_alone() {
        // A bound UDP socket that never answers: the bounded wait, then the floor.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = Server::parse(&silent.local_addr().unwrap().to_string()).unwrap();
        let clock = RecordingClock::at(Y2015);
        let policy = Policy {
            attempt_timeout: std::time::Duration::from_millis(100),
            attempts: 2,
            overall: std::time::Duration::from_millis(500),
            ..Policy::default()
        };
        let servers = [server];
        let sources = Sources {
            servers: &servers,
            from: Some("flag"),
            off: false,
            dry_run: false,
        };
        let r = rt().block_on(run(sources, &clock, &policy, FLOOR)).unwrap();
        assert_eq!(r.source, "build-time-floor");
        assert!(r
            .sntp_error
            .as_deref()
            .unwrap()
            .contains("no NTP server gave an acceptable answer"));
        assert_eq!(r.servers.len(), 1);
        assert!(r.servers[0].error.as_deref().unwrap().contains("no answer"));
        assert!(clock.calls().is_empty());
    }
}
