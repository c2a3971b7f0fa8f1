//! The guest-side checker (linuxkit's test-harness shape): it runs where the kubelet would, with
//! the kubelet's argv, checks kubejoin's work the way the kubelet would meet it, prints one
//! `kubejoin-check: PASS|FAIL <what>` line per check and `kubejoin-check: RESULT PASS|FAIL`, then
//! powers the machine off.
//!
//! It shares no code with kubejoin: the kubeconfig is read with plain YAML, the TLS client is
//! rustls configured here, and the request is written by hand — so a bug in kubejoin's own
//! client cannot hide a bug in what kubejoin installed. The decisive check is the last one: with
//! the issued certificate, `GET /api/v1/nodes/<name>` must come back `404 NotFound` — the API
//! server authenticated `system:node:<name>` and authorised the read (the node does not exist
//! yet because no real kubelet registered it); `401`/`403` would mean the identity was refused.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The prefix of every line the checker prints (the host-side harness greps for it).
pub const PREFIX: &str = "kubejoin-check:";
/// How the checker prints its copy of `/run/kubejoin/timeline.json`, before its checks.
pub const TIMELINE_FILE_LINE: &str = "kubejoin-check: timeline-file ";
/// How the checker says when it started (`CLOCK_BOOTTIME`, seconds): the moment the kubelet
/// would have started, to compare with kubejoin's timeline.
pub const STARTED_LINE: &str = "kubejoin-check: started after the kernel: ";

/// The checker's first line: [`STARTED_LINE`] and the seconds since the kernel started.
pub fn started_line() -> Option<String> {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).ok()?;
    Some(format!(
        "{STARTED_LINE}{}.{:06} s",
        t.tv_sec(),
        t.tv_nsec() / 1_000
    ))
}

/// The milliseconds since the kernel started of a console's [`STARTED_LINE`], if any.
pub fn started_ms(console: &str) -> Option<f64> {
    console.lines().find_map(|l| {
        let i = l.find(STARTED_LINE)?;
        let secs: f64 = l[i + STARTED_LINE.len()..]
            .strip_suffix(" s")?
            .parse()
            .ok()?;
        Some(secs * 1e3)
    })
}

/// PID 1's timeline of the boot, as kubejoin writes it.
pub const TIMELINE_JSON: &str = "/run/kubejoin/timeline.json";

/// Reads `/run/kubejoin/timeline.json` once: the line that copies it to the console (`None`: no
/// readable file), so that a boot with `kubejoin.timeline=file` still shows its phases to the
/// harness, and the check that kubejoin left it there, whole, for a handoff.
pub fn timeline_file(root: &Path) -> (Option<String>, Check) {
    let text = match std::fs::read_to_string(root.join(TIMELINE_JSON.trim_start_matches('/'))) {
        Ok(t) => t,
        Err(e) => return (None, fail(format!("reading {TIMELINE_JSON}: {e}"))),
    };
    let line = Some(format!("{TIMELINE_FILE_LINE}{}", text.trim_end()));
    let json: serde_json::Value = match serde_json::from_str(&text) {
        Ok(j) => j,
        Err(e) => return (line, fail(format!("{TIMELINE_JSON} is not JSON: {e}"))),
    };
    let outcome = json["outcome"].as_str().unwrap_or_default();
    let phases = json["phases"].as_array().map(Vec::len).unwrap_or_default();
    let check = if matches!(outcome, "handoff" | "switch-root")
        && phases > 0
        && json["init_to_end_ms"].is_u64()
    {
        pass(format!(
            "timeline {TIMELINE_JSON}: outcome {outcome}, {phases} phases, /init -> end {} ms",
            json["init_to_end_ms"]
        ))
    } else {
        fail(format!(
            "timeline {TIMELINE_JSON}: outcome {outcome:?}, {phases} phases: not a handoff's"
        ))
    };
    (line, check)
}

