//! What to bring up, from the kernel command line: `ip=`, `nameserver=`, `rd.peerdns=`,
//! `rd.net.timeout.iflink=`, `rd.net.timeout.carrier=` (dracut's names, so an existing boot
//! entry keeps working).
//!
//! `ip=` forms accepted (kernel `Documentation/admin-guide/nfs/nfsroot.rst` and dracut.cmdline):
//!
//! | form | meaning |
//! |---|---|
//! | (none) | DHCP on every physical link that has carrier |
//! | `ip=dhcp` / `on` / `any` | the same |
//! | `ip=off` / `none` | loopback only |
//! | `ip=<dev>:dhcp[:<mtu>]` | DHCP on `<dev>` (required to succeed) |
//! | `ip=<client>:[<server>]:<gw>:<netmask>:<hostname>:<dev>:<autoconf>[:<dns0>[:<dns1>[:<ntp0>]]]` | static when `<autoconf>` is `off`/`none`/`static` (or empty with a client IP), DHCP when `dhcp`/`on`/`any` |
//! | same, with `…:<autoconf>:<mtu>[:<macaddr>]` | dracut's variant: a number in the 8th field is an MTU |
//!
//! `<netmask>` may be dotted or a prefix length, `<client>` may carry `/<prefix>`; an empty
//! netmask means the classful default, as in the kernel. `<server>` (the NFS root server) and
//! `<ntp0>` are accepted and ignored. An empty `<dev>` means: DHCP on every physical link, or the
//! static address on the first physical link. IPv6 forms (`dhcp6`, `auto6`, `[addr]`) and
//! BOOTP/RARP are refused with a clear error.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::dhcp::{prefix_of_mask, DhcpTiming};
use super::NetError;

/// Network bring-up configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    pub mode: NetMode,
    /// `nameserver=` parameters, in order; they come first in resolv.conf.
    pub nameservers: Vec<Ipv4Addr>,
    /// Whether DNS servers and the domain from DHCP go into resolv.conf (`rd.peerdns=0`: no).
    pub peer_dns: bool,
    /// The links to consider for automatic DHCP (`NetMode::Auto`, `ip=dhcp`); empty means every
    /// physical link. Links named here are used even if virtual.
    pub links: Vec<String>,
    pub timeouts: NetTimeouts,
}

/// Where addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetMode {
    /// `ip=off` / `ip=none`: only loopback is brought up.
    Off,
    /// No `ip=`: DHCP on every physical link with carrier; at least one must get a lease.
    Auto,
    /// One or more `ip=` parameters.
    Explicit(Vec<LinkSpec>),
}

/// One `ip=` parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSpec {
    /// The link; `None`: every physical link (DHCP) or the first one (static).
    pub device: Option<String>,
    pub method: Method,
    /// Host name from `ip=` (sent to the DHCP server as option 12, reported).
    pub hostname: Option<String>,
    /// MTU from dracut's `…:<autoconf>:<mtu>` form (wins over DHCP's).
    pub mtu: Option<u32>,
    /// DNS servers from the `<dns0>`/`<dns1>` fields.
    pub dns: Vec<Ipv4Addr>,
}

impl LinkSpec {
    /// DHCP on every physical link.
    pub fn dhcp_everywhere() -> Self {
        Self {
            device: None,
            method: Method::Dhcp,
            hostname: None,
            mtu: None,
            dns: Vec::new(),
        }
    }
}

/// How one link gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Dhcp,
    Static(StaticAddr),
}

/// A static IPv4 configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticAddr {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
}

/// Every bound of the bring-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetTimeouts {
    /// How long links may take to appear after their driver was loaded
    /// (`rd.net.timeout.iflink=<s>`).
    pub link: Duration,
    /// How long to wait for carrier (`rd.net.timeout.carrier=<s>`).
    pub carrier: Duration,
    /// Once one automatic link has carrier, how much longer to wait for the others: an unplugged
    /// second NIC must not cost every boot the whole carrier timeout.
    pub carrier_grace: Duration,
    /// How often links are polled while waiting.
    pub poll: Duration,
    pub dhcp: DhcpTiming,
}

impl Default for NetTimeouts {
    fn default() -> Self {
        Self {
            link: Duration::from_secs(10),
            carrier: Duration::from_secs(10),
            carrier_grace: Duration::from_secs(2),
            poll: Duration::from_millis(50),
            dhcp: DhcpTiming::default(),
        }
    }
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            mode: NetMode::Auto,
            nameservers: Vec::new(),
            peer_dns: true,
            links: Vec::new(),
            timeouts: NetTimeouts::default(),
        }
    }
}

