//! Certificates and keys: a strict DER/X.509 reader, PEM, and CA pins.

pub mod pem;
pub mod pin;
pub mod x509;

/// The handshake-signature half of a rustls `ServerCertVerifier` that wraps another verifier
/// (`self.$inner`) and only changes how the certificate itself is judged: the TLS 1.2 and 1.3
/// signature checks and the supported schemes are the wrapped verifier's. Used inside
/// `impl ServerCertVerifier for …` by the pinned-CA, clock-explaining and `Date`-probe
/// verifiers.
#[macro_export]
macro_rules! delegate_signature_checks {
    ($inner:ident) => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.$inner.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.$inner.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.$inner.supported_verify_schemes()
        }
    };
}
