//! When to try again, how long to wait, and when to stop.
//!
//! A first-boot join runs unattended on thousands of machines on flaky networks. It must ride
//! out what passes (a refused connection while the API server restarts, a reset, a 503 from a
//! load balancer, a 429 from the apiserver's max-in-flight filter, the bootstrap signer's lag),
//! stop at once on what does not (a token rejected, RBAC, a certificate that does not verify,
//! data that is not what it must be), and never outlive its deadline.
//!
//! ## The schedule
//!
//! Exponential backoff with **full jitter** (AWS Architecture Blog, "Exponential Backoff And
//! Jitter"): the pause before retry `n` (`n = 0` after the first failure) is
//!
//! ```text
//! pause(n) = random(0, min(cap, base · 2^n))
//! ```
//!
//! Full jitter spreads a fleet that failed at the same moment (a control plane restart seen by
//! every machine at once) evenly over the window, instead of bringing it back in waves.
//! [`Policy::for_interval`] derives discovery's policy from kubeadm's poll interval `I`
//! (`--discovery-retry-interval`, default 5 s): `base = I/8`, `cap = 2·I`, so that the mean
//! pause of the steady state, `cap/2`, is kubeadm's `I` — the same load on the API server as
//! kubeadm's fleet, reached quickly when the failure was a blip. For `I = 5 s`:
//!
//! ```text
//! retry n     0       1       2      3     4     5+
//! ceiling     625ms   1.25s   2.5s   5s    10s   10s
//! mean        312ms   625ms   1.25s  2.5s  5s    5s
//! ```
//!
//! A server that says when to come back is believed: after a 429 or 503 with `Retry-After`
//! (delta-seconds or an HTTP-date) the pause is at least that long. On top of it comes
//! `random(0, window(n))` ([`Policy::shed_window`]): the `Retry-After` doubled with each pause
//! so far (`n` counts them as the backoff does), up to the larger of the `Retry-After` and the
//! cap, or the backoff's ceiling when that is wider. A server that sheds load says "1" to
//! everyone it turns away at the same moment, and a
//! fleet that came back within the same quarter of a second met the same full server again
//! (measured with `scripts/bench`, 1,000 nodes against a cap of 10 in flight: amplification
//! 1.16–1.18 with `random(0, base)`). Spread over at least the `Retry-After` itself, and wider
//! each time the same caller is turned away again, the returns no longer arrive as a wave
//! (doubling from the `Retry-After` rather than waiting for the backoff's ceiling to pass it,
//! which took three pauses with kube-apiserver's "1": 10,000 nodes against a write pool of 50,
//! amplification 1.31 → 1.23–1.28, 100 nodes against 1, 1.16 → 1.15, in s25). A
//! `Retry-After` that ends past the deadline stops the loop at once: waiting could only end in
//! the same failure.
//!
//! ## A slow refusal
//!
//! How long the 429 itself took to come back says how many callers are waiting, which the
//! answer does not. A server shedding load from a pool it can still serve answers a 429 in
//! about a millisecond; one that also has thousands of handshakes and reads queued for its
//! cores answers it after a second or more. By Little's law the callers waiting are its rate
//! times that delay, and spreading their returns over a window as long as the delay (a few times
//! it: the window is a uniform spread, and the server must also serve the calls that arrive
//! meanwhile) brings them back at about the rate it can take. So the return after a 429 or
//! 503 with `Retry-After` is spread over at least [`SHED_ROUND_TRIPS`] (6) times that answer's
//! round trip ([`Policy::shed_window_after`], at most [`Policy::round_trip_cap`]: four times
//! the cap), as TCP scales its
//! retransmission timer with the round trips it measures. Where the answer was quick, which is
//! every fleet up to 1,000 nodes in `scripts/bench` (429s back within ~1–150 ms), nothing
//! changes; 10,000 nodes against pools of 100 and 50 met 429s that took 0.6–1.4 s (median 1.1 s
//! for a node's first), and with the wider return amplification fell 1.23 → 1.12–1.15 and
//! 1.20 → 1.10 at 10× (one run each, before the write's spread below), wall time unchanged;
//! measured with factors 2, 4, 6 and 8: 1.19, 1.15, 1.12, 1.13, where 8 also stretched the
//! wall time by 3–4 s. A node far from its
//! server (a slow link) waits longer after a 429 too, by a few round trips: only while the
//! server is shedding load. The attempt that follows a refused connection has no round trip to
//! go by (it includes [`super::settle`]'s wait).
//!
//! ## Spreading the write
//!
//! A fleet that boots together reaches its one write (the CSR's `POST`) together: kube-apiserver's
//! max-in-flight filter (used when API Priority and Fairness is off, the model `kubejoin-testcp`
//! serves) keeps half as many writes in flight as reads (`--max-mutating-requests-inflight` 200
//! against `--max-requests-inflight` 400, `k8s.io/apiserver` `NewConfig`), so the reads pass
//! and the writes arrive as a burst that the write pool turns away in part, every node of the
//! fleet at the same step. (With Priority and Fairness the two limits are one budget of 600
//! shared out by priority level, and a burst waits in queues before it is refused; the spread
//! only shortens those queues.) Where the server is busy, a node sees it before it writes: its
//! reads came back slower than the network's round trip. So the write is sent at a uniformly random point of a window of
//! [`WRITE_SPREAD_ROUND_TRIPS`] (12) times the server's share of the last served round trip
//! ([`write_spread`]: that round trip less the client's fastest TCP connect, which the kernel
//! answers without the API server's process; at most [`Policy::round_trip_cap`], as above):
//! a fleet's writes then reach the pool over a span that grows with the server's queue, as the
//! 429's own round trip widens the return above. A server that answers within about a
//! millisecond (a window under [`WRITE_SPREAD_FLOOR`], 10 ms) is not waited for, nor is one
//! whose answers are slow only by distance: the network's share is taken out. Measured with
//! `scripts/bench` (README "Performance", round s28; 7 runs a row, 3 at 10,000 nodes): with
//! both rules every row's amplification fell, 100 nodes at 10× 1.11 → 1.01, 1,000 at 10×
//! 1.10 → 1.03, 10,000 at 10× 1.17 → 1.05 and at 100× 1.26 → 1.13, and each node's median
//! join time with it (1,000 at 10×: 1.7 → 0.8 s), the fleets' wall times unchanged or shorter.
//! The server's share of a Node GET there: ~0.2 ms at 100 nodes against a pool of 1 (no
//! spread), ~16 ms at 1,000 at 10×, ~600 ms at 10,000. Factor 8 with a cap of 4 s left 10,000
//! at 100× at 1.18 (the windows at the cap).
//!
//! The calls of one join share what they learn ([`Pacing`], via [`retry_paced`]): each answer
//! that sheds load raises the join's level by one and each served request halves it, and a
//! call's backoff starts at that level, so a node that had to come back four times for its
//! configuration does not fire its CSR at the same saturated server with the narrowest window
//! (nor its CSR wait's list or watch: `bootstrap::wait` starts from the level the join reached).
//! And while the server sheds load, a phase's own bound (kubeadm's 1 m per API call) does not end
//! the loop; the join's overall deadline does ([`Bounds`]): a server that answers 429 with
//! `Retry-After` is up and said when to come back, and giving up on it only makes the fleet
//! start over later (measured with `scripts/bench`, 10,000 nodes at 100×: 107 nodes gave up at
//! `cluster-config`'s 60 s bound before this).
//! After a refused connection the pause is the same backoff with its ceiling capped at
//! [`PROBE_CEILING`] (1 s): nothing listens, so asking again costs the server nothing, and a
//! restarted API server is found again soon after it listens. The connection that finds it
//! listening again waits 0.5–1 s before it is used ([`super::settle`]): the server has only
//! just opened its port and is in its start-up window (below).
//! Callers can also ask for a fixed pause for a miss that is not a failure of the wire
//! (kubeadm polls for the bootstrap signer's JWS every 5 s, without jitter).
//!
//! ## Refusals while the API server restarts
//!
//! A 401 or a 403 is normally final: the token is wrong or expired, RBAC says no. But a
//! kube-apiserver that has just started (an upgrade, an HA fail-over, a site powering up with
//! its nodes) serves requests before its caches are filled: its post-start hooks start the
//! shared informers *after* it begins listening (`start-kube-apiserver-informers`), so for a
//! moment the bootstrap-token authenticator's Secret lister finds no `bootstrap-token-<id>`
//! (it answers "not found", which is a 401 like any bad token:
//! `plugin/pkg/auth/authenticator/token/bootstrap`), and the RBAC authorizer finds no binding
//! (a 403 with the ordinary Forbidden message, even for the anonymous cluster-info GET). Its
//! `/readyz` stays failing until then (`informer-sync`, `poststarthook/rbac/bootstrap-roles`).
//! Measured on a real one: 1–2 answers of 401/403 right after it starts listening, then 200.
//! kubeadm retries every error of its discovery loop until `--discovery-timeout` (5 m), so it
//! survives that window but takes 5 minutes to report a wrong token.
//!
//! kubejoin takes a refusal as final only once it **persists** ([`Persistence`]): the same
//! status on at least [`REFUSALS`]`.attempts` consecutive answers spanning at least
//! [`REFUSALS`]`.over` (3 answers over 5 s); until then it is retried on the usual schedule, its
//! pauses capped at [`REFUSALS`]`.max_pause` (2 s) so that a wrong token is still reported within
//! about 7 s of its first refusal. The pause after the first refusal of a run is half of
//! [`PROBE_CEILING`] to all of it (0.5–1 s), whatever the backoff had grown to: that refusal is
//! most likely the start-up window of an API server that was away a moment ago (sooner would
//! most likely meet the window again, later only leaves the server idle; measured with the
//! bench's restart row: the fleet's tail 9.1 s → 4.6–5.5 s in 2 of 3 runs) ("401 Unauthorized on 4 attempts over 5.3s"). Why not ask
//! `/readyz` instead: during the window the anonymous `/readyz` is itself refused by the same
//! unsynced RBAC (or answers 500), so it cannot say "ready" any sooner; behind a load balancer it
//! may be answered by another API server than the one that refused; and a cluster may not allow
//! anonymous requests at all (file discovery). Counting answers over time needs none of that and
//! costs no request on the healthy path.
//!
//! The first attempt is immediate. No pause runs past the deadline, no attempt starts after it,
//! and the caller gets each attempt's time left to bound it. The error that ends a loop keeps
//! the last cause and the count: "gave up after 14 attempts over 5m0s: connection refused".
//!
//! Everything that decides is a pure function ([`classify`], [`Policy::ceiling`],
//! [`Policy::pause`], [`parse_retry_after`]); [`retry`] drives them with an injectable clock,
//! sleep and random source ([`Env`]) so that its tests run in virtual time.

