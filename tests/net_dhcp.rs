//! The real network bring-up against a real DHCP server, inside network namespaces this test
//! creates (and always deletes): `dnsmasq` serves 10.200.<n>.0/24 on one end of a veth pair,
//! kubejoin's `bring_up` runs with `RealNet` on the other end, from a thread that entered
//! the client namespace with setns(2). The result is read back with `ip -n <ns> addr/route`.
//!
//! Needs root, `ip` (iproute2) and `dnsmasq` (Debian package `dnsmasq-base`), so each test is
//! `#[ignore]`d in a plain `cargo test` (reported as ignored, with that reason) and `scripts/test`
//! runs them with `--ignored`; run that way on a machine that lacks any of it, a test fails saying
//! what is missing instead of passing without having run. No traffic leaves the namespaces.

// Test code: a failed setup step should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kubejoin::fs::root::Root;
use kubejoin::net::{bring_up, DhcpTiming, NetConfig, NetError, NetReport};
use kubejoin::sys::net::RealNet;

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    found
}

/// Why this machine cannot run the test, if it cannot.
fn skip_reason() -> Option<String> {
    match std::fs::metadata("/proc/self") {
        Ok(m) if m.uid() == 0 => {}
        _ => return Some("not running as root (network namespaces need CAP_SYS_ADMIN)".into()),
    }
    if find_tool("ip").is_none() {
        return Some("`ip` (iproute2) is not installed".into());
    }
    if find_tool("dnsmasq").is_none() {
        return Some("`dnsmasq` is not installed (Debian package dnsmasq-base)".into());
    }
    None
}

fn random_u32() -> u32 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    // RandomState's keys are random per thread; the pid separates concurrent test processes.
    h.write_u32(std::process::id());
    h.finish() as u32
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new(find_tool("ip").unwrap_or_else(|| "ip".into()))
        .args(args)
        .output()
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Two namespaces joined by a veth pair; deleted (with the veth and dnsmasq) on drop.
struct Lab {
    server_ns: String,
    client_ns: String,
    server_if: String,
    client_if: String,
    subnet: u8,
    dnsmasq: Option<Child>,
    dir: tempfile::TempDir,
    root: Root,
}

impl Lab {
    /// `Err` carries the reason to skip (the sandbox forbids namespaces, ...).
    fn new() -> Result<Self, String> {
        let id = random_u32();
        let tag = format!("{:06x}", id & 0xff_ffff);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let lab = Lab {
            server_ns: format!("kjt-{tag}-s"),
            client_ns: format!("kjt-{tag}-c"),
            server_if: format!("kjs{tag}"),
            client_if: format!("kjc{tag}"),
            // 10.200.1.0/24 .. 10.200.254.0/24: private to these namespaces.
            subnet: (id >> 24) as u8 % 254 + 1,
            dnsmasq: None,
            root: Root::new(dir.path()),
            dir,
        };
        ip(&["netns", "add", &lab.server_ns])?;
        // From here on, Drop cleans up whatever was made.
        ip(&["netns", "add", &lab.client_ns])?;
        let server_if = lab.server_if.clone();
        let gw = lab.gateway().to_string();
        ip(&[
            "-n",
            &lab.server_ns,
            "link",
            "add",
            &server_if,
            "type",
            "veth",
            "peer",
            "name",
            &lab.client_if,
            "netns",
            &lab.client_ns,
        ])?;
        ip(&[
            "-n",
            &lab.server_ns,
            "addr",
            "add",
            &format!("{gw}/24"),
            "dev",
            &server_if,
        ])?;
        ip(&["-n", &lab.server_ns, "link", "set", &server_if, "up"])?;
        ip(&["-n", &lab.server_ns, "link", "set", "lo", "up"])?;
        Ok(lab)
    }

    fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 200, self.subnet, 1)
    }

    /// Starts dnsmasq as the DHCP server (DNS off) on the server end.
    fn start_dnsmasq(&mut self) -> Result<(), String> {
        let net = format!("10.200.{}", self.subnet);
        let log = File::create(self.dir.path().join("dnsmasq.log")).map_err(|e| e.to_string())?;
        let child = Command::new(find_tool("ip").ok_or("no ip")?)
            .args(["netns", "exec", &self.server_ns])
            .arg(find_tool("dnsmasq").ok_or("no dnsmasq")?)
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--port=0",
                "--bind-interfaces",
                "--leasefile-ro",
                // Without this dnsmasq pings an address for 3 s before offering it.
                "--no-ping",
                "--dhcp-authoritative",
                "--log-dhcp",
                "--log-facility=-",
                "--user=root",
                "--pid-file=",
            ])
            .arg(format!("--interface={}", self.server_if))
            .arg(format!("--dhcp-range={net}.10,{net}.50,255.255.255.0,1h"))
            .arg(format!("--dhcp-option=option:router,{net}.1"))
            .arg(format!("--dhcp-option=option:dns-server,{net}.1"))
            .arg("--dhcp-option=option:domain-name,kjt.test")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting dnsmasq: {e}"))?;
        self.dnsmasq = Some(child);
        // Bounded wait until it listens; the client would retransmit anyway, this only keeps
        // the test fast.
        let deadline = Instant::now() + Duration::from_secs(3);
        while !self.dnsmasq_log().contains("sockets bound") {
            if Instant::now() > deadline {
                return Err(format!("dnsmasq did not start:\n{}", self.dnsmasq_log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn dnsmasq_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dnsmasq.log")).unwrap_or_default()
    }

    /// Runs `bring_up` for `cfg` inside the client namespace, on a dedicated thread (setns
    /// changes only the calling thread's namespace).
    fn bring_up(&self, cfg: NetConfig) -> Result<NetReport, NetError> {
        let ns = PathBuf::from("/run/netns").join(&self.client_ns);
        let root = self.root.clone();
        std::thread::spawn(move || {
            let f = File::open(&ns).unwrap();
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let sys = RealNet::new(Root::new("/"));
                // The outer bound: the test must end even if a wait were unbounded.
                tokio::time::timeout(Duration::from_secs(15), bring_up(&cfg, &root, &sys))
                    .await
                    .expect("bring_up took more than 15 s")
            })
        })
        .join()
        .unwrap()
    }

    fn config(&self, params: &[(&str, &str)]) -> NetConfig {
        let params: Vec<(String, Option<String>)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect();
        let mut cfg = NetConfig::from_cmdline(&params).unwrap();
        cfg.timeouts.link = Duration::from_secs(2);
        cfg.timeouts.carrier = Duration::from_secs(3);
        cfg.timeouts.dhcp = DhcpTiming {
            first_wait: Duration::from_millis(500),
            ..DhcpTiming::default()
        };
        cfg
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut child) = self.dnsmasq.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deleting the namespaces destroys the veth pair with them.
        let _ = ip(&["netns", "del", &self.client_ns]);
        let _ = ip(&["netns", "del", &self.server_ns]);
    }
}

macro_rules! lab_or_skip {
    () => {{
        if let Some(why) = skip_reason() {
            panic!("cannot run here: {why}");
        }
        match Lab::new() {
            Ok(lab) => lab,
            Err(why) => panic!("cannot create network namespaces here: {why}"),
        }
    }};
}

