//! `kubejoin join`'s flags as the top layer of the one merge ([`crate::plan::merge`]): each flag
//! value is checked by its key's rule and becomes a value of a [`Source::Flag`] layer; a
//! `--config` file is read by the boot sources' own reader
//! ([`crate::source::load::config_file_layer`]) into the file layer below it; the image
//! defaults come last. [`Settings::to_plan`](crate::plan::merge::Settings) then makes the plan
//! with the rules every route shares. Only what no other source can say (`--root`, `--force`,
//! `--discovery-file-ca`, `--discovery-retry-interval`, `--keep-swap`,
//! `--control-plane-healthz-url`) is set on the plan afterwards.

use super::{args_err, JoinArgs, UsageError};
use crate::discovery::Mode;
use crate::fs::root::Root;
use crate::pki::pin::PinSet;
use crate::plan::build::{PlanError, SettingsError};
use crate::plan::control_plane::ControlPlaneError;
use crate::plan::endpoint::Endpoint;
use crate::plan::key::Key;
use crate::plan::merge::{merge, Layer, Source};
use crate::plan::node_name::NodeName;
use crate::plan::values::Values;
use crate::plan::JoinPlan;
use crate::time::duration;
use std::path::PathBuf;
use std::time::Duration;

/// The plan of a `join` whose discovery data is on the command line (or in `--config`).
pub(super) fn plan(a: JoinArgs) -> Result<JoinPlan, UsageError> {
    let root = a.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let flags = flag_values(&a)?;
    let mut layers = vec![Layer::new(Source::Flag, flags)];
    if let Some(path) = &a.config {
        let mut warnings = Vec::new();
        layers.push(crate::source::load::config_file_layer(
            path,
            path.clone(),
            None,
            &mut warnings,
        )?);
        for w in &warnings {
            crate::warn!("{w}");
        }
    }
    layers.push(Layer::new(Source::Default, Values::builtin_defaults()));
    // A config's `tokenFile`/`certificateKeyFile` name files of the node, as at boot.
    crate::source::load::read_token_files(&mut layers, &Root::new(&root))?;
    let settings = merge(&layers);
    for c in &settings.conflicts {
        crate::info!("flags over --config: {c}");
    }
    let mut plan = settings.to_plan(&root).map_err(|e| settings_error(e, &a))?;
    if plan.timeout.is_zero() {
        return Err(args_err("--timeout must be longer than 0"));
    }
    FlagsOnly::of(&a)?.apply(&mut plan);
    if let Some(cp) = &mut plan.control_plane {
        // The flag (or the key file's path) names where the key came from, as before the merge.
        if let (Some(k), Some((_, shown))) = (&settings.certificate_key, &a.certificate_key) {
            if k.source == Source::Flag {
                cp.key_source.clone_from(shown);
            }
        }
    }
    if let Some(u) = &a.healthz_url {
        let Some(cp) = &mut plan.control_plane else {
            return Err(ControlPlaneError::NotControlPlane {
                what: "--control-plane-healthz-url".into(),
            }
            .into());
        };
        if !u.starts_with("https://") {
            return Err(ControlPlaneError::HealthzUrl(u.clone()).into());
        }
        cp.healthz_url = Some(u.clone());
    }
    Ok(plan)
}

/// What only flags can say: set on the plan after the merge, on either route.
#[derive(Debug, Clone)]
pub struct FlagsOnly {
    pub force: bool,
    pub keep_swap: bool,
    /// `--discovery-retry-interval` (default 5s).
    pub retry_interval: Duration,
    /// `--discovery-file-ca`: the CA bundle of an `https://` discovery file.
    pub discovery_file_ca: Option<PathBuf>,
}

impl FlagsOnly {
    pub(super) fn of(a: &JoinArgs) -> Result<Self, UsageError> {
        Ok(Self {
            force: a.force,
            keep_swap: a.keep_swap,
            retry_interval: dur(
                "--discovery-retry-interval",
                a.retry_interval.as_deref(),
                Duration::from_secs(5),
            )?,
            discovery_file_ca: a.discovery_file_ca.clone(),
        })
    }

    /// Sets them on a plan made by the merge.
    pub fn apply(&self, plan: &mut JoinPlan) {
        plan.force |= self.force;
        plan.host.keep_swap |= self.keep_swap;
        plan.discovery.retry_interval = self.retry_interval;
        if let (Mode::Https { ca_file, .. }, Some(ca)) =
            (&mut plan.discovery.mode, &self.discovery_file_ca)
        {
            *ca_file = Some(ca.clone());
        }
    }
}

/// A merged-settings error as the command line reports it: a value of the flags (or a missing
/// piece when the flags were the only source) in the flags' own words; anything involving
/// `--config` names its layer.
fn settings_error(e: SettingsError, a: &JoinArgs) -> UsageError {
    let plan_error = |e: PlanError| match e {
        PlanError::ControlPlane(c) => UsageError::ControlPlane(c),
        e => UsageError::Plan(e),
    };
    match e {
        SettingsError::Invalid {
            origin: Source::Flag,
            error,
            ..
        } => plan_error(error),
        SettingsError::Missing { error, .. } if a.config.is_none() => plan_error(error),
        SettingsError::BothDiscovery { .. } if a.config.is_none() => {
            UsageError::Plan(PlanError::BothDiscovery)
        }
        e => UsageError::Settings(e),
    }
}