use super::wire::WireFailure;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Whether another attempt can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// It may pass: refused, reset, timed out, 5xx, 429, the signer's lag.
    Transient,
    /// It will not change by asking again: 404, TLS verification, malformed data.
    Permanent,
    /// A refusal (401, 403, the status given): final once it persists ([`Persistence`]), retried
    /// until then (an API server that just started refuses everyone for a moment).
    Refused(u16),
}

/// How long a failure asks to wait before the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    /// The policy's exponential backoff with full jitter.
    Backoff,
    /// The server said when (`Retry-After`).
    RetryAfter(Duration),
    /// The caller polls for this kind of miss at a fixed interval (no jitter).
    Fixed(Duration),
    /// The connection was refused: the backoff, its ceiling at most [`PROBE_CEILING`].
    Probe,
}

/// Largest ceiling of the pause after a refused connection ([`Pause::Probe`]). A refused
/// connection costs the server nothing (the kernel answers the SYN; no TLS, no request), so
/// there is no load to shed by waiting longer, and an API server that restarts is found again
/// within about a second of listening rather than after the backoff has grown to its cap
/// (measured with `scripts/bench`, 1,000 nodes and a restart 2 s long: the fleet's tail ended
/// ~3 s after a client polling every second; see README "Performance").
pub const PROBE_CEILING: Duration = Duration::from_secs(1);

/// The return after an answer that shed load is spread over at least this many times that
/// answer's own round trip ([`Policy::shed_window_after`]; "A slow refusal" above).
pub const SHED_ROUND_TRIPS: u32 = 6;

/// A failure the retry loop can judge.
pub trait Retryable {
    fn disposition(&self) -> Disposition;
    /// The pause this failure asks for; the policy's backoff unless it says otherwise.
    fn pause(&self) -> Pause {
        Pause::Backoff
    }
    /// What failed, in a few words, for the timeline's record of the pause that follows.
    fn reason(&self) -> String {
        String::new()
    }
}

/// Classifies a failure on the wire.
///
/// Transient: connection refused, reset or any other transport failure (DNS not up yet, an
/// EOF mid-handshake), timeouts, 5xx, 429 and 408. Refused: 401 (token rejected) and 403
/// (RBAC), final once they persist. Permanent: a TLS failure (the certificate does not verify,
/// or the peer does not speak TLS 1.2+: waiting will not change the server's key or software),
/// 404 (a required object is missing), redirects (kubejoin never follows them) and every other
/// status.
pub fn classify(failure: &WireFailure) -> Disposition {
    match failure {
        WireFailure::Refused | WireFailure::TimedOut | WireFailure::Transport(_) => {
            Disposition::Transient
        }
        // A clock that is wrong stays wrong while kubejoin waits (the clock phase is over).
        WireFailure::TlsVerify(_) | WireFailure::UnpinnedCa(_) | WireFailure::Clock(_) => {
            Disposition::Permanent
        }
        WireFailure::Status { code, .. } => match code {
            408 | 429 | 500..=599 => Disposition::Transient,
            401 | 403 => Disposition::Refused(*code),
            _ => Disposition::Permanent,
        },
    }
}

/// The pause a failure on the wire asks for when the server said nothing of when to return:
/// [`Pause::Probe`] after a refused connection, else the backoff.
pub fn pause_of(failure: &WireFailure) -> Pause {
    match failure {
        WireFailure::Refused => Pause::Probe,
        _ => Pause::Backoff,
    }
}

impl Retryable for WireFailure {
    fn disposition(&self) -> Disposition {
        classify(self)
    }
    fn pause(&self) -> Pause {
        pause_of(self)
    }
    fn reason(&self) -> String {
        format!("{self:?}")
    }
}

/// The backoff schedule and its bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Ceiling of the first backoff pause.
    pub base: Duration,
    /// Largest ceiling.
    pub cap: Duration,
    /// Stop after this many attempts even before the deadline (`None`: the deadline alone).
    pub max_attempts: Option<u32>,
    /// When a refusal (401/403) becomes final.
    pub persist: Persistence,
}

impl Policy {
    pub const fn new(base: Duration, cap: Duration) -> Policy {
        Policy {
            base,
            cap,
            max_attempts: None,
            persist: REFUSALS,
        }
    }

    /// The policy for a loop kubeadm runs at a fixed `interval`: `base = interval/8`,
    /// `cap = 2·interval` (the steady-state mean pause is then `interval`).
    pub fn for_interval(interval: Duration) -> Policy {
        Policy::new(interval / 8, interval.saturating_mul(2))
    }

    /// `min(cap, base · 2^n)`, without overflow for any `n`.
    pub fn ceiling(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// How widely the return after a `Retry-After: d` is spread, after `n` backoff pauses so
    /// far: `d` doubled with each (`d`, `2d`, `4d`…) up to the larger of `d` and the cap, or the
    /// backoff's ceiling when that is wider.
    pub fn shed_window(&self, n: u32, d: Duration) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        let widened = d.saturating_mul(factor).min(d.max(self.cap));
        widened.max(self.ceiling(n))
    }

    /// The longest window a measured round trip may set ([`Policy::shed_window_after`],
    /// [`write_spread`]): four times the cap.
    pub fn round_trip_cap(&self) -> Duration {
        self.cap.saturating_mul(4)
    }

    /// [`Policy::shed_window`], widened to [`SHED_ROUND_TRIPS`] times `round_trip` (how long
    /// the answer that shed load took to come back, when known) if that is wider, at most
    /// [`Policy::round_trip_cap`]: a server that is slow even to say "come back later" has more
    /// callers waiting than its in-flight pool (see "A slow refusal" above).
    pub fn shed_window_after(&self, n: u32, d: Duration, round_trip: Option<Duration>) -> Duration {
        let busy = round_trip.map_or(Duration::ZERO, |t| {
            t.saturating_mul(SHED_ROUND_TRIPS)
                .min(self.round_trip_cap())
        });
        self.shed_window(n, d).max(busy)
    }

    /// The pause before the next attempt, after `n` backoff pauses so far, for a failure asking
    /// for `pause`; `random` is a uniformly random `u64`.
    pub fn pause(&self, n: u32, pause: Pause, random: u64) -> Duration {
        self.pause_after(n, pause, None, random)
    }

    /// [`Policy::pause`] for an answer that came back after `round_trip` (when known): a
    /// `Retry-After` is then spread over [`Policy::shed_window_after`].
    pub fn pause_after(
        &self,
        n: u32,
        pause: Pause,
        round_trip: Option<Duration>,
        random: u64,
    ) -> Duration {
        match pause {
            Pause::Backoff => jitter(self.ceiling(n), random),
            Pause::RetryAfter(d) => {
                d.saturating_add(jitter(self.shed_window_after(n, d, round_trip), random))
            }
            Pause::Fixed(d) => d,
            Pause::Probe => jitter(self.ceiling(n).min(PROBE_CEILING), random),
        }
    }
}

