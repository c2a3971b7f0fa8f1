//! The bodies of the fuzz targets: one function per target, `fn(data: &[u8])`, that feeds the
//! input to a parser or state machine and checks what it promises. A property that does not hold
//! panics (that is how a fuzzer learns of it); nothing here runs in a join.
//!
//! Two drivers call them:
//! - `fuzz/fuzz_targets/<target>.rs` (cargo-fuzz, libFuzzer, nightly): long coverage-guided runs
//!   with `scripts/fuzz TARGET [SECONDS]`;
//! - `tests/fuzz_smoke.rs` (stable, part of `cargo test`): every target over its committed corpus,
//!   the crash files in `fuzz/artifacts/<target>/` as regressions, and a bounded number of
//!   deterministic mutations.
//!
//! [`TARGETS`] is the list both use.

use std::path::PathBuf;

/// A fuzz target: its name (the directory of its corpus) and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, by the name of its `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/`.
pub const TARGETS: &[Target] = &[
    ("cluster_info", cluster_info),
    ("cmdline", cmdline),
    ("dhcp", dhcp),
    ("joinconfig", joinconfig),
    ("jws", jws),
    ("kubeconfig", kubeconfig),
    ("modules_dep", modules_dep),
    ("sntp", sntp),
    ("sysctl_d", sysctl_d),
    ("userdata", userdata),
    ("x509", x509),
];

/// The pin of tests/fixtures/apiserver/ca.crt (the CA in the cluster_info seeds).
const CLUSTER_INFO_PIN: &str =
    "sha256:0f90fc16ca8700dea6e04dd26e9925296f500cadb2dc8221bee9034bb5dec0c2";

/// What token discovery decides about an untrusted cluster-info answer (`discovery`): the body
/// decoding, the JWS, the signed kubeconfig, its CA bundle and the pin.
///
/// First byte even: the rest is the answer's body (JSON). Odd: the rest is a kubeconfig, which
/// is signed with the token itself, so that the fuzzer gets past the JWS into the kubeconfig,
/// PEM and pin checks.
pub fn cluster_info(data: &[u8]) {
    use crate::discovery::token::{jws_key, verify_cluster_info, KUBECONFIG_KEY};
    use crate::discovery::{decode_cluster_info, jws, Error};
    use crate::kube::token::BootstrapToken;
    use crate::pki::pin::PinSet;
    use std::collections::BTreeMap;

    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (Ok(token), Ok(pins), Ok(no_pins)) = (
        BootstrapToken::parse("abcdef.0123456789abcdef"),
        PinSet::parse(&[CLUSTER_INFO_PIN]),
        PinSet::parse::<&str>(&[]),
    ) else {
        panic!("the fixed token and pin no longer parse");
    };
    let signed = mode % 2 == 1;
    let map = if signed {
        let text = String::from_utf8_lossy(rest).into_owned();
        let mut m = BTreeMap::new();
        m.insert(
            jws_key("abcdef"),
            jws::compute_detached(text.as_bytes(), "abcdef", "0123456789abcdef"),
        );
        m.insert(KUBECONFIG_KEY.to_string(), text);
        m
    } else {
        match decode_cluster_info(rest) {
            Ok(cm) => cm.data.unwrap_or_default(),
            Err(_) => return,
        }
    };
    for p in [&pins, &no_pins] {
        match verify_cluster_info(&map, "fuzz:6443", &token, p) {
            Ok(v) => {
                assert_eq!(Some(&v.kubeconfig), map.get(KUBECONFIG_KEY));
                assert!(!v.ca_der.is_empty());
                // Pins given: trusted only with a matching one; none: nothing matched.
                assert_eq!(v.matched_pin.is_some(), !p.is_empty());
                if let Some(m) = &v.matched_pin {
                    assert_eq!(m.to_string(), CLUSTER_INFO_PIN);
                }
            }
            Err(e) => {
                if signed && !rest.is_empty() && std::str::from_utf8(rest).is_ok() {
                    // Signed with our token: the JWS itself cannot be the problem.
                    assert!(
                        !matches!(e, Error::BadJws { .. } | Error::EmptyJws { .. }),
                        "{e}"
                    );
                }
                // Never the secret in what a user would see.
                assert!(!format!("{e} {e:?}").contains("0123456789abcdef"));
            }
        }
    }
}

