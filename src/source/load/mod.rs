//! Gathering one boot's join data: the kernel command line, a local config file, an OpenStack
//! config drive, a config URL and the platform's metadata, each read into a layer
//! ([`crate::plan::values::Values`]) and merged by [`crate::plan::merge`].

use crate::error::{Class, Classify};
use crate::fs::root::Root;
use crate::host::filesystems::FsModules;
use crate::plan::config_pin::{ConfigPin, ConfigPinMismatch};
use crate::plan::key::Key;
use crate::plan::merge::{merge, Layer, Settings, Source};
use crate::plan::network::NetworkSpec;
use crate::plan::values::Values;
use crate::plan::HandoffMode;
use crate::source::cmdline::{Cmdline, CmdlineError};
use crate::source::joinconfig::{self, ConfigError, ConfigFile, DiscoveryMethod};
use crate::source::metadata::http::{HttpTransport, Retry, Timeouts, Tls, Transport};
use crate::source::metadata::openstack::{self, find_config_drive, DriveData};
use crate::source::metadata::recorded::RecordedMetadata;
use crate::source::metadata::url::{UrlProvider, Vars};
use crate::source::metadata::userdata::{self, Document, UserDataError};
use crate::source::metadata::{
    self, dmi::Dmi, Context, Endpoints, MetadataError, Platform, Provider, UserData, MAX_USER_DATA,
};
use crate::sys::drive::{Drive, RealDrive};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod document;

use document::{check_pin, document_layer, read_config};
pub use document::{
    config_file_layer, read_token_files, values_from_config_file, CMDLINE_CERTIFICATE_KEY_WARNING,
    CMDLINE_TOKEN_WARNING,
};

/// The local config file read when neither `--config` nor `kubejoin.config=` names one.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/kubejoin.yaml";

/// Where metadata comes from.
// Built once per run: the size difference between the variants does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum MetadataAccess {
    /// The real services. `tls` replaces the system trust store for `https://` (tests).
    Live {
        endpoints: Endpoints,
        timeouts: Timeouts,
        retry: Retry,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
    /// A recorded boot (`--metadata-dir DIR`): see [`RecordedMetadata`] for the layout.
    Recorded(PathBuf),
}

impl MetadataAccess {
    /// The real services at their real addresses, default timeouts and retries.
    pub fn live() -> Self {
        MetadataAccess::Live {
            endpoints: Endpoints::default(),
            timeouts: Timeouts::default(),
            retry: Retry::default(),
            tls: None,
        }
    }
}

/// Everything [`load`] needs.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The node's filesystem (`/proc/cmdline`, `/sys/class/dmi/id`, `/etc/kubejoin.yaml`, the
    /// config drive's `/dev/disk/by-label/config-2` or `/sys/class/block` are read under it).
    pub root: Root,
    /// `--cmdline-file FILE`: a recorded command line instead of `/proc/cmdline`.
    pub cmdline_file: Option<PathBuf>,
    /// `--config FILE` (a path on this machine, not under the root). Without it the default
    /// [`DEFAULT_CONFIG_FILE`] is read under the root when it exists.
    pub config_file: Option<PathBuf>,
    pub metadata: MetadataAccess,
    /// Mounts an OpenStack config drive; without it the drive is not read (a warning says so)
    /// and the metadata service is used.
    pub config_drive: Option<Arc<dyn Drive>>,
    /// Loads the drive's filesystem module before mounting it, when the kernel does not have
    /// the type (PID 1: an initramfs has no modprobe the kernel could ask).
    pub fs_modules: Option<FsModules>,
    /// `kubejoin join`'s flags on the boot sources: the top layer ([`Source::Flag`]).
    pub flags: Option<Values>,
    /// The image defaults (lowest layer).
    pub defaults: Values,
    /// NTP servers of the DHCP lease (option 42), once PID 1 has brought the network up: a
    /// layer below metadata, above the platform's time source.
    pub dhcp_ntp: Vec<String>,
}

