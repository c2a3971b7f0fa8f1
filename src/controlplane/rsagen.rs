//! RSA key generation for this node's control-plane certificates (kubeadm's default key type,
//! RSA-2048; RSA-3072/4096 on request), as PKCS#1 DER. Signing with these keys stays in ring.
//!
//! Why this is partly our own code and not the RustCrypto `rsa` crate: binary size, measured.
//! ring (and so rcgen on ring) cannot generate RSA keys. Stripped release musl binary
//! (`scripts/build`'s settings: opt-level "z", fat LTO, packed relocations), with the whole
//! control-plane phase 1 (download-certs, leaves, kubeconfigs, manifests, etcd client) made
//! reachable from `main` by a temporary probe that is not committed:
//!
//! | RSA key generation                               | binary (bytes) | cost of RSA keygen |
//! |--------------------------------------------------|---------------:|-------------------:|
//! | (today's binary: phase 1 not reachable)          |      4,137,944 |                    |
//! | phase 1 reachable, RSA generation stubbed out    |      4,379,608 |                  0 |
//! | `rsa` 0.10 (crypto-bigint + crypto-primes)       |      4,600,792 |           +221,184 |
//! | `rsa` 0.9 (num-bigint-dig)                       |      4,514,776 |           +135,168 |
//! | this file: Miller-Rabin and PKCS#1 on num-bigint |      4,436,952 |            +57,344 |
//!
//! The budget is 4 MiB (4,194,304 B). `rsa` 0.10 alone would cost more than today's whole
//! margin (56,360 B); this file costs a quarter of it and keeps the arithmetic in a maintained,
//! widely used crate (num-bigint: `modpow`, `modinv`). Phase 1 itself (+241,664 B without any
//! RSA) does not fit either: wiring it in needs size work elsewhere (see docs/control-plane.md).
//!
//! What the generator does, after FIPS 186-5 appendix A.1.3, with Go's (kubeadm's) public
//! exponent e = 65537: p and q random with their two top bits set (so n has exactly
//! `bits` bits), odd, not divisible by an odd prime below 4096, p - 1 and q - 1 coprime to e,
//! then Miller-Rabin with [`MR_ROUNDS`] random bases; p and q at least 2^(bits/2 - 100) apart;
//! d = e^-1 mod lcm(p-1, q-1), larger than 2^(bits/2); CRT values dP, dQ, qInv; p > q.
//! Randomness is ring's system CSPRNG. The arithmetic (num-bigint) is not constant-time; the keys
//! are generated once, on the node itself, early in its life.
//! The unit tests parse generated keys with ring (PKCS#1 and PKCS#8) and sign and verify.

use num_bigint::BigUint;
use num_traits::{One as _, Zero as _};
use ring::rand::{SecureRandom, SystemRandom};

/// Miller-Rabin rounds for a candidate that passed trial division. Whatever the odd composite,
/// each random base lets it through with probability at most 1/4, so 28 bases bound the error by
/// 2^-56; for random candidates of these sizes it is far smaller (Damgård, Landrock and Pomerance),
/// which is why FIPS 186 asks for only a few rounds. Composites almost always fail the first
/// base, so the extra rounds are spent only on the two primes kept.
const MR_ROUNDS: usize = 28;

/// The public exponent kubeadm's keys carry (Go's `rsa.GenerateKey`).
const E: u32 = 65537;

/// The system RNG failed, or the size asked for is not one this generator makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RsaGenError {
    Random,
    UnsupportedSize(usize),
}

impl std::fmt::Display for RsaGenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Random => f.write_str("the system random number generator failed"),
            Self::UnsupportedSize(bits) => write!(f, "{bits}-bit RSA keys are not supported"),
        }
    }
}

impl std::error::Error for RsaGenError {}

/// A generated RSA key as DER: PKCS#1 `RSAPrivateKey` and `RSAPublicKey`.
pub struct RsaDer {
    pub private_pkcs1: Vec<u8>,
    pub public_pkcs1: Vec<u8>,
}

impl std::fmt::Debug for RsaDer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaDer(<redacted>)")
    }
}