/// The kernel command line tokenizer (`source::cmdline`) and the host's argument splitter
/// (`host::cmdline`): never panic, and keep the tokenizer's documented promises.
pub fn cmdline(data: &[u8]) {
    use crate::host::cmdline as host;
    use crate::source::cmdline::{tokenize, Cmdline};

    match tokenize(data) {
        Ok(params) => {
            // Offsets point into the line, in order.
            let mut last = None;
            for p in &params {
                assert!(p.offset < data.len(), "{p:?}");
                assert!(last.is_none_or(|l| p.offset > l), "{params:?}");
                last = Some(p.offset);
                assert!(!p.key.contains('\0'));
            }
            // Deterministic.
            assert_eq!(tokenize(data).ok(), Some(params));
        }
        Err(_) => {
            // Only an unterminated quote or a NUL byte may fail it.
            assert!(data.contains(&b'"') || data.contains(&0), "{data:?}");
        }
    }
    if let Ok(c) = Cmdline::parse(data) {
        let _ = c.kubejoin();
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let args = host::split(s);
        let _ = host::module_params(&args);
        let _ = host::sysctls(&args);
    }
}

/// The DHCPv4 client state machine (`net::dhcp`) fed hostile replies: never panics, always ends
/// (bound or failed) within its attempt budget, and everything it sends decodes back to itself.
///
/// Input: a sequence of `u16 length (big endian) + packet`; length 0 is a timeout. Packets of
/// BOOTP size get the client's current xid, our MAC and the magic cookie patched in, so that
/// mutations reach the options instead of being dropped as someone else's traffic.
pub fn dhcp(data: &[u8]) {
    use crate::net::dhcp::{decode, encode, Action, DhcpClient, DhcpTiming, Input};
    use std::time::Duration;

    const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    // Whether the exchange ended; what the client sends must survive the wire round trip.
    let ended = |action: &Action| match action {
        Action::Send { message, .. } => {
            assert_eq!(decode(&encode(message)).as_ref(), Ok(&**message));
            false
        }
        Action::Wait => false,
        Action::Bound(_) | Action::Failed(_) => true,
    };

    let mut client = DhcpClient::new(MAC, Some("node-1".into()), DhcpTiming::default(), 7);
    let mut now = Duration::ZERO;
    if ended(&client.start(now)) {
        return;
    }
    let mut rest = data;
    let mut steps = 0;
    while let [hi, lo, tail @ ..] = rest {
        if steps == 64 {
            break;
        }
        steps += 1;
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (packet, tail) = tail.split_at(len);
        rest = tail;
        now += Duration::from_millis(250);
        let action = if packet.is_empty() {
            client.handle(Input::Timeout, now)
        } else {
            let mut p = packet.to_vec();
            if p.len() >= 240 {
                p[4..8].copy_from_slice(&client.xid().to_be_bytes());
                p[28..34].copy_from_slice(&MAC);
                p[236..240].copy_from_slice(&[99, 130, 83, 99]);
            }
            client.handle(Input::Packet(&p), now)
        };
        if ended(&action) {
            return;
        }
    }
    // Out of input: the timeouts alone must end the exchange.
    for _ in 0..1000 {
        now += Duration::from_secs(1);
        if ended(&client.handle(Input::Timeout, now)) {
            return;
        }
    }
    panic!("the DHCP exchange did not end after 1000 timeouts");
}

/// kubeadm JoinConfiguration / KubejoinConfiguration files (`source::joinconfig`), and their
/// conversion into join settings: never panic, whatever the YAML or JSON.
pub fn joinconfig(data: &[u8]) {
    use crate::source::joinconfig::parse;
    use crate::source::load::values_from_config_file;

    match parse(data, "/etc/kubernetes/join.yaml") {
        Ok(cf) => {
            let _ = cf.ignored().count();
            let _ = values_from_config_file(&cf);
        }
        Err(e) => {
            let _ = (e.to_string(), e.location(), e.kind());
        }
    }
}

/// Detached JWS verification (`discovery::jws`): a signature verifies exactly when it is the
/// one the bootstrap signer computes (kubeadm compares the strings), for any content, token id
/// and secret; what the signer computes always verifies.
///
/// Input: `signature \0 content \0 id \0 secret` (missing parts are empty).
pub fn jws(data: &[u8]) {
    use crate::discovery::jws::{compute_detached, verify_detached};

    let mut parts = data.splitn(4, |b| *b == 0);
    let sig = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let content = parts.next().unwrap_or_default();
    let id = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let secret = String::from_utf8_lossy(parts.next().unwrap_or_default());

    let expected = compute_detached(content, &id, &secret);
    // Shape: `<header>..<43 characters of signature>`, base64url without padding.
    let Some((header, mac)) = expected.split_once("..") else {
        panic!("not in detached form: {expected}");
    };
    assert_eq!(mac.len(), 43, "{expected}");
    assert!(!header.contains('.') && !header.contains('='));
    assert!(verify_detached(&expected, content, &id, &secret));
    assert_eq!(
        verify_detached(&sig, content, &id, &secret),
        *sig == *expected,
        "{sig:?} vs {expected:?}"
    );
    // Another secret never verifies what this one signed.
    let other = format!("{secret}x");
    assert!(!verify_detached(&expected, content, &id, &other));
}