impl LoadOptions {
    /// Options that never mount anything (tests, replays, roots other than this machine's).
    pub fn new(root: Root) -> Self {
        Self {
            root,
            cmdline_file: None,
            config_drive: None,
            fs_modules: None,
            config_file: None,
            metadata: MetadataAccess::live(),
            flags: None,
            defaults: Values::builtin_defaults(),
            dhcp_ntp: Vec::new(),
        }
    }

    /// The options of a live boot of this machine: like [`LoadOptions::new`], plus the real
    /// config-drive mount when `root` is this machine's `/` (mounting a device found under
    /// another root would mount the wrong machine's disk).
    pub fn live(root: Root, drive: Arc<dyn Drive>) -> Self {
        let drive: Option<Arc<dyn Drive>> = root.is_host().then_some(drive);
        Self {
            config_drive: drive,
            ..Self::new(root)
        }
    }
}

impl LoadOptions {
    /// Loads a config drive's filesystem module through `fs` when needed.
    pub fn with_fs_modules(mut self, fs: FsModules) -> Self {
        self.fs_modules = Some(fs);
        self
    }
}

/// The result of [`load`].
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    /// The whole command line (other stages read `ip=`, `root=`, module parameters…).
    pub cmdline: Cmdline,
    /// The metadata platform in use, if any.
    pub platform: Option<Platform>,
}

/// Gathering the layers failed. Each names what and where; none carries a token secret.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Cmdline(#[from] CmdlineError),
    #[error("reading the config file {path}")]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the config file {path} is larger than {max} bytes")]
    ConfigTooLarge { path: PathBuf, max: usize },
    #[error("config from {origin} ({location}): {error}")]
    Document {
        origin: Source,
        location: String,
        error: UserDataError,
    },
    /// joinconfig's error; its text starts with the source and location.
    #[error("{0}")]
    Config(ConfigError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Pin(#[from] ConfigPinMismatch),
    #[error("kubejoin.config.sha256 is set but no config document was loaded to check it against")]
    PinUnused,
    #[error(
        "kubejoin.config=metadata, but no metadata platform is known (DMI did not identify one)"
    )]
    NoPlatform,
    /// `token-file` unreadable, readable by others, or not one token.
    #[error(transparent)]
    TokenFile(#[from] crate::kube::token::TokenFileError),
    #[error("{origin} gives both token and token-file: give the token once, preferably by file")]
    TokenTwice { origin: Source },
    /// `certificate-key-file` unreadable, readable by others, or not one key.
    #[error(transparent)]
    KeyFile(#[from] crate::plan::certificate_key::KeyFileError),
    #[error(
        "{origin} gives both certificate-key and certificate-key-file: give the key once, preferably by file"
    )]
    KeyTwice { origin: Source },
}

impl Classify for LoadError {
    fn class(&self) -> Class {
        match self {
            LoadError::Cmdline(e) => e.class(),
            LoadError::ReadConfig { .. } => Class::Other,
            LoadError::Config(e) => e.class(),
            LoadError::Metadata(e) => e.class(),
            LoadError::Pin(_) => Class::Trust,
            LoadError::ConfigTooLarge { .. }
            | LoadError::Document { .. }
            | LoadError::PinUnused
            | LoadError::NoPlatform
            | LoadError::TokenFile(_)
            | LoadError::TokenTwice { .. }
            | LoadError::KeyFile(_)
            | LoadError::KeyTwice { .. } => Class::Usage,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            LoadError::Cmdline(e) => e.hint(),
            LoadError::Config(e) => e.hint(),
            LoadError::Metadata(e) => e.hint(),
            LoadError::Pin(_) => Some(
                "the config changed since it was pinned: compare `sha256sum` of the document you meant to serve \
                 with kubejoin.config.sha256, and do not join until they match"
                    .into(),
            ),
            LoadError::PinUnused => Some(
                "add kubejoin.config=<path|https://URL|metadata> naming the document the hash pins".into(),
            ),
            LoadError::NoPlatform => Some(format!(
                "set kubejoin.platform to one of {}",
                Platform::NAMED.iter().map(|p| p.id()).collect::<Vec<_>>().join(", ")
            )),
            _ => None,
        }
    }
}

