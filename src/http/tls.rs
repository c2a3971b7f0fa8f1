//! TLS client configuration, one for every client kubejoin has (the Kubernetes API, HTTPS
//! discovery, metadata over https): rustls with the ring provider only, validity checked at the
//! best time known ([`crate::clock`]), and the trust decisions of a join: a CA bundle, the pinned
//! CAs only (recognising the bundle's unpinned ones to name them), the system store, or — only
//! for the JWS-checked first cluster-info fetch — any certificate.

use crate::pki::pin::CaPin;
use std::sync::Arc;

/// How the server's certificate is verified.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Verify the chain and hostname against exactly these CA certificates (DER).
    CaBundle(Vec<Vec<u8>>),
    /// Verify against the pinned CAs of a cluster-info bundle only. `unpinned` are the other
    /// CAs of that bundle: never trusted, only recognised, so that a server whose certificate
    /// chains to one of them is refused with [`crate::http::wire::WireFailure::UnpinnedCa`] naming it (the bundle
    /// is signed with the bootstrap token, so whoever holds the token can add a CA to it).
    Pinned {
        pinned: Vec<Vec<u8>>,
        unpinned: Vec<(CaPin, Vec<u8>)>,
    },
    /// Verify against the platform trust store (HTTPS discovery without an explicit CA).
    System,
    /// Accept any certificate. Only for the insecure cluster-info fetch, whose content is then
    /// authenticated by the JWS and the CA pin.
    DangerousAcceptAny,
    /// Accept any certificate *for now*, keeping each one presented, until discovery has decided
    /// what to trust ([`Deferred::settle`]); from then on every handshake is verified by that
    /// decision, and the connections made before it are used again only if each certificate
    /// they were made with passes it. The token discovery's cluster-info fetch, so that the TLS
    /// bootstrap can go on over its connection instead of a second TCP and TLS handshake.
    Deferred(Arc<Deferred>),
}

/// Building a TLS client configuration failed; nothing was sent. rustls' own errors are kept
/// as the cause.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS setup: the ring provider offers no safe protocol version")]
    Protocols(#[source] rustls::Error),
    #[error("a CA certificate is unusable as a trust root")]
    Root(#[source] rustls::Error),
    #[error("building the certificate verifier")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
    #[error("loading the system trust store")]
    NativeRoots(#[source] std::io::Error),
    #[error("the client certificate PEM holds no CERTIFICATE block")]
    NoClientCert,
    #[error("the client key PEM holds no PRIVATE KEY block")]
    NoClientKey,
    #[error("the client certificate and key do not form an identity")]
    ClientAuth(#[source] rustls::Error),
}

/// rustls with the ring provider and its safe protocol versions (TLS 1.2 and 1.3): the one
/// starting point of every client configuration (no OpenSSL, no aws-lc).
pub fn ring_builder(
) -> Result<rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier>, TlsError> {
    rustls::ClientConfig::builder_with_details(
        Arc::new(rustls::crypto::ring::default_provider()),
        Arc::new(NodeTime),
    )
    .with_safe_default_protocol_versions()
    .map_err(TlsError::Protocols)
}

/// rustls' idea of "now" is the node's clock (`sys::clock::node_clock`): the one the clock phase
/// steps. In a deployed binary that is the system clock, as rustls' default; a debug build under
/// test may fake it, and then certificate validity must be judged by the same fake clock, or a
/// test of "a clock years off" would prove nothing.
#[derive(Debug)]
struct NodeTime;

impl rustls::time_provider::TimeProvider for NodeTime {
    fn current_time(&self) -> Option<rustls::pki_types::UnixTime> {
        let secs = crate::sys::clock::node_clock().now().unix_secs();
        u64::try_from(secs).ok().map(|s| {
            rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(s))
        })
    }
}

fn root_store(ders: &[Vec<u8>]) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for der in ders {
        roots
            .add(rustls::pki_types::CertificateDer::from(der.clone()))
            .map_err(TlsError::Root)?;
    }
    Ok(roots)
}

/// WebPKI as `with_root_certificates` would do it, with validity checked at the best time known
/// (never before this binary's build time) and a validity failure reported as the clock error
/// (src/clock/cert.rs). `dangerous()` is only rustls' door to a custom verifier: nothing is
/// skipped.
fn best_time(ders: &[Vec<u8>]) -> Result<crate::clock::cert::BestTimeVerifier, TlsError> {
    crate::clock::cert::BestTimeVerifier::new(root_store(ders)?, crate::clock::floor::floor())
        .map_err(TlsError::Verifier)
}

/// The ordinary verifier of the pinned CAs (`Trust::Pinned`) without the best-time rule: the
/// verified-`Date` probe (`clock::datehdr`) asks it at times of its own.
pub fn pinned_verifier(
    pinned: &[Vec<u8>],
    unpinned: &[(CaPin, Vec<u8>)],
) -> Result<Arc<dyn rustls::client::danger::ServerCertVerifier>, TlsError> {
    if unpinned.is_empty() {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(root_store(pinned)?),
            provider,
        )
        .build()
        .map_err(TlsError::Verifier)?;
        Ok(v)
    } else {
        Ok(Arc::new(pinned::PinnedOnly::new(pinned, unpinned)?))
    }
}

