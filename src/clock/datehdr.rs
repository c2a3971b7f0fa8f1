//! The last time source: the `Date` header of an anonymous answer received over TLS whose chain
//! verified against the **pinned** cluster CA, validity times aside (docs/time.md, "The `Date`
//! header over pinned TLS"). Used only when the clock phase got no time from SNTP
//! ([`allow`]), only when the pinned chain does not verify at the best time known already, and
//! only under [`judge`]'s rules: not before the clock floor, forwards only, inside the presented
//! leaf's own window, and the chain verifies at that `Date` with the ordinary verifier. A `Date`
//! so accepted becomes the best time known of the process (`floor::learn`, read by
//! `cert::BestTimeVerifier`), so every later connection — the bootstrap token's included — is
//! verified at it, with validity times checked; the join then steps the clock to it
//! (`phase::after_verified_date`, as an SNTP step; in a dry run it only says it would).

use super::floor::{best_now, floor};
use crate::time::WallTime;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Set by the clock phase when SNTP gave no time (off, unanswered or refused).
static ALLOWED: AtomicBool = AtomicBool::new(false);

/// The accepted `Date` and who sent it.
static ADOPTED: Mutex<Option<(String, WallTime)>> = Mutex::new(None);

/// The clock phase got nothing from SNTP: a verified `Date` may now be taken.
pub fn allow() {
    ALLOWED.store(true, Ordering::SeqCst);
}

/// Whether a verified `Date` may be taken in this process.
pub fn allowed() -> bool {
    ALLOWED.load(Ordering::SeqCst)
}

/// The accepted `Date` as received, and the server that sent it (for `result.json`).
pub fn adopted() -> Option<(String, WallTime)> {
    let g = ADOPTED.lock().ok()?;
    g.clone()
}

/// The window of the last leaf an unverified connection (the first cluster-info fetch) was
/// shown.
static UNVERIFIED_LEAF: Mutex<Option<(WallTime, WallTime)>> = Mutex::new(None);

/// Notes the window of a leaf presented on a connection that verified nothing. It only decides
/// whether a probe is worth a request ([`worth_asking`]): whoever is on the path could have
/// written it, and at worst makes kubejoin ask (harmless) or not ask (then the verified
/// connections fail with the clock error, as without this source).
pub fn note_unverified_leaf(der: &[u8]) {
    if let (Some(w), Ok(mut g)) = (window(der), UNVERIFIED_LEAF.lock()) {
        *g = Some(w);
    }
}

/// Whether a probe is worth a request: a `Date` may be taken ([`allowed`]) and the server's
/// leaf as last seen unverified lies outside its window at the best time known (or was not
/// seen). An honest cluster whose certificates are valid at the best time known costs nothing.
pub fn worth_asking() -> bool {
    if !allowed() {
        return false;
    }
    let seen = UNVERIFIED_LEAF.lock().ok().and_then(|g| *g);
    let Some((from, to)) = seen else {
        return true;
    };
    let now = crate::sys::clock::node_clock().now();
    let best = best_now(floor(), now).time;
    best < from || best > to
}

fn adopt(server: &str, date: WallTime) {
    if let Ok(mut g) = ADOPTED.lock() {
        *g = Some((server.to_string(), date));
    }
    super::floor::learn(date, super::floor::TimeSource::VerifiedDate);
}

/// Why a `Date` was not taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("its Date {date} is earlier than this kubejoin's build time {floor}")]
    BeforeFloor { date: WallTime, floor: WallTime },
    #[error("its Date {date} is not later than the time already believed ({best}): the time only moves forwards")]
    NotForward { date: WallTime, best: WallTime },
    #[error("its Date {date} lies outside its own certificate's window ({from} to {to})")]
    OutsideLeaf {
        date: WallTime,
        from: WallTime,
        to: WallTime,
    },
    #[error(
        "its certificate chain does not verify against the pinned CA at its Date {date}: {why}"
    )]
    Chain {
        date: WallTime,
        #[source]
        why: rustls::Error,
    },
}

/// The acceptance rules of a `Date` from a pinned-TLS answer (docs/time.md), in order: not
/// earlier than the clock `floor`, later than the `best` time already believed, inside the leaf's
/// window `leaf` (both ends included, RFC 5280), and the chain verifies at it (`verify_at`, the
/// ordinary verifier with validity checked). Returns the `Date` to believe.
pub fn judge(
    date: WallTime,
    floor: WallTime,
    best: WallTime,
    leaf: (WallTime, WallTime),
    verify_at: impl FnOnce(WallTime) -> Result<(), rustls::Error>,
) -> Result<WallTime, Refused> {
    if date < floor {
        return Err(Refused::BeforeFloor { date, floor });
    }
    if date <= best {
        return Err(Refused::NotForward { date, best });
    }
    if date < leaf.0 || date > leaf.1 {
        return Err(Refused::OutsideLeaf {
            date,
            from: leaf.0,
            to: leaf.1,
        });
    }
    verify_at(date).map_err(|why| Chain { date, why })?;
    Ok(date)
}
use Refused::Chain;