/// Files kubejoin installs for the kubelet, with the modes kubeadm gives them.
pub const EXPECTED_FILES: &[(&str, u32)] = &[
    ("/etc/kubernetes/kubelet.conf", 0o600),
    ("/etc/kubernetes/pki/ca.crt", 0o644),
    ("/var/lib/kubelet/config.yaml", 0o644),
    ("/var/lib/kubelet/kubeadm-flags.env", 0o644),
    ("/var/lib/kubelet/pki/kubelet-client-current.pem", 0o600),
];

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub pass: bool,
    pub what: String,
}

impl Check {
    pub fn line(&self) -> String {
        format!(
            "{PREFIX} {} {}",
            if self.pass { "PASS" } else { "FAIL" },
            self.what
        )
    }
}

fn pass(what: impl Into<String>) -> Check {
    Check {
        pass: true,
        what: what.into(),
    }
}

fn fail(what: impl Into<String>) -> Check {
    Check {
        pass: false,
        what: what.into(),
    }
}

/// `--name=value` or `--name value` from an argv.
pub fn flag(argv: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if let Some(v) = a.strip_prefix(&format!("{long}=")) {
            return Some(v.to_string());
        }
        if *a == long {
            return it.next().cloned();
        }
    }
    None
}

/// What the checker needs from a kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    pub server: String,
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

fn bytes_of(
    map: &serde_json::Value,
    file_key: &str,
    data_key: &str,
    base: &Path,
) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    if let Some(d) = map.get(data_key).and_then(|v| v.as_str()) {
        return base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|e| format!("{data_key}: {e}"));
    }
    let f = map
        .get(file_key)
        .and_then(|v| v.as_str())
        .ok_or_else(|| format!("neither {file_key} nor {data_key}"))?;
    let p = if f.starts_with('/') {
        Path::new(f).to_path_buf()
    } else {
        base.join(f)
    };
    std::fs::read(&p).map_err(|e| format!("reading {}: {e}", p.display()))
}

/// Reads the current context's cluster and user of the kubeconfig at `path`.
pub fn read_kubeconfig(path: &Path) -> Result<ClientConfig, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let doc: serde_json::Value =
        serde_saphyr::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))?;
    let current = doc
        .get("current-context")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let named = |list: &str, name: &str, inner: &str| -> Option<serde_json::Value> {
        let items = doc.get(list)?.as_array()?;
        let pick = items
            .iter()
            .find(|i| i.get("name").and_then(|n| n.as_str()) == Some(name))
            .or(items.first())?;
        pick.get(inner).cloned()
    };
    let ctx = named("contexts", current, "context").ok_or("no context")?;
    let cluster_name = ctx
        .get("cluster")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let user_name = ctx
        .get("user")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_string();
    let cluster = named("clusters", &cluster_name, "cluster").ok_or("no cluster")?;
    let user = named("users", &user_name, "user").ok_or("no user")?;
    let base = path.parent().unwrap_or(Path::new("/"));
    Ok(ClientConfig {
        server: cluster
            .get("server")
            .and_then(|v| v.as_str())
            .ok_or("no server")?
            .to_string(),
        ca_pem: bytes_of(
            &cluster,
            "certificate-authority",
            "certificate-authority-data",
            base,
        )?,
        cert_pem: bytes_of(&user, "client-certificate", "client-certificate-data", base)?,
        key_pem: bytes_of(&user, "client-key", "client-key-data", base)?,
    })
}

/// The common name of the first certificate in `pem`.
pub fn common_name(pem: &[u8]) -> Result<String, String> {
    let der = CertificateDer::pem_slice_iter(pem)
        .next()
        .ok_or("no certificate")?
        .map_err(|e| format!("PEM: {e:?}"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).map_err(|e| format!("X.509: {e}"))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .ok_or("no common name")?;
    Ok(cn.to_string())
}

/// `(host, port)` of an `https://host:port[/…]` URL.
pub fn host_port(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("{url}: not https"))?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            (h, p.parse().map_err(|_| format!("{url}: bad port"))?)
        }
        _ => (authority, 443),
    };
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
        port,
    ))
}

