//! Defaulting and validation of a JoinConfiguration, as kubeadm does them (spec §9).

use super::*;

/// `controlPlane`, validated as kubeadm does (an IP address, a port), the key parsed and never
/// echoed.
pub(super) fn control_plane(cp: RawControlPlane) -> Result<JoinControlPlane, ConfigErrorKind> {
    let mut out = JoinControlPlane::default();
    if let Some(e) = cp.local_api_endpoint {
        if let Some(a) = non_empty(e.advertise_address) {
            out.advertise_address = Some(a.parse().map_err(|_| {
                invalid(
                    "controlPlane.localAPIEndpoint.advertiseAddress",
                    format!("{a:?} is not a valid IP address"),
                )
            })?);
        }
        if let Some(p) = e.bind_port {
            out.bind_port = Some(u16::try_from(p).ok().filter(|p| *p > 0).ok_or_else(|| {
                invalid(
                    "controlPlane.localAPIEndpoint.bindPort",
                    format!("{p} is not a valid port number (1-65535)"),
                )
            })?);
        }
    }
    if let Some(k) = non_empty(cp.certificate_key) {
        out.certificate_key = Some(
            crate::plan::certificate_key::CertificateKey::parse(&k)
                .map_err(|e| invalid("controlPlane.certificateKey", e.to_string()))?,
        );
    }
    Ok(out)
}

pub(super) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

pub(super) fn normalize_join(
    c: Common,
    warnings: &mut Vec<String>,
) -> Result<JoinConfiguration, ConfigErrorKind> {
    let control_plane = match c.control_plane {
        None => None,
        Some(cp) => Some(control_plane(cp)?),
    };

    let ca_cert_path =
        non_empty(c.ca_cert_path).unwrap_or_else(|| DEFAULT_CA_CERT_PATH.to_string());
    if !ca_cert_path.starts_with('/') {
        return Err(invalid(
            "caCertPath",
            format!("invalid value {ca_cert_path:?}: path is not absolute"),
        ));
    }

    let discovery =
        normalize_discovery(c.bootstrap_token, c.file, non_empty(c.tls_bootstrap_token))?;
    if let DiscoveryMethod::Token {
        ca_cert_hashes,
        unsafe_skip_ca_verification: true,
        ..
    } = &discovery.method
    {
        if ca_cert_hashes.is_empty() {
            warnings.push(
                "discovery.bootstrapToken.unsafeSkipCAVerification is true and no caCertHashes are set: the \
                 cluster CA will be trusted without verification"
                    .to_string(),
            );
        }
    }

    let name = match non_empty(c.name) {
        // kubeadm lower-cases the name before validating it (SetNodeRegistrationDynamicDefaults).
        Some(n) => Some(NodeName::parse(&n.to_ascii_lowercase()).map_err(|source| {
            ConfigErrorKind::InvalidNodeName {
                path: "nodeRegistration.name".into(),
                source,
            }
        })?),
        None => None,
    };

    let cri_socket = match non_empty(c.cri_socket) {
        Some(s) => Some(normalize_cri_socket(&s, warnings)?),
        None => None,
    };

    let mut taints = Vec::new();
    for (i, t) in c.taints.into_iter().enumerate() {
        let taint = normalize_taint(t, &format!("nodeRegistration.taints[{i}]"))?;
        if taints
            .iter()
            .any(|o: &Taint| o.key == taint.key && o.effect == taint.effect)
        {
            return Err(invalid(
                format!("nodeRegistration.taints[{i}]"),
                format!("taints must be unique by key and effect ({taint} repeats an earlier one)"),
            ));
        }
        taints.push(taint);
    }

    let kubelet_extra_args = c
        .kubelet_extra_args
        .into_iter()
        .map(|(name, value, path)| check_arg(name, value, &path))
        .collect::<Result<Vec<_>, _>>()?;

    let ignore_preflight_errors = normalize_ignore_preflight(c.ignore_preflight_errors)?;

    let image_pull_policy = match c.image_pull_policy.as_deref().unwrap_or("") {
        "" | "IfNotPresent" => ImagePullPolicy::IfNotPresent,
        "Always" => ImagePullPolicy::Always,
        "Never" => ImagePullPolicy::Never,
        other => {
            return Err(invalid(
                "nodeRegistration.imagePullPolicy",
                format!("Unsupported value: {other:?}: supported values: \"Always\", \"IfNotPresent\", \"Never\""),
            ))
        }
    };

    let patches_directory = non_empty(c.patches_directory).map(PathBuf::from);
    if let Some(dir) = &patches_directory {
        warnings.push(format!(
            "patches.directory ({}) is not supported by kubejoin and is ignored: no patches are applied",
            dir.display()
        ));
    }

    let timeouts = normalize_timeouts(&c.timeouts, c.discovery_timeout_path)?;

    Ok(JoinConfiguration {
        dry_run: c.dry_run,
        ca_cert_path: PathBuf::from(ca_cert_path),
        discovery,
        node_registration: NodeRegistration {
            name,
            cri_socket,
            taints,
            kubelet_extra_args,
            ignore_preflight_errors,
            image_pull_policy,
            image_pull_serial: c.image_pull_serial.unwrap_or(true),
        },
        control_plane,
        skip_phases: c
            .skip_phases
            .into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        patches_directory,
        timeouts,
    })
}