/// A duration uniformly in `[0, max]` from a random `u64` (scaled, so no modulo bias).
pub fn jitter(max: Duration, random: u64) -> Duration {
    let nanos = (max.as_nanos().min(u128::from(u64::MAX)) * u128::from(random)) >> 64;
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

/// What one join has learnt of its API server's load, carried from one call to the next.
///
/// A node that had to come back `n` times before its last request was served meets the same
/// saturated server with its next request: that request's retries start their backoff at the
/// level the join has reached instead of from nothing, so under a long overload each node's
/// pauses stay as wide as the server needed (fewer refused requests: the amplification), while
/// a blip leaves the level low. Each answer that sheds load (429/503 with `Retry-After`) raises
/// the level by one; each served request halves it (additive increase, multiplicative
/// decrease, as TCP paces a shared link). Measured with `scripts/bench` (README "Performance").
///
/// It also keeps the round trip of the last request served, from which the join's write is
/// spread ([`write_spread`]).
#[derive(Debug, Default)]
pub struct Pacing {
    level: std::sync::atomic::AtomicU32,
    /// The last served request's round trip in nanoseconds, plus one (0: none known).
    served_ns: std::sync::atomic::AtomicU64,
}

impl Pacing {
    pub fn new() -> Pacing {
        Pacing::default()
    }

    /// The backoff level the next call starts from.
    pub fn level(&self) -> u32 {
        self.level.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// An answer that shed load.
    pub fn shed(&self) {
        let l = self.level();
        self.level.store(
            l.saturating_add(1).min(31),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// A request that was served, after `round_trip` when known.
    pub fn served(&self, round_trip: Option<Duration>) {
        let l = self.level();
        self.level
            .store(l / 2, std::sync::atomic::Ordering::Relaxed);
        let ns = round_trip.map_or(0, |t| {
            u64::try_from(t.as_nanos())
                .unwrap_or(u64::MAX - 1)
                .saturating_add(1)
        });
        self.served_ns
            .store(ns, std::sync::atomic::Ordering::Relaxed);
    }

    /// The round trip of the last request served, when known.
    pub fn last_served(&self) -> Option<Duration> {
        match self.served_ns.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            ns => Some(Duration::from_nanos(ns - 1)),
        }
    }
}

/// The join's write is spread over this many times the server's share of the last served
/// round trip ([`write_spread`]; "Spreading the write" above).
pub const WRITE_SPREAD_ROUND_TRIPS: u32 = 12;

/// Below this the write is not spread: the server answers within about a millisecond, it is
/// not busy.
pub const WRITE_SPREAD_FLOOR: Duration = Duration::from_millis(10);

/// The window a join's write (its CSR) is sent at a uniformly random point of: the server's
/// share of the last served round trip (`served` less `network`, the fastest TCP connect)
/// times [`WRITE_SPREAD_ROUND_TRIPS`], at most `cap`; zero when either is unknown or the
/// window is under [`WRITE_SPREAD_FLOOR`].
pub fn write_spread(
    served: Option<Duration>,
    network: Option<Duration>,
    cap: Duration,
) -> Duration {
    let (Some(served), Some(network)) = (served, network) else {
        return Duration::ZERO;
    };
    let window = served
        .saturating_sub(network)
        .saturating_mul(WRITE_SPREAD_ROUND_TRIPS)
        .min(cap);
    if window < WRITE_SPREAD_FLOOR {
        Duration::ZERO
    } else {
        window
    }
}

/// When a refusal (401 or 403) stops being "the API server is starting" and becomes final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persistence {
    /// At least this many consecutive answers with the same status…
    pub attempts: u32,
    /// …the first and the last at least this far apart.
    pub over: Duration,
    /// Longest pause between two attempts while refused, so that the rule is decided soon
    /// after `over` has passed, whatever the backoff had grown to.
    pub max_pause: Duration,
}

/// kubejoin's rule (see the module doc): 3 answers over 5 s, at most 2 s apart. A wrong token
/// stops about 5–7 s after its first 401; a restarting API server's window (1–2 answers, well
/// under a second once it listens) passes long before.
pub const REFUSALS: Persistence = Persistence {
    attempts: 3,
    over: Duration::from_secs(5),
    max_pause: Duration::from_secs(2),
};

/// A refusal that persisted: `code` on `attempts` consecutive answers over `over`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Persisted {
    pub code: u16,
    pub attempts: u32,
    pub over: Duration,
}

impl fmt::Display for Persisted {
    /// `401 Unauthorized on 4 attempts over 5.3s`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match self.code {
            401 => " Unauthorized",
            403 => " Forbidden",
            _ => "",
        };
        write!(
            f,
            "{}{reason} on {} attempts over {}",
            self.code,
            self.attempts,
            crate::time::duration::format(self.over)
        )
    }
}

/// The current run of identical refusals of one loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    /// `(status, first seen, answers so far)`.
    streak: Option<(u16, Instant, u32)>,
}

impl Refusals {
    /// Records one answer at `now`: `Some(code)` for a refusal, `None` for anything else (which
    /// ends the streak). Returns the persisted refusal once `rule` says it is final.
    pub fn observe(
        &mut self,
        rule: &Persistence,
        refusal: Option<u16>,
        now: Instant,
    ) -> Option<Persisted> {
        let Some(code) = refusal else {
            self.streak = None;
            return None;
        };
        let (first, count) = match self.streak {
            Some((c, first, n)) if c == code => (first, n.saturating_add(1)),
            _ => (now, 1),
        };
        self.streak = Some((code, first, count));
        let over = now.saturating_duration_since(first);
        (count >= rule.attempts && over >= rule.over).then_some(Persisted {
            code,
            attempts: count,
            over,
        })
    }

    /// Whether the last answer was a refusal that has not persisted yet.
    pub fn pending(&self) -> bool {
        self.streak.is_some()
    }

    /// Answers in the current run of refusals (0: the last answer was not one).
    pub fn count(&self) -> u32 {
        self.streak.map_or(0, |(_, _, n)| n)
    }
}

/// The value of a `Retry-After` header (RFC 9110 §10.2.3) as a pause from `now`: delta-seconds,
/// or an HTTP-date (IMF-fixdate, and the obsolete RFC 850 and asctime forms recipients must
/// accept). A date in the past is a pause of zero; anything else is `None` (ignored).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = crate::time::http_date::http_date_at(v, now)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Clock, sleep and random source of [`retry`]; tests pass a virtual one.
pub trait Env {
    fn now(&self) -> Instant;
    fn sleep(&mut self, d: Duration) -> impl Future<Output = ()>;
    /// A uniformly random `u64` (jitter only: it needs to be spread, not secret).
    fn random(&mut self) -> u64;
}

/// The real clock, tokio's timer, and a SplitMix64 generator seeded from the process's
/// randomly keyed hasher (so every machine of a fleet draws differently).
#[derive(Debug, Clone)]
pub struct RealEnv {
    state: u64,
}

impl RealEnv {
    pub fn new() -> RealEnv {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        RealEnv { state: h.finish() }
    }
}

impl Default for RealEnv {
    fn default() -> Self {
        RealEnv::new()
    }
}

impl Env for RealEnv {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&mut self, d: Duration) -> impl Future<Output = ()> {
        tokio::time::sleep(d)
    }

    fn random(&mut self) -> u64 {
        // SplitMix64 (Steele, Lea, Flood 2014).
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// What an attempt is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// From 1.
    pub number: u32,
    /// Until the deadline; the attempt should not run longer.
    pub time_left: Duration,
}

/// Why a loop stopped without success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The last failure was permanent.
    Permanent,
    /// The deadline passed, or the next attempt could only start after it.
    Deadline,
    /// The server asked to come back after this long, past the deadline.
    RetryAfterPastDeadline(Duration),
    /// [`Policy::max_attempts`] attempts were made.
    Attempts,
    /// A refusal (401/403) persisted ([`Persistence`]): final.
    Persisted(Persisted),
}

/// A loop that ended without success: the last failure, how many attempts, over how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GaveUp<E> {
    pub last: E,
    /// The failure before `last`, if any: a caller whose last attempt was merely cut off by the
    /// deadline reports this one instead (kubeadm reports the last real error on timeout).
    pub previous: Option<E>,
    pub attempts: u32,
    pub elapsed: Duration,
    pub stop: Stop,
}

impl<E> GaveUp<E> {
    /// `gave up after 14 attempts over 5m0s` (or `stopped after …` for a permanent failure).
    pub fn summary(&self) -> String {
        let verb = if matches!(self.stop, Stop::Permanent | Stop::Persisted(_)) {
            "stopped"
        } else {
            "gave up"
        };
        let plural = if self.attempts == 1 { "" } else { "s" };
        let mut s = format!(
            "{verb} after {} attempt{plural} over {}",
            self.attempts,
            crate::time::duration::format(self.elapsed)
        );
        if let Stop::RetryAfterPastDeadline(d) = self.stop {
            s.push_str(&format!(
                " (the server asked to retry after {}, past the deadline)",
                crate::time::duration::format(d)
            ));
        }
        if let Stop::Persisted(p) = self.stop {
            s.push_str(&format!(" (it persisted: {p})"));
        }
        s
    }
}