/// The platform: DMI under the root, else a config drive; for a recorded boot, else the
/// recording's only platform.
fn detect_platform(opts: &LoadOptions) -> Option<Platform> {
    if let Some(p) = metadata::detect(&Dmi::from_root(&opts.root)) {
        return Some(p);
    }
    // As cloud-init's ds-identify: a filesystem labelled config-2 means OpenStack, whatever the
    // SMBIOS says (some OpenStack clouds run on hardware or hypervisors with their own vendor
    // strings). Only where the drive could be read.
    if let Some(drive) = &opts.config_drive {
        if matches!(opts.metadata, MetadataAccess::Live { .. })
            && find_config_drive(&opts.root, &**drive).is_some()
        {
            return Some(Platform::OpenStack);
        }
    }
    let MetadataAccess::Recorded(dir) = &opts.metadata else {
        return None;
    };
    let mut found: Vec<Platform> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(Platform::parse))
        .filter(|p| *p != Platform::Url)
        .collect();
    found.sort();
    match found.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// Builds providers for one boot (transport per platform).
struct Providers<'a> {
    opts: &'a LoadOptions,
}

impl Providers<'_> {
    fn transport(
        &self,
        platform: Platform,
        https: bool,
    ) -> Result<(Arc<dyn Transport>, Endpoints, Retry), MetadataError> {
        match &self.opts.metadata {
            MetadataAccess::Live {
                endpoints,
                timeouts,
                retry,
                tls,
            } => {
                let tls = match (https, tls) {
                    (false, _) => Tls::Disabled,
                    (true, Some(cfg)) => Tls::Config(cfg.clone()),
                    (true, None) => Tls::NativeRoots,
                };
                let t =
                    HttpTransport::new(*timeouts, tls).map_err(|source| MetadataError::Tls {
                        provider: platform,
                        source: Box::new(source),
                    })?;
                Ok((Arc::new(t), endpoints.clone(), retry.clone()))
            }
            MetadataAccess::Recorded(dir) => Ok((
                Arc::new(RecordedMetadata::new(dir.join(platform.id()))),
                Endpoints::default(),
                Retry::none(),
            )),
        }
    }

    /// The provider of `platform`; `drive` is what was read from an OpenStack config drive.
    fn provider(
        &self,
        platform: Platform,
        drive: Option<Arc<DriveData>>,
    ) -> Result<Box<dyn Provider>, MetadataError> {
        let (transport, endpoints, retry) =
            self.transport(platform, platform == Platform::Equinix)?;
        let ctx = Context {
            transport,
            endpoints,
            retry,
            config_drive: drive.filter(|_| platform == Platform::OpenStack),
        };
        metadata::provider(platform, &ctx).ok_or(MetadataError::Client {
            provider: platform,
            reason: "no provider is registered for this platform".into(),
        })
    }

    fn url(&self, template: &str, pinned: bool) -> Result<UrlProvider, MetadataError> {
        let (transport, _, retry) =
            self.transport(Platform::Url, template.starts_with("https://"))?;
        UrlProvider::new(
            template,
            pinned,
            &Vars::from_root(&self.opts.root),
            transport,
            retry,
        )
    }
}