pub(super) fn normalize_discovery(
    bootstrap_token: Option<RawBootstrapToken>,
    file: Option<RawFile>,
    tls_bootstrap_token: Option<String>,
) -> Result<Discovery, ConfigErrorKind> {
    const TLS_PATH: &str = "discovery.tlsBootstrapToken";
    let parse_tls = |s: &str| {
        BootstrapToken::parse(s).map_err(|_| ConfigErrorKind::InvalidToken {
            path: TLS_PATH.into(),
        })
    };
    match (bootstrap_token, file) {
        (None, None) => Err(ConfigErrorKind::DiscoveryNotSet),
        (Some(_), Some(_)) => Err(ConfigErrorKind::DiscoveryBothSet),
        (Some(bt), None) => {
            // Checks in kubeadm's order (ValidateDiscoveryBootstrapToken), so the first message a
            // user sees is the one kubeadm would have printed first.
            let endpoint =
                non_empty(bt.api_server_endpoint).ok_or(ConfigErrorKind::EndpointNotSet)?;
            let hashes = bt.ca_cert_hashes.unwrap_or_default();
            let unsafe_skip = bt.unsafe_skip_ca_verification.unwrap_or(false);
            if hashes.is_empty() && !unsafe_skip {
                return Err(ConfigErrorKind::UnsafeWithoutPins);
            }
            let token = BootstrapToken::parse(bt.token.as_deref().unwrap_or("")).map_err(|_| {
                ConfigErrorKind::InvalidToken {
                    path: "discovery.bootstrapToken.token".into(),
                }
            })?;
            check_endpoint(&endpoint)?;
            let mut pins = Vec::new();
            for (i, h) in hashes.iter().enumerate() {
                // Parse one by one so the error names the entry.
                PinSet::parse(&[h]).map_err(|source| ConfigErrorKind::InvalidPin {
                    path: format!("discovery.bootstrapToken.caCertHashes[{i}]"),
                    source,
                })?;
                pins.push(h.as_str());
            }
            let ca_cert_hashes =
                PinSet::parse(&pins).map_err(|source| ConfigErrorKind::InvalidPin {
                    path: "discovery.bootstrapToken.caCertHashes".into(),
                    source,
                })?;
            // tlsBootstrapToken defaults to the discovery token (SetDefaults_Discovery).
            let tls_bootstrap_token = match tls_bootstrap_token {
                Some(t) => parse_tls(&t)?,
                None => token.clone(),
            };
            Ok(Discovery {
                method: DiscoveryMethod::Token {
                    api_server_endpoint: endpoint,
                    token,
                    ca_cert_hashes,
                    unsafe_skip_ca_verification: unsafe_skip,
                },
                tls_bootstrap_token: Some(tls_bootstrap_token),
            })
        }
        (None, Some(f)) => {
            let method = normalize_file_path(non_empty(f.kube_config_path))?;
            let tls_bootstrap_token = tls_bootstrap_token.as_deref().map(parse_tls).transpose()?;
            Ok(Discovery {
                method,
                tls_bootstrap_token,
            })
        }
    }
}

/// `host:port`, validated as for every source ([`crate::plan::endpoint`]).
pub(super) fn check_endpoint(ep: &str) -> Result<(), ConfigErrorKind> {
    crate::plan::endpoint::Endpoint::parse(ep)
        .map(|_| ())
        .map_err(|e| ConfigErrorKind::EndpointInvalid {
            value: e.value,
            why: e.why,
        })
}