/// Generates an RSA key of `bits` (2048, 3072 or 4096) with e = 65537.
pub fn generate(bits: usize) -> Result<RsaDer, RsaGenError> {
    if !matches!(bits, 2048 | 3072 | 4096) {
        return Err(RsaGenError::UnsupportedSize(bits));
    }
    let rng = SystemRandom::new();
    let e = BigUint::from(E);
    let one = BigUint::one();
    let half = bits / 2;
    let small = small_primes();
    // |p - q| must exceed 2^(bits/2 - 100) and d must exceed 2^(bits/2) (FIPS 186-5 A.1.3);
    // both fail with negligible probability, but a retry costs nothing to write.
    loop {
        let p = random_prime(half, &small, &rng)?;
        let q = random_prime(half, &small, &rng)?;
        let (p, q) = if p > q { (p, q) } else { (q, p) };
        if (&p - &q).bits() <= (half - 100) as u64 {
            continue;
        }
        let (p1, q1) = (&p - &one, &q - &one);
        let lambda = &p1 / gcd(&p1, &q1) * &q1;
        let Some(d) = e.modinv(&lambda) else {
            continue;
        };
        if d.bits() <= half as u64 {
            continue;
        }
        let Some(qinv) = q.modinv(&p) else {
            continue;
        };
        let n = &p * &q;
        let ints = [
            &BigUint::zero(),
            &n,
            &e,
            &d,
            &p,
            &q,
            &(&d % &p1),
            &(&d % &q1),
            &qinv,
        ];
        let private: Vec<u8> = ints.iter().flat_map(|i| der_uint(i)).collect();
        let public: Vec<u8> = [&n, &e].iter().flat_map(|i| der_uint(i)).collect();
        return Ok(RsaDer {
            private_pkcs1: der(0x30, &private),
            public_pkcs1: der(0x30, &public),
        });
    }
}

fn gcd(a: &BigUint, b: &BigUint) -> BigUint {
    let (mut a, mut b) = (a.clone(), b.clone());
    while !b.is_zero() {
        let r = &a % &b;
        a = b;
        b = r;
    }
    a
}

/// The odd primes below 2^12 (563 of them), for trial division.
fn small_primes() -> Vec<u32> {
    const LIMIT: usize = 1 << 12;
    let mut composite = vec![false; LIMIT];
    let mut out = Vec::new();
    for i in 3..LIMIT {
        if i % 2 == 1 && !composite[i] {
            out.push(i as u32);
            for m in (i * i..LIMIT).step_by(2 * i) {
                composite[m] = true;
            }
        }
    }
    out
}

fn random_bytes(rng: &SystemRandom, len: usize) -> Result<Vec<u8>, RsaGenError> {
    let mut b = vec![0u8; len];
    rng.fill(&mut b).map_err(|_| RsaGenError::Random)?;
    Ok(b)
}

/// A probable prime of exactly `bits` bits (a multiple of 8) with its two top bits set and
/// p - 1 coprime to e.
fn random_prime(bits: usize, small: &[u32], rng: &SystemRandom) -> Result<BigUint, RsaGenError> {
    loop {
        let mut b = random_bytes(rng, bits / 8)?;
        b[0] |= 0xc0;
        if let Some(last) = b.last_mut() {
            *last |= 1;
        }
        let c = BigUint::from_bytes_be(&b);
        if small.iter().any(|&sp| (&c % sp).is_zero()) {
            continue;
        }
        if (&c % E).is_one() {
            continue;
        }
        if miller_rabin(&c, MR_ROUNDS, rng)? {
            return Ok(c);
        }
    }
}