impl NetConfig {
    /// Reads the network keys from kernel command line parameters (`key`, `Some(value)` for
    /// `key=value`); every other key is ignored. Several `ip=` are allowed, one per link.
    pub fn from_cmdline(params: &[(String, Option<String>)]) -> Result<Self, NetError> {
        let mut cfg = Self::default();
        let mut specs: Vec<LinkSpec> = Vec::new();
        let mut off: Option<String> = None;
        for (key, value) in params {
            let param = match value {
                Some(v) => format!("{key}={v}"),
                None => key.clone(),
            };
            let bad = |reason: ParamError| NetError::Cmdline {
                param: param.clone(),
                reason,
            };
            let need = || value.as_deref().ok_or_else(|| bad(ParamError::NoValue));
            match key.as_str() {
                "ip" => match parse_ip(need()?).map_err(bad)? {
                    None => off = Some(param.clone()),
                    Some(spec) => {
                        if let Some(clash) = specs.iter().find(|s| s.device == spec.device) {
                            let what = match &clash.device {
                                Some(d) => format!("link {d}"),
                                None => "all links".to_string(),
                            };
                            return Err(bad(ParamError::SecondIp(what)));
                        }
                        specs.push(spec);
                    }
                },
                "nameserver" => cfg
                    .nameservers
                    .push(ipv4(need()?, "nameserver").map_err(bad)?),
                "rd.peerdns" => {
                    cfg.peer_dns = match need()? {
                        "0" | "no" | "off" => false,
                        "1" | "yes" | "on" => true,
                        _ => return Err(bad(ParamError::NotBool)),
                    }
                }
                "rd.net.timeout.iflink" => cfg.timeouts.link = seconds(need()?).map_err(bad)?,
                "rd.net.timeout.carrier" => cfg.timeouts.carrier = seconds(need()?).map_err(bad)?,
                _ => {}
            }
        }
        cfg.mode = match (off, specs.is_empty()) {
            (Some(_), true) => NetMode::Off,
            (Some(off), false) => {
                return Err(NetError::Cmdline {
                    param: off,
                    reason: ParamError::OffWithLinks,
                })
            }
            (None, true) => NetMode::Auto,
            (None, false) if specs == [LinkSpec::dhcp_everywhere()] => NetMode::Auto,
            (None, false) => NetMode::Explicit(specs),
        };
        Ok(cfg)
    }
}

/// A network parameter of the kernel command line that cannot be used (`NetError::Cmdline`
/// names the parameter). Each variant carries the text at fault; none is a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("needs a value")]
    NoValue,
    #[error("expected 0 or 1")]
    NotBool,
    #[error("a second ip= for {0}")]
    SecondIp(String),
    #[error("turns networking off, but other ip= parameters configure links")]
    OffWithLinks,
    #[error("`{0}` is not a whole number of seconds")]
    Seconds(String),
    #[error("{what} `{value}` is IPv6; only IPv4 is supported")]
    Ipv6Address { what: &'static str, value: String },
    #[error("{what} `{value}` is not an IPv4 address")]
    NotIpv4 { what: &'static str, value: String },
    #[error("`{0}` is not a valid interface name")]
    Device(String),
    #[error("`{0}` is not a valid host name")]
    Hostname(String),
    #[error("MTU `{0}` is not a number from 68 to 65535")]
    Mtu(String),
    #[error("autoconf `{0}` is IPv6; only IPv4 (dhcp, or static with off) is supported")]
    Autoconf6(String),
    #[error("autoconf `{0}` is not supported; use dhcp, or off with a static address")]
    AutoconfUnsupported(String),
    #[error("unknown autoconf `{0}` (expected dhcp, on, any, off, none)")]
    AutoconfUnknown(String),
    #[error("is empty (expected dhcp, off, <dev>:dhcp or a static configuration)")]
    Empty,
    #[error("IPv6 addresses are not supported; only IPv4")]
    Ipv6,
    #[error("`{0}` is not dhcp, off, or a static configuration")]
    NotAMethod(String),
    #[error("`{0}` needs dhcp as its method")]
    NeedsDhcp(String),
    #[error("setting a MAC address is not supported")]
    MacAddress,
    #[error("has {0} fields; the most is 10")]
    TooManyFields(usize),
    #[error("prefix length `{0}` is not a number from 0 to 32")]
    Prefix(String),
    #[error("netmask `{0}` is not a prefix length from 0 to 32")]
    NetmaskPrefix(String),
    #[error("netmask `{0}` is not a contiguous IPv4 netmask")]
    Netmask(String),
    #[error("too many fields after <mtu>:<macaddr>")]
    AfterMac,
    #[error("prefix /{0} and netmask /{1} disagree")]
    PrefixMismatch(u8, u8),
    #[error("client IP `{0}` cannot be a host address")]
    NotHost(Ipv4Addr),
    #[error("a static configuration (autoconf off) needs a client IP")]
    NoClientIp,
}

fn seconds(v: &str) -> Result<Duration, ParamError> {
    v.parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| ParamError::Seconds(v.to_string()))
}