/// The scheme of a URL as Go's `url.Parse` finds it (`[a-zA-Z][a-zA-Z0-9+.-]*:`), lower-cased.
pub(super) fn url_scheme(s: &str) -> Option<String> {
    for (i, c) in s.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i > 0 => return Some(s[..i].to_ascii_lowercase()),
            _ => return None,
        }
    }
    None
}

pub(super) fn normalize_file_path(
    path: Option<String>,
) -> Result<DiscoveryMethod, ConfigErrorKind> {
    const PATH: &str = "discovery.file.kubeConfigPath";
    let Some(path) = path else {
        return Err(invalid(PATH, "kubeConfigPath is not set"));
    };
    match url_scheme(&path).as_deref() {
        None => Ok(DiscoveryMethod::File {
            kube_config_path: PathBuf::from(path),
        }),
        Some("https") => {
            // `https:` without `//` or without a host cannot be fetched.
            let host = match path.get(..8) {
                Some(p) if p.eq_ignore_ascii_case("https://") => {
                    path[8..].split(['/', '?', '#']).next()
                }
                _ => None,
            };
            if host.is_none_or(str::is_empty) {
                return Err(invalid(
                    PATH,
                    format!("invalid value {path:?}: not a valid HTTPS URL"),
                ));
            }
            Ok(DiscoveryMethod::Https { url: path })
        }
        Some("file") => {
            // SetDefaults_FileDiscovery keeps only the URL's path: file:///p and file://host/p
            // both become /p.
            let rest = &path["file:".len()..];
            let p = match rest.strip_prefix("//") {
                Some(after) => after.find('/').map(|i| &after[i..]).unwrap_or(""),
                None => rest,
            };
            let p = percent_decode(p)
                .ok_or_else(|| invalid(PATH, format!("invalid value {path:?}: bad %-escape")))?;
            if p.is_empty() {
                return Err(invalid(
                    PATH,
                    format!("invalid value {path:?}: the file URL has no path"),
                ));
            }
            Ok(DiscoveryMethod::File {
                kube_config_path: PathBuf::from(p),
            })
        }
        Some(other) => Err(ConfigErrorKind::FileUrlScheme {
            scheme: other.to_string(),
        }),
    }
}

pub(super) fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

pub(super) fn normalize_cri_socket(
    s: &str,
    warnings: &mut Vec<String>,
) -> Result<String, ConfigErrorKind> {
    const PATH: &str = "nodeRegistration.criSocket";
    let socket = if s.contains("://") {
        s.to_string()
    } else {
        // kubeadm prepends the scheme with a deprecation warning rather than failing.
        warnings.push(format!(
            "{PATH} {s:?} has no URL scheme; using \"unix://{s}\" (endpoints without a scheme are deprecated — \
             please update the configuration)"
        ));
        format!("unix://{s}")
    };
    match socket.split_once("://") {
        Some(("unix", path)) if path.starts_with('/') => Ok(socket),
        Some(("unix", _)) => Err(invalid(
            PATH,
            format!("invalid value {socket:?}: path is not absolute"),
        )),
        Some((scheme, _)) => Err(invalid(
            PATH,
            format!("invalid value {socket:?}: URL scheme {scheme:?} is not supported"),
        )),
        None => Err(invalid(PATH, format!("invalid value {socket:?}"))),
    }
}

pub(super) fn normalize_taint(t: RawTaint, path: &str) -> Result<Taint, ConfigErrorKind> {
    let key = t.key.unwrap_or_default();
    if let Err(why) = check_qualified_name(&key) {
        return Err(invalid(
            format!("{path}.key"),
            format!("invalid value {key:?}: {why}"),
        ));
    }
    let value = t.value.unwrap_or_default();
    if !value.is_empty() && check_label_part(&value).is_err() {
        return Err(invalid(
            format!("{path}.value"),
            format!(
                "invalid value {value:?}: a taint value must be at most 63 characters of [A-Za-z0-9_.-], starting and \
                 ending with a letter or digit"
            ),
        ));
    }
    let effect = match t.effect.as_deref().unwrap_or("") {
        "NoSchedule" => TaintEffect::NoSchedule,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        other => {
            return Err(invalid(
                format!("{path}.effect"),
                format!(
                    "Unsupported value: {other:?}: supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\""
                ),
            ))
        }
    };
    Ok(Taint {
        key,
        value,
        effect,
        time_added: non_empty(t.time_added),
    })
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most 63 characters.
pub(super) fn check_label_part(s: &str) -> Result<(), &'static str> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 63 {
        return Err("must be 1 to 63 characters");
    }
    let inner = |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.');
    if !b.iter().all(inner)
        || !b[0].is_ascii_alphanumeric()
        || !b[b.len() - 1].is_ascii_alphanumeric()
    {
        return Err("must be [A-Za-z0-9_.-], starting and ending with a letter or digit");
    }
    Ok(())
}