fn unix_time(t: WallTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(t.unix_secs()).unwrap_or(0),
    ))
}

/// The validity window of a certificate (DER).
fn window(der: &[u8]) -> Option<(WallTime, WallTime)> {
    let c = crate::pki::x509::parse_certificate(der).ok()?;
    Some((
        WallTime::from_unix_secs(c.validity.not_before.timestamp()),
        WallTime::from_unix_secs(c.validity.not_after.timestamp()),
    ))
}

/// What the probe's handshake presented.
#[derive(Debug, Clone)]
struct Seen {
    leaf: CertificateDer<'static>,
    intermediates: Vec<CertificateDer<'static>>,
    name: ServerName<'static>,
    /// The chain verified (validity included) at the best time known already: no `Date` needed.
    ok_at_best: bool,
}

/// The probe's verifier: the ordinary pinned verifier (`inner`), asked at a time inside the
/// presented leaf's window (its middle) rather than at the clock, so that the chain, the name and
/// the handshake signature are all checked while validity times are set aside. What it saw is
/// kept for [`judge`]. The connection it protects carries no credential.
#[derive(Debug)]
pub struct Probe {
    inner: Arc<dyn ServerCertVerifier>,
    seen: Mutex<Option<Seen>>,
}

impl Probe {
    pub fn new(inner: Arc<dyn ServerCertVerifier>) -> Self {
        Self {
            inner,
            seen: Mutex::new(None),
        }
    }
}

impl ServerCertVerifier for Probe {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (from, to) = window(end_entity).ok_or(rustls::Error::InvalidCertificate(
            rustls::CertificateError::BadEncoding,
        ))?;
        let middle = WallTime::from_unix_secs(from.unix_secs() / 2 + to.unix_secs() / 2);
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            unix_time(middle),
        )?;
        let system = WallTime::from_unix_secs(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
        let best = best_now(floor(), system).time;
        let ok_at_best = self
            .inner
            .verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                unix_time(best),
            )
            .is_ok();
        if let Ok(mut g) = self.seen.lock() {
            *g = Some(Seen {
                leaf: end_entity.clone().into_owned(),
                intermediates: intermediates
                    .iter()
                    .map(|c| c.clone().into_owned())
                    .collect(),
                name: server_name.to_owned(),
                ok_at_best,
            });
        }
        Ok(verified)
    }

    crate::delegate_signature_checks!(inner);
}

/// What a probe found.
#[derive(Debug)]
pub enum Outcome {
    /// The pinned chain verifies at the best time known already: nothing to take.
    NotNeeded,
    /// The `Date` was taken: the best time known of this process from now on.
    Taken(WallTime),
}

/// Why a probe ended without a `Date` taken.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no certificate was verified")]
    NotVerified,
    #[error("the answer has no Date header")]
    NoDate,
    #[error("the answer's Date header {0:?} is not an HTTP date")]
    BadDate(String),
    #[error("its certificate does not parse")]
    Leaf,
    #[error(transparent)]
    Refused(#[from] Refused),
}