impl<E: fmt::Display> fmt::Display for GaveUp<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.summary(), self.last)
    }
}

impl<E: std::error::Error + 'static> std::error::Error for GaveUp<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.last.source()
    }
}

/// Runs `op` until it succeeds, fails permanently (or with a refusal that persisted, see
/// [`Persistence`]), or `deadline` comes: the first attempt at once, then after the pause each
/// failure asks for ([`Policy::pause`], at most [`Persistence::max_pause`] while refused).
pub async fn retry<T, E, F, Fut>(
    deadline: Instant,
    policy: &Policy,
    env: &mut impl Env,
    op: F,
) -> Result<T, GaveUp<E>>
where
    E: Retryable,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_notify(deadline, policy, env, op, |_, _, _| {}).await
}

/// [`retry`], calling `notify(failure, attempt number, pause)` before each pause (for the log
/// line that says what failed and when the next attempt comes).
pub async fn retry_notify<T, E, F, Fut>(
    deadline: Instant,
    policy: &Policy,
    env: &mut impl Env,
    op: F,
    notify: impl FnMut(&E, u32, Duration),
) -> Result<T, GaveUp<E>>
where
    E: Retryable,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let bounds = Bounds {
        deadline,
        shedding: deadline,
    };
    retry_paced(bounds, policy, env, &Pacing::new(), op, notify).await
}

/// Where a loop of [`retry_paced`] ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// No attempt starts after it, unless the last answer shed load.
    pub deadline: Instant,
    /// While the server sheds load (429/503 with `Retry-After`: it is up and said when to come
    /// back) the loop goes on until this later bound (the join's overall deadline): a phase's
    /// own bound is there for a server that does not answer, not for one that is busy with a
    /// fleet.
    pub shedding: Instant,
}

/// [`retry_notify`] within `bounds`, its backoff starting at `pacing`'s level and updating it
/// ([`Pacing`]: one per join, shared by its calls).
pub async fn retry_paced<T, E, F, Fut>(
    bounds: Bounds,
    policy: &Policy,
    env: &mut impl Env,
    pacing: &Pacing,
    mut op: F,
    mut notify: impl FnMut(&E, u32, Duration),
) -> Result<T, GaveUp<E>>
where
    E: Retryable,
    F: FnMut(Attempt) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = bounds.deadline;
    let shedding_until = bounds.shedding.max(deadline);
    let started = env.now();
    let mut attempts = 0u32;
    let mut backoffs = pacing.level();
    let mut previous: Option<E> = None;
    let mut refusals = Refusals::default();
    // Whether the last attempt's connection was refused.
    let mut after_refused = false;
    // The bound of the next attempt: the later one after an answer that shed load.
    let mut end = deadline;
    loop {
        attempts = attempts.saturating_add(1);
        let attempt = Attempt {
            number: attempts,
            time_left: end.saturating_duration_since(env.now()),
        };
        let sent = env.now();
        let outcome = op(attempt).await;
        let now = env.now();
        // How long the server took to answer; not known after a refused connection, where the
        // attempt's time includes the settle's wait for the server's start-up window
        // ([`super::settle`]), not the server's.
        let round_trip = (!after_refused).then(|| now.saturating_duration_since(sent));
        let err = match outcome {
            Ok(v) => {
                pacing.served(round_trip);
                return Ok(v);
            }
            Err(e) => e,
        };
        let give_up = |last: E, previous: Option<E>, stop: Stop| GaveUp {
            last,
            previous,
            attempts,
            elapsed: now.saturating_duration_since(started),
            stop,
        };
        let disposition = err.disposition();
        if disposition == Disposition::Permanent {
            return Err(give_up(err, previous, Stop::Permanent));
        }
        let refused = match disposition {
            Disposition::Refused(code) => Some(code),
            _ => None,
        };
        if let Some(p) = refusals.observe(&policy.persist, refused, now) {
            return Err(give_up(err, previous, Stop::Persisted(p)));
        }
        if policy.max_attempts.is_some_and(|m| attempts >= m) {
            return Err(give_up(err, previous, Stop::Attempts));
        }
        let asked = err.pause();
        let shed = matches!(asked, Pause::RetryAfter(_));
        if shed {
            pacing.shed();
        }
        end = if shed { shedding_until } else { deadline };
        let left = end.saturating_duration_since(now);
        if let Pause::RetryAfter(d) = asked {
            if d >= left {
                return Err(give_up(err, previous, Stop::RetryAfterPastDeadline(d)));
            }
        }
        after_refused = asked == Pause::Probe;
        let mut pause = policy.pause_after(backoffs, asked, round_trip, env.random());
        if refused.is_some() {
            // The first refusal of a run is most likely an API server's start-up window (well
            // under a second once it listens): come back within the probe ceiling, whatever the
            // backoff had grown to while the server was away; later ones within `max_pause`.
            pause = if refusals.count() <= 1 {
                // Half a second to a second: sooner would most likely meet the window again.
                let half = PROBE_CEILING.min(policy.persist.max_pause) / 2;
                half + jitter(half, env.random())
            } else {
                pause.min(policy.persist.max_pause)
            };
        }
        // An attempt that could only start at or after the deadline would fail by definition.
        if pause >= left {
            return Err(give_up(err, previous, Stop::Deadline));
        }
        if matches!(asked, Pause::Backoff | Pause::RetryAfter(_) | Pause::Probe) {
            backoffs = backoffs.saturating_add(1);
        }
        notify(&err, attempts, pause);
        let slept = std::time::Instant::now();
        env.sleep(pause).await;
        crate::trace::record(
            "wait",
            || {
                let why = err.reason();
                let kind = match asked {
                    Pause::Backoff => "backoff".to_string(),
                    Pause::RetryAfter(d) => {
                        format!("Retry-After {}", crate::time::duration::format(d))
                    }
                    Pause::Fixed(d) => format!("poll every {}", crate::time::duration::format(d)),
                    Pause::Probe => format!(
                        "backoff, at most {}",
                        crate::time::duration::format(PROBE_CEILING)
                    ),
                };
                format!("retry pause after attempt {attempts} ({kind}): {why}")
            },
            slept,
        );
        previous = Some(err);
    }
}

/// The loop's environment in virtual time, for tests here and of the loop's callers.
#[cfg(test)]
pub(crate) mod test_env {
    use super::Env;
    use std::cell::RefCell;
    use std::future::Future;
    use std::rc::Rc;
    use std::time::{Duration, Instant};

    /// A clock that only moves when the loop sleeps (or an attempt says it took time), with a
    /// scripted random source; it records every pause.
    #[derive(Clone)]
    pub(crate) struct Virtual {
        pub(crate) start: Instant,
        elapsed: Rc<RefCell<Duration>>,
        pauses: Rc<RefCell<Vec<Duration>>>,
        random: u64,
    }

    impl Virtual {
        pub(crate) fn new(random: u64) -> Virtual {
            Virtual {
                start: Instant::now(),
                elapsed: Rc::new(RefCell::new(Duration::ZERO)),
                pauses: Rc::new(RefCell::new(Vec::new())),
                random,
            }
        }
        pub(crate) fn advance(&self, d: Duration) {
            *self.elapsed.borrow_mut() += d;
        }
        pub(crate) fn pauses(&self) -> Vec<Duration> {
            self.pauses.borrow().clone()
        }
    }