/// The OpenStack config drive, read into memory and unmounted again, when this is a live boot
/// on OpenStack that has one. Failures are warnings: the metadata service is the fallback.
fn read_drive(opts: &LoadOptions, warnings: &mut Vec<String>) -> Option<Arc<DriveData>> {
    if !matches!(opts.metadata, MetadataAccess::Live { .. }) {
        return None;
    }
    // Without a drive seam (a root that is not this machine's `/`) the probe only reads under
    // that root, to say a drive was found but not mounted.
    let probe: &dyn Drive = opts.config_drive.as_deref().unwrap_or(&RealDrive);
    let (device, kind) = find_config_drive(&opts.root, probe)?;
    let Some(sys) = &opts.config_drive else {
        warnings.push(format!(
            "found the config drive {} but cannot mount it here; using the metadata service",
            device.display()
        ));
        return None;
    };
    let dir = match opts.root.join(openstack::MOUNT_DIR) {
        Ok(d) => d,
        Err(e) => {
            warnings.push(format!("config drive {}: {e}", device.display()));
            return None;
        }
    };
    match openstack::read_config_drive(&**sys, &device, &dir, kind, opts.fs_modules.as_ref()) {
        Ok(d) => Some(Arc::new(d)),
        Err(e) => {
            let chain = crate::error::Report(&e, None).to_string();
            warnings.push(format!(
                "{}; using the metadata service",
                chain.trim_start_matches("error: ").replace('\n', " ")
            ));
            None
        }
    }
}

fn is_no_user_data(e: &MetadataError) -> bool {
    matches!(
        e,
        MetadataError::NoUserData { .. }
            | MetadataError::EmptyUserData { .. }
            | MetadataError::NoUserDataFile { .. }
    )
}

/// The sources that need no network, read before the network comes up (PID-1 mode brings the
/// network up from them): the kernel command line, a local config file, and an OpenStack config
/// drive. Made by [`load_local`], finished by [`load_remote`].
#[derive(Debug, Clone)]
pub struct Local {
    cmdline: Cmdline,
    config: Option<String>,
    pin: Option<ConfigPin>,
    pin_used: bool,
    layers: Vec<Layer>,
    warnings: Vec<String>,
    platform: Option<Platform>,
    explicit_platform: bool,
    drive: Option<Arc<DriveData>>,
    /// The platform's user-data was already read (from the config drive).
    user_data_read: bool,
}

impl Local {
    /// The whole command line.
    pub fn cmdline(&self) -> &Cmdline {
        &self.cmdline
    }

    /// The local layers merged (no defaults, no metadata service): what the network stage
    /// needs.
    pub fn settings(&self) -> Settings {
        let mut s = merge(&self.layers);
        s.warnings = self.warnings.clone();
        s
    }

    /// The metadata platform in use, if any.
    pub fn platform(&self) -> Option<Platform> {
        self.platform
    }

    /// Whether an OpenStack config drive was read.
    pub fn has_config_drive(&self) -> bool {
        self.drive.is_some()
    }
}

/// The kernel command line's network parameters (`ip=`), as a network description.
fn cmdline_network(cmdline: &Cmdline) -> Option<NetworkSpec> {
    let ip: Vec<String> = cmdline
        .all("ip")
        .map(|p| match &p.value {
            Some(v) => format!("ip={v}"),
            None => "ip".to_string(),
        })
        .collect();
    (!ip.is_empty()).then_some(NetworkSpec::Cmdline(ip))
}