/// The status code and body of a raw HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(raw);
    let status_line = text.lines().next().ok_or("empty response")?;
    let code = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("bad status line")?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((code, body))
}

/// GETs `path` from `cfg.server` with the client certificate; returns status and body.
pub fn get_with_client_cert(cfg: &ClientConfig, path: &str) -> Result<(u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(&cfg.ca_pem) {
        roots
            .add(c.map_err(|e| format!("CA PEM: {e:?}"))?)
            .map_err(|e| format!("CA: {e}"))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cfg.cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("client certificate PEM: {e:?}"))?;
    let key = PrivateKeyDer::from_pem_slice(&cfg.key_pem)
        .map_err(|e| format!("client key PEM: {e:?}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| format!("client certificate: {e}"))?;
    let (host, port) = host_port(&cfg.server)?;
    let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(tls), name).map_err(|e| e.to_string())?;
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port}: no address"))?;
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    sock.set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAccept: application/json\r\nUser-Agent: kubejoin-vmcheck\r\nConnection: close\r\n\r\n"
    );
    tls.write_all(req.as_bytes())
        .map_err(|e| format!("TLS handshake or request: {e}"))?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Servers that close without close_notify: what arrived is still the answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(format!("reading the response: {e}")),
    }
    parse_response(&raw)
}

/// `(destination, gateway, interface)` of the default route in `/proc/net/route`.
pub fn default_route(proc_net_route: &str) -> Option<(String, String)> {
    for line in proc_net_route.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 2 && f[1] == "00000000" {
            let gw = u32::from_str_radix(f[2], 16).ok()?;
            let ip = std::net::Ipv4Addr::from(gw.to_le_bytes());
            return Some((ip.to_string(), f[0].to_string()));
        }
    }
    None
}

/// The `device on mountpoint (type)` of the `/proc/mounts` lines that could be a config drive
/// (iso9660 or vfat).
pub fn drive_mounts(proc_mounts: &str) -> Vec<String> {
    proc_mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [dev, at, fstype, ..] if matches!(*fstype, "iso9660" | "vfat") => {
                    Some(format!("{dev} on {at} ({fstype})"))
                }
                _ => None,
            }
        })
        .collect()
}

/// The names in `/proc/modules`.
pub fn loaded_modules(proc_modules: &str) -> Vec<String> {
    let mut v: Vec<String> = proc_modules
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect();
    v.sort();
    v
}