/// A Kubernetes qualified name: `[prefix/]name`, the prefix a DNS subdomain.
pub(super) fn check_qualified_name(s: &str) -> Result<(), &'static str> {
    let name = match s.split_once('/') {
        Some((prefix, name)) => {
            let ok_prefix = !prefix.is_empty()
                && prefix.len() <= 253
                && prefix.split('.').all(|l| {
                    let b = l.as_bytes();
                    !b.is_empty()
                        && b.iter()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                        && b[0] != b'-'
                        && b[b.len() - 1] != b'-'
                });
            if !ok_prefix {
                return Err("the prefix before '/' must be a lower-case DNS subdomain");
            }
            name
        }
        None => s,
    };
    check_label_part(name).map_err(|_| {
        "a taint key must be a qualified name: an optional DNS subdomain prefix and '/', then at most 63 characters \
         of [A-Za-z0-9_.-], starting and ending with a letter or digit"
    })
}

pub(super) fn check_arg(
    name: Option<String>,
    value: String,
    path: &str,
) -> Result<(String, String), ConfigErrorKind> {
    let name = name.unwrap_or_default();
    if name.is_empty() {
        return Err(invalid(path, "argument has no name"));
    }
    if name.starts_with('-') {
        // kubeadm would render "----node-ip" and the kubelet would refuse it.
        return Err(invalid(
            path,
            format!(
                "argument name {name:?} must be given without leading dashes (kubeadm adds \"--\")"
            ),
        ));
    }
    if name.contains(['=', ' ', '\n', '\t']) {
        return Err(invalid(
            path,
            format!("argument name {name:?} must not contain '=' or whitespace"),
        ));
    }
    Ok((name, value))
}

pub(super) fn normalize_ignore_preflight(
    list: Vec<String>,
) -> Result<Vec<String>, ConfigErrorKind> {
    let mut out: Vec<String> = Vec::new();
    for item in list {
        let item = item.trim().to_ascii_lowercase();
        if !item.is_empty() && !out.contains(&item) {
            out.push(item);
        }
    }
    if out.len() > 1 && out.iter().any(|s| s == "all") {
        return Err(invalid(
            "nodeRegistration.ignorePreflightErrors",
            "don't specify \"all\" along with any other ignored preflight errors",
        ));
    }
    Ok(out)
}

pub(super) fn parse_duration(path: &str, s: &str) -> Result<Duration, ConfigErrorKind> {
    duration::parse(s).map_err(|source| ConfigErrorKind::InvalidDuration {
        path: path.into(),
        source,
    })
}

pub(super) fn normalize_timeouts(
    raw: &RawTimeouts,
    discovery_path: &str,
) -> Result<Timeouts, ConfigErrorKind> {
    let d = Timeouts::default();
    let one = |path: &str, v: &Option<String>, default: Duration| match non_empty(v.clone()) {
        Some(s) => parse_duration(path, &s),
        None => Ok(default),
    };
    Ok(Timeouts {
        control_plane_component_health_check: one(
            "timeouts.controlPlaneComponentHealthCheck",
            &raw.control_plane_component_health_check,
            d.control_plane_component_health_check,
        )?,
        kubelet_health_check: one(
            "timeouts.kubeletHealthCheck",
            &raw.kubelet_health_check,
            d.kubelet_health_check,
        )?,
        kubernetes_api_call: one(
            "timeouts.kubernetesAPICall",
            &raw.kubernetes_api_call,
            d.kubernetes_api_call,
        )?,
        etcd_api_call: one("timeouts.etcdAPICall", &raw.etcd_api_call, d.etcd_api_call)?,
        tls_bootstrap: one("timeouts.tlsBootstrap", &raw.tls_bootstrap, d.tls_bootstrap)?,
        discovery: one(discovery_path, &raw.discovery, d.discovery)?,
        upgrade_manifests: one(
            "timeouts.upgradeManifests",
            &raw.upgrade_manifests,
            d.upgrade_manifests,
        )?,
    })
}