/// The config drive's user-data as a layer. `required`: a drive without user-data is an error
/// (nothing else says how to join), else a warning.
fn drive_layer(
    drive: &DriveData,
    required: bool,
    pin: Option<ConfigPin>,
    pin_used: &mut bool,
    layers: &mut Vec<Layer>,
    warnings: &mut Vec<String>,
) -> Result<(), LoadError> {
    match drive.user_data() {
        Ok(ud) => {
            check_pin(pin, pin_used, &ud.location, &ud.bytes)?;
            layers.push(document_layer(
                &ud.bytes,
                Source::Metadata(Platform::OpenStack),
                &ud.location,
                warnings,
            )?);
        }
        Err(e) if !required && is_no_user_data(&e) => {
            warnings.push(format!("{e}; using the other sources"));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// Reads the local sources (see [`Local`]; the rules are [`load`]'s). Nothing here uses the
/// network.
pub fn load_local(opts: &LoadOptions) -> Result<Local, LoadError> {
    let cmdline = match &opts.cmdline_file {
        Some(p) => Cmdline::read_file(p)?,
        None => Cmdline::read(&opts.root)?,
    };
    let kj = cmdline.kubejoin()?;
    let mut warnings: Vec<String> = kj
        .warnings
        .iter()
        .map(|w| format!("cmdline: {w}"))
        .collect();
    let mut cmd = kj.values;
    cmd.network = cmdline_network(&cmdline);
    let pin = cmd.config_sha256;
    let mut pin_used = false;
    let mut layers = vec![Layer::new(Source::Cmdline, cmd.clone())];

    let explicit_platform = cmd
        .platform
        .as_deref()
        .filter(|p| *p != "none")
        .and_then(Platform::parse);
    let platform = match cmd.platform.as_deref() {
        Some("none") => None,
        Some(_) => explicit_platform,
        None => detect_platform(opts),
    };
    let drive = match platform {
        Some(Platform::OpenStack) => read_drive(opts, &mut warnings),
        _ => None,
    };
    let mut user_data_read = false;

    match cmd.config.as_deref() {
        Some(path) if path.starts_with('/') => {
            let real = opts.root.join(path).map_err(|e| LoadError::ReadConfig {
                path: PathBuf::from(path),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            })?;
            let bytes = read_config(&real)?;
            check_pin(pin, &mut pin_used, path, &bytes)?;
            layers.push(document_layer(
                &bytes,
                Source::File(PathBuf::from(path)),
                path,
                &mut warnings,
            )?);
        }
        // A URL is fetched once the network is up.
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {}
        Some(_) => {
            if platform.is_none() {
                return Err(LoadError::NoPlatform);
            }
            if let Some(d) = &drive {
                drive_layer(d, true, pin, &mut pin_used, &mut layers, &mut warnings)?;
                user_data_read = true;
            }
        }
        None => {
            let local = match &opts.config_file {
                Some(p) => Some((p.clone(), p.clone())),
                None => opts
                    .root
                    .join(DEFAULT_CONFIG_FILE)
                    .ok()
                    .filter(|p| p.exists())
                    .map(|real| (real, PathBuf::from(DEFAULT_CONFIG_FILE))),
            };
            if let Some((real, shown)) = local {
                layers.push(config_file_layer(
                    &real,
                    shown,
                    pin.map(|p| (p, &mut pin_used)),
                    &mut warnings,
                )?);
            }
            let has_discovery = layers.iter().any(|l| l.values.has_discovery());
            if let Some(d) = &drive {
                if explicit_platform.is_some() || !has_discovery {
                    drive_layer(
                        d,
                        !has_discovery,
                        pin,
                        &mut pin_used,
                        &mut layers,
                        &mut warnings,
                    )?;
                }
                // The drive answered (or had nothing): the metadata service is not asked.
                user_data_read = true;
            }
        }
    }
    Ok(Local {
        cmdline,
        config: cmd.config.clone(),
        pin,
        pin_used,
        layers,
        warnings,
        platform,
        explicit_platform: explicit_platform.is_some(),
        drive,
        user_data_read,
    })
}

/// Finishes what [`load_local`] started, once the network is up: a config URL, the platform's
/// user-data from its metadata service, the node name and address the provider reports; then
/// the image defaults and the merge.
pub async fn load_remote(opts: &LoadOptions, local: Local) -> Result<Loaded, LoadError> {
    let Local {
        cmdline,
        config,
        pin,
        mut pin_used,
        mut layers,
        mut warnings,
        platform,
        explicit_platform,
        drive,
        user_data_read,
    } = local;
    let providers = Providers { opts };
    let mut provider: Option<Box<dyn Provider>> = None;

    match config.as_deref() {
        Some(path) if path.starts_with('/') => {}
        Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
            let p = providers.url(url, pin.is_some())?;
            let ud = p.user_data().await?;
            check_pin(pin, &mut pin_used, &ud.location, &ud.bytes)?;
            layers.push(document_layer(
                &ud.bytes,
                Source::Metadata(Platform::Url),
                &ud.location,
                &mut warnings,
            )?);
        }
        Some(_) if !user_data_read => {
            let plat = platform.ok_or(LoadError::NoPlatform)?;
            let p = provider.insert(providers.provider(plat, drive.clone())?);
            let ud: UserData = p.user_data().await?;
            check_pin(pin, &mut pin_used, &ud.location, &ud.bytes)?;
            layers.push(document_layer(
                &ud.bytes,
                Source::Metadata(plat),
                &ud.location,
                &mut warnings,
            )?);
        }
        Some(_) => {}
        None if user_data_read => {}
        None => {
            let has_discovery = layers.iter().any(|l| l.values.has_discovery());
            if let Some(plat) = platform {
                if explicit_platform || !has_discovery {
                    let p = provider.insert(providers.provider(plat, drive.clone())?);
                    match p.user_data().await {
                        Ok(ud) => {
                            check_pin(pin, &mut pin_used, &ud.location, &ud.bytes)?;
                            layers.push(document_layer(
                                &ud.bytes,
                                Source::Metadata(plat),
                                &ud.location,
                                &mut warnings,
                            )?);
                        }
                        Err(e) if has_discovery && is_no_user_data(&e) => {
                            warnings.push(format!("{e}; using the other sources"));
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
        }
    }
    if pin.is_some() && !pin_used {
        return Err(LoadError::PinUnused);
    }

    // The provider fills in the node name and address nobody gave.
    if let Some(plat) = platform {
        let so_far = merge(&layers);
        if so_far.node_name.is_none() || so_far.node_ip.is_none() {
            let p = match provider.take() {
                Some(p) => Ok(p),
                None => providers.provider(plat, drive.clone()),
            };
            let facts = match p {
                Ok(p) => p.node_facts().await,
                Err(e) => Err(e),
            };
            match facts {
                Ok(f) => {
                    let mut v = Values::default();
                    if so_far.node_name.is_none() {
                        if let Some(h) = &f.hostname {
                            if let Err(e) = v.set(Key::NodeName, Some(h)) {
                                warnings.push(format!("metadata:{plat}: not using the hostname {h:?} as node name: {e}"));
                            }
                        }
                    }
                    if so_far.node_ip.is_none() {
                        v.node_ip = f.node_ip();
                    }
                    layers.push(Layer::new(Source::Metadata(plat), v));
                }
                Err(e) => warnings.push(format!("node name and address from metadata: {e}")),
            }
        }
    }

    // Time sources below every layer a person wrote: the lease's, then the platform's.
    if !opts.dhcp_ntp.is_empty() {
        let mut v = Values::default();
        for n in &opts.dhcp_ntp {
            if let Err(e) = v.set(Key::Ntp, Some(n)) {
                warnings.push(format!("dhcp: NTP server {n:?} not used: {e}"));
            }
        }
        layers.push(Layer::new(Source::Dhcp, v));
    }
    if let Some(plat) = platform {
        let endpoints = match &opts.metadata {
            MetadataAccess::Live { endpoints, .. } => endpoints.clone(),
            MetadataAccess::Recorded(_) => Endpoints::default(),
        };
        if let Some(t) = plat.time_server(&endpoints) {
            let mut v = Values::default();
            match v.set(Key::Ntp, Some(t)) {
                Ok(_) => layers.push(Layer::new(Source::Platform(plat), v)),
                Err(e) => {
                    warnings.push(format!("platform:{plat}: time source {t:?} not used: {e}"))
                }
            }
        }
    }
    if let Some(flags) = &opts.flags {
        layers.push(Layer::new(Source::Flag, flags.clone()));
    }
    layers.push(Layer::new(Source::Default, opts.defaults.clone()));
    read_token_files(&mut layers, &opts.root)?;
    let mut settings = merge(&layers);
    if settings
        .token
        .as_ref()
        .is_some_and(|t| t.source == Source::Cmdline)
        || settings
            .tls_bootstrap_token
            .as_ref()
            .is_some_and(|t| t.source == Source::Cmdline)
    {
        warnings.push(CMDLINE_TOKEN_WARNING.to_string());
    }
    if settings
        .certificate_key
        .as_ref()
        .is_some_and(|k| k.source == Source::Cmdline)
    {
        warnings.push(CMDLINE_CERTIFICATE_KEY_WARNING.to_string());
    }
    // Only local sources can say how to bring the network up: anything fetched over it came too
    // late. (A config drive is local: its user-data was read before the network.)
    if let Some(n) = &settings.network {
        let local = match &n.source {
            Source::Flag | Source::Cmdline | Source::File(_) | Source::Default => true,
            Source::Dhcp | Source::Platform(_) => false,
            Source::Metadata(p) => *p == Platform::OpenStack && drive.is_some(),
        };
        if !local {
            warnings.push(format!(
                "network from {}: not applied, the network was already up when it was fetched \
                 (put it on the kernel command line (ip=), in a local config file or on a config drive)",
                n.source
            ));
        }
    }
    settings.warnings = warnings;
    Ok(Loaded {
        settings,
        cmdline,
        platform,
    })
}

/// Gathers one boot's layers and merges them (see the module docs for the precedence):
/// [`load_local`], then [`load_remote`].
///
/// * The kernel command line is always read (`--cmdline-file` or `/proc/cmdline`); its `ip=`
///   parameters are its description of the network.
/// * `kubejoin.config=/path` reads that file (under the root), `=https://…` fetches it (the
///   generic URL provider), `=metadata` reads the platform's user-data. Without it, the local
///   config file is read when there is one.
/// * The platform is `kubejoin.platform` (`none` disables metadata), else DMI detection. Its
///   user-data is fetched when `kubejoin.platform` names it, or when no higher layer says how to
///   discover the cluster; a missing user-data is then an error, except when `kubejoin.platform`
///   merely names the platform and another layer already has discovery (a warning).
/// * On OpenStack, a config drive (label `config-2`) answers instead of the metadata service:
///   it is mounted read-only, read into memory and unmounted before anything else happens, so
///   its user-data counts among the local sources.
/// * `kubejoin.config.sha256` is checked against the first document loaded, before parsing; a
///   mismatch refuses it, and a pin that checked nothing is an error.
/// * Missing node name or node IP are taken from the provider (failures are warnings: the
///   hostname fallback still works).
pub async fn load(opts: &LoadOptions) -> Result<Loaded, LoadError> {
    load_remote(opts, load_local(opts)?).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::json::plan_json;

    const TOKEN: &str = "abcdef.0123456789abcdef";

    const PIN: &str = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";

    fn values(pairs: &[(Key, &str)]) -> Values {
        let mut v = Values::default();
        for (k, val) in pairs {
            v.set(*k, Some(val)).unwrap();
        }
        v
    }

    fn file() -> Source {
        Source::File("/etc/kubejoin.yaml".into())
    }

    fn token_layer() -> Layer {
        Layer::new(
            Source::Cmdline,
            values(&[
                (Key::Endpoint, "10.0.0.1:6443"),
                (Key::Token, TOKEN),
                (Key::CaCertHash, PIN),
            ]),
        )
    }

    #[test]
    fn config_files_from_joinconfig_become_a_layer() {
        let doc = format!(
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    \
             apiServerEndpoint: 10.0.0.1:6443\n    token: {TOKEN}\n    caCertHashes: [\"{PIN}\"]\nnodeRegistration:\n  \
             name: file-node\n  kubeletExtraArgs:\n  - name: max-pods\n    value: \"30\"\n---\n\
             apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nmodules: [overlay]\nonFailure: reboot\n"
        );
        let cf = joinconfig::parse(doc.as_bytes(), "/etc/kubejoin.yaml").unwrap();
        let (v, _) = values_from_config_file(&cf);
        assert_eq!(v.endpoint.as_deref(), Some("10.0.0.1:6443"));
        assert_eq!(v.token.as_ref().map(|t| t.id()), Some("abcdef"));
        assert!(
            v.tls_bootstrap_token.is_none(),
            "the defaulted copy of the token is not a separate value"
        );
        assert_eq!(v.node_name.as_deref(), Some("file-node"));
        assert_eq!(v.kubelet_args, [("max-pods".to_string(), "30".to_string())]);
        assert_eq!(v.modules, Some(vec!["overlay".to_string()]));
        assert_eq!(v.on_failure.as_deref(), Some("reboot"));
        assert_eq!(
            v.timeout, None,
            "joinconfig's defaulted timeout is not a value the file set"
        );
    }

    const NET_DOC: &str = "apiVersion: kubejoin.dev/v1alpha1\nkind: KubejoinConfiguration\nnetwork:\n  \
        interfaces:\n  - name: eth0\n    address: 10.0.0.7/24\n    gateway: 10.0.0.1\n  - name: eth1\n    dhcp: true\n  \
        nameservers: [10.0.0.53]\n";

    fn net_layer(source: Source) -> Layer {
        let cf = joinconfig::parse(NET_DOC.as_bytes(), "test").unwrap();
        Layer::new(source, values_from_config_file(&cf).0)
    }

    #[test]
    fn a_config_network_reaches_the_plan_and_plan_json_with_its_source() {
        let s = merge(&[
            token_layer(),
            net_layer(file()),
            Layer::new(Source::Default, Values::builtin_defaults()),
        ]);
        assert!(s.conflicts.is_empty(), "{:?}", s.conflicts);
        let plan = s.to_plan(Path::new("/")).unwrap();
        let n = plan.network.unwrap();
        assert_eq!(n.source, "file:/etc/kubejoin.yaml");
        let NetworkSpec::Config(net) = &n.spec else {
            panic!("{n:?}")
        };
        assert_eq!(net.interfaces.len(), 2);
        assert_eq!(
            net.nameservers,
            ["10.0.0.53".parse::<std::net::Ipv4Addr>().unwrap()]
        );
        let j = plan_json(&s);
        assert_eq!(j["values"]["network"]["source"], "file:/etc/kubejoin.yaml");
        assert_eq!(
            j["values"]["network"]["value"]["interfaces"][0],
            serde_json::json!({"name": "eth0", "address": "10.0.0.7/24", "gateway": "10.0.0.1"})
        );
        assert_eq!(
            j["values"]["network"]["value"]["interfaces"][1],
            serde_json::json!({"name": "eth1", "dhcp": true})
        );
    }

    #[test]
    fn the_network_is_taken_whole_from_the_highest_layer_and_conflicts_are_reported() {
        let mut cmd = token_layer();
        cmd.values.network = Some(NetworkSpec::Cmdline(vec!["ip=eth0:dhcp".into()]));
        let s = merge(&[
            net_layer(Source::Metadata(Platform::OpenStack)),
            net_layer(file()),
            cmd,
        ]);
        let n = s.network.as_ref().unwrap();
        assert_eq!(n.source, Source::Cmdline);
        let shown: Vec<String> = s.conflicts.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                r#"network: using "ip=eth0:dhcp" from cmdline, ignoring "eth0 10.0.0.7/24 via 10.0.0.1, eth1 dhcp; nameservers 10.0.0.53" from file:/etc/kubejoin.yaml"#,
                r#"network: using "ip=eth0:dhcp" from cmdline, ignoring "eth0 10.0.0.7/24 via 10.0.0.1, eth1 dhcp; nameservers 10.0.0.53" from metadata:openstack"#,
            ]
        );
        // Without ip=, the file beats the config drive; equal networks are no conflict.
        let s = merge(&[
            net_layer(Source::Metadata(Platform::OpenStack)),
            net_layer(file()),
        ]);
        assert_eq!(s.network.unwrap().source, file());
        assert!(s.conflicts.is_empty());
        // A plan with no network described has none.
        let plan = merge(&[token_layer()]).to_plan(Path::new("/")).unwrap();
        assert!(plan.network.is_none());
    }
}