    impl Env for Virtual {
        fn now(&self) -> Instant {
            self.start + *self.elapsed.borrow()
        }
        fn sleep(&mut self, d: Duration) -> impl Future<Output = ()> {
            self.pauses.borrow_mut().push(d);
            self.advance(d);
            std::future::ready(())
        }
        fn random(&mut self) -> u64 {
            self.random
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn status(code: u16) -> WireFailure {
        WireFailure::Status {
            code,
            reason: String::new(),
            message: String::new(),
        }
    }

    #[test]
    fn classification() {
        use Disposition::*;
        for (w, want) in [
            (WireFailure::Refused, Transient),
            (WireFailure::TimedOut, Transient),
            (
                WireFailure::Transport("connection reset by peer".into()),
                Transient,
            ),
            (status(500), Transient),
            (status(502), Transient),
            (status(503), Transient),
            (status(504), Transient),
            (status(429), Transient),
            (status(408), Transient),
            (status(401), Refused(401)),
            (status(403), Refused(403)),
            (status(404), Permanent),
            (status(400), Permanent),
            (status(301), Permanent),
            (status(302), Permanent),
            (
                WireFailure::TlsVerify("invalid peer certificate: UnknownIssuer".into()),
                Permanent,
            ),
        ] {
            assert_eq!(classify(&w), want, "{w:?}");
            assert_eq!(w.disposition(), want);
            let probe = w == WireFailure::Refused;
            assert_eq!(w.pause(), if probe { Pause::Probe } else { Pause::Backoff });
        }
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let p = Policy::for_interval(Duration::from_secs(5));
        assert_eq!(p.base, Duration::from_millis(625));
        assert_eq!(p.cap, Duration::from_secs(10));
        let ms: Vec<u128> = (0..7).map(|n| p.ceiling(n).as_millis()).collect();
        assert_eq!(ms, vec![625, 1250, 2500, 5000, 10000, 10000, 10000]);
        // No overflow, however long the loop ran.
        assert_eq!(p.ceiling(u32::MAX), p.cap);
        assert_eq!(
            Policy::new(Duration::MAX, Duration::MAX).ceiling(40),
            Duration::MAX
        );
    }

    #[test]
    fn full_jitter_spans_zero_to_the_ceiling() {
        let p = Policy::new(Duration::from_secs(1), Duration::from_secs(8));
        assert_eq!(p.pause(3, Pause::Backoff, 0), Duration::ZERO);
        let top = p.pause(3, Pause::Backoff, u64::MAX);
        assert!(
            top <= Duration::from_secs(8) && top > Duration::from_millis(7999),
            "{top:?}"
        );
        assert_eq!(
            p.pause(1, Pause::Backoff, u64::MAX / 2),
            Duration::from_millis(1000) - Duration::from_nanos(1)
        );
        // The mean over many draws is near half the ceiling.
        let mut env = RealEnv::new();
        let n = 20_000;
        let total: Duration = (0..n)
            .map(|_| p.pause(10, Pause::Backoff, env.random()))
            .sum();
        let mean = total / n;
        assert!(
            mean > Duration::from_millis(3800) && mean < Duration::from_millis(4200),
            "{mean:?}"
        );
    }

    #[test]
    fn retry_after_and_fixed_pauses() {
        let p = Policy::new(Duration::from_millis(500), Duration::from_secs(30));
        assert_eq!(
            p.pause(9, Pause::RetryAfter(Duration::from_secs(2)), 0),
            Duration::from_secs(2)
        );
        // The jitter on top spreads over at least the Retry-After itself…
        let most = p.pause(0, Pause::RetryAfter(Duration::from_secs(2)), u64::MAX);
        assert!(most > Duration::from_millis(3999) && most <= Duration::from_secs(4));
        let half = p.pause(0, Pause::RetryAfter(Duration::from_secs(2)), u64::MAX / 2);
        assert!(half > Duration::from_millis(2999) && half <= Duration::from_secs(3));
        // …twice as wide each time the same caller is turned away again (2, 4, 8, 16 s)…
        let most = p.pause(1, Pause::RetryAfter(Duration::from_secs(2)), u64::MAX);
        assert!(most > Duration::from_millis(5999) && most <= Duration::from_secs(6));
        let most = p.pause(3, Pause::RetryAfter(Duration::from_secs(2)), u64::MAX);
        assert!(most > Duration::from_millis(17_999) && most <= Duration::from_secs(18));
        // …up to the cap.
        let most = p.pause(9, Pause::RetryAfter(Duration::from_secs(2)), u64::MAX);
        assert!(most > Duration::from_millis(31_999) && most <= Duration::from_secs(32));
        // A Retry-After longer than the cap still spreads over itself.
        let most = p.pause(9, Pause::RetryAfter(Duration::from_secs(40)), u64::MAX);
        assert!(most > Duration::from_millis(79_999) && most <= Duration::from_secs(80));
        // The bootstrap's schedule (cap 4 s) against kube-apiserver's `Retry-After: 1`: the
        // return is spread over 1, 2, 4, 4… s.
        let one = Duration::from_secs(1);
        let windows: Vec<u64> = (0..5)
            .map(|n| {
                crate::bootstrap::backoff::API_POLICY
                    .shed_window(n, one)
                    .as_millis() as u64
            })
            .collect();
        assert_eq!(windows, [1000, 2000, 4000, 4000, 4000]);
        assert_eq!(
            p.pause(9, Pause::Fixed(Duration::from_secs(5)), u64::MAX),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn retry_after_values() {
        // 1994-11-06T08:49:37Z
        let t = UNIX_EPOCH + Duration::from_secs(784_111_777);
        let before = t - Duration::from_secs(30);
        assert_eq!(
            parse_retry_after("120", before),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", before), Some(Duration::ZERO));
        for form in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                crate::time::http_date::parse_http_date(form),
                Some(t),
                "{form}"
            );
            assert_eq!(
                parse_retry_after(form, before),
                Some(Duration::from_secs(30)),
                "{form}"
            );
        }
        // A date already past asks for no wait at all.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", t + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
        assert_eq!(
            crate::time::http_date::parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            crate::time::http_date::parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_835_481_599))
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "99999999999999999999999",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 31 Feb 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Xyz, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun Nov  6 08:49:37 94",
            "Wed, 01 Jan 1969 00:00:00 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, t), None, "{bad:?}");
        }
    }

    // ---- the loop, in virtual time ----

    use super::test_env::Virtual;

    #[derive(Debug, Clone, PartialEq, Eq)]
    enum Fail {
        Wire(WireFailure),
        After(Duration),
        Signer,
    }

    impl Retryable for Fail {
        fn disposition(&self) -> Disposition {
            match self {
                Fail::Wire(w) => classify(w),
                _ => Disposition::Transient,
            }
        }
        fn pause(&self) -> Pause {
            match self {
                Fail::Wire(w) => pause_of(w),
                Fail::After(d) => Pause::RetryAfter(*d),
                Fail::Signer => Pause::Fixed(Duration::from_secs(5)),
            }
        }
    }

    impl fmt::Display for Fail {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self {
                Fail::Wire(WireFailure::Refused) => f.write_str("connection refused"),
                Fail::Wire(WireFailure::TimedOut) => f.write_str("timed out"),
                other => write!(f, "{other:?}"),
            }
        }
    }

    /// Runs the loop with a script of outcomes (one per attempt; the last repeats); each
    /// attempt takes `cost` of virtual time.
    fn run(
        env: &Virtual,
        deadline: Duration,
        policy: Policy,
        script: Vec<Result<u32, Fail>>,
        cost: Duration,
    ) -> (Result<u32, GaveUp<Fail>>, Vec<Attempt>) {
        let mut env2 = env.clone();
        let seen = RefCell::new(Vec::new());
        let fut = retry(env.now() + deadline, &policy, &mut env2, |a| {
            seen.borrow_mut().push(a);
            env.advance(cost.min(a.time_left));
            let i = (a.number as usize - 1).min(script.len() - 1);
            std::future::ready(script[i].clone())
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = rt.block_on(fut);
        (r, seen.into_inner())
    }

    const CHEAP: Duration = Duration::from_millis(10);

    #[test]
    fn first_attempt_is_immediate_and_success_ends_the_loop() {
        let env = Virtual::new(u64::MAX);
        let (r, seen) = run(
            &env,
            Duration::from_secs(60),
            Policy::for_interval(Duration::from_secs(5)),
            vec![Ok(7)],
            CHEAP,
        );
        assert_eq!(r, Ok(7));
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].time_left, Duration::from_secs(60));
        assert!(env.pauses().is_empty());
    }

