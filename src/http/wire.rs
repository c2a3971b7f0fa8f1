//! What went wrong on the wire, distilled from an error's cause chain (refused, timed out, TLS
//! verification, an HTTP status), for retry decisions and messages.

use super::tls::UnpinnedCa;
use crate::pki::pin::CaPin;

/// What went wrong on the wire, distilled from an error's cause chain, so callers can classify
/// (retry or stop) and explain (hint) without string matching at every call site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireFailure {
    /// The server answered with an HTTP status (and a `Status` body when it sent one).
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    /// TCP connect refused.
    Refused,
    /// A connect or read deadline passed.
    TimedOut,
    /// The TLS handshake failed verification (unknown CA, wrong name…).
    TlsVerify(String),
    /// The server's certificate is outside its validity window at the best time known: the
    /// clock is the likely cause ([`crate::clock::cert::ClockError`]).
    Clock(Box<crate::clock::cert::ClockError>),
    /// The server's certificate chains only to CAs that cluster-info lists but no pin names
    /// ([`super::tls::Trust::Pinned`]): refused at the handshake, before any request was sent.
    UnpinnedCa(Vec<CaPin>),
    /// Anything else on the transport (reset, DNS, protocol).
    Transport(String),
}

impl WireFailure {
    /// The server's certificate was refused: it does not verify, it is outside its validity
    /// window at the best time known (the clock), or it chains only to an unpinned CA. No
    /// repeat of the request can change that (the server's certificate and this machine's
    /// clock stay as they are while kubejoin waits), so every retry loop ends on it at once.
    pub fn is_certificate_refusal(&self) -> bool {
        matches!(
            self,
            WireFailure::TlsVerify(_) | WireFailure::Clock(_) | WireFailure::UnpinnedCa(_)
        )
    }
}

/// Each link of `err`'s chain, also following `io::Error::get_ref` (hyper-util wraps the rustls
/// error in nested `io::Error`s whose `source()` skips the inner error).
fn chain_links<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Vec<&'a (dyn std::error::Error + 'static)> {
    let mut out = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let mut inner: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(i) = inner {
            out.push(i);
            inner = i
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|r| r as &(dyn std::error::Error + 'static));
        }
        cur = e.source();
        if out.len() > 64 {
            break;
        }
    }
    out
}

pub fn find_rustls<'a>(
    err: &'a (dyn std::error::Error + Send + Sync + 'static),
) -> Option<&'a rustls::Error> {
    chain_links(err)
        .into_iter()
        .find_map(|e| e.downcast_ref::<rustls::Error>())
}

/// Whether some link of `err`'s chain ([`chain_links`]) is an I/O error of `kind`.
pub fn io_kind_in_chain(err: &(dyn std::error::Error + 'static), kind: std::io::ErrorKind) -> bool {
    chain_links(err).iter().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == kind)
    })
}

/// Classifies a transport error by walking its cause chain.
pub fn wire_failure_of(err: &(dyn std::error::Error + Send + Sync + 'static)) -> WireFailure {
    let links = chain_links(err);
    for e in &links {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            if let rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o)) = tls {
                if let Some(u) = o.0.downcast_ref::<UnpinnedCa>() {
                    return WireFailure::UnpinnedCa(u.pins.clone());
                }
            }
            return match crate::clock::cert::clock_error_of(tls) {
                Some(clock) => WireFailure::Clock(Box::new(clock.clone())),
                None => WireFailure::TlsVerify(tls.to_string()),
            };
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return WireFailure::Refused,
                std::io::ErrorKind::TimedOut => return WireFailure::TimedOut,
                _ => {}
            }
        }
    }
    let mut last = String::new();
    for e in &links {
        let t = e.to_string();
        if t.contains("timed out") || t.contains("deadline has elapsed") {
            return WireFailure::TimedOut;
        }
        if !t.is_empty() {
            last = t;
        }
    }
    WireFailure::Transport(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_kind_is_found_among_the_sources() {
        #[derive(Debug)]
        struct Wrap(std::io::Error);
        impl std::fmt::Display for Wrap {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("tcp connect error")
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        use std::io::ErrorKind::{ConnectionRefused, ConnectionReset, TimedOut};
        let refused = Wrap(ConnectionRefused.into());
        assert!(io_kind_in_chain(&refused, ConnectionRefused));
        assert!(!io_kind_in_chain(&refused, TimedOut));
        assert!(!io_kind_in_chain(
            &Wrap(ConnectionReset.into()),
            ConnectionRefused
        ));
        // Nested inside another io::Error (hyper-util's wrapping), reached through get_ref.
        let nested = std::io::Error::other(Wrap(TimedOut.into()));
        assert!(io_kind_in_chain(&nested, TimedOut));
    }

    #[test]
    fn only_a_refused_certificate_is_a_certificate_refusal() {
        // The clock variant is checked through the binary (tests/time_join.rs).
        assert!(
            WireFailure::TlsVerify("invalid peer certificate: UnknownIssuer".into())
                .is_certificate_refusal()
        );
        assert!(WireFailure::UnpinnedCa(Vec::new()).is_certificate_refusal());
        for other in [
            WireFailure::Refused,
            WireFailure::TimedOut,
            WireFailure::Transport("connection reset".into()),
            WireFailure::Status {
                code: 503,
                reason: "ServiceUnavailable".into(),
                message: String::new(),
            },
        ] {
            assert!(!other.is_certificate_refusal(), "{other:?}");
        }
    }
}