#[test]
#[ignore = "needs root, network namespaces, iproute2 and dnsmasq: scripts/test runs it with --ignored"]
fn dhcp_lease_from_dnsmasq_is_configured_in_a_namespace() {
    let mut lab = lab_or_skip!();
    lab.start_dnsmasq().unwrap();
    let started = Instant::now();
    let cfg = lab.config(&[("ip", &format!("{}:dhcp", lab.client_if))]);
    let report = match lab.bring_up(cfg) {
        Ok(r) => r,
        Err(e) => panic!("bring_up failed: {e}\ndnsmasq log:\n{}", lab.dnsmasq_log()),
    };
    eprintln!("bring_up took {:?}: {report}", started.elapsed());

    let gw = lab.gateway();
    let (link, c) = report.configured().next().unwrap();
    assert_eq!(link, lab.client_if);
    let [a, b, n, host] = c.address.octets();
    assert_eq!((a, b, n), (10, 200, lab.subnet));
    assert!(
        (10..=50).contains(&host),
        "{} outside the dhcp-range",
        c.address
    );
    assert_eq!((c.prefix_len, c.gateway), (24, Some(gw)));
    assert_eq!(c.lease_secs, Some(3600));
    assert_eq!(report.dns, [gw]);
    assert_eq!(report.search, ["kjt.test"]);

    // What the kernel now has, read back with iproute2.
    let addr = ip(&[
        "-n",
        &lab.client_ns,
        "-4",
        "addr",
        "show",
        "dev",
        &lab.client_if,
    ])
    .unwrap();
    assert!(
        addr.contains(&format!(
            "inet {}/24 brd 10.200.{}.255",
            c.address, lab.subnet
        )),
        "{addr}"
    );
    // iproute2 omits "proto boot": it is the default protocol.
    let route = ip(&["-n", &lab.client_ns, "-4", "route", "show", "default"]).unwrap();
    assert!(
        route.contains(&format!(
            "default via {gw} dev {} metric 100",
            lab.client_if
        )),
        "{route}"
    );
    let lo = ip(&["-n", &lab.client_ns, "link", "show", "lo"]).unwrap();
    assert!(lo.contains(",UP"), "loopback up: {lo}");

    let resolv = std::fs::read_to_string(report.resolv_conf.as_ref().unwrap()).unwrap();
    assert_eq!(
        resolv,
        format!(
            "# written by kubejoin at boot from DHCP on {}\nsearch kjt.test\nnameserver {gw}\n",
            lab.client_if
        )
    );
}

#[test]
#[ignore = "needs root, network namespaces, iproute2 and dnsmasq: scripts/test runs it with --ignored"]
fn static_ip_with_mtu_is_configured_in_a_namespace() {
    let lab = lab_or_skip!();
    let net = format!("10.200.{}", lab.subnet);
    let value = format!(
        "{net}.77::{net}.1:255.255.255.0:node1:{}:off:1400",
        lab.client_if
    );
    let cfg = lab.config(&[("ip", &value), ("nameserver", "10.200.0.53")]);
    let report = lab.bring_up(cfg).unwrap();
    assert_eq!(report.hostname(), Some("node1"));

    let link = ip(&["-n", &lab.client_ns, "link", "show", &lab.client_if]).unwrap();
    assert!(link.contains("mtu 1400"), "{link}");
    let addr = ip(&[
        "-n",
        &lab.client_ns,
        "-4",
        "addr",
        "show",
        "dev",
        &lab.client_if,
    ])
    .unwrap();
    assert!(addr.contains(&format!("inet {net}.77/24")), "{addr}");
    let route = ip(&["-n", &lab.client_ns, "-4", "route", "show", "default"]).unwrap();
    assert!(
        route.contains(&format!("default via {net}.1 dev {}", lab.client_if)),
        "{route}"
    );
    let resolv = std::fs::read_to_string(report.resolv_conf.as_ref().unwrap()).unwrap();
    assert!(resolv.ends_with("nameserver 10.200.0.53\n"), "{resolv}");

    // Running again (a restarted kubejoin) finds its own address and route: not an error.
    let again = lab.config(&[("ip", &value)]);
    lab.bring_up(again).unwrap();
}

#[test]
#[ignore = "needs root, network namespaces, iproute2 and dnsmasq: scripts/test runs it with --ignored"]
fn no_dhcp_server_fails_naming_the_link() {
    let lab = lab_or_skip!();
    let mut cfg = lab.config(&[("ip", &format!("{}:dhcp", lab.client_if))]);
    cfg.timeouts.dhcp = DhcpTiming {
        first_wait: Duration::from_millis(200),
        max_wait: Duration::from_millis(400),
        attempts: 3,
        max_naks: 1,
    };
    let started = Instant::now();
    let e = lab.bring_up(cfg).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded: {:?}",
        started.elapsed()
    );
    assert!(
        e.to_string().starts_with(&format!(
            "no DHCP offer on {} after 3 attempts over ",
            lab.client_if
        )),
        "{e}"
    );
}