/// Runs every check under `root` (`/` in the VM) with the kubelet's `argv` (argv[0] excluded).
pub fn run(root: &Path, argv: &[String]) -> Vec<Check> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let mut out = Vec::new();
    out.push(pass(format!(
        "started as the kubelet with argv: {}",
        argv.join(" ")
    )));
    let env: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    out.push(pass(format!("environment variables: {}", env.join(" "))));

    // Host preparation, as the kubelet's node would need it.
    match std::fs::read_to_string(at("/proc/modules")) {
        Ok(m) => out.push(pass(format!(
            "modules loaded: {}",
            loaded_modules(&m).join(" ")
        ))),
        Err(e) => out.push(fail(format!("reading /proc/modules: {e}"))),
    }
    for key in ["net/ipv4/ip_forward", "net/bridge/bridge-nf-call-iptables"] {
        match std::fs::read_to_string(at(&format!("/proc/sys/{key}"))) {
            Ok(v) if v.trim() == "1" => {
                out.push(pass(format!("sysctl {}=1", key.replace('/', "."))))
            }
            Ok(v) => out.push(fail(format!(
                "sysctl {}={}",
                key.replace('/', "."),
                v.trim()
            ))),
            Err(e) => out.push(fail(format!("sysctl {}: {e}", key.replace('/', ".")))),
        }
    }
    // The clock, as the kubelet meets it: a board that booted in 2015 must have been set by
    // kubejoin (the issued certificate's check below fails too if it was not).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // 2025-01-01T00:00:00Z: earlier than any control plane these VMs join.
    const CLOCK_AFTER: u64 = 1_735_689_600;
    let line = format!("system clock {now} (Unix seconds) is after 2025-01-01");
    out.push(if now >= CLOCK_AFTER {
        pass(line)
    } else {
        fail(line)
    });
    // Informational (the config-drive case asserts the value): set by a join source's layer.
    match std::fs::read_to_string(at("/proc/sys/vm/max_map_count")) {
        Ok(v) => out.push(pass(format!("sysctl value vm.max_map_count={}", v.trim()))),
        Err(e) => out.push(fail(format!("sysctl vm.max_map_count: {e}"))),
    }
    // A config drive is read and unmounted before the network: nothing of it stays mounted.
    match std::fs::read_to_string(at("/proc/mounts")) {
        Ok(m) => match drive_mounts(&m).as_slice() {
            [] => out.push(pass("no iso9660/vfat filesystem mounted")),
            left => out.push(fail(format!("still mounted: {}", left.join(", ")))),
        },
        Err(e) => out.push(fail(format!("reading /proc/mounts: {e}"))),
    }
    match std::fs::read_to_string(at("/proc/net/route"))
        .ok()
        .and_then(|r| default_route(&r))
    {
        Some((gw, dev)) => out.push(pass(format!("default route via {gw} dev {dev}"))),
        None => out.push(fail("no default route")),
    }

    // The files, as the kubelet will open them.
    for (path, mode) in EXPECTED_FILES {
        let p = at(path);
        match std::fs::metadata(&p) {
            Ok(md) => {
                let got = md.permissions().mode() & 0o7777;
                let link = std::fs::read_link(&p)
                    .map(|t| format!(" -> {}", t.display()))
                    .unwrap_or_default();
                let what = format!("file {path} mode {got:04o} size {}{link}", md.len());
                out.push(if got == *mode {
                    pass(what)
                } else {
                    fail(format!("{what} (want {mode:04o})"))
                });
            }
            Err(e) => out.push(fail(format!("file {path}: {e}"))),
        }
    }

    let Some(kubeconfig) = flag(argv, "kubeconfig") else {
        out.push(fail("no --kubeconfig in the kubelet's argv"));
        return out;
    };
    match flag(argv, "config") {
        Some(c) if at(&c).exists() => out.push(pass(format!("--config {c} exists"))),
        Some(c) => out.push(fail(format!("--config {c} does not exist"))),
        None => out.push(fail("no --config in the kubelet's argv")),
    }
    let cfg = match read_kubeconfig(&at(&kubeconfig)) {
        Ok(c) => {
            out.push(pass(format!(
                "kubeconfig {kubeconfig}: server {}",
                c.server
            )));
            c
        }
        Err(e) => {
            out.push(fail(format!("kubeconfig {kubeconfig}: {e}")));
            return out;
        }
    };
    let node = match common_name(&cfg.cert_pem) {
        Ok(cn) if cn.starts_with("system:node:") => {
            out.push(pass(format!("client certificate CN={cn}")));
            cn.trim_start_matches("system:node:").to_string()
        }
        Ok(cn) => {
            out.push(fail(format!(
                "client certificate CN={cn} is not system:node:<name>"
            )));
            return out;
        }
        Err(e) => {
            out.push(fail(format!("client certificate: {e}")));
            return out;
        }
    };
    let path = format!("/api/v1/nodes/{node}");
    match get_with_client_cert(&cfg, &path) {
        Ok((404, body)) if body.contains("NotFound") => out.push(pass(format!(
            "GET {path} over mTLS as system:node:{node} -> 404 NotFound (identity accepted; no Node object yet)"
        ))),
        Ok((200, _)) => out.push(pass(format!("GET {path} over mTLS as system:node:{node} -> 200 (identity accepted)"))),
        Ok((code, body)) => out.push(fail(format!(
            "GET {path} over mTLS as system:node:{node} -> {code}: {}",
            body.chars().take(200).collect::<String>()
        ))),
        Err(e) => out.push(fail(format!("GET {path} over mTLS: {e}"))),
    }
    out
}

