//! Config documents as layers: the one reader of config files (`/etc/kubejoin.yaml`,
//! `kubejoin.config=`, `kubejoin join --config`, user-data and config drives alike), the
//! translation of a parsed [`ConfigFile`] into a layer's values, the config pin, and the
//! token and key files a layer names.

use super::*;

/// Reads every layer's `token-file` (under `root`) into its token. A layer that gives both a
/// token and a token file is refused: which one was meant is not ours to guess.
pub fn read_token_files(layers: &mut [Layer], root: &Root) -> Result<(), LoadError> {
    for layer in layers.iter_mut() {
        let Some(path) = layer.values.token_file.clone() else {
            continue;
        };
        if layer.values.token.is_some() {
            return Err(LoadError::TokenTwice {
                origin: layer.source.clone(),
            });
        }
        let shown = PathBuf::from(&path);
        let real = root.join(&path).map_err(|e| {
            LoadError::TokenFile(crate::kube::token::TokenFileError::Read {
                path: shown.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            })
        })?;
        let t = crate::kube::token::read_token_file(&real, &shown)?;
        layer.values.token = Some(t);
    }
    for layer in layers.iter_mut() {
        let Some(path) = layer.values.certificate_key_file.clone() else {
            continue;
        };
        if layer.values.certificate_key.is_some() {
            return Err(LoadError::KeyTwice {
                origin: layer.source.clone(),
            });
        }
        let shown = PathBuf::from(&path);
        let real = root.join(&path).map_err(|e| {
            LoadError::KeyFile(crate::plan::certificate_key::KeyFileError::Read {
                path: shown.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            })
        })?;
        layer.values.certificate_key =
            Some(crate::plan::certificate_key::read_key_file(&real, &shown)?);
    }
    Ok(())
}

/// The boot-time warning for a certificate key taken from the kernel command line.
pub const CMDLINE_CERTIFICATE_KEY_WARNING: &str = "the certificate key comes from the kernel command line \
     (kubejoin.certificate-key=): /proc/cmdline is world-readable and not namespaced, so every local user and \
     every container on this node can read it for the node's whole uptime, and with a bootstrap token it \
     decrypts the cluster's CA keys from kube-system/kubeadm-certs (for the 2 hours the Secret lives); give it \
     with kubejoin.certificate-key-file= naming a chmod-600 file in the initramfs, or in a config drive or \
     cloud user-data";

/// The boot-time warning for a token taken from the kernel command line (`kubejoin.token=`).
pub const CMDLINE_TOKEN_WARNING: &str = "the bootstrap token comes from the kernel command line \
     (kubejoin.token=): /proc/cmdline is world-readable and not namespaced, so every local user and \
     every container on this node can read it for the node's whole uptime, and with kubeadm's \
     default auto-approval that token can obtain a client certificate for any node name until it \
     expires; give it from a safer source: a config drive or cloud user-data, kubejoin.config= \
     with kubejoin.config.sha256=, or kubejoin.token-file= naming a chmod-600 file in the \
     initramfs, and keep its TTL short";

