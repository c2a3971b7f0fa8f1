//! When a certificate is "not yet valid" or "expired", the clock is the likely cause: the error
//! that says so ([`ClockError`]), and a rustls server verifier ([`BestTimeVerifier`]) that checks
//! validity against the best time known instead of the raw system clock and turns a validity
//! failure into that error.
//!
//! A machine with a clock in 2015 sees every certificate of a cluster made today as "not yet
//! valid". rustls reports `NotValidYet` and nothing else; the person at the console needs to
//! hear that the clock is wrong, what it said, what the certificate's window is, and how to give
//! kubejoin a time source (`kubejoin.ntp=`).

use super::floor::{BestTime, TimeSource};
use crate::error::{Class, Classify};
use crate::time::WallTime;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::CertificateError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Which side of its window the time fell on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    NotYetValid,
    Expired,
}

/// A certificate outside its validity window at the time kubejoin believed, with everything a
/// person needs to judge whether the clock or the certificate is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockError {
    /// The server whose certificate it is (the TLS server name), when known.
    pub server: Option<String>,
    /// The certificate's subject.
    pub subject: String,
    pub problem: Problem,
    pub not_before: WallTime,
    pub not_after: WallTime,
    /// The time validity was checked at, and where it came from.
    pub checked_at: BestTime,
    /// What the system clock said (differs from `checked_at` when the floor was later).
    pub system_clock: WallTime,
    /// The `Date` header of the first answer an API server gave this process, and whose: shown
    /// in the hint only ([`note_server_date`]).
    pub server_date: Option<(String, WallTime)>,
}

/// The `Date` header of the first API server answer of this process (the first cluster-info
/// fetch, usually: a connection that verified nothing), and who sent it.
static FIRST_SERVER_DATE: std::sync::OnceLock<(String, WallTime)> = std::sync::OnceLock::new();

/// Notes the `Date` header of an API server's answer; only the first one of the process is
/// kept. It is a **hint** for the person reading a clock error and nothing else: it may have
/// come over a connection that verified nothing, so anyone on the path could have written it,
/// and it is never a time certificates are checked at (docs/time.md: only a `Date` received
/// over TLS verified against the pinned CA is, and that one is `super::datehdr`'s).
pub fn note_server_date(server: &str, date: WallTime) {
    let _ = FIRST_SERVER_DATE.set((server.to_string(), date));
}

/// What [`note_server_date`] kept.
pub fn first_server_date() -> Option<(String, WallTime)> {
    FIRST_SERVER_DATE.get().cloned()
}

impl fmt::Display for ClockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.checked_at.time;
        f.write_str("the certificate ")?;
        if let Some(s) = &self.server {
            write!(f, "of {s} ")?;
        }
        write!(f, "({}) ", self.subject)?;
        match self.problem {
            Problem::NotYetValid => f.write_str("is not yet valid")?,
            Problem::Expired => f.write_str("has expired")?,
        }
        write!(
            f,
            ": it is valid from {} to {}, and this machine's time is {at}",
            self.not_before, self.not_after
        )?;
        match self.checked_at.source {
            TimeSource::SystemClock => f.write_str(" (its clock)")?,
            TimeSource::Floor => write!(
                f,
                " (its clock says {}, earlier than this kubejoin was built, so the build time was used)",
                self.system_clock
            )?,
            TimeSource::VerifiedDate => write!(
                f,
                " (from the API server's Date header; the clock says {})",
                self.system_clock
            )?,
            TimeSource::Sntp => write!(
                f,
                " (from SNTP, not set on the clock in a dry run; the clock says {})",
                self.system_clock
            )?,
        }
        f.write_str(": the clock is the likely cause")
    }
}

impl std::error::Error for ClockError {}

impl Classify for ClockError {
    fn class(&self) -> Class {
        Class::Trust
    }