/// The certificate verifier of a `CaBundle` or `Pinned` trust with at least one CA, exactly as
/// [`client_config`] builds it (validity at the best time known); `None` for any other trust.
pub fn verifier_for(
    trust: &Trust,
) -> Result<Option<Arc<dyn rustls::client::danger::ServerCertVerifier>>, TlsError> {
    Ok(match trust {
        Trust::CaBundle(ders) | Trust::Pinned { pinned: ders, .. } if ders.is_empty() => None,
        Trust::CaBundle(ders) => Some(Arc::new(best_time(ders)?)),
        // Nothing to recognise: plain roots, at the best time known.
        Trust::Pinned { pinned, unpinned } if unpinned.is_empty() => {
            Some(Arc::new(best_time(pinned)?))
        }
        Trust::Pinned { pinned, unpinned } => {
            Some(Arc::new(crate::clock::cert::BestTimeVerifier::over(
                Arc::new(pinned::PinnedOnly::new(pinned, unpinned)?),
                crate::clock::floor::floor(),
            )))
        }
        Trust::System | Trust::DangerousAcceptAny | Trust::Deferred(_) => None,
    })
}

/// Ends a [`Trust::Deferred`] decision with `trust` (a `CaBundle` or `Pinned` one; any other, or
/// one whose verifier cannot be built, refuses every certificate from now on): from now on
/// every handshake of the deferred clients is verified as a client of `trust` verifies it.
/// Returns whether their connections made before may be used as verified ones: some were made,
/// and each certificate they were made with passes `trust` now (the first refusal otherwise).
pub fn settle(deferred: &Deferred, trust: &Trust) -> Result<bool, rustls::Error> {
    use rustls::time_provider::TimeProvider as _;
    let now = NodeTime
        .current_time()
        .unwrap_or_else(rustls::pki_types::UnixTime::now);
    match verifier_for(trust) {
        Ok(verifier) => deferred.settle(verifier, now),
        // Closed all the same: nothing of this client is trusted from now on.
        Err(e) => {
            let _ = deferred.settle(None, now);
            Err(rustls::Error::General(e.to_string()))
        }
    }
}

/// The client configuration for `trust`, presenting `client_cert` (certificate chain and key,
/// PEM) when given.
pub fn client_config(
    trust: &Trust,
    client_cert: Option<(&[u8], &[u8])>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = ring_builder()?;
    let builder = match trust {
        Trust::CaBundle(_) | Trust::Pinned { .. } => match verifier_for(trust)? {
            Some(v) => builder.dangerous().with_custom_certificate_verifier(v),
            // No roots: nothing can verify (every handshake fails as an unknown issuer).
            None => builder.with_root_certificates(rustls::RootCertStore::empty()),
        },
        Trust::System => {
            use hyper_rustls::ConfigBuilderExt as _;
            builder.with_native_roots().map_err(TlsError::NativeRoots)?
        }
        Trust::DangerousAcceptAny => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(dangerous::AcceptAnyCertificate::new())),
        Trust::Deferred(d) => builder
            .dangerous()
            .with_custom_certificate_verifier(d.clone()),
    };
    let deferred = matches!(trust, Trust::Deferred(_));
    let mut config = match client_cert {
        Some((cert_pem, key_pem)) => {
            let (chain, key) = client_identity(cert_pem, key_pem)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsError::ClientAuth)?
        }
        None => builder.with_no_client_auth(),
    };
    if deferred {
        // A resumed session skips the certificate check: every connection of a deferred
        // client is one whose certificate was seen (and judged by `settle`) or verified.
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(config)
}

