//! Certificates and keys: a strict DER/X.509 reader, PEM, and CA pins.

pub mod pem;
pub mod pin;
pub mod x509;