fn dur(flag: &'static str, s: Option<&str>, default: Duration) -> Result<Duration, UsageError> {
    match s {
        None => Ok(default),
        Some(s) => duration::parse(s).map_err(|source| UsageError::Duration { flag, source }),
    }
}

fn some_dur(flag: &'static str, s: Option<&str>) -> Result<Option<Duration>, UsageError> {
    s.map(|s| duration::parse(s).map_err(|source| UsageError::Duration { flag, source }))
        .transpose()
}

/// The flags as one layer's values, each checked by its key's rule.
pub(super) fn flag_values(a: &JoinArgs) -> Result<Values, UsageError> {
    let mut v = Values::default();
    // Token discovery flags and a discovery file on one command line: which was meant is not
    // ours to guess (a `--token` alone may stay: it is then the TLS bootstrap token).
    if a.discovery_file.is_some()
        && (a.discovery_token.is_some() || !a.endpoints.is_empty() || !a.pins.is_empty())
    {
        return Err(PlanError::BothDiscovery.into());
    }
    if a.endpoints.len() > 1 {
        crate::warn!(
            "more than one API server endpoint given; using the first, {:?}",
            a.endpoints[0]
        );
    }
    if let Some(e) = a.endpoints.first() {
        v.endpoint = Some(Endpoint::parse(e).map_err(PlanError::Endpoint)?.to_string());
    }
    v.token = a.discovery_token.clone().or_else(|| a.token.clone());
    v.tls_bootstrap_token = a.tls_bootstrap_token.clone().or_else(|| a.token.clone());
    let pins = PinSet::parse(&a.pins).map_err(PlanError::Pin)?;
    if !pins.is_empty() {
        v.ca_cert_hashes = Some(pins.pins().to_vec());
    }
    v.unsafe_skip_ca_verification = a.unsafe_skip.then_some(true);
    v.discovery_file.clone_from(&a.discovery_file);
    if let Some(n) = &a.node_name {
        let n = n.to_ascii_lowercase();
        NodeName::parse(&n).map_err(UsageError::NodeName)?;
        v.node_name = Some(n);
    }
    if let Some(c) = &a.cri_socket {
        if !c.contains("://") {
            crate::warn!("--cri-socket {c:?} has no URL scheme; using unix://{c}");
        }
        v.cri_socket = Some(c.clone());
    }
    for kv in &a.kubelet_args {
        let (k, val) = kv
            .split_once('=')
            .ok_or_else(|| args_err(format!("--kubelet-arg {kv:?} is not name=value")))?;
        let k = k.trim_start_matches('-');
        if k.is_empty() {
            return Err(args_err(format!("--kubelet-arg {kv:?} has an empty name")));
        }
        v.kubelet_args.push((k.to_string(), val.to_string()));
    }
    for m in &a.modules {
        v.set(Key::Modules, Some(m))
            .map_err(|e| args_err(format!("--module {m:?}: {e}")))?;
    }
    for (k, val) in &a.sysctls {
        v.set(Key::Sysctl, Some(&format!("{k}={val}")))
            .map_err(|e| args_err(format!("--sysctl {k}={val:?}: {e}")))?;
    }
    v.ignore_preflight_errors =
        (!a.ignore_preflight.is_empty()).then(|| a.ignore_preflight.clone());
    v.skip_phases = (!a.skip_phases.is_empty()).then(|| a.skip_phases.clone());
    v.handoff = match a.handoff.as_deref() {
        None => None,
        Some(h @ ("exec" | "none")) => Some(h.to_string()),
        Some(other) => {
            return Err(args_err(format!(
                "--handoff {other:?}: expected exec or none"
            )))
        }
    };
    v.kubelet_path = a.kubelet_path.as_ref().map(|p| p.display().to_string());
    v.discovery_timeout = some_dur("--discovery-timeout", a.discovery_timeout.as_deref())?;
    v.tls_bootstrap_timeout = some_dur(
        "--tls-bootstrap-timeout",
        a.tls_bootstrap_timeout.as_deref(),
    )?;
    v.timeout = some_dur("--timeout", a.timeout.as_deref())?;
    for n in &a.ntp {
        v.set(Key::Ntp, Some(n))
            .map_err(|e| args_err(format!("--ntp {n:?}: {e}")))?;
    }
    v.control_plane = a.control_plane.then_some(true);
    v.certificate_key = a.certificate_key.as_ref().map(|(k, _)| k.clone());
    if let Some(addr) = &a.advertise_address {
        let ip = addr
            .trim()
            .parse()
            .map_err(|_| ControlPlaneError::Advertise(addr.clone()))?;
        v.advertise_address = Some(ip);
    }
    v.bind_port = a.bind_port;
    v.dry_run = a.dry_run.then_some(true);
    Ok(v)
}