/// Miller-Rabin with `rounds` bases drawn uniformly from [2, n - 2]; `n` odd and > 4.
fn miller_rabin(n: &BigUint, rounds: usize, rng: &SystemRandom) -> Result<bool, RsaGenError> {
    let one = BigUint::one();
    let n1 = n - &one;
    let s = n1.trailing_zeros().unwrap_or(0);
    let d = &n1 >> s;
    let range = n - 3u32;
    let len = n.bits().div_ceil(8) as usize;
    for _ in 0..rounds {
        // Rejection sampling keeps the base uniform: draw below the next power of two.
        let a = loop {
            let mut b = random_bytes(rng, len)?;
            let excess = (len * 8) as u64 - range.bits();
            b[0] &= 0xffu8.checked_shr(excess as u32).unwrap_or(0);
            let a = BigUint::from_bytes_be(&b);
            if a < range {
                break a + 2u32;
            }
        };
        let mut x = a.modpow(&d, n);
        if x == one || x == n1 {
            continue;
        }
        let mut witness = true;
        for _ in 1..s {
            x = &x * &x % n;
            if x == n1 {
                witness = false;
                break;
            }
        }
        if witness {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A DER INTEGER of a non-negative value.
fn der_uint(v: &BigUint) -> Vec<u8> {
    let mut bytes = v.to_bytes_be();
    if bytes[0] & 0x80 != 0 {
        bytes.insert(0, 0);
    }
    der(0x02, &bytes)
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let be = len.to_be_bytes();
        let skip = be.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (be.len() - skip) as u8);
        out.extend_from_slice(&be[skip..]);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use ring::signature::{self, RsaKeyPair, UnparsedPublicKey};

    /// PKCS#8 `PrivateKeyInfo` around a PKCS#1 key (rsaEncryption, NULL parameters).
    fn pkcs8(pkcs1: &[u8]) -> Vec<u8> {
        let alg = der(
            0x30,
            &[
                &der(
                    0x06,
                    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
                )[..],
                &[0x05, 0x00],
            ]
            .concat(),
        );
        der(
            0x30,
            &[&der(0x02, &[0])[..], &alg, &der(0x04, pkcs1)].concat(),
        )
    }

    fn check_signs_and_verifies(bits: usize) {
        let key = generate(bits).unwrap();
        let msg = b"kubejoin control-plane key check";
        let rng = SystemRandom::new();
        for pair in [
            RsaKeyPair::from_der(&key.private_pkcs1).unwrap(),
            RsaKeyPair::from_pkcs8(&pkcs8(&key.private_pkcs1)).unwrap(),
        ] {
            assert_eq!(pair.public().modulus_len() * 8, bits);
            assert_eq!(pair.public().as_ref(), &key.public_pkcs1[..]);
            let mut sig = vec![0u8; pair.public().modulus_len()];
            pair.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                .unwrap();
            let public =
                UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &key.public_pkcs1);
            public.verify(msg, &sig).unwrap();
            assert!(public.verify(b"another message", &sig).is_err());
        }
    }

    #[test]
    fn rsa_2048_keys_sign_and_verify_with_ring() {
        for _ in 0..3 {
            check_signs_and_verifies(2048);
        }
    }

    #[test]
    fn rsa_3072_and_4096_keys_sign_and_verify_with_ring() {
        check_signs_and_verifies(3072);
        check_signs_and_verifies(4096);
    }

    #[test]
    fn public_exponent_is_65537_and_keys_differ() {
        let a = generate(2048).unwrap();
        let b = generate(2048).unwrap();
        assert_ne!(a.public_pkcs1, b.public_pkcs1);
        assert!(a.public_pkcs1.ends_with(&[0x02, 0x03, 0x01, 0x00, 0x01]));
    }

    #[test]
    fn other_sizes_are_refused() {
        assert_eq!(
            generate(1024).unwrap_err(),
            RsaGenError::UnsupportedSize(1024)
        );
    }

    #[test]
    fn miller_rabin_tells_primes_from_composites() {
        let rng = SystemRandom::new();
        // 2^127 - 1 and 2^521 - 1 are Mersenne primes; a Carmichael number and a product of
        // two primes are not.
        let m127 = (BigUint::one() << 127u32) - 1u32;
        let m521 = (BigUint::one() << 521u32) - 1u32;
        assert!(miller_rabin(&m127, 28, &rng).unwrap());
        assert!(miller_rabin(&m521, 28, &rng).unwrap());
        assert!(!miller_rabin(&BigUint::from(561u32), 28, &rng).unwrap());
        assert!(!miller_rabin(&(&m127 * &m521), 28, &rng).unwrap());
        let p = small_primes();
        assert_eq!(p.len(), 563);
        assert_eq!((p[0], p[p.len() - 1]), (3, 4093));
    }
}