/// Kubeconfig parsing and rendering (`discovery::kubeconfig`): never panics, and what it
/// renders it reads back to the same thing (render ∘ parse is idempotent).
pub fn kubeconfig(data: &[u8]) {
    use crate::kube::kubeconfig::Kubeconfig;

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Kubeconfig::parse(text) else {
        return;
    };
    let _ = cfg.cluster();
    let _ = cfg.current();
    let _ = cfg.current_user().map(|u| u.user.has_credentials());
    let once = cfg.render();
    let again = Kubeconfig::parse(&once).unwrap_or_else(|e| panic!("{e}\n{once}"));
    assert_eq!(again.render(), once);
}

/// The kernel module index (`host::modules`): modules.dep, modules.alias, modules.builtin,
/// modules.softdep and modules.builtin.modinfo, then name resolution and load order (which
/// must terminate on dependency cycles).
///
/// Input: the five files separated by NUL bytes.
pub fn modules_dep(data: &[u8]) {
    use crate::host::modules::ModuleIndex;

    let mut parts = data.splitn(5, |b| *b == 0);
    let mut next = || String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let (dep, alias, builtin, softdep) = (next(), next(), next(), next());
    let modinfo = next().into_bytes();
    let Ok(idx) = ModuleIndex::parse("6.1.0-fuzz", &dep, &alias, &builtin, &softdep, &modinfo)
    else {
        return;
    };
    // Every name the files mention, plus the ones kubejoin always asks for.
    let mut names: Vec<String> = ["overlay", "br_netfilter", "nf_conntrack"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for line in dep
        .lines()
        .chain(alias.lines())
        .chain(softdep.lines())
        .take(32)
    {
        names.extend(line.split([' ', ':', '/']).take(3).map(str::to_string));
    }
    for n in names.iter().filter(|n| !n.is_empty()).take(64) {
        let _ = idx.resolve(n);
        let _ = idx.is_builtin(n);
        let _ = idx.node_path(n);
        let _ = idx.deps(n);
        let _ = idx.load_order(n);
    }
}

/// SNTP replies (`clock::sntp`) and the vote over offsets (`clock::client::vote`): decoding and
/// checking never panic; whatever passes the checks echoes the nonce, comes from a synchronised
/// server and gives a non-negative delay; era placement stays within 68 years of its pivot; the
/// vote's majority is a real majority within the tolerance.
///
/// Input: `nonce (8 bytes) | T1 as i64 Unix seconds (8 bytes) | datagram`. With T1's top bit
/// set, the nonce is patched into the datagram's originate field, so that mutations get past
/// the nonce check into the content checks. The datagram, read as i64 nanoseconds in 8-byte
/// chunks, is also the vote's input.
pub fn sntp(data: &[u8]) {
    use crate::clock::client::{vote, Vote};
    use crate::clock::floor::floor;
    use crate::clock::sntp::{
        decode, parse_reply, sample, Leap, NtpTimestamp, MAX_ROOT_DISTANCE_NANOS,
    };
    use crate::time::{Offset, WallTime};
    use std::time::Duration;

    let word = |b: Option<&[u8]>| -> [u8; 8] {
        let mut w = [0u8; 8];
        if let Some(b) = b {
            w.copy_from_slice(b);
        }
        w
    };
    let nonce = NtpTimestamp(u64::from_be_bytes(word(data.get(0..8))));
    let t1_raw = i64::from_be_bytes(word(data.get(8..16)));
    let mut packet = data.get(16..).unwrap_or_default().to_vec();
    if t1_raw < 0 {
        if let Some(o) = packet.get_mut(24..32) {
            o.copy_from_slice(&nonce.to_bytes());
        }
    }
    // Any second within ±2^40 s (35,000 years) of 1970.
    let t1 = WallTime::from_unix_secs(t1_raw % (1 << 40));
    assert_eq!(decode(&packet).is_ok(), packet.len() >= 48);
    match parse_reply(&packet, nonce) {
        Ok(r) => {
            assert_eq!(r.originate, nonce);
            assert_eq!(r.mode, 4);
            assert!(r.version == 3 || r.version == 4);
            assert!((1..=15).contains(&r.stratum));
            assert_ne!(r.leap, Leap::Unsynchronised);
            assert_ne!(r.transmit, NtpTimestamp::ZERO);
            assert!(r.root_distance_nanos() <= MAX_ROOT_DISTANCE_NANOS);
            for pivot in [floor(), t1] {
                for ts in [r.receive, r.transmit] {
                    let w = ts.to_wall(pivot);
                    let from_pivot = w.since(pivot).nanos().unsigned_abs();
                    assert!(
                        from_pivot <= ((1u128 << 31) + 1) * 1_000_000_000,
                        "{w} vs {pivot}"
                    );
                    assert_eq!(NtpTimestamp::from_wall(w).seconds(), ts.seconds());
                }
                let t4 = t1.plus(Offset::from_nanos(i128::from(t1_raw & 0xffff) * 1_000_000));
                if let Ok(s) = sample(t1, &r, t4, pivot) {
                    assert!(s.delay >= Offset::ZERO, "{s:?}");
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let offsets: Vec<Offset> = packet
        .chunks_exact(8)
        .take(16)
        .map(|c| Offset::from_nanos(i128::from(i64::from_be_bytes(word(Some(c))))))
        .collect();
    let tolerance = Duration::from_millis(u64::from(data.first().copied().unwrap_or(0)) * 10);
    let configured = offsets.len() + usize::from(data.get(1).copied().unwrap_or(0) % 2);
    if let Vote::Agreed { members, offset } = vote(&offsets, configured, tolerance) {
        let picked: Vec<i128> = members.iter().map(|&i| offsets[i].nanos()).collect();
        let (lo, hi) = (
            picked.iter().copied().min().unwrap_or(0),
            picked.iter().copied().max().unwrap_or(0),
        );
        assert!(hi - lo <= tolerance.as_nanos() as i128);
        assert!(lo <= offset.nanos() && offset.nanos() <= hi);
        assert!(configured == 1 || (members.len() >= 2 && members.len() * 2 > offsets.len()));
    }
}

/// A scratch root for [`sysctl_d`], one per thread, removed when the thread ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

thread_local! {
    static SCRATCH: Scratch = {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kubejoin-fuzz-sysctl-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::create_dir_all(dir.join("etc/sysctl.d"));
        Scratch(dir)
    };
}

/// sysctl.d files and `sysctl.*` kernel parameters (`host::sysctl`): systemd-sysctl's format,
/// globs, precedence; malformed lines are notes, never panics.
///
/// Input: `sysctl.d file \0 kernel command line`. The file is written under a scratch root (the
/// only way into the parser is the way kubejoin reads it).
pub fn sysctl_d(data: &[u8]) {
    use crate::fs::root::Root;
    use crate::host::sysctl::plan_sysctls;
    use crate::host::{cmdline, HostConfig};

    let (file, line) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(dir) = SCRATCH.try_with(|s| s.0.clone()) else {
        return;
    };
    if std::fs::write(dir.join("etc/sysctl.d/50-fuzz.conf"), file).is_err() {
        return;
    }
    let args = cmdline::split(&String::from_utf8_lossy(line));
    let cfg = HostConfig {
        read_sysctl_d: true,
        read_kernel_cmdline: true,
        read_modules_load_d: false,
        ..HostConfig::default()
    };
    let mut notes = Vec::new();
    let _ = plan_sysctls(&cfg, &Root::new(dir), &args, &mut notes);
}

/// Cloud user-data decoding (`source::metadata::userdata`): base64 and gzip unwrapping (with
/// its size bound: no decompression bomb), then the kubejoin keys or typed documents.
pub fn userdata(data: &[u8]) {
    use crate::source::metadata::userdata::{decode, parse};

    if let Ok(decoded) = decode(data) {
        // The bound holds whatever the wrapping claimed.
        assert!(
            decoded.len() <= crate::source::metadata::MAX_USER_DATA,
            "{}",
            decoded.len()
        );
        let _ = parse(&decoded);
    }
    let _ = parse(data);
}

/// The DER reader of `src/pki/x509.rs`: a certificate and a PKCS#10 request from the same bytes.
/// Whatever parses must hand back sub-slices of the input (the pinned SPKI bytes are the
/// input's own), re-parse identically, and print without panicking; a CSR's self-signature
/// check must not panic either.
pub fn x509(data: &[u8]) {
    use crate::pki::pem::pem_blocks;
    use crate::pki::x509::{parse_certificate, parse_csr};
    let inside = |s: &[u8]| {
        let (lo, hi) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
        let p = s.as_ptr() as usize;
        assert!(p >= lo && p + s.len() <= hi, "a slice outside the input");
    };
    if let Ok(c) = parse_certificate(data) {
        inside(c.spki.raw);
        assert_eq!(c.spki.raw.first(), Some(&0x30));
        let _ = (c.subject.to_string(), c.issuer.to_string());
        let _ = (
            c.validity.not_before.to_string(),
            c.validity.not_after.to_string(),
        );
        assert_eq!(parse_certificate(data).ok(), Some(c));
    }
    if let Ok(r) = parse_csr(data) {
        inside(r.spki.raw);
        inside(r.info_raw);
        let _ = r.subject.to_string();
        let _ = r.verify_signature();
        assert_eq!(parse_csr(data).ok(), Some(r));
    }
    for (_, der) in pem_blocks(data) {
        let _ = parse_certificate(&der);
        let _ = parse_csr(&der);
    }
}