/// The certificate chain and private key of PEM texts (PKCS#8, SEC1 or PKCS#1 key).
fn client_identity(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<
    (
        Vec<rustls::pki_types::CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ),
    TlsError,
> {
    use rustls::pki_types::{
        CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
    };
    let chain: Vec<CertificateDer<'static>> = crate::pki::pem::blocks_of(cert_pem, "CERTIFICATE")
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoClientCert);
    }
    let key = crate::pki::pem::pem_blocks(key_pem)
        .into_iter()
        .find_map(|(label, der)| match label {
            "PRIVATE KEY" => Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))),
            "EC PRIVATE KEY" => Some(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))),
            "RSA PRIVATE KEY" => Some(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))),
            _ => None,
        })
        .ok_or(TlsError::NoClientKey)?;
    Ok((chain, key))
}

mod pinned {
    use super::{root_store, TlsError};
    use crate::pki::pin::CaPin;
    use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{CertificateError, OtherError};
    use std::sync::Arc;

    /// Verifies exactly as rustls does against the pinned CAs, and nothing else is ever
    /// accepted. Only when that fails does it look at the bundle's unpinned CAs, one at a time
    /// with the same full check (chain, name, validity): a server that one of them would have
    /// let through is the attack of a stolen token plus a CA of the attacker's in cluster-info,
    /// or a CA rotation the user has not pinned yet, and the error names that CA's pin.
    #[derive(Debug)]
    pub struct PinnedOnly {
        pinned: Arc<WebPkiServerVerifier>,
        unpinned: Vec<(CaPin, Arc<WebPkiServerVerifier>)>,
    }

    fn verifier(ders: &[Vec<u8>]) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
        WebPkiServerVerifier::builder_with_provider(
            Arc::new(root_store(ders)?),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(TlsError::Verifier)
    }

    impl PinnedOnly {
        pub fn new(pinned: &[Vec<u8>], unpinned: &[(CaPin, Vec<u8>)]) -> Result<Self, TlsError> {
            let mut others = Vec::with_capacity(unpinned.len());
            for (pin, der) in unpinned {
                // A CA that is not even usable as a root cannot be the one the server used.
                if let Ok(v) = verifier(std::slice::from_ref(der)) {
                    others.push((pin.clone(), v));
                }
            }
            Ok(Self {
                pinned: verifier(pinned)?,
                unpinned: others,
            })
        }
    }

    impl ServerCertVerifier for PinnedOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let verdict =
                self.pinned
                    .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
            let Err(rustls::Error::InvalidCertificate(_)) = &verdict else {
                return verdict;
            };
            let pins: Vec<CaPin> = self
                .unpinned
                .iter()
                .filter(|(_, v)| {
                    v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                        .is_ok()
                })
                .map(|(pin, _)| pin.clone())
                .collect();
            if pins.is_empty() {
                return verdict;
            }
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(super::UnpinnedCa { pins })),
            )))
        }

        crate::delegate_signature_checks!(pinned);
    }
}

/// The server's certificate chains to CAs of the cluster-info bundle that are not pinned (and
/// not to a pinned one): carried inside the rustls error of the refused handshake.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the server presented a certificate issued by CA {}, which the cluster-info CA bundle lists but which is not pinned", pin_list(.pins))]
pub struct UnpinnedCa {
    pub pins: Vec<CaPin>,
}

fn pin_list(pins: &[CaPin]) -> String {
    let list: Vec<String> = pins.iter().map(CaPin::to_string).collect();
    list.join(" or ")
}

pub use deferred::Deferred;

mod deferred {
    use super::dangerous::AcceptAnyCertificate;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use std::sync::{Arc, Mutex};

    /// One certificate chain presented while the decision was open.
    #[derive(Debug)]
    struct Seen {
        end_entity: CertificateDer<'static>,
        intermediates: Vec<CertificateDer<'static>>,
        server_name: ServerName<'static>,
        ocsp: Vec<u8>,
    }

    #[derive(Debug)]
    enum State {
        /// Any certificate is accepted (the handshake signatures are still checked) and kept.
        Open(Vec<Seen>),
        /// Every handshake is this verifier's to judge; `None`: every certificate is refused
        /// (a trust without any CA).
        Settled(Option<Arc<dyn ServerCertVerifier>>),
    }