impl Probe {
    /// After the probe's answer from `server` arrived with `date_header` (its `Date`, raw):
    /// judge it against what the handshake presented and, when accepted, make it the best time
    /// known of this process (and a `clock-verified-date` timeline event).
    pub fn conclude(&self, server: &str, date_header: Option<&str>) -> Result<Outcome, ProbeError> {
        let seen = self
            .seen
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .ok_or(ProbeError::NotVerified)?;
        if seen.ok_at_best {
            return Ok(Outcome::NotNeeded);
        }
        let raw = date_header.ok_or(ProbeError::NoDate)?;
        let date = crate::time::http_date::parse_http_date(raw)
            .map(WallTime::from_system)
            .ok_or_else(|| ProbeError::BadDate(raw.chars().take(64).collect()))?;
        let leaf = window(&seen.leaf).ok_or(ProbeError::Leaf)?;
        let system = crate::sys::clock::node_clock().now();
        let best = best_now(floor(), system).time;
        let taken = judge(date, floor(), best, leaf, |d| {
            self.inner
                .verify_server_cert(
                    &seen.leaf,
                    &seen.intermediates,
                    &seen.name,
                    &[],
                    unix_time(d),
                )
                .map(|_| ())
        })?;
        adopt(server, taken);
        crate::log::record_event(
            "clock-verified-date",
            serde_json::json!({ "server": server, "date": taken.to_string() }),
        );
        Ok(Outcome::Taken(taken))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOOR: WallTime = WallTime::from_unix_secs(1_796_083_200); // 2026-12-01
    const Y2015: WallTime = WallTime::from_unix_secs(1_420_070_400);
    const fn t(secs: i64) -> WallTime {
        WallTime::from_unix_secs(secs)
    }
    const DAY: i64 = 86_400;
    /// A leaf valid from a week after the floor for a year.
    const LEAF: (WallTime, WallTime) = (t(1_796_083_200 + 7 * DAY), t(1_796_083_200 + 372 * DAY));

    fn ok(_: WallTime) -> Result<(), rustls::Error> {
        Ok(())
    }

    #[test]
    fn a_date_inside_the_leaf_window_after_floor_and_best_is_taken() {
        let date = t(LEAF.0.unix_secs() + 10 * DAY);
        assert_eq!(judge(date, FLOOR, FLOOR, LEAF, ok), Ok(date));
        // The leaf window includes both ends.
        assert_eq!(judge(LEAF.0, FLOOR, FLOOR, LEAF, ok), Ok(LEAF.0));
        assert_eq!(judge(LEAF.1, FLOOR, FLOOR, LEAF, ok), Ok(LEAF.1));
    }

    #[test]
    fn a_date_before_the_floor_is_refused() {
        // Even when the leaf is old and the clock older: an expired key cannot be revived.
        let old_leaf = (t(FLOOR.unix_secs() - 400 * DAY), t(FLOOR.unix_secs() - DAY));
        let date = t(FLOOR.unix_secs() - 2 * DAY);
        assert_eq!(
            judge(date, FLOOR, Y2015, old_leaf, ok),
            Err(Refused::BeforeFloor { date, floor: FLOOR })
        );
    }

    #[test]
    fn a_date_that_would_move_time_backwards_is_refused() {
        let best = t(LEAF.0.unix_secs() + 20 * DAY);
        let date = t(LEAF.0.unix_secs() + 10 * DAY);
        assert_eq!(
            judge(date, FLOOR, best, LEAF, ok),
            Err(Refused::NotForward { date, best })
        );
        assert_eq!(
            judge(best, FLOOR, best, LEAF, ok),
            Err(Refused::NotForward { date: best, best })
        );
    }

    #[test]
    fn a_date_outside_the_leaf_window_is_refused() {
        for date in [t(LEAF.0.unix_secs() - 1), t(LEAF.1.unix_secs() + 1)] {
            assert_eq!(
                judge(date, FLOOR, FLOOR, LEAF, ok),
                Err(Refused::OutsideLeaf {
                    date,
                    from: LEAF.0,
                    to: LEAF.1
                })
            );
        }
    }

    #[test]
    fn a_chain_that_does_not_verify_at_the_date_is_refused_and_asked_at_that_date() {
        let date = t(LEAF.0.unix_secs() + DAY);
        let mut asked = None;
        let r = judge(date, FLOOR, FLOOR, LEAF, |d| {
            asked = Some(d);
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ))
        });
        assert_eq!(asked, Some(date));
        assert_eq!(
            r,
            Err(Refused::Chain {
                date,
                why: rustls::Error::InvalidCertificate(rustls::CertificateError::Expired)
            })
        );
    }

    /// A CA valid 2020–2040 and a `localhost` leaf valid 2030–2031 (later than any build).
    fn pki() -> (Vec<u8>, Vec<u8>) {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let ca = p.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(p, ca_key);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut lp = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        lp.not_before = rcgen::date_time_ymd(2030, 1, 1);
        lp.not_after = rcgen::date_time_ymd(2031, 1, 1);
        let leaf = lp.signed_by(&key, &issuer).unwrap();
        (ca.der().to_vec(), leaf.der().to_vec())
    }

    fn probe_of(ca: &[u8]) -> Probe {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca.to_vec())).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Probe::new(
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap(),
        )
    }

    fn verify(p: &Probe, leaf: &[u8], name: &str) -> Result<ServerCertVerified, rustls::Error> {
        p.verify_server_cert(
            &CertificateDer::from(leaf.to_vec()),
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            unix_time(Y2015),
        )
    }

    #[test]
    fn the_probe_sets_validity_aside_but_checks_chain_and_name() {
        let (ca, leaf) = pki();
        // A node in 2015 and a leaf from 2030: the chain is accepted, and it is recorded that
        // it does not verify at the best time known (so a Date is needed).
        let p = probe_of(&ca);
        assert!(verify(&p, &leaf, "localhost").is_ok());
        let seen = p.seen.lock().unwrap().clone().unwrap();
        assert!(!seen.ok_at_best);
        assert_eq!(
            window(&seen.leaf).unwrap().0.to_string(),
            "2030-01-01T00:00:00.000Z"
        );
        // Another CA: refused, whatever the time.
        let (other_ca, _) = pki();
        assert!(verify(&probe_of(&other_ca), &leaf, "localhost").is_err());
        // Another name: refused.
        assert!(verify(&probe_of(&ca), &leaf, "evil.example").is_err());
    }

    #[test]
    fn a_missing_or_unparsable_date_is_named_as_such_and_nothing_is_taken() {
        let (ca, leaf) = pki();
        let p = probe_of(&ca);
        assert!(verify(&p, &leaf, "localhost").is_ok());
        let none = p.conclude("https://localhost", None).unwrap_err();
        assert!(matches!(none, ProbeError::NoDate));
        assert_eq!(none.to_string(), "the answer has no Date header");
        let bad = p
            .conclude("https://localhost", Some("yesterday"))
            .unwrap_err();
        assert_eq!(
            bad.to_string(),
            "the answer's Date header \"yesterday\" is not an HTTP date"
        );
    }
}