    fn hint(&self) -> Option<String> {
        let ntp = "name NTP servers with kubejoin.ntp=HOST[:PORT] on the kernel command line (repeatable; \
                   --ntp HOST[:PORT] for `kubejoin join`), `ntp:` in the KubejoinConfiguration, or DHCP \
                   option 42, so kubejoin sets the clock before it joins";
        let mut h = match self.problem {
            Problem::NotYetValid => format!("this machine's clock is behind: {ntp}; or set the clock (RTC) by hand"),
            Problem::Expired => format!(
                "if this machine's clock is ahead, {ntp}; if the clock is right, the certificate really expired: \
                 renew it on the control plane (`kubeadm certs renew`)"
            ),
        };
        if let Some((server, date)) = &self.server_date {
            h.push_str(&format!(
                "; {server} answered with `Date: {date}` (not authenticated, so not used to check \
                 certificates): if that is right, this machine's clock is off by {}",
                date.since(self.system_clock)
            ));
        }
        Some(h)
    }
}

/// The clock error for `cert_der` at `at`, or `None` when the certificate does not parse or
/// `at` is inside its window (then the failure was not about time).
pub fn explain(
    cert_der: &[u8],
    server: Option<&str>,
    at: BestTime,
    system_clock: WallTime,
) -> Option<ClockError> {
    let c = crate::pki::x509::parse_certificate(cert_der).ok()?;
    let not_before = WallTime::from_unix_secs(c.validity.not_before.timestamp());
    let not_after = WallTime::from_unix_secs(c.validity.not_after.timestamp());
    // RFC 5280 §4.1.2.5: the window includes both ends, to the second.
    let t = WallTime::from_unix_secs(at.time.unix_secs());
    let problem = if t < not_before {
        Problem::NotYetValid
    } else if t > not_after {
        Problem::Expired
    } else {
        return None;
    };
    Some(ClockError {
        server: server.map(str::to_string),
        subject: c.subject.to_string(),
        problem,
        not_before,
        not_after,
        checked_at: at,
        system_clock,
        server_date: None,
    })
}

/// The [`ClockError`] inside a rustls error made by [`BestTimeVerifier`], if it is one.
pub fn clock_error_of(e: &rustls::Error) -> Option<&ClockError> {
    match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<ClockError>()
        }
        _ => None,
    }
}

fn is_validity(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. }
                | CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
        )
    )
}

fn unix_time(t: WallTime) -> UnixTime {
    UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(t.unix_secs()).unwrap_or(0),
    ))
}

/// WebPKI server verification (chain to the given roots, host name, usage), with validity
/// checked at the best time known — the later of the system clock and the clock floor — and a
/// validity failure reported as a [`ClockError`] (inside `CertificateError::Other`; get it back
/// with [`clock_error_of`]). Nothing is weakened: validity is checked at a time no earlier than
/// the system clock's, so what is expired by the clock stays expired; the floor only moves the
/// check later, past a clock that is certainly wrong.
#[derive(Debug)]
pub struct BestTimeVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    floor: WallTime,
}

impl BestTimeVerifier {
    /// A verifier for `roots` with the ring provider, checking validity no earlier than `floor`
    /// (`floor::floor()` outside tests).
    pub fn new(
        roots: rustls::RootCertStore,
        floor: WallTime,
    ) -> Result<Self, rustls::client::VerifierBuilderError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
        Ok(Self::over(inner, floor))
    }

    /// The same time rule around another verifier (the pinned-CAs-only one of `crate::http::tls`):
    /// `inner` is asked at the best time known, and its validity failures become the clock error.
    pub fn over(inner: Arc<dyn ServerCertVerifier>, floor: WallTime) -> Self {
        Self { inner, floor }
    }
}