/// The kubelet flags assumed when the checker runs as a real root's `/sbin/init` (after a
/// switch-root nobody passes it the kubelet's argv).
pub const INIT_ARGV: &[&str] = &[
    "--kubeconfig=/etc/kubernetes/kubelet.conf",
    "--config=/var/lib/kubelet/config.yaml",
];

/// `statfs` magic of ext4, the real root's filesystem in the switch-root case.
const EXT4_MAGIC: i64 = 0xEF53;

/// The checks of the switch-root case: the checker runs as the real root's `/sbin/init`, the
/// root is the disk (not the initramfs), the API filesystems were moved along, the outcome file
/// was carried over; then the same checks as for the kubelet.
pub fn run_as_init(root: &Path, marker: &str) -> Vec<Check> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let mut out = vec![pass(
        "running as the real root's init after the switch-root".to_string(),
    )];
    // f_type's width differs between targets (i64 on x86_64 glibc and musl, u32 elsewhere).
    #[allow(clippy::unnecessary_cast)]
    let fs_type = nix::sys::statfs::statfs(root).map(|s| s.filesystem_type().0 as i64);
    match (at(marker).exists(), fs_type) {
        (true, Ok(EXT4_MAGIC)) => out.push(pass(format!("/ is the ext4 disk (it holds {marker})"))),
        (m, t) => out.push(fail(format!(
            "/ is not the real root: marker present {m}, statfs type {t:?}"
        ))),
    }
    for (p, what) in [
        ("/proc/self/stat", "/proc"),
        ("/sys/class/net", "/sys"),
        ("/dev/null", "/dev"),
    ] {
        out.push(if at(p).exists() {
            pass(format!("{what} was moved into the new root"))
        } else {
            fail(format!("{what} is missing in the new root ({p})"))
        });
    }
    out.push(if at("/run/kubejoin/result.json").exists() {
        pass("/run (with /run/kubejoin/result.json) was moved into the new root")
    } else {
        fail("/run/kubejoin/result.json is missing in the new root")
    });
    out.push(if at("/init").exists() {
        fail("/init is visible: still in the initramfs?")
    } else {
        pass("the initramfs' /init is not visible")
    });
    let argv: Vec<String> = INIT_ARGV.iter().map(|s| s.to_string()).collect();
    out.extend(run(root, &argv));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_both_forms() {
        let argv: Vec<String> = [
            "--kubeconfig=/etc/kubernetes/kubelet.conf",
            "--config",
            "/var/lib/kubelet/config.yaml",
            "--v=2",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            flag(&argv, "kubeconfig").as_deref(),
            Some("/etc/kubernetes/kubelet.conf")
        );
        assert_eq!(
            flag(&argv, "config").as_deref(),
            Some("/var/lib/kubelet/config.yaml")
        );
        assert_eq!(flag(&argv, "node-ip"), None);
    }

    #[test]
    fn urls_and_responses() {
        assert_eq!(
            host_port("https://10.0.2.2:6443").unwrap(),
            ("10.0.2.2".into(), 6443)
        );
        assert_eq!(
            host_port("https://[::1]:7443/x").unwrap(),
            ("::1".into(), 7443)
        );
        assert_eq!(
            host_port("https://cp.example").unwrap(),
            ("cp.example".into(), 443)
        );
        assert!(host_port("http://x").is_err());
        let (code, body) =
            parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n\r\n{\"reason\":\"NotFound\"}")
                .unwrap();
        assert_eq!(code, 404);
        assert!(body.contains("NotFound"));
    }

    #[test]
    fn proc_files() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                     eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        assert_eq!(
            default_route(route),
            Some(("10.0.2.2".into(), "eth0".into()))
        );
        assert_eq!(default_route("Iface\n"), None);
        assert_eq!(
            loaded_modules("virtio_net 61440 0 - Live 0x0\nbr_netfilter 32768 0 - Live 0x0\n"),
            vec!["br_netfilter", "virtio_net"]
        );
        assert_eq!(
            drive_mounts("rootfs / rootfs rw 0 0\nproc /proc proc rw 0 0\n"),
            Vec::<String>::new()
        );
        assert_eq!(
            drive_mounts(
                "proc /proc proc rw 0 0\n/dev/vda /run/kubejoin/config-drive iso9660 ro 0 0\n"
            ),
            vec!["/dev/vda on /run/kubejoin/config-drive (iso9660)"]
        );
    }

    #[test]
    fn reads_a_kubelet_kubeconfig_with_file_references() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.crt"), b"CA").unwrap();
        std::fs::write(dir.path().join("client.pem"), b"CERTKEY").unwrap();
        let kc = dir.path().join("kubelet.conf");
        std::fs::write(
            &kc,
            format!(
                "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority: {d}/ca.crt\n    server: https://10.0.2.2:6443\n  name: default-cluster\ncontexts:\n- context:\n    cluster: default-cluster\n    namespace: default\n    user: default-auth\n  name: default-context\ncurrent-context: default-context\nkind: Config\nusers:\n- name: default-auth\n  user:\n    client-certificate: {d}/client.pem\n    client-key: {d}/client.pem\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        let c = read_kubeconfig(&kc).unwrap();
        assert_eq!(c.server, "https://10.0.2.2:6443");
        assert_eq!(c.ca_pem, b"CA");
        assert_eq!(c.cert_pem, b"CERTKEY");
        assert_eq!(c.key_pem, b"CERTKEY");
    }

    #[test]
    fn the_started_line_round_trips() {
        let line = started_line().unwrap();
        let ms = started_ms(&format!("noise\n{line}\nmore\n")).unwrap();
        assert!(ms > 0.0, "{line}");
        assert_eq!(
            started_ms("kubejoin-check: started after the kernel: 2.034567 s\n"),
            Some(2034.567)
        );
        assert_eq!(started_ms("kubejoin-check: PASS x\n"), None);
    }

    #[test]
    fn the_timeline_file() {
        let dir = tempfile::tempdir().unwrap();
        let (line, missing) = timeline_file(dir.path());
        assert!(
            !missing.pass
                && missing
                    .what
                    .starts_with("reading /run/kubejoin/timeline.json")
        );
        assert_eq!(line, None);
        std::fs::create_dir_all(dir.path().join("run/kubejoin")).unwrap();
        let file = dir.path().join("run/kubejoin/timeline.json");
        std::fs::write(
            &file,
            "{\"outcome\":\"failed\",\"init_to_end_ms\":9,\"phases\":[{}]}\n",
        )
        .unwrap();
        assert!(!timeline_file(dir.path()).1.pass);
        std::fs::write(
            &file,
            "{\"outcome\":\"handoff\",\"init_to_end_ms\":628,\"phases\":[{},{}]}\n",
        )
        .unwrap();
        let (line, ok) = timeline_file(dir.path());
        assert!(ok.pass, "{ok:?}");
        assert_eq!(
            ok.what,
            "timeline /run/kubejoin/timeline.json: outcome handoff, 2 phases, /init -> end 628 ms"
        );
        assert_eq!(
            line.unwrap(),
            "kubejoin-check: timeline-file {\"outcome\":\"handoff\",\"init_to_end_ms\":628,\"phases\":[{},{}]}"
        );
        std::fs::write(&file, "{not json").unwrap();
        let (line, bad) = timeline_file(dir.path());
        assert!(!bad.pass && line.is_some());
    }

    #[test]
    fn lines_are_greppable() {
        assert_eq!(pass("x").line(), "kubejoin-check: PASS x");
        assert_eq!(fail("y").line(), "kubejoin-check: FAIL y");
    }
}
