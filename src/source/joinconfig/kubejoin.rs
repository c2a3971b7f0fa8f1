//! `KubejoinConfiguration` (`kubejoin.dev/v1alpha1`): its wire type, defaulting and validation.

use super::*;

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a KubejoinConfiguration mapping"
)]
pub(super) struct RawKubejoin {
    #[serde(rename = "apiVersion")]
    pub(super) _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    pub(super) _kind: IgnoredAny,
    #[serde(default)]
    pub(super) modules: Option<Vec<String>>,
    #[serde(default)]
    pub(super) sysctls: Option<OrderedScalars>,
    #[serde(default)]
    pub(super) handoff: Option<RawHandoff>,
    #[serde(default)]
    pub(super) kubelet_path: Option<String>,
    #[serde(default)]
    pub(super) token_file: Option<String>,
    #[serde(default)]
    pub(super) on_failure: Option<RawOnFailure>,
    #[serde(default)]
    pub(super) timeout: Option<String>,
    #[serde(default)]
    pub(super) tls_bootstrap_timeout: Option<String>,
    #[serde(default)]
    pub(super) network: Option<RawNetwork>,
    #[serde(default)]
    pub(super) kubelet_args: Option<Vec<RawArg>>,
    #[serde(default)]
    pub(super) ntp: Option<Vec<String>>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawHandoff {
    Exec,
    None,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawOnFailure {
    Retry,
    Reboot,
    Poweroff,
    Shell,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a network mapping"
)]
pub(super) struct RawNetwork {
    #[serde(default)]
    pub(super) interfaces: Option<Vec<RawInterface>>,
    #[serde(default)]
    pub(super) nameservers: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "an interface mapping"
)]
pub(super) struct RawInterface {
    #[serde(default)]
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) dhcp: Option<bool>,
    #[serde(default)]
    pub(super) address: Option<String>,
    #[serde(default)]
    pub(super) gateway: Option<String>,
    #[serde(default)]
    pub(super) mtu: Option<u32>,
}

/// A mapping of scalars kept in file order, each value as text (`1` → "1", `true` → "true"):
/// sysctl values are written as text, and YAML users write `net.ipv4.ip_forward: 1`.
pub(super) struct OrderedScalars(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedScalars {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Scalar(String);
        impl<'de> Deserialize<'de> for Scalar {
            fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = Scalar;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string, number or boolean")
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                        Ok(Scalar(v.to_string()))
                    }
                    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                        Ok(Scalar(v.to_string()))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                        Ok(Scalar(v.to_string()))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                        Ok(Scalar(v.to_string()))
                    }
                    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                        Ok(Scalar(v.to_string()))
                    }
                }
                d.deserialize_any(V)
            }
        }
        struct M;
        impl<'de> Visitor<'de> for M {
            type Value = OrderedScalars;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of key: value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<OrderedScalars, A::Error> {
                let mut out: Vec<(String, String)> = Vec::new();
                // A set, not a scan of `out`: a hostile map of 50,000 keys stays linear.
                let mut seen = std::collections::HashSet::new();
                while let Some((k, Scalar(v))) = m.next_entry::<String, Scalar>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    out.push((k, v));
                }
                Ok(OrderedScalars(out))
            }
        }
        d.deserialize_map(M)
    }
}

pub(super) fn normalize_kubejoin(
    raw: RawKubejoin,
) -> Result<KubejoinConfiguration, ConfigErrorKind> {
    let mut out = KubejoinConfiguration::default();

    for (i, m) in raw.modules.unwrap_or_default().into_iter().enumerate() {
        // Names only: a path would let the config load an arbitrary file as a module.
        if m.is_empty()
            || !m
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                format!("modules[{i}]"),
                format!(
                    "invalid module name {m:?}: use the module's name ([A-Za-z0-9_-]), not a path"
                ),
            ));
        }
        out.modules.push(m);
    }

    for (k, v) in raw.sysctls.map(|s| s.0).unwrap_or_default() {
        check_sysctl(&k, &v)?;
        out.sysctls.push((k, v));
    }

    out.handoff = raw.handoff.map(|h| match h {
        RawHandoff::Exec => HandoffMode::Exec,
        RawHandoff::None => HandoffMode::None,
    });
    out.on_failure = raw.on_failure.map(|o| match o {
        RawOnFailure::Retry => OnFailure::Retry,
        RawOnFailure::Reboot => OnFailure::Reboot,
        RawOnFailure::Poweroff => OnFailure::Poweroff,
        RawOnFailure::Shell => OnFailure::Shell,
    });

    if let Some(p) = non_empty(raw.kubelet_path) {
        if !p.starts_with('/') {
            return Err(invalid(
                "kubeletPath",
                format!("invalid value {p:?}: path is not absolute"),
            ));
        }
        out.kubelet_path = Some(PathBuf::from(p));
    }
    if let Some(p) = non_empty(raw.token_file) {
        if !p.starts_with('/') {
            return Err(invalid(
                "tokenFile",
                format!("invalid value {p:?}: path is not absolute"),
            ));
        }
        out.token_file = Some(PathBuf::from(p));
    }

    out.timeout = non_empty(raw.timeout)
        .map(|s| parse_duration("timeout", &s))
        .transpose()?;
    out.tls_bootstrap_timeout = non_empty(raw.tls_bootstrap_timeout)
        .map(|s| parse_duration("tlsBootstrapTimeout", &s))
        .transpose()?;
    for (path, d) in [
        ("timeout", out.timeout),
        ("tlsBootstrapTimeout", out.tls_bootstrap_timeout),
    ] {
        if d == Some(Duration::ZERO) {
            return Err(invalid(path, "must be greater than zero"));
        }
    }

    out.network = raw.network.map(normalize_network).transpose()?;

    for (i, a) in raw.kubelet_args.unwrap_or_default().into_iter().enumerate() {
        out.kubelet_args.push(check_arg(
            a.name,
            a.value.unwrap_or_default(),
            &format!("kubeletArgs[{i}]"),
        )?);
    }
    // Checked as the kernel command line's `kubejoin.ntp=` is, one entry at a time.
    let mut ntp = crate::plan::values::Values::default();
    for (i, n) in raw.ntp.unwrap_or_default().into_iter().enumerate() {
        ntp.set(crate::plan::key::Key::Ntp, Some(&n))
            .map_err(|e| invalid(format!("ntp[{i}]"), e.to_string()))?;
    }
    out.ntp = ntp.ntp.unwrap_or_default();
    Ok(out)
}