    #[test]
    fn transient_failures_back_off_exponentially_until_success() {
        let env = Virtual::new(u64::MAX); // always the top of the window
        let policy = Policy::new(Duration::from_secs(1), Duration::from_secs(8));
        let (r, seen) = run(
            &env,
            Duration::from_secs(300),
            policy,
            vec![
                Err(Fail::Wire(WireFailure::Refused)),
                Err(Fail::Wire(WireFailure::Transport("reset".into()))),
                Err(Fail::Wire(WireFailure::TimedOut)),
                Err(Fail::Wire(status(503))),
                Err(Fail::Wire(status(500))),
                Err(Fail::Wire(status(429))),
                Ok(1),
            ],
            CHEAP,
        );
        assert_eq!(r, Ok(1));
        assert_eq!(seen.len(), 7);
        let secs: Vec<u64> = env
            .pauses()
            .iter()
            .map(|d| (d.as_millis() as u64 + 1) / 1000)
            .collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 8, 8]);
    }

    #[test]
    fn permanent_failures_stop_at_once() {
        for w in [
            status(404),
            WireFailure::TlsVerify("invalid peer certificate: NotValidForName".into()),
        ] {
            let env = Virtual::new(0);
            let (r, seen) = run(
                &env,
                Duration::from_secs(300),
                Policy::for_interval(Duration::from_secs(5)),
                vec![
                    Err(Fail::Wire(WireFailure::Refused)),
                    Err(Fail::Wire(w.clone())),
                ],
                CHEAP,
            );
            let g = r.unwrap_err();
            assert_eq!(g.stop, Stop::Permanent);
            assert_eq!(g.attempts, 2);
            assert_eq!(g.last, Fail::Wire(w));
            assert_eq!(g.previous, Some(Fail::Wire(WireFailure::Refused)));
            assert_eq!(seen.len(), 2);
            assert!(g.summary().starts_with("stopped after 2 attempts"));
        }
    }

    #[test]
    fn refusals_are_retried_until_they_persist() {
        for code in [401, 403] {
            // Always the top of the window: the pauses are as long as they can be.
            let env = Virtual::new(u64::MAX);
            let policy = Policy::for_interval(Duration::from_secs(5));
            let (r, seen) = run(
                &env,
                Duration::from_secs(300),
                policy,
                vec![
                    Err(Fail::Wire(WireFailure::Refused)),
                    Err(Fail::Wire(status(code))),
                ],
                CHEAP,
            );
            let g = r.unwrap_err();
            let Stop::Persisted(p) = g.stop else {
                panic!("{code}: {:?}", g.stop)
            };
            assert_eq!(p.code, code);
            assert!(p.attempts >= REFUSALS.attempts, "{p:?}");
            assert!(p.over >= REFUSALS.over, "{p:?}");
            // Decided within one capped pause (and an attempt) of the rule's span.
            assert!(
                p.over <= REFUSALS.over + REFUSALS.max_pause + CHEAP,
                "{p:?}"
            );
            assert!(env
                .pauses()
                .iter()
                .skip(1)
                .all(|d| *d <= REFUSALS.max_pause));
            // The streak is the refusals alone, not the refused connection before them.
            assert_eq!(g.attempts as usize, seen.len());
            assert_eq!(p.attempts, g.attempts - 1);
            assert_eq!(g.last, Fail::Wire(status(code)));
            assert!(
                g.summary().starts_with("stopped after ")
                    && g.summary().contains(&format!(
                        "(it persisted: {code} {} on {} attempts over ",
                        if code == 401 {
                            "Unauthorized"
                        } else {
                            "Forbidden"
                        },
                        p.attempts
                    )),
                "{}",
                g.summary()
            );
        }
    }

    #[test]
    fn a_short_refusal_window_is_survived() {
        // What a restarting API server does: refused, then two 403s, then the answer.
        let env = Virtual::new(u64::MAX / 2);
        let (r, seen) = run(
            &env,
            Duration::from_secs(60),
            Policy::for_interval(Duration::from_secs(5)),
            vec![
                Err(Fail::Wire(WireFailure::Refused)),
                Err(Fail::Wire(status(403))),
                Err(Fail::Wire(status(403))),
                Err(Fail::Wire(status(401))),
                Ok(9),
            ],
            CHEAP,
        );
        assert_eq!(r, Ok(9));
        assert_eq!(seen.len(), 5);
    }

    /// An API server that was away (resets, refused connections: the backoff has grown) and
    /// answers its start-up window's refusal: the pause after that first refusal is half the
    /// probe ceiling to all of it, whatever the backoff had grown to; after a second refusal at
    /// most `max_pause`.
    #[test]
    fn the_first_refusal_after_an_absence_is_retried_within_the_probe_ceiling() {
        for random in [0, u64::MAX / 2, u64::MAX] {
            let env = Virtual::new(random);
            let t = |m: &str| Err(Fail::Wire(WireFailure::Transport(m.into())));
            let (r, seen) = run(
                &env,
                Duration::from_secs(300),
                Policy::for_interval(Duration::from_secs(5)),
                vec![
                    t("reset"),
                    t("reset"),
                    t("reset"),
                    t("reset"),
                    Err(Fail::Wire(status(401))),
                    Err(Fail::Wire(status(401))),
                    Ok(7),
                ],
                CHEAP,
            );
            assert_eq!(r, Ok(7));
            assert_eq!(seen.len(), 7);
            let p = env.pauses();
            let half = PROBE_CEILING / 2;
            assert_eq!(p[4], half + jitter(half, random), "{p:?}");
            assert!(p[4] >= half && p[4] <= PROBE_CEILING, "{p:?}");
            if random == u64::MAX {
                // The backoff had grown past that while the server was away (the top of each
                // window drawn), and the second refusal gets the ordinary capped pause.
                assert!(p[3] > REFUSALS.max_pause, "{p:?}");
                assert_eq!(p[5], REFUSALS.max_pause, "{p:?}");
            }
        }
    }

    #[test]
    fn another_answer_ends_a_streak_of_refusals() {
        let rule = REFUSALS;
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut r = Refusals::default();
        assert_eq!(r.observe(&rule, Some(401), at(0)), None);
        assert!(r.pending());
        assert_eq!(r.observe(&rule, Some(401), at(3)), None);
        // A 403 is another answer: a new streak starts with it.
        assert_eq!(r.observe(&rule, Some(403), at(6)), None);
        assert_eq!(r.observe(&rule, Some(403), at(7)), None);
        // Anything else (a refused connection, a 503) ends it.
        assert_eq!(r.observe(&rule, None, at(8)), None);
        assert!(!r.pending());
        assert_eq!(r.observe(&rule, Some(403), at(9)), None);
        assert_eq!(r.observe(&rule, Some(403), at(10)), None);
        // Three answers, but not yet 5 s apart.
        assert_eq!(r.observe(&rule, Some(403), at(13)), None);
        assert_eq!(
            r.observe(&rule, Some(403), at(14)),
            Some(Persisted {
                code: 403,
                attempts: 4,
                over: Duration::from_secs(5)
            })
        );
        // Many answers in a short time are not enough either: it is the span that counts.
        let mut r = Refusals::default();
        for i in 0..20 {
            assert_eq!(
                r.observe(&rule, Some(401), t0 + Duration::from_millis(i * 100)),
                None
            );
        }
        assert_eq!(
            Persisted {
                code: 401,
                attempts: 3,
                over: Duration::from_millis(4100)
            }
            .to_string(),
            "401 Unauthorized on 3 attempts over 4.1s"
        );
    }

    #[test]
    fn the_deadline_bounds_the_loop_and_keeps_the_last_cause_and_count() {
        let env = Virtual::new(u64::MAX);
        let policy = Policy::for_interval(Duration::from_secs(5));
        let (r, seen) = run(
            &env,
            Duration::from_secs(300),
            policy,
            vec![Err(Fail::Wire(WireFailure::TimedOut))],
            CHEAP,
        );
        let g = r.unwrap_err();
        assert_eq!(g.stop, Stop::Deadline);
        assert_eq!(g.attempts as usize, seen.len());
        // Pauses at the top of the window: 0.625+1.25+2.5+5 then 10 s each.
        assert!((30..=36).contains(&g.attempts), "{}", g.attempts);
        assert!(g.elapsed <= Duration::from_secs(300));
        assert!(env.now() - env.start <= Duration::from_secs(300));
        // No attempt was started with no time left, and none after the deadline.
        assert!(seen.iter().all(|a| !a.time_left.is_zero()));
        assert_eq!(
            g.to_string(),
            format!(
                "gave up after {} attempts over {}: timed out",
                g.attempts,
                crate::time::duration::format(g.elapsed)
            )
        );
    }

    #[test]
    fn retry_after_is_honoured_and_one_past_the_deadline_stops_at_once() {
        let env = Virtual::new(0); // no jitter on top
        let (r, _) = run(
            &env,
            Duration::from_secs(60),
            Policy::for_interval(Duration::from_secs(5)),
            vec![
                Err(Fail::After(Duration::from_secs(7))),
                Err(Fail::After(Duration::from_secs(3))),
                Ok(2),
            ],
            CHEAP,
        );
        assert_eq!(r, Ok(2));
        assert_eq!(
            env.pauses(),
            vec![Duration::from_secs(7), Duration::from_secs(3)]
        );

        let env = Virtual::new(0);
        let (r, seen) = run(
            &env,
            Duration::from_secs(60),
            Policy::for_interval(Duration::from_secs(5)),
            vec![Err(Fail::After(Duration::from_secs(3600)))],
            CHEAP,
        );
        let g = r.unwrap_err();
        assert_eq!(
            g.stop,
            Stop::RetryAfterPastDeadline(Duration::from_secs(3600))
        );
        assert_eq!(seen.len(), 1);
        assert!(
            env.pauses().is_empty(),
            "it did not sleep into the deadline"
        );
        assert!(
            g.summary()
                .contains("the server asked to retry after 1h0m0s, past the deadline"),
            "{}",
            g.summary()
        );
    }

    #[test]
    fn repeated_retry_after_widens_the_jitter_on_top() {
        // Always the top of the window: each pause is the Retry-After plus the whole window,
        // the Retry-After doubled with each pause (1, 2, 4, 8 s), up to the cap (10 s for a 5 s
        // interval); a backoff after them continues from there.
        let env = Virtual::new(u64::MAX);
        let (r, _) = run(
            &env,
            Duration::from_secs(300),
            Policy::for_interval(Duration::from_secs(5)),
            vec![
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::Wire(WireFailure::TimedOut)),
                Ok(3),
            ],
            CHEAP,
        );
        assert_eq!(r, Ok(3));
        let ms: Vec<u128> = env
            .pauses()
            .iter()
            .map(|d| (d.as_millis() + 1) / 10 * 10)
            .collect();
        assert_eq!(ms, vec![2000, 3000, 5000, 9000, 10000]);
        // With no jitter drawn, exactly what the server asked.
        let env = Virtual::new(0);
        let (r, _) = run(
            &env,
            Duration::from_secs(300),
            Policy::for_interval(Duration::from_secs(5)),
            vec![
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::After(Duration::from_secs(1))),
                Ok(0),
            ],
            CHEAP,
        );
        assert_eq!(r, Ok(0));
        assert_eq!(env.pauses(), vec![Duration::from_secs(1); 2]);
    }

    #[test]
    fn refused_connections_are_probed_at_most_a_second_apart() {
        // Always the top of the window. A refused connection costs the server nothing: the
        // pauses after it stop growing at PROBE_CEILING, while the backoff's count goes on,
        // so a failure that does load the server (a timeout) pauses as long as ever after them.
        let env = Virtual::new(u64::MAX);
        let mut script = vec![Err(Fail::Wire(WireFailure::Refused)); 6];
        script.push(Err(Fail::Wire(WireFailure::TimedOut)));
        script.push(Ok(5));
        let (r, seen) = run(
            &env,
            Duration::from_secs(300),
            Policy::for_interval(Duration::from_secs(5)),
            script,
            CHEAP,
        );
        assert_eq!(r, Ok(5));
        assert_eq!(seen.len(), 8);
        let ms: Vec<u128> = env
            .pauses()
            .iter()
            .map(|d| (d.as_millis() + 1) / 5 * 5)
            .collect();
        assert_eq!(ms, vec![625, 1000, 1000, 1000, 1000, 1000, 10000]);
        // The same wait with a uniform draw is half as long on average.
        let env = Virtual::new(u64::MAX / 2);
        let (_, _) = run(
            &env,
            Duration::from_secs(300),
            Policy::for_interval(Duration::from_secs(5)),
            vec![Err(Fail::Wire(WireFailure::Refused)), Ok(1)],
            CHEAP,
        );
        assert_eq!(
            (env.pauses()[0].as_millis() + 1) / 5 * 5,
            310,
            "{:?}",
            env.pauses()
        );
    }

    #[test]
    fn fixed_pauses_do_not_advance_the_backoff() {
        let env = Virtual::new(u64::MAX);
        let policy = Policy::new(Duration::from_secs(1), Duration::from_secs(64));
        let (r, _) = run(
            &env,
            Duration::from_secs(600),
            policy,
            vec![
                Err(Fail::Signer),
                Err(Fail::Signer),
                Err(Fail::Signer),
                Err(Fail::Wire(WireFailure::TimedOut)),
                Err(Fail::Signer),
                Err(Fail::Wire(WireFailure::TimedOut)),
                Ok(0),
            ],
            CHEAP,
        );
        assert_eq!(r, Ok(0));
        let ms: Vec<u128> = env
            .pauses()
            .iter()
            .map(|d| (d.as_millis() + 1) / 100 * 100)
            .collect();
        assert_eq!(ms, vec![5000, 5000, 5000, 1000, 5000, 2000]);
    }

    #[test]
    fn attempts_that_use_up_the_time_end_the_loop_with_the_previous_cause_kept() {
        let env = Virtual::new(0);
        // Each attempt hangs until the deadline cuts it.
        let (r, seen) = run(
            &env,
            Duration::from_secs(10),
            Policy::for_interval(Duration::from_secs(5)),
            vec![
                Err(Fail::Wire(WireFailure::Refused)),
                Err(Fail::Wire(WireFailure::TimedOut)),
            ],
            Duration::from_secs(3600),
        );
        let g = r.unwrap_err();
        assert_eq!(seen.len(), 1, "the first attempt used all the time");
        assert_eq!(g.stop, Stop::Deadline);
        assert_eq!(g.last, Fail::Wire(WireFailure::Refused));

        let env = Virtual::new(0);
        let (r, seen) = run(
            &env,
            Duration::from_secs(10),
            Policy::for_interval(Duration::from_secs(5)),
            vec![
                Err(Fail::Wire(WireFailure::Refused)),
                Err(Fail::Wire(WireFailure::TimedOut)),
            ],
            Duration::from_secs(4),
        );
        let g = r.unwrap_err();
        assert_eq!(seen.len(), 3);
        assert!(seen[2].time_left < Duration::from_secs(10));
        assert_eq!(g.last, Fail::Wire(WireFailure::TimedOut));
        assert_eq!(g.previous, Some(Fail::Wire(WireFailure::TimedOut)));
    }

    #[test]
    fn max_attempts() {
        let env = Virtual::new(0);
        let policy = Policy {
            max_attempts: Some(3),
            ..Policy::for_interval(Duration::from_secs(1))
        };
        let (r, seen) = run(
            &env,
            Duration::from_secs(600),
            policy,
            vec![Err(Fail::Wire(WireFailure::Refused))],
            CHEAP,
        );
        assert_eq!(r.unwrap_err().stop, Stop::Attempts);
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn real_env_draws_differ() {
        let mut a = RealEnv::new();
        let mut b = RealEnv::new();
        let xs: Vec<u64> = (0..4).map(|_| a.random()).collect();
        assert!(xs.windows(2).all(|w| w[0] != w[1]));
        assert_ne!(a.random(), b.random());
    }

    // ---- pacing across a join's calls, and the bound while the server sheds load ----

    /// Runs `retry_paced` with a script (the last outcome repeats), each attempt `cost` long.
    fn run_paced(
        env: &Virtual,
        bounds: (Duration, Duration),
        pacing: &Pacing,
        script: Vec<Result<u32, Fail>>,
        cost: Duration,
    ) -> (Result<u32, GaveUp<Fail>>, Vec<Attempt>) {
        let mut env2 = env.clone();
        let seen = RefCell::new(Vec::new());
        let b = Bounds {
            deadline: env.now() + bounds.0,
            shedding: env.now() + bounds.1,
        };
        let policy = Policy::new(Duration::from_millis(250), Duration::from_secs(4));
        let fut = retry_paced(
            b,
            &policy,
            &mut env2,
            pacing,
            |a| {
                seen.borrow_mut().push(a);
                env.advance(cost.min(a.time_left));
                let i = (a.number as usize - 1).min(script.len() - 1);
                std::future::ready(script[i].clone())
            },
            |_, _, _| {},
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let r = rt.block_on(fut);
        (r, seen.into_inner())
    }

    /// `env`'s pauses, to the nearest 10 ms.
    fn pauses_10ms(env: &Virtual) -> Vec<u128> {
        env.pauses()
            .iter()
            .map(|d| (d.as_millis() + 1) / 10 * 10)
            .collect()
    }

    /// [`run_paced`] of `script` with a fresh [`Pacing`], 60 s to run and `random` for every
    /// draw: the outcome and the pauses ([`pauses_10ms`]).
    fn run_fresh(
        random: u64,
        script: Vec<Result<u32, Fail>>,
        cost: Duration,
    ) -> (Result<u32, GaveUp<Fail>>, Vec<u128>) {
        let env = Virtual::new(random);
        let sixty = Duration::from_secs(60);
        let (r, _) = run_paced(&env, (sixty, sixty), &Pacing::new(), script, cost);
        (r, pauses_10ms(&env))
    }

    #[test]
    fn pacing_rises_with_each_answer_that_sheds_load_and_halves_when_served() {
        let p = Pacing::new();
        assert_eq!(p.level(), 0);
        for _ in 0..5 {
            p.shed();
        }
        assert_eq!(p.level(), 5);
        p.served(None);
        assert_eq!(p.level(), 2);
        p.served(None);
        p.served(None);
        assert_eq!(p.level(), 0);
        for _ in 0..100 {
            p.shed();
        }
        assert_eq!(p.level(), 31, "bounded");
    }

    #[test]
    fn a_later_call_of_the_join_starts_its_backoff_where_the_last_one_left_it() {
        // Always the top of the window (cap 4 s): the first call is turned away 4 times with
        // `Retry-After: 1` (pauses 1 + the window, 1 s doubled per pause up to 4 s), the
        // second call's first pause starts from the level left (4 answers, halved once served).
        let pacing = Pacing::new();
        let env = Virtual::new(u64::MAX);
        let shed = Fail::After(Duration::from_secs(1));
        let (r, _) = run_paced(
            &env,
            (Duration::from_secs(60), Duration::from_secs(60)),
            &pacing,
            vec![
                Err(shed.clone()),
                Err(shed.clone()),
                Err(shed.clone()),
                Err(shed.clone()),
                Ok(1),
            ],
            CHEAP,
        );
        assert_eq!(r, Ok(1));
        assert_eq!(pauses_10ms(&env), vec![2000, 3000, 5000, 5000]);
        assert_eq!(pacing.level(), 2);

        let env = Virtual::new(u64::MAX);
        let (r, _) = run_paced(
            &env,
            (Duration::from_secs(60), Duration::from_secs(60)),
            &pacing,
            vec![Err(shed.clone()), Err(shed), Ok(2)],
            CHEAP,
        );
        assert_eq!(r, Ok(2));
        // Levels 2 and 3: windows of 4 s (a fresh loop would pause 2 s, then 3 s).
        assert_eq!(pauses_10ms(&env), vec![5000, 5000]);
        // A call served at once halves the level again.
        let env = Virtual::new(u64::MAX);
        let (r, _) = run_paced(
            &env,
            (Duration::from_secs(60), Duration::from_secs(60)),
            &pacing,
            vec![Ok(3)],
            CHEAP,
        );
        assert_eq!(r, Ok(3));
        assert_eq!(pacing.level(), 1);
        // Failures that are not load shedding neither raise nor lower it.
        let env = Virtual::new(0);
        let (r, _) = run_paced(
            &env,
            (Duration::from_secs(60), Duration::from_secs(60)),
            &pacing,
            vec![Err(Fail::Wire(WireFailure::TimedOut)), Ok(4)],
            CHEAP,
        );
        assert_eq!(r, Ok(4));
        assert_eq!(pacing.level(), 0, "served: halved");
    }

    #[test]
    fn a_slow_answer_that_sheds_load_widens_the_return_to_six_round_trips() {
        let p = Policy::new(Duration::from_millis(250), Duration::from_secs(4));
        let one = Duration::from_secs(1);
        // Quick answers change nothing: 6 × 100 ms is inside the 1 s window.
        for n in 0..4 {
            assert_eq!(
                p.shed_window_after(n, one, Some(Duration::from_millis(100))),
                p.shed_window(n, one)
            );
            assert_eq!(p.shed_window_after(n, one, None), p.shed_window(n, one));
        }
        // A 429 that took 1.5 s: the window is 9 s, wider than the doubling's 1, 2, 4 s.
        let slow = Some(Duration::from_millis(1500));
        assert_eq!(p.shed_window_after(0, one, slow), Duration::from_secs(9));
        assert_eq!(p.shed_window_after(3, one, slow), Duration::from_secs(9));
        // At most four times the cap, however slow.
        assert_eq!(
            p.shed_window_after(0, one, Some(Duration::from_secs(30))),
            Duration::from_secs(16)
        );
        // The pause is the Retry-After plus up to the window, and other pauses ignore it.
        let top = p.pause_after(0, Pause::RetryAfter(one), slow, u64::MAX);
        assert!(
            top > Duration::from_millis(9999) && top <= Duration::from_secs(10),
            "{top:?}"
        );
        assert_eq!(p.pause_after(0, Pause::RetryAfter(one), slow, 0), one);
        assert_eq!(
            p.pause_after(2, Pause::Backoff, slow, u64::MAX),
            p.pause(2, Pause::Backoff, u64::MAX)
        );
    }

    #[test]
    fn the_write_is_spread_over_twelve_times_the_servers_share_of_a_round_trip() {
        let ms = Duration::from_millis;
        let cap = Duration::from_secs(4);
        // 150 ms answers over a 1 ms network: 12 × 149 ms.
        assert_eq!(write_spread(Some(ms(150)), Some(ms(1)), cap), ms(1788));
        // Slow only by distance: nothing to spread.
        assert_eq!(
            write_spread(Some(ms(80)), Some(Duration::from_micros(79_500)), cap),
            Duration::ZERO
        );
        assert_eq!(write_spread(Some(ms(2)), Some(ms(25)), cap), Duration::ZERO);
        // A quick server: under the 10 ms floor.
        assert_eq!(
            write_spread(Some(ms(0)), Some(Duration::ZERO), cap),
            Duration::ZERO
        );
        assert_eq!(
            write_spread(Some(Duration::from_micros(800)), Some(Duration::ZERO), cap),
            Duration::ZERO
        );
        assert_eq!(write_spread(Some(ms(1)), Some(Duration::ZERO), cap), ms(12));
        // At most the cap.
        assert_eq!(write_spread(Some(ms(3000)), Some(ms(1)), cap), cap);
        // Either unknown: nothing.
        assert_eq!(write_spread(None, Some(ms(1)), cap), Duration::ZERO);
        assert_eq!(write_spread(Some(ms(900)), None, cap), Duration::ZERO);
    }

    #[test]
    fn pacing_keeps_the_last_served_round_trip_unless_it_followed_a_refused_connection() {
        let pacing = Pacing::new();
        assert_eq!(pacing.last_served(), None);
        let env = Virtual::new(0);
        let (r, _) = run_paced(
            &env,
            (Duration::from_secs(60), Duration::from_secs(60)),
            &pacing,
            vec![Err(Fail::After(Duration::from_secs(1))), Ok(1)],
            Duration::from_millis(120),
        );
        assert_eq!(r, Ok(1));
        assert_eq!(pacing.last_served(), Some(Duration::from_millis(120)));
        pacing.served(Some(Duration::ZERO));
        assert_eq!(pacing.last_served(), Some(Duration::ZERO));
        // Served right after a refused connection: that attempt's time is the settle's, not
        // the server's.
        let env = Virtual::new(0);
        let (r, _) = run_paced(
            &env,
            (Duration::from_secs(60), Duration::from_secs(60)),
            &pacing,
            vec![Err(Fail::Wire(WireFailure::Refused)), Ok(2)],
            Duration::from_millis(700),
        );
        assert_eq!(r, Ok(2));
        assert_eq!(pacing.last_served(), None);
    }

    #[test]
    fn the_loop_times_each_answer_but_not_the_one_after_a_refused_connection() {
        let shed = Fail::After(Duration::from_secs(1));
        let slow = Duration::from_millis(1500);
        // Each attempt takes 1.5 s: the 429's return is spread over 9 s (the top: 1 + 9).
        let (r, pauses) = run_fresh(u64::MAX, vec![Err(shed.clone()), Ok(1)], slow);
        assert_eq!((r, pauses), (Ok(1), vec![10_000]));
        // The same answers in 10 ms: the window is the Retry-After's (1 + 1).
        let (r, pauses) = run_fresh(u64::MAX, vec![Err(shed.clone()), Ok(1)], CHEAP);
        assert_eq!((r, pauses), (Ok(1), vec![2000]));
        // After a refused connection the next attempt's time is not the server's (it includes
        // the settle's wait): its 429 gets the plain window (level 1: 1 + 2 s); the next 429,
        // on a connection already open, is timed again (1 + 9 s).
        let script = vec![
            Err(Fail::Wire(WireFailure::Refused)),
            Err(shed.clone()),
            Err(shed),
            Ok(1),
        ];
        let (r, pauses) = run_fresh(u64::MAX, script, slow);
        assert_eq!((r, pauses), (Ok(1), vec![250, 3000, 10_000]));
    }

    #[test]
    fn a_server_shedding_load_keeps_the_loop_going_past_the_phase_bound() {
        // The phase's bound is 5 s, the overall deadline 60 s. A server that answers 429 with
        // `Retry-After: 1` for 20 s is retried beyond the 5 s until it serves; each attempt may
        // run until the overall deadline.
        let env = Virtual::new(0);
        let shed = Fail::After(Duration::from_secs(1));
        let mut script = vec![Err(shed); 20];
        script.push(Ok(9));
        let (r, seen) = run_paced(
            &env,
            (Duration::from_secs(5), Duration::from_secs(60)),
            &Pacing::new(),
            script,
            CHEAP,
        );
        assert_eq!(r, Ok(9));
        assert_eq!(seen.len(), 21);
        assert!(env.now() - env.start > Duration::from_secs(20));
        assert!(
            seen[20].time_left > Duration::from_secs(30),
            "{:?}",
            seen[20]
        );

        // Any other failure past the phase's bound ends the loop there.
        let env = Virtual::new(0);
        let (r, seen) = run_paced(
            &env,
            (Duration::from_secs(5), Duration::from_secs(60)),
            &Pacing::new(),
            vec![
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::After(Duration::from_secs(1))),
                Err(Fail::Wire(WireFailure::TimedOut)),
            ],
            CHEAP,
        );
        let g = r.unwrap_err();
        assert_eq!(g.stop, Stop::Deadline);
        assert_eq!(g.last, Fail::Wire(WireFailure::TimedOut));
        assert_eq!(seen.len(), 7);

        // And the overall deadline ends it even while the server sheds load.
        let env = Virtual::new(0);
        let (r, _) = run_paced(
            &env,
            (Duration::from_secs(5), Duration::from_secs(12)),
            &Pacing::new(),
            vec![Err(Fail::After(Duration::from_secs(1)))],
            CHEAP,
        );
        let g = r.unwrap_err();
        assert!(
            matches!(g.stop, Stop::RetryAfterPastDeadline(_) | Stop::Deadline),
            "{:?}",
            g.stop
        );
        assert!(env.now() - env.start <= Duration::from_secs(12));
    }
}