fn ipv4(v: &str, what: &'static str) -> Result<Ipv4Addr, ParamError> {
    if v.contains(':') || v.starts_with('[') {
        return Err(ParamError::Ipv6Address {
            what,
            value: v.to_string(),
        });
    }
    v.parse().map_err(|_| ParamError::NotIpv4 {
        what,
        value: v.to_string(),
    })
}

fn opt_ipv4(v: &str, what: &'static str) -> Result<Option<Ipv4Addr>, ParamError> {
    if v.is_empty() {
        Ok(None)
    } else {
        ipv4(v, what).map(Some)
    }
}

/// Kernel interface name rules (`dev_valid_name`): 1–15 bytes, no `/`, `:` or whitespace, not
/// `.` or `..`.
fn device(v: &str) -> Result<Option<String>, ParamError> {
    if v.is_empty() {
        return Ok(None);
    }
    let ok = v.len() <= 15
        && v != "."
        && v != ".."
        && v.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':');
    if ok {
        Ok(Some(v.to_string()))
    } else {
        Err(ParamError::Device(v.to_string()))
    }
}

fn hostname(v: &str) -> Result<Option<String>, ParamError> {
    if v.is_empty() {
        return Ok(None);
    }
    let ok = v.len() <= 253
        && v.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(Some(v.to_string()))
    } else {
        Err(ParamError::Hostname(v.to_string()))
    }
}

fn mtu(v: &str) -> Result<u32, ParamError> {
    match v.parse::<u32>() {
        Ok(m) if (68..=65535).contains(&m) => Ok(m),
        _ => Err(ParamError::Mtu(v.to_string())),
    }
}

enum Autoconf {
    Static,
    Dhcp,
}

fn autoconf(v: &str) -> Result<Option<Autoconf>, ParamError> {
    match v {
        "" => Ok(None),
        "off" | "none" | "static" => Ok(Some(Autoconf::Static)),
        "dhcp" | "on" | "any" => Ok(Some(Autoconf::Dhcp)),
        "dhcp6" | "auto6" | "either6" | "link6" | "link-local" => {
            Err(ParamError::Autoconf6(v.to_string()))
        }
        "bootp" | "rarp" | "both" | "ibft" => Err(ParamError::AutoconfUnsupported(v.to_string())),
        _ => Err(ParamError::AutoconfUnknown(v.to_string())),
    }
}