impl ServerCertVerifier for BestTimeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let system = WallTime::from_unix_secs(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
        let best = super::floor::best_now(self.floor, system);
        let result = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            unix_time(best.time),
        );
        match result {
            Err(e) if is_validity(&e) => {
                let name = server_name.to_str();
                let explained = std::iter::once(end_entity)
                    .chain(intermediates)
                    .find_map(|c| explain(c, Some(&name), best, system))
                    .map(|ce| ClockError {
                        server_date: first_server_date(),
                        ..ce
                    });
                match explained {
                    Some(ce) => Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                        rustls::OtherError(Arc::new(ce)),
                    ))),
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    crate::delegate_signature_checks!(inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y2015: WallTime = WallTime::from_unix_secs(1_420_070_400);
    /// 2026-12-01, a build time.
    const FLOOR: WallTime = WallTime::from_unix_secs(1_796_083_200);

    struct Pki {
        ca: Vec<u8>,
        leaf: Vec<u8>,
    }

    /// A CA valid 2020–2040 and a serving certificate for `localhost` valid `from`..`to`.
    fn pki(from: (i32, u8, u8), to: (i32, u8, u8)) -> Pki {
        let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "kubernetes");
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2040, 1, 1);
        let ca = p.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(p, ca_key);
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut lp = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        lp.distinguished_name = rcgen::DistinguishedName::new();
        lp.distinguished_name
            .push(rcgen::DnType::CommonName, "kube-apiserver");
        lp.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        lp.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        let leaf = lp.signed_by(&key, &issuer).unwrap();
        Pki {
            ca: ca.der().to_vec(),
            leaf: leaf.der().to_vec(),
        }
    }

    fn verifier(p: &Pki, floor: WallTime) -> BestTimeVerifier {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(p.ca.clone())).unwrap();
        BestTimeVerifier::new(roots, floor).unwrap()
    }

    fn verify(
        v: &BestTimeVerifier,
        p: &Pki,
        name: &str,
        now: WallTime,
    ) -> Result<(), rustls::Error> {
        v.verify_server_cert(
            &CertificateDer::from(p.leaf.clone()),
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            unix_time(now),
        )
        .map(|_| ())
    }

    #[test]
    fn a_clock_behind_the_floor_is_lifted_to_it() {
        // Issued a year before the build; the machine says 2015.
        let p = pki((2025, 12, 1), (2035, 12, 1));
        let v = verifier(&p, FLOOR);
        verify(&v, &p, "localhost", Y2015).unwrap();
        // The same with plain WebPKI and the raw clock: not yet valid.
        let plain = WebPkiServerVerifier::builder_with_provider(
            Arc::new({
                let mut r = rustls::RootCertStore::empty();
                r.add(CertificateDer::from(p.ca.clone())).unwrap();
                r
            }),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .unwrap();
        let e = plain
            .verify_server_cert(
                &CertificateDer::from(p.leaf.clone()),
                &[],
                &ServerName::try_from("localhost").unwrap(),
                &[],
                unix_time(Y2015),
            )
            .unwrap_err();
        assert!(is_validity(&e), "{e:?}");
    }

    #[test]
    fn not_yet_valid_after_the_floor_is_a_clock_error() {
        // Issued after the build; the machine says 2015: the floor is not enough.
        let p = pki((2027, 6, 1), (2028, 6, 1));
        let e = verify(&verifier(&p, FLOOR), &p, "localhost", Y2015).unwrap_err();
        let ce = clock_error_of(&e).expect("a clock error");
        assert_eq!(ce.problem, Problem::NotYetValid);
        assert_eq!(ce.server.as_deref(), Some("localhost"));
        assert_eq!(ce.subject, "CN=kube-apiserver");
        assert_eq!(ce.checked_at.source, TimeSource::Floor);
        assert_eq!(ce.system_clock, Y2015);
        assert_eq!(
            ce.to_string(),
            "the certificate of localhost (CN=kube-apiserver) is not yet valid: it is valid from \
             2027-06-01T00:00:00.000Z to 2028-06-01T00:00:00.000Z, and this machine's time is \
             2026-12-01T00:00:00.000Z (its clock says 2015-01-01T00:00:00.000Z, earlier than this \
             kubejoin was built, so the build time was used): the clock is the likely cause"
        );
        let hint = ce.hint().unwrap();
        assert!(hint.contains("kubejoin.ntp=HOST[:PORT]"), "{hint}");
        assert!(hint.contains("behind"), "{hint}");
        assert_eq!(ce.class(), Class::Trust);
        // The rustls error still says "invalid certificate" where it is printed.
        assert!(e.to_string().contains("invalid peer certificate"), "{e}");
    }

    #[test]
    fn expired_is_a_clock_error_that_also_names_renewal() {
        let p = pki((2019, 1, 1), (2020, 1, 1));
        let now = WallTime::from_unix_secs(1_800_000_000);
        let e = verify(&verifier(&p, FLOOR), &p, "localhost", now).unwrap_err();
        let ce = clock_error_of(&e).unwrap();
        assert_eq!(ce.problem, Problem::Expired);
        assert_eq!(ce.checked_at.source, TimeSource::SystemClock);
        assert!(ce.to_string().contains("has expired"), "{ce}");
        assert!(ce.to_string().contains("(its clock)"), "{ce}");
        assert!(ce.hint().unwrap().contains("kubeadm certs renew"));
        // A Date header seen earlier is shown in the hint, for a person to judge; never used.
        let with_date = ClockError {
            server_date: Some(("10.0.0.1:6443".into(), FLOOR)),
            ..ce.clone()
        };
        let h = with_date.hint().unwrap();
        assert!(
            h.contains("10.0.0.1:6443 answered with `Date: 2026-12-01T00:00:00.000Z` (not authenticated, so not used to check certificates)"),
            "{h}"
        );
        assert_eq!(with_date.to_string(), ce.to_string());
    }

    #[test]
    fn other_failures_are_left_as_rustls_reports_them() {
        let p = pki((2025, 1, 1), (2035, 1, 1));
        let v = verifier(&p, FLOOR);
        // A name the certificate does not hold.
        let e = verify(&v, &p, "kubernetes.example", FLOOR).unwrap_err();
        assert!(clock_error_of(&e).is_none());
        assert!(matches!(
            e,
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
                | rustls::Error::InvalidCertificate(
                    CertificateError::NotValidForNameContext { .. }
                )
        ));
        // Another CA.
        let other = pki((2025, 1, 1), (2035, 1, 1));
        let e = verify(&verifier(&other, FLOOR), &p, "localhost", FLOOR).unwrap_err();
        assert!(clock_error_of(&e).is_none(), "{e:?}");
        // Same issuer name, other key: webpki reports the signature (or the issuer).
        assert!(
            matches!(
                e,
                rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer | CertificateError::BadSignature
                )
            ),
            "{e:?}"
        );
    }

    #[test]
    fn explain_bounds_are_inclusive_and_garbage_is_not_a_clock_problem() {
        let p = pki((2025, 1, 1), (2026, 1, 1));
        let at = |secs| BestTime {
            time: WallTime::from_unix_secs(secs),
            source: TimeSource::SystemClock,
        };
        let nb = 1_735_689_600; // 2025-01-01
        let na = 1_767_225_600; // 2026-01-01
        assert!(explain(&p.leaf, None, at(nb), Y2015).is_none());
        assert!(explain(&p.leaf, None, at(na), Y2015).is_none());
        assert_eq!(
            explain(&p.leaf, None, at(nb - 1), Y2015).map(|e| e.problem),
            Some(Problem::NotYetValid)
        );
        assert_eq!(
            explain(&p.leaf, None, at(na + 1), Y2015).map(|e| e.problem),
            Some(Problem::Expired)
        );
        assert!(explain(b"not a certificate", None, at(0), Y2015).is_none());
        // Without a server name the message still reads.
        let e = explain(&p.leaf, None, at(0), Y2015).unwrap();
        assert!(e
            .to_string()
            .starts_with("the certificate (CN=kube-apiserver) is not yet valid"));
    }
}