/// Sysctl names become paths under /proc/sys, so only name characters are allowed and no
/// segment may be empty or `..` (which would escape /proc/sys).
pub(super) fn check_sysctl(k: &str, v: &str) -> Result<(), ConfigErrorKind> {
    let path = format!("sysctls.{k}");
    let ok_chars = k
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b':'));
    let ok_segments = k.split(['.', '/']).all(|s| !s.is_empty() && s != "..");
    if k.is_empty() || !ok_chars || !ok_segments {
        return Err(invalid(
            path,
            "invalid sysctl name: use dotted names like net.ipv4.ip_forward ([A-Za-z0-9_-:] segments separated by \
             '.' or '/')",
        ));
    }
    if v.contains(['\n', '\0']) {
        return Err(invalid(path, "a sysctl value must be one line"));
    }
    Ok(())
}

pub(super) fn normalize_network(raw: RawNetwork) -> Result<Network, ConfigErrorKind> {
    let mut net = Network::default();
    for (i, n) in raw.nameservers.unwrap_or_default().iter().enumerate() {
        let ip = n.parse::<Ipv4Addr>().map_err(|_| {
            invalid(
                format!("network.nameservers[{i}]"),
                format!("invalid value {n:?}: not an IPv4 address"),
            )
        })?;
        net.nameservers.push(ip);
    }
    for (i, r) in raw.interfaces.unwrap_or_default().into_iter().enumerate() {
        let path = format!("network.interfaces[{i}]");
        let name = non_empty(r.name);
        if let Some(n) = &name {
            // The kernel's rule (dev_valid_name): 1–15 bytes, no '/', ':' or whitespace.
            if n.len() > 15
                || n == "."
                || n == ".."
                || n.contains(['/', ':'])
                || n.contains(char::is_whitespace)
            {
                return Err(invalid(
                    format!("{path}.name"),
                    format!("invalid interface name {n:?}"),
                ));
            }
            if net
                .interfaces
                .iter()
                .any(|o: &Interface| o.name.as_ref() == Some(n))
            {
                return Err(invalid(
                    format!("{path}.name"),
                    format!("interface {n:?} is given twice"),
                ));
            }
        }
        let address = non_empty(r.address);
        let gateway = non_empty(r.gateway);
        let addressing = match (r.dhcp, address) {
            (Some(true), Some(_)) => {
                return Err(invalid(path, "dhcp: true and address cannot both be set"));
            }
            (Some(false), None) => {
                return Err(invalid(
                    path,
                    "dhcp: false needs a static address (address: a.b.c.d/len)",
                ));
            }
            (_, None) => {
                if gateway.is_some() {
                    return Err(invalid(
                        format!("{path}.gateway"),
                        "a gateway needs a static address",
                    ));
                }
                Addressing::Dhcp
            }
            (_, Some(a)) => {
                let (address, prefix_len) = parse_cidr4(&a).ok_or_else(|| {
                    invalid(
                        format!("{path}.address"),
                        format!("invalid value {a:?}: use an IPv4 address with a prefix length, e.g. 10.0.0.5/24"),
                    )
                })?;
                let gateway = gateway
                    .map(|g| {
                        g.parse::<Ipv4Addr>().map_err(|_| {
                            invalid(
                                format!("{path}.gateway"),
                                format!("invalid value {g:?}: not an IPv4 address"),
                            )
                        })
                    })
                    .transpose()?;
                Addressing::Static {
                    address,
                    prefix_len,
                    gateway,
                }
            }
        };
        if let Some(m) = r.mtu {
            if !(68..=65535).contains(&m) {
                return Err(invalid(
                    format!("{path}.mtu"),
                    format!("invalid value {m}: must be from 68 to 65535"),
                ));
            }
        }
        net.interfaces.push(Interface {
            name,
            addressing,
            mtu: r.mtu,
        });
    }
    Ok(net)
}

pub(super) fn parse_cidr4(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let addr = a.parse::<Ipv4Addr>().ok()?;
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len = p.parse::<u8>().ok().filter(|l| *l <= 32)?;
    Some((addr, len))
}