/// Parses one `ip=` value: `Ok(None)` for `off`/`none`.
pub fn parse_ip(v: &str) -> Result<Option<LinkSpec>, ParamError> {
    match v {
        "off" | "none" => return Ok(None),
        "" => return Err(ParamError::Empty),
        _ => {}
    }
    if v.contains('[') {
        return Err(ParamError::Ipv6);
    }
    let fields: Vec<&str> = v.split(':').collect();
    let first = fields.first().copied().unwrap_or_default();

    // `ip=<autoconf>` or `ip=<dev>:<autoconf>[:<mtu>[:<macaddr>]]`: the first field is no address.
    let looks_like_address = first
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'/');
    if !looks_like_address && fields.len() <= 4 {
        if fields.len() == 1 {
            return match autoconf(first)? {
                Some(Autoconf::Dhcp) => Ok(Some(LinkSpec::dhcp_everywhere())),
                _ => Err(ParamError::NotAMethod(first.to_string())),
            };
        }
        let dev = device(first)?;
        match autoconf(fields[1])? {
            Some(Autoconf::Dhcp) => {}
            _ => return Err(ParamError::NeedsDhcp(format!("{first}:{}", fields[1]))),
        }
        let mtu = match fields.get(2) {
            Some(m) if !m.is_empty() => Some(mtu(m)?),
            _ => None,
        };
        if fields.get(3).is_some_and(|m| !m.is_empty()) {
            return Err(ParamError::MacAddress);
        }
        return Ok(Some(LinkSpec {
            device: dev,
            method: Method::Dhcp,
            hostname: None,
            mtu,
            dns: Vec::new(),
        }));
    }

    if fields.len() > 10 {
        return Err(ParamError::TooManyFields(fields.len()));
    }
    let field = |i: usize| fields.get(i).copied().unwrap_or_default();
    let (client, cidr_prefix) = match field(0).split_once('/') {
        Some((a, p)) => {
            let p = p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| ParamError::Prefix(p.to_string()))?;
            (opt_ipv4(a, "client IP")?, Some(p))
        }
        None => (opt_ipv4(field(0), "client IP")?, None),
    };
    let _server = opt_ipv4(field(1), "server IP")?;
    let gateway = opt_ipv4(field(2), "gateway")?;
    let mask_prefix = match field(3) {
        "" => None,
        m if m.bytes().all(|b| b.is_ascii_digit()) => Some(
            m.parse::<u8>()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| ParamError::NetmaskPrefix(m.to_string()))?,
        ),
        m => Some(
            m.parse::<Ipv4Addr>()
                .ok()
                .and_then(prefix_of_mask)
                .ok_or_else(|| ParamError::Netmask(m.to_string()))?,
        ),
    };
    let hostname = hostname(field(4))?;
    let dev = device(field(5))?;
    let method = autoconf(field(6))?;

    // dracut: a number after <autoconf> is an MTU (then a MAC); the kernel puts DNS servers there.
    let mut dns = Vec::new();
    let mut link_mtu = None;
    if field(7).bytes().all(|b| b.is_ascii_digit()) && !field(7).is_empty() {
        link_mtu = Some(mtu(field(7))?);
        if !field(8).is_empty() {
            return Err(ParamError::MacAddress);
        }
        if fields.len() > 9 {
            return Err(ParamError::AfterMac);
        }
    } else {
        dns.extend(opt_ipv4(field(7), "DNS server")?);
        dns.extend(opt_ipv4(field(8), "DNS server")?);
        let _ntp = opt_ipv4(field(9), "NTP server")?;
    }

    let method = match (method, client) {
        (Some(Autoconf::Dhcp), _) | (None, None) => Method::Dhcp,
        (Some(Autoconf::Static) | None, Some(address)) => {
            if let (Some(a), Some(b)) = (cidr_prefix, mask_prefix) {
                if a != b {
                    return Err(ParamError::PrefixMismatch(a, b));
                }
            }
            let prefix_len = cidr_prefix
                .or(mask_prefix)
                .unwrap_or(match address.octets()[0] {
                    0..=127 => 8,
                    128..=191 => 16,
                    _ => 24,
                });
            if address.is_unspecified() || address.is_broadcast() || address.is_multicast() {
                return Err(ParamError::NotHost(address));
            }
            Method::Static(StaticAddr {
                address,
                prefix_len,
                gateway,
            })
        }
        (Some(Autoconf::Static), None) => return Err(ParamError::NoClientIp),
    };
    Ok(Some(LinkSpec {
        device: dev,
        method,
        hostname,
        mtu: link_mtu,
        dns,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[&str]) -> Vec<(String, Option<String>)> {
        list.iter()
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (p.to_string(), None),
            })
            .collect()
    }

    fn cfg(list: &[&str]) -> NetConfig {
        NetConfig::from_cmdline(&params(list)).unwrap()
    }

    fn err(list: &[&str]) -> String {
        match NetConfig::from_cmdline(&params(list)) {
            Err(e @ NetError::Cmdline { .. }) => e.to_string(),
            other => panic!("{list:?}: expected a command line error, got {other:?}"),
        }
    }

    fn one(v: &str) -> LinkSpec {
        parse_ip(v).unwrap().unwrap()
    }

    const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
    const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

    #[test]
    fn no_ip_means_dhcp_on_every_physical_link() {
        let c = cfg(&["quiet", "console=ttyS0", "kubejoin.token=abc"]);
        assert_eq!(c, NetConfig::default());
        assert_eq!(c.mode, NetMode::Auto);
        assert_eq!(cfg(&["ip=dhcp"]).mode, NetMode::Auto);
        assert_eq!(cfg(&["ip=on"]).mode, NetMode::Auto);
        assert_eq!(cfg(&["ip=any"]).mode, NetMode::Auto);
    }

    #[test]
    fn off_and_none_disable_networking() {
        assert_eq!(cfg(&["ip=off"]).mode, NetMode::Off);
        assert_eq!(cfg(&["ip=none"]).mode, NetMode::Off);
    }

    #[test]
    fn full_static_form() {
        let s = one("10.0.0.5::10.0.0.1:255.255.255.0:node1:eth0:off");
        assert_eq!(
            s,
            LinkSpec {
                device: Some("eth0".into()),
                method: Method::Static(StaticAddr {
                    address: A,
                    prefix_len: 24,
                    gateway: Some(GW)
                }),
                hostname: Some("node1".into()),
                mtu: None,
                dns: vec![],
            }
        );
        assert_eq!(one("10.0.0.5::10.0.0.1:255.255.255.0:node1:eth0:none"), s);
        assert_eq!(one("10.0.0.5::10.0.0.1:255.255.255.0:node1:eth0:static"), s);
        // Empty autoconf with a client IP is static too; a prefix length works as netmask.
        assert_eq!(one("10.0.0.5::10.0.0.1:24:node1:eth0:"), s);
        assert_eq!(one("10.0.0.5/24::10.0.0.1::node1:eth0:off"), s);
        // The server field is accepted and ignored.
        assert_eq!(
            one("10.0.0.5:10.0.0.9:10.0.0.1:255.255.255.0:node1:eth0:off"),
            s
        );
    }

    #[test]
    fn static_with_dns_and_kernel_ntp_field() {
        let s = one("10.0.0.5::10.0.0.1:255.255.255.0::eth0:off:10.0.0.2:10.0.0.3:10.0.0.4");
        assert_eq!(
            s.dns,
            [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)]
        );
        assert_eq!(s.hostname, None);
        let s = one("10.0.0.5::10.0.0.1:255.255.255.0::eth0:off:10.0.0.2");
        assert_eq!(s.dns, [Ipv4Addr::new(10, 0, 0, 2)]);
    }

    #[test]
    fn static_without_gateway_netmask_or_device() {
        let s = one("192.168.7.9::::::off");
        assert_eq!(s.device, None);
        assert_eq!(
            s.method,
            Method::Static(StaticAddr {
                address: Ipv4Addr::new(192, 168, 7, 9),
                prefix_len: 24,
                gateway: None
            })
        );
        // Kernel: fields may be cut short; no autoconf with a client IP is static.
        assert!(matches!(
            one("10.1.2.3").method,
            Method::Static(StaticAddr { prefix_len: 8, .. })
        ));
    }

    #[test]
    fn dracut_mtu_variant() {
        let s = one("10.0.0.5::10.0.0.1:255.255.255.0:node1:eth0:off:9000");
        assert_eq!(s.mtu, Some(9000));
        assert!(s.dns.is_empty());
        assert_eq!(one("eth0:dhcp:1400").mtu, Some(1400));
    }

    #[test]
    fn device_dhcp_forms() {
        let s = one("eth0:dhcp");
        assert_eq!(
            s,
            LinkSpec {
                device: Some("eth0".into()),
                ..LinkSpec::dhcp_everywhere()
            }
        );
        assert_eq!(one("ens3:on").device.as_deref(), Some("ens3"));
        // The long form with dhcp: hostname kept, client fields ignored.
        let s = one(":::::eth1:dhcp");
        assert_eq!(
            (s.device.as_deref(), s.method),
            (Some("eth1"), Method::Dhcp)
        );
        let s = one("::::node7:eth1:dhcp:10.0.0.53");
        assert_eq!(s.hostname.as_deref(), Some("node7"));
        assert_eq!(s.dns, [Ipv4Addr::new(10, 0, 0, 53)]);
    }

    #[test]
    fn multiple_ip_params_and_nameservers() {
        let c = cfg(&[
            "ip=10.0.0.5::10.0.0.1:255.255.255.0:node1:eth0:off",
            "ip=eth1:dhcp",
            "nameserver=10.0.0.2",
            "nameserver=10.0.0.3",
            "rd.peerdns=0",
            "rd.net.timeout.carrier=30",
            "rd.net.timeout.iflink=5",
        ]);
        match &c.mode {
            NetMode::Explicit(specs) => {
                let devs: Vec<_> = specs.iter().map(|s| s.device.as_deref()).collect();
                assert_eq!(devs, [Some("eth0"), Some("eth1")]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.nameservers,
            [Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(10, 0, 0, 3)]
        );
        assert!(!c.peer_dns);
        assert_eq!(c.timeouts.carrier, Duration::from_secs(30));
        assert_eq!(c.timeouts.link, Duration::from_secs(5));
        // ip=dhcp plus a named link: explicit, the named link required, the rest best effort.
        let c = cfg(&["ip=dhcp", "ip=eth1:dhcp"]);
        assert!(matches!(c.mode, NetMode::Explicit(ref s) if s.len() == 2));
    }

    #[test]
    fn bad_forms_have_clear_errors() {
        let cases: &[(&[&str], &str)] = &[
            (&["ip"], "ip: needs a value"),
            (&["ip="], "is empty"),
            (
                &["ip=10.0.0.5::10.0.0.1:255.255.0:node1:eth0:off"],
                "netmask `255.255.0` is not a contiguous",
            ),
            (
                &["ip=10.0.0.5::10.0.0.1:255.0.255.0:node1:eth0:off"],
                "not a contiguous IPv4 netmask",
            ),
            (
                &["ip=10.0.0.5::10.0.0.1:33:node1:eth0:off"],
                "prefix length from 0 to 32",
            ),
            (&["ip=10.0.0.5/33"], "prefix length `33`"),
            (&["ip=10.0.0.5/24::10.0.0.1:16::eth0:off"], "disagree"),
            (
                &["ip=10.0.0.999::10.0.0.1:24::eth0:off"],
                "client IP `10.0.0.999` is not an IPv4",
            ),
            (&["ip=10.0.0.5::gw:24::eth0:off"], "gateway `gw`"),
            (&["ip=:::::eth0:off"], "needs a client IP"),
            (
                &["ip=10.0.0.5:::24::eth0:bootp"],
                "autoconf `bootp` is not supported",
            ),
            (&["ip=dhcp6"], "IPv6"),
            (&["ip=eth0:auto6"], "IPv6"),
            (&["ip=[fd00::5]::[fd00::1]:64::eth0:none"], "IPv6"),
            (
                &["ip=10.0.0.5:::24::eth0:sometimes"],
                "unknown autoconf `sometimes`",
            ),
            (
                &["ip=10.0.0.5:::24::this-name-is-too-long:off"],
                "not a valid interface name",
            ),
            (
                &["ip=10.0.0.5:::24:bad_host!:eth0:off"],
                "not a valid host name",
            ),
            (&["ip=eth0:off"], "needs dhcp"),
            (&["ip=eth0:dhcp:9"], "MTU `9`"),
            (
                &["ip=eth0:dhcp:1500:52:54:00:12:34:56"],
                "client IP `eth0` is not an IPv4 address",
            ),
            (
                &["ip=eth0:dhcp::52-54-00-12-34-56"],
                "MAC address is not supported",
            ),
            (
                &["ip=10.0.0.5::10.0.0.1:24::eth0:off:10.0.0.2:x"],
                "DNS server `x`",
            ),
            (&["ip=a:b:c:d:e:f:g:h:i:j:k"], "the most is 10"),
            (&["ip=10.0.0.5::::::::::"], "the most is 10"),
            (
                &["ip=eth0:dhcp", "ip=eth0:dhcp"],
                "a second ip= for link eth0",
            ),
            (&["ip=dhcp", "ip=on"], "a second ip= for all links"),
            (&["ip=off", "ip=eth0:dhcp"], "ip=off: turns networking off"),
            (&["nameserver=fd00::53"], "nameserver `fd00::53` is IPv6"),
            (&["nameserver=dns.example"], "not an IPv4 address"),
            (&["rd.peerdns=maybe"], "expected 0 or 1"),
            (&["rd.net.timeout.carrier=5s"], "whole number of seconds"),
        ];
        for (list, want) in cases {
            let got = err(list);
            assert!(got.contains(want), "{list:?}: {got:?} lacks {want:?}");
            assert!(got.starts_with("kernel command line "), "{got}");
        }
    }

    #[test]
    fn cmdline_error_names_the_parameter() {
        let e = err(&["ip=10.0.0.5::10.0.0.1:255.255.0:node1:eth0:off"]);
        assert_eq!(
            e,
            "kernel command line ip=10.0.0.5::10.0.0.1:255.255.0:node1:eth0:off: \
             netmask `255.255.0` is not a contiguous IPv4 netmask"
        );
    }
}