/// The values a parsed config file sets. joinconfig fills defaults in (timeouts, the TLS bootstrap
/// token in token mode); values equal to those defaults are left unset here so they neither
/// override the defaults layer nor show up as conflicts with a higher layer.
pub fn values_from_config_file(cf: &ConfigFile) -> (Values, Vec<String>) {
    let mut v = Values::default();
    if let Some(j) = &cf.join {
        match &j.discovery.method {
            DiscoveryMethod::Token {
                api_server_endpoint,
                token,
                ca_cert_hashes,
                unsafe_skip_ca_verification,
            } => {
                v.endpoint = Some(api_server_endpoint.clone());
                v.token = Some(token.clone());
                if !ca_cert_hashes.is_empty() {
                    v.ca_cert_hashes = Some(ca_cert_hashes.pins().to_vec());
                }
                if *unsafe_skip_ca_verification {
                    v.unsafe_skip_ca_verification = Some(true);
                }
                if let Some(t) = &j.discovery.tls_bootstrap_token {
                    if !t.ct_eq(token) {
                        v.tls_bootstrap_token = Some(t.clone());
                    }
                }
            }
            DiscoveryMethod::File { kube_config_path } => {
                v.discovery_file = Some(kube_config_path.display().to_string());
                v.tls_bootstrap_token = j.discovery.tls_bootstrap_token.clone();
            }
            DiscoveryMethod::Https { url } => {
                v.discovery_file = Some(url.clone());
                v.tls_bootstrap_token = j.discovery.tls_bootstrap_token.clone();
            }
        }
        let nr = &j.node_registration;
        v.node_name = nr.name.as_ref().map(|n| n.as_str().to_string());
        v.cri_socket = nr.cri_socket.clone();
        v.kubelet_args = nr.kubelet_extra_args.clone();
        let nonempty = |l: &Vec<String>| (!l.is_empty()).then(|| l.clone());
        let taints: Vec<String> = nr.taints.iter().map(ToString::to_string).collect();
        v.taints = nonempty(&taints);
        v.ignore_preflight_errors = nonempty(&nr.ignore_preflight_errors);
        v.skip_phases = nonempty(&j.skip_phases);
        v.dry_run = j.dry_run.then_some(true);
        let defaults = joinconfig::Timeouts::default();
        if j.timeouts.discovery != defaults.discovery {
            v.discovery_timeout = Some(j.timeouts.discovery);
        }
        if j.timeouts.tls_bootstrap != defaults.tls_bootstrap {
            v.tls_bootstrap_timeout = Some(j.timeouts.tls_bootstrap);
        }
        if let Some(cp) = &j.control_plane {
            v.control_plane = Some(true);
            v.advertise_address = cp.advertise_address;
            v.bind_port = cp.bind_port;
            v.certificate_key = cp.certificate_key.clone();
        }
    }
    if let Some(k) = &cf.kubejoin {
        if !k.modules.is_empty() {
            v.modules = Some(k.modules.clone());
        }
        v.sysctls.extend(k.sysctls.iter().cloned());
        if let Some(h) = k.handoff {
            v.handoff = Some(match h {
                HandoffMode::Exec => "exec".into(),
                HandoffMode::None => "none".into(),
            });
        }
        v.kubelet_path = k.kubelet_path.as_ref().map(|p| p.display().to_string());
        v.token_file = k.token_file.as_ref().map(|p| p.display().to_string());
        v.on_failure = k.on_failure.map(|o| o.name().to_string());
        // `timeout` is the overall deadline (as `kubejoin.timeout`); the CSR wait's bound wins
        // over the JoinConfiguration's (joinconfig docs).
        v.timeout = k.timeout;
        v.tls_bootstrap_timeout = k.tls_bootstrap_timeout.or(v.tls_bootstrap_timeout);
        v.kubelet_args.extend(k.kubelet_args.iter().cloned());
        v.network = k.network.clone().map(NetworkSpec::Config);
        v.ntp = (!k.ntp.is_empty()).then(|| k.ntp.clone());
    }
    (v, cf.warnings.clone())
}

/// Checks the pin (if any) against the first config document; later documents are not pinned.
pub(super) fn check_pin(
    pin: Option<ConfigPin>,
    used: &mut bool,
    what: &str,
    bytes: &[u8],
) -> Result<(), LoadError> {
    if let Some(p) = pin {
        if !*used {
            *used = true;
            p.verify(what, bytes)?;
        }
    }
    Ok(())
}

/// A config document (file or user-data) as a layer. User-data bytes are only ever held in
/// memory.
pub(super) fn document_layer(
    bytes: &[u8],
    origin: Source,
    location: &str,
    warnings: &mut Vec<String>,
) -> Result<Layer, LoadError> {
    let doc_err = |error| LoadError::Document {
        origin: origin.clone(),
        location: location.to_string(),
        error,
    };
    let decoded = userdata::decode(bytes).map_err(doc_err)?;
    match userdata::parse(&decoded).map_err(doc_err)? {
        Document::Kubejoin {
            values,
            warnings: w,
        } => {
            warnings.extend(w.into_iter().map(|w| format!("{origin}: {w}")));
            Ok(Layer::new(origin, values))
        }
        Document::Config(text) => {
            let shown = match &origin {
                Source::File(_) => origin.to_string(),
                _ => format!("{origin} ({location})"),
            };
            let cf = joinconfig::parse(text.as_bytes(), &shown).map_err(LoadError::Config)?;
            let (values, w) = values_from_config_file(&cf);
            warnings.extend(w.into_iter().map(|w| format!("{shown}: {w}")));
            Ok(Layer::new(origin, values))
        }
    }
}

/// A local config file (`real` on this machine, shown as `shown`) as a file layer: the one
/// reader of config files, for `/etc/kubejoin.yaml` at boot and `kubejoin join --config` alike.
/// `pin`, when given and not yet used, is checked against the file's bytes first.
pub fn config_file_layer(
    real: &Path,
    shown: PathBuf,
    pin: Option<(ConfigPin, &mut bool)>,
    warnings: &mut Vec<String>,
) -> Result<Layer, LoadError> {
    let bytes = read_config(real)?;
    let what = shown.display().to_string();
    if let Some((pin, used)) = pin {
        check_pin(Some(pin), used, &what, &bytes)?;
    }
    document_layer(&bytes, Source::File(shown), &what, warnings)
}

pub(super) fn read_config(path: &Path) -> Result<Vec<u8>, LoadError> {
    let err = |source| LoadError::ReadConfig {
        path: path.to_path_buf(),
        source,
    };
    let f = std::fs::File::open(path).map_err(err)?;
    let mut buf = Vec::new();
    f.take(MAX_USER_DATA as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(err)?;
    if buf.len() > MAX_USER_DATA {
        return Err(LoadError::ConfigTooLarge {
            path: path.to_path_buf(),
            max: MAX_USER_DATA,
        });
    }
    Ok(buf)
}