    fn refused() -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    }

    /// The verifier of [`super::Trust::Deferred`]: [`AcceptAnyCertificate`] until
    /// [`Self::settle`], the settled verifier after it. A connection opened while open is as
    /// unverified as the insecure fetch's until `settle` has judged the certificate it was made
    /// with; the handshake signature check (always done) proves the peer held that
    /// certificate's key, so a certificate that passes `settle` makes the connection what a
    /// verified handshake would have made it.
    #[derive(Debug)]
    pub struct Deferred {
        state: Mutex<State>,
        open: AcceptAnyCertificate,
    }

    impl Default for Deferred {
        fn default() -> Self {
            Self::new()
        }
    }

    impl Deferred {
        pub fn new() -> Self {
            Self {
                state: Mutex::new(State::Open(Vec::new())),
                open: AcceptAnyCertificate::new(),
            }
        }

        /// The settled verifier's signature checks, else the open ones (the same algorithms;
        /// a refused certificate never gets as far as its signature).
        fn signatures(&self) -> Option<Arc<dyn ServerCertVerifier>> {
            match &*self.state.lock().unwrap_or_else(|p| p.into_inner()) {
                State::Settled(v) => v.clone(),
                State::Open(_) => None,
            }
        }

        /// From now on `verifier` judges every handshake (`None`: refuses every one). Returns
        /// whether every certificate accepted while open passes it too (at `now`), with the
        /// first refusal otherwise: only then may the connections made before be used for
        /// anything that must be verified. A second call changes nothing and answers `false`.
        pub fn settle(
            &self,
            verifier: Option<Arc<dyn ServerCertVerifier>>,
            now: UnixTime,
        ) -> Result<bool, rustls::Error> {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let State::Open(seen) =
                std::mem::replace(&mut *state, State::Settled(verifier.clone()))
            else {
                return Ok(false);
            };
            for s in &seen {
                let Some(v) = &verifier else {
                    return Err(refused());
                };
                v.verify_server_cert(
                    &s.end_entity,
                    &s.intermediates,
                    &s.server_name,
                    &s.ocsp,
                    now,
                )?;
            }
            Ok(!seen.is_empty())
        }
    }

    impl ServerCertVerifier for Deferred {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match &mut *state {
                State::Settled(Some(v)) => {
                    v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                }
                State::Settled(None) => Err(refused()),
                State::Open(seen) => {
                    seen.push(Seen {
                        end_entity: end_entity.clone().into_owned(),
                        intermediates: intermediates
                            .iter()
                            .map(|c| c.clone().into_owned())
                            .collect(),
                        server_name: server_name.to_owned(),
                        ocsp: ocsp.to_vec(),
                    });
                    self.open
                        .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                }
            }
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            match self.signatures() {
                Some(v) => v.verify_tls12_signature(message, cert, dss),
                None => self.open.verify_tls12_signature(message, cert, dss),
            }
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            match self.signatures() {
                Some(v) => v.verify_tls13_signature(message, cert, dss),
                None => self.open.verify_tls13_signature(message, cert, dss),
            }
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            match self.signatures() {
                Some(v) => v.supported_verify_schemes(),
                None => self.open.supported_verify_schemes(),
            }
        }
    }
}

mod dangerous {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// Accepts any server certificate (but still checks the handshake signatures, so the peer
    /// holds the key of the certificate it sent). Only [`super::Trust::DangerousAcceptAny`].
    #[derive(Debug)]
    pub struct AcceptAnyCertificate {
        algs: rustls::crypto::WebPkiSupportedAlgorithms,
    }

    impl AcceptAnyCertificate {
        pub fn new() -> Self {
            Self {
                algs: rustls::crypto::ring::default_provider().signature_verification_algorithms,
            }
        }
    }

    impl ServerCertVerifier for AcceptAnyCertificate {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            // Only whether the verified-`Date` probe is worth a request (`clock::datehdr`):
            // nothing is trusted because of it.
            crate::clock::datehdr::note_unverified_leaf(end_entity);
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::wire::{wire_failure_of, WireFailure};
    use rcgen::{CertificateParams, DnType, IsCa, KeyPair};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    struct Ca {
        der: Vec<u8>,
        issuer: rcgen::Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        Ca {
            der: cert.der().to_vec(),
            issuer: rcgen::Issuer::new(p, key),
        }
    }

    fn serving(ca: &Ca) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let p = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        p.signed_by(&key, &ca.issuer).unwrap().der().to_vec()
    }

    fn pin(c: &Ca) -> CaPin {
        CaPin::of_cert_der(&c.der).unwrap()
    }

    /// What the handshake's certificate check of verifier `v` says about a server certificate
    /// `leaf` presented as 127.0.0.1.
    fn check(
        v: &dyn rustls::client::danger::ServerCertVerifier,
        leaf: &[u8],
    ) -> Result<(), WireFailure> {
        let name = ServerName::try_from("127.0.0.1").unwrap();
        v.verify_server_cert(
            &CertificateDer::from(leaf.to_vec()),
            &[],
            &name,
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| wire_failure_of(&e))
    }

    #[test]
    fn only_pinned_cas_are_trusted_and_an_unpinned_one_is_named() {
        let (a, b, evil, stranger) = (ca("a"), ca("b"), ca("evil"), ca("stranger"));
        // Two pins matched (a CA rotation): both are trust anchors.
        let v = pinned::PinnedOnly::new(
            &[a.der.clone(), b.der.clone()],
            &[(pin(&evil), evil.der.clone())],
        )
        .unwrap();
        assert_eq!(check(&v, &serving(&a)), Ok(()));
        assert_eq!(check(&v, &serving(&b)), Ok(()));
        // The bundle's unpinned CA is recognised, never trusted, and named.
        assert_eq!(
            check(&v, &serving(&evil)),
            Err(WireFailure::UnpinnedCa(vec![pin(&evil)]))
        );
        // A CA that is not in the bundle at all is just unknown.
        assert!(matches!(
            check(&v, &serving(&stranger)),
            Err(WireFailure::TlsVerify(d)) if d.contains("UnknownIssuer")
        ));
        let text = UnpinnedCa {
            pins: vec![pin(&evil)],
        }
        .to_string();
        assert!(text.contains(&pin(&evil).to_string()), "{text}");
    }

    #[test]
    fn a_deferred_decision_keeps_old_connections_only_when_their_certificates_pass_it() {
        let (a, evil) = (ca("a"), ca("evil"));
        let pinned = Trust::Pinned {
            pinned: vec![a.der.clone()],
            unpinned: vec![(pin(&evil), evil.der.clone())],
        };
        // Open: anything goes (the insecure fetch), and is kept.
        let d = Deferred::new();
        assert_eq!(check(&d, &serving(&a)), Ok(()));
        // Settled on the pin: the certificate seen passes, so the connection may go on; every
        // later handshake is the pinned verifier's (the unpinned CA refused by name).
        assert_eq!(settle(&d, &pinned), Ok(true));
        assert_eq!(check(&d, &serving(&a)), Ok(()));
        assert_eq!(
            check(&d, &serving(&evil)),
            Err(WireFailure::UnpinnedCa(vec![pin(&evil)]))
        );
        // Settling again changes nothing and never blesses anything.
        assert_eq!(settle(&d, &Trust::DangerousAcceptAny), Ok(false));
        assert!(check(&d, &serving(&evil)).is_err());

        // The bundle attack: cluster-info came over a connection made with the attacker's own
        // CA, which the bundle lists. Settling refuses that connection, by the CA's name.
        let d = Deferred::new();
        assert_eq!(check(&d, &serving(&a)), Ok(()));
        assert_eq!(check(&d, &serving(&evil)), Ok(()));
        let refused = settle(&d, &pinned).unwrap_err();
        assert_eq!(
            wire_failure_of(&refused),
            WireFailure::UnpinnedCa(vec![pin(&evil)])
        );
        assert!(check(&d, &serving(&evil)).is_err());

        // Nothing seen: nothing to go on with. A trust without any CA refuses everything.
        assert_eq!(settle(&Deferred::new(), &pinned), Ok(false));
        let d = Deferred::new();
        assert_eq!(check(&d, &serving(&a)), Ok(()));
        assert!(settle(&d, &Trust::CaBundle(Vec::new())).is_err());
        assert!(check(&d, &serving(&a)).is_err());
    }

    #[test]
    fn a_deferred_client_never_resumes_a_session() {
        let cfg = client_config(&Trust::Deferred(Arc::new(Deferred::new())), None).unwrap();
        assert!(
            format!("{:?}", cfg.resumption).contains("Disabled"),
            "{:?}",
            cfg.resumption
        );
    }

    #[test]
    fn pinned_trust_builds_a_client_with_or_without_unpinned_cas() {
        let (a, evil) = (ca("a"), ca("evil"));
        for unpinned in [vec![], vec![(pin(&evil), evil.der.clone())]] {
            client_config(
                &Trust::Pinned {
                    pinned: vec![a.der.clone()],
                    unpinned,
                },
                None,
            )
            .unwrap();
        }
    }
}
