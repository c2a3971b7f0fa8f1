//! Command-line contract. Flag names follow `kubeadm join`, so a user can replace `kubeadm join`
//! with `kubejoin join` and keep the rest of the line.

use crate::error::{Class, Classify};
use crate::kube::token::{BootstrapToken, TokenError};
use crate::plan::build::PlanError;
use crate::plan::node_name::NodeNameError;
use crate::plan::JoinPlan;
use crate::time::duration;
use std::ffi::OsString;
use std::path::PathBuf;

mod help;
mod layer;

pub use help::*;
pub use layer::FlagsOnly;

/// The candidate closest to `typed`, when it is close enough to be a typo: at most 3 edits and
/// at most half the length (`jion` is 2 edits from `join`).
fn closest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    crate::suggest::closest(typed, candidates, |d, c| {
        d <= 3 && d * 2 <= c.len().max(typed.len())
    })
}

/// A parsed command.
#[derive(Debug)]
pub enum Command {
    Join(Box<JoinPlan>),
    /// `join` with no discovery flags: the join data comes from the boot sources.
    JoinFromSources(Box<SourcesJoin>),
    /// `plan`: print the merged plan of the boot sources.
    Plan(SourceArgs),
    /// `host-prep`: modules, sysctls, swap, verified.
    HostPrep(HostPrep),
    CaHash(Vec<PathBuf>),
    Version,
    /// Print this text (`kubejoin help`, or one command's `--help`).
    Help(&'static str),
    /// PID-1 mode on request (`kubejoin init`); `main` runs it.
    Init,
    /// `finish-control-plane`: the phases after the kubelet, from PID 1's handover under `root`.
    FinishControlPlane {
        root: PathBuf,
    },
}

/// Where boot-time join data is read from (precedence: kernel command line > local config file >
/// metadata user-data > image defaults).
#[derive(Debug, Clone, Default)]
pub struct SourceArgs {
    pub root: PathBuf,
    pub cmdline_file: Option<PathBuf>,
    pub metadata_dir: Option<PathBuf>,
    pub config: Option<PathBuf>,
}

/// `kubejoin host-prep`.
#[derive(Debug, Clone)]
pub struct HostPrep {
    /// Where the running kernel's `/proc`, `/sys` and `/lib/modules` are (`/`).
    pub root: PathBuf,
    pub dry_run: bool,
    pub host: crate::host::HostConfig,
}

/// A join whose data comes from the boot sources, with the command line's flags as the top
/// layer of their merge.
#[derive(Debug, Clone)]
pub struct SourcesJoin {
    pub sources: SourceArgs,
    pub dry_run: bool,
    /// The flags given, as the top layer ([`crate::plan::merge::Source::Flag`]).
    pub flags: crate::plan::values::Values,
    /// What only flags can say, set on the merged plan.
    pub only: FlagsOnly,
}

/// A command line that cannot be run. Never echoes token secrets.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("{0}")]
    Args(String),
    #[error("invalid {flag}")]
    Token {
        flag: &'static str,
        #[source]
        source: TokenError,
    },
    #[error(transparent)]
    TokenFile(#[from] crate::kube::token::TokenFileError),
    #[error("invalid --node-name")]
    NodeName(#[source] NodeNameError),
    #[error("invalid value for {flag}")]
    Duration {
        flag: &'static str,
        #[source]
        source: duration::DurationError,
    },
    /// The flags do not make a join (the same rules as every other source).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// `--config` could not be read as a config file (the same reader as the boot sources').
    #[error(transparent)]
    Load(#[from] crate::source::load::LoadError),
    /// The flags and `--config` together do not make a join (naming the layer at fault).
    #[error(transparent)]
    Settings(#[from] crate::plan::build::SettingsError),
    #[error("unknown flag {flag} for `kubejoin {command}`{}", match (suggestion, other_command) {
        (Some(s), _) => format!(" (did you mean {s}?)"),
        (None, Some(c)) => format!(" (it is a flag of `kubejoin {c}`)"),
        (None, None) => String::new(),
    })]
    UnknownFlag {
        flag: String,
        command: &'static str,
        /// The documented flag of `command` it most likely meant.
        suggestion: Option<String>,
        /// Another command that has this very flag.
        other_command: Option<&'static str>,
    },
    #[error("unknown command {name:?}{}", suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default())]
    UnknownCommand {
        name: String,
        suggestion: Option<String>,
    },
    /// An input file named on the command line does not exist.
    #[error("no such file: {} (given to {flag})", path.display())]
    NoSuchFile { flag: &'static str, path: PathBuf },
    /// An input directory named on the command line does not exist.
    #[error("no such directory: {} (given to {flag})", path.display())]
    NoSuchDir { flag: &'static str, path: PathBuf },
    #[error("{} given to {flag} is a directory, not a file", path.display())]
    NotAFile { flag: &'static str, path: PathBuf },
    #[error("{} given to {flag} is not a directory", path.display())]
    NotADir { flag: &'static str, path: PathBuf },
    #[error("unexpected argument {shown:?}: `kubejoin {command}` takes no positional arguments")]
    Positional {
        command: &'static str,
        /// The argument, with a token's secret redacted.
        shown: String,
    },
    #[error("--root {}: no such directory", .0.display())]
    RootMissing(PathBuf),
    #[error("--root {}: not a directory", .0.display())]
    RootNotDir(PathBuf),
    /// The control-plane settings do not make a control-plane join.
    #[error(transparent)]
    ControlPlane(#[from] crate::plan::control_plane::ControlPlaneError),
}

impl Classify for UsageError {
    fn class(&self) -> Class {
        Class::Usage
    }

    fn hint(&self) -> Option<String> {
        match self {
            UsageError::Plan(e) => e.hint(),
            UsageError::ControlPlane(e) => e.hint(),
            UsageError::Token { .. } => Some(
                "create a token on a control-plane node with `kubeadm token create --print-join-command`".into(),
            ),
            UsageError::Load(e) => e.hint(),
            UsageError::Settings(e) => e.hint(),
            UsageError::UnknownFlag { command, .. } => {
                Some(format!("`kubejoin {command} --help` lists its flags"))
            }
            UsageError::UnknownCommand { .. } => Some("`kubejoin help` lists the commands".into()),
            UsageError::NotAFile { flag, .. } => Some(format!("{flag} takes a file")),
            UsageError::NotADir { flag, .. } => Some(format!("{flag} takes a directory")),
            UsageError::Positional { command, .. } => {
                Some(format!("`kubejoin {command} --help` lists its flags"))
            }
            UsageError::NoSuchFile { flag, path } | UsageError::NoSuchDir { flag, path } => {
                let what = match *flag {
                    "--config" => "a kubeadm JoinConfiguration file (YAML or JSON)",
                    "--cmdline-file" => "a file holding a recorded kernel command line",
                    "--metadata-dir" => "a directory of recorded metadata responses",
                    "--discovery-file" => "a kubeconfig file, or an https:// URL",
                    "--discovery-file-ca" => "a PEM file of CA certificates",
                    "kubejoin ca-hash" => "PEM files, e.g. /etc/kubernetes/pki/ca.crt",
                    _ => "an existing path",
                };
                let relative = if path.is_relative() {
                    std::env::current_dir()
                        .map(|d| format!("; a relative path starts from the current directory, {}", d.display()))
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                Some(format!("{flag} takes {what}: check the path{relative}"))
            }
            UsageError::RootMissing(path) => Some(format!(
                "--root names an existing directory, the node's filesystem (default /): create it first \
                 (mkdir -p {}), or leave --root out to work on this machine",
                path.display()
            )),
            UsageError::RootNotDir(_) => Some(
                "--root names a directory, the node's filesystem (default /), not a file".into(),
            ),
            UsageError::Args(_) => Some("run `kubejoin help` for the flags".into()),
            _ => None,
        }
    }
}

fn args_err(msg: impl Into<String>) -> UsageError {
    UsageError::Args(msg.into())
}

/// Raw `join` flags before validation ([`layer`] makes them the top layer of the merge). Tokens
/// are parsed once, where they are read (inline or from their file).
#[derive(Debug, Default)]
struct JoinArgs {
    endpoints: Vec<String>,
    /// Token flags given inline (`--token`, …): their values show in /proc/<pid>/cmdline.
    inline_tokens: Vec<&'static str>,
    token: Option<BootstrapToken>,
    discovery_token: Option<BootstrapToken>,
    pins: Vec<String>,
    unsafe_skip: bool,
    discovery_file: Option<String>,
    discovery_file_ca: Option<PathBuf>,
    tls_bootstrap_token: Option<BootstrapToken>,
    node_name: Option<String>,
    cri_socket: Option<String>,
    config: Option<PathBuf>,
    dry_run: bool,
    ignore_preflight: Vec<String>,
    skip_phases: Vec<String>,
    root: Option<PathBuf>,
    force: bool,
    handoff: Option<String>,
    kubelet_path: Option<PathBuf>,
    kubelet_args: Vec<String>,
    discovery_timeout: Option<String>,
    retry_interval: Option<String>,
    tls_bootstrap_timeout: Option<String>,
    timeout: Option<String>,
    cmdline_file: Option<PathBuf>,
    metadata_dir: Option<PathBuf>,
    modules: Vec<String>,
    sysctls: Vec<(String, String)>,
    keep_swap: bool,
    /// `--ntp`, as given (checked by the plan's `ntp` rules).
    ntp: Vec<String>,
    /// `--control-plane` and its settings.
    control_plane: bool,
    /// `--certificate-key` (parsed at once: the text is never kept) or `--certificate-key-file`.
    certificate_key: Option<(crate::plan::certificate_key::CertificateKey, String)>,
    /// `--certificate-key` given inline (its value shows in /proc/<pid>/cmdline).
    inline_certificate_key: bool,
    advertise_address: Option<String>,
    bind_port: Option<u16>,
    healthz_url: Option<String>,
    /// `--help`: print the command's help instead.
    help: bool,
}

/// Parses `argv` (including the program name).
pub fn parse<I>(argv: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_iter(argv);
    let sub = match p.next().map_err(|e| args_err(e.to_string()))? {
        None => return Ok(Command::Help(HELP)),
        Some(Value(v)) => v.string().map_err(|e| args_err(e.to_string()))?,
        Some(Long("help")) | Some(Short('h')) => return Ok(Command::Help(HELP)),
        Some(Long("version")) => return Ok(Command::Version),
        Some(other) => {
            return Err(args_err(format!(
                "expected a command first, got {}",
                other.unexpected()
            )))
        }
    };
    match sub.as_str() {
        "help" => match p.next().map_err(|e| args_err(e.to_string()))? {
            // `kubejoin help join`: that command's help.
            Some(Value(v)) => {
                let name = v.string().map_err(|e| args_err(e.to_string()))?;
                COMMANDS
                    .iter()
                    .find(|(c, _)| *c == name)
                    .map(|(_, h)| Command::Help(h))
                    .ok_or_else(|| unknown_command(&name))
            }
            _ => Ok(Command::Help(HELP)),
        },
        "version" | "init" => {
            let help = if sub == "init" {
                INIT_HELP
            } else {
                VERSION_HELP
            };
            match p.next().map_err(|e| args_err(e.to_string()))? {
                None if sub == "init" => Ok(Command::Init),
                None => Ok(Command::Version),
                Some(Long("help")) | Some(Short('h')) => Ok(Command::Help(help)),
                Some(other) => Err(unexpected(other, command_name(&sub), help)),
            }
        }
        "ca-hash" => {
            let mut files = Vec::new();
            while let Some(arg) = p.next().map_err(|e| args_err(e.to_string()))? {
                match arg {
                    Value(v) => files.push(PathBuf::from(v)),
                    Long("help") | Short('h') => return Ok(Command::Help(CA_HASH_HELP)),
                    other => return Err(unexpected(other, "ca-hash", CA_HASH_HELP)),
                }
            }
            if files.is_empty() {
                return Err(args_err(
                    "ca-hash needs at least one PEM file (e.g. /etc/kubernetes/pki/ca.crt)",
                ));
            }
            for f in &files {
                input_file("kubejoin ca-hash", f)?;
            }
            Ok(Command::CaHash(files))
        }
        "finish-control-plane" => {
            let help = FINISH_CONTROL_PLANE_HELP;
            let mut root = PathBuf::from("/");
            while let Some(arg) = p.next().map_err(|e| args_err(e.to_string()))? {
                match arg {
                    Long("root") => {
                        root = PathBuf::from(p.value().map_err(|e| args_err(e.to_string()))?)
                    }
                    Long("help") | Short('h') => return Ok(Command::Help(help)),
                    other => return Err(unexpected(other, "finish-control-plane", help)),
                }
            }
            Ok(Command::FinishControlPlane { root })
        }
        "join" => {
            let a = parse_join(&mut p, "join")?;
            if a.help {
                return Ok(Command::Help(JOIN_HELP));
            }
            check_inputs(&a)?;
            if let Some(w) = inline_token_warning(&a.inline_tokens) {
                crate::warn!("{w}");
            }
            if a.inline_certificate_key {
                crate::warn!("{INLINE_CERTIFICATE_KEY_WARNING}");
            }
            if wants_boot_sources(&a) {
                return sources_join(a).map(|j| Command::JoinFromSources(Box::new(j)));
            }
            layer::plan(a).map(|plan| Command::Join(Box::new(plan)))
        }
        "host-prep" => {
            let a = parse_join(&mut p, "host-prep")?;
            if a.help {
                return Ok(Command::Help(HOST_PREP_HELP));
            }
            check_inputs(&a)?;
            Ok(Command::HostPrep(HostPrep {
                root: a.root.clone().unwrap_or_else(|| PathBuf::from("/")),
                dry_run: a.dry_run,
                host: crate::host::HostConfig {
                    modules: a.modules,
                    sysctls: a.sysctls,
                    keep_swap: a.keep_swap,
                    ..crate::host::HostConfig::default()
                },
            }))
        }
        "plan" => {
            let a = parse_join(&mut p, "plan")?;
            if a.help {
                return Ok(Command::Help(PLAN_HELP));
            }
            check_inputs(&a)?;
            Ok(Command::Plan(source_args(&a)))
        }
        other => Err(unknown_command(other)),
    }
}

/// `name` as a `&'static str` for messages (it is one of [`COMMANDS`]).
fn command_name(name: &str) -> &'static str {
    COMMANDS
        .iter()
        .map(|(c, _)| *c)
        .find(|c| *c == name)
        .unwrap_or("join")
}

fn unknown_command(name: &str) -> UsageError {
    UsageError::UnknownCommand {
        name: name.to_string(),
        suggestion: closest(name, COMMANDS.iter().map(|(c, _)| *c)).map(str::to_string),
    }
}

/// The error for an argument `command` does not take: an unknown flag (with the documented flag
/// it most likely meant) or a stray positional argument (a token-shaped one is not echoed).
fn unexpected(arg: lexopt::Arg<'_>, command: &'static str, help: &str) -> UsageError {
    let flag = match arg {
        lexopt::Arg::Long(name) => format!("--{name}"),
        lexopt::Arg::Short(c) => format!("-{c}"),
        lexopt::Arg::Value(v) => {
            let v = v.to_string_lossy();
            let shown = match BootstrapToken::parse(&v) {
                Ok(t) => t.to_string(),
                Err(_) => v.into_owned(),
            };
            return UsageError::Positional { command, shown };
        }
    };
    let documented = documented_flags(help);
    let suggestion = closest(
        flag.trim_start_matches('-'),
        documented
            .iter()
            .filter(|f| f.starts_with("--"))
            .map(|f| f.trim_start_matches('-')),
    )
    .map(|f| format!("--{f}"));
    let other_command = COMMANDS
        .iter()
        .filter(|(c, _)| *c != command && *c != "help")
        .find(|(_, h)| documented_flags(h).contains(&flag))
        .map(|(c, _)| *c);
    UsageError::UnknownFlag {
        flag,
        command,
        suggestion,
        other_command,
    }
}

/// Checks that every input file and directory the command line names exists and is of the
/// right kind, so a typo says "no such file" (exit 2) before anything runs.
fn check_inputs(a: &JoinArgs) -> Result<(), UsageError> {
    if let Some(root) = &a.root {
        match std::fs::metadata(root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UsageError::RootMissing(root.clone()))
            }
            Ok(m) if !m.is_dir() => return Err(UsageError::RootNotDir(root.clone())),
            _ => {}
        }
    }
    if let Some(f) = &a.config {
        input_file("--config", f)?;
    }
    if let Some(f) = &a.cmdline_file {
        input_file("--cmdline-file", f)?;
    }
    if let Some(d) = &a.metadata_dir {
        match std::fs::metadata(d) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(UsageError::NoSuchDir {
                    flag: "--metadata-dir",
                    path: d.clone(),
                })
            }
            Ok(m) if !m.is_dir() => {
                return Err(UsageError::NotADir {
                    flag: "--metadata-dir",
                    path: d.clone(),
                })
            }
            _ => {}
        }
    }
    if let Some(f) = &a.discovery_file {
        if let Some(path) = f.strip_prefix("file://") {
            input_file("--discovery-file", std::path::Path::new(path))?;
        } else if !f.contains("://") {
            input_file("--discovery-file", std::path::Path::new(f))?;
        }
    }
    if let Some(f) = &a.discovery_file_ca {
        input_file("--discovery-file-ca", f)?;
    }
    Ok(())
}

/// `path`, given to `flag`, must be an existing file (not a directory).
fn input_file(flag: &'static str, path: &std::path::Path) -> Result<(), UsageError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(UsageError::NoSuchFile {
            flag,
            path: path.to_path_buf(),
        }),
        Ok(m) if m.is_dir() => Err(UsageError::NotAFile {
            flag,
            path: path.to_path_buf(),
        }),
        // Unreadable files are reported by whoever reads them, with the reason.
        _ => Ok(()),
    }
}

/// The flags of `join`, `plan` and `host-prep` (one parser; `plan` and `host-prep` accept only
/// the flags their help documents).
fn parse_join(p: &mut lexopt::Parser, command: &'static str) -> Result<JoinArgs, UsageError> {
    use lexopt::prelude::*;
    let mut a = JoinArgs::default();
    let help = match command {
        "plan" => PLAN_HELP,
        "host-prep" => HOST_PREP_HELP,
        _ => JOIN_HELP,
    };
    let allowed = (command != "join").then(|| documented_flags(help));
    let text = |p: &mut lexopt::Parser| -> Result<String, UsageError> {
        p.value()
            .map_err(|e| args_err(e.to_string()))?
            .into_string()
            .map_err(|_| args_err("a flag value is not valid UTF-8"))
    };
    let list = |s: String| -> Vec<String> {
        s.split(',')
            .map(|x| x.trim().to_ascii_lowercase())
            .filter(|x| !x.is_empty())
            .collect()
    };
    // (inline flag, file flag, path) of every token given by file.
    let mut files: Vec<(&'static str, &'static str, PathBuf)> = Vec::new();
    while let Some(arg) = p.next().map_err(|e| args_err(e.to_string()))? {
        if let Some(allowed) = &allowed {
            let given = match &arg {
                Long(name) => format!("--{name}"),
                Short(c) => format!("-{c}"),
                Value(_) => String::new(),
            };
            if !allowed.contains(&given) {
                return Err(unexpected(arg, command, help));
            }
        }
        match arg {
            Value(v) => a.endpoints.push(
                v.into_string()
                    .map_err(|_| args_err("endpoint is not valid UTF-8"))?,
            ),
            Long("token") => {
                a.token = Some(token("--token", &text(p)?)?);
                a.inline_tokens.push("--token");
            }
            Long("discovery-token") => {
                a.discovery_token = Some(token("--discovery-token", &text(p)?)?);
                a.inline_tokens.push("--discovery-token");
            }
            Long("token-file") => files.push(("--token", "--token-file", text(p)?.into())),
            Long("discovery-token-file") => files.push((
                "--discovery-token",
                "--discovery-token-file",
                text(p)?.into(),
            )),
            Long("tls-bootstrap-token-file") => files.push((
                "--tls-bootstrap-token",
                "--tls-bootstrap-token-file",
                text(p)?.into(),
            )),
            Long("discovery-token-ca-cert-hash") => {
                // kubeadm takes the flag repeatedly or as a comma list.
                a.pins.extend(
                    text(p)?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                )
            }
            Long("discovery-token-unsafe-skip-ca-verification") => a.unsafe_skip = true,
            Long("discovery-file") => a.discovery_file = Some(text(p)?),
            Long("discovery-file-ca") => a.discovery_file_ca = Some(text(p)?.into()),
            Long("tls-bootstrap-token") => {
                a.tls_bootstrap_token = Some(token("--tls-bootstrap-token", &text(p)?)?);
                a.inline_tokens.push("--tls-bootstrap-token");
            }
            Long("node-name") => a.node_name = Some(text(p)?),
            Long("cri-socket") => a.cri_socket = Some(text(p)?),
            Long("config") => a.config = Some(text(p)?.into()),
            Long("dry-run") => a.dry_run = true,
            Long("ignore-preflight-errors") => a.ignore_preflight.extend(list(text(p)?)),
            Long("skip-phases") => a.skip_phases.extend(list(text(p)?)),
            Long("root") => a.root = Some(text(p)?.into()),
            Long("force") => a.force = true,
            Long("handoff") => a.handoff = Some(text(p)?),
            Long("kubelet-path") => a.kubelet_path = Some(text(p)?.into()),
            Long("kubelet-arg") => a.kubelet_args.push(text(p)?),
            Long("discovery-timeout") => a.discovery_timeout = Some(text(p)?),
            Long("discovery-retry-interval") => a.retry_interval = Some(text(p)?),
            Long("tls-bootstrap-timeout") => a.tls_bootstrap_timeout = Some(text(p)?),
            Long("timeout") => a.timeout = Some(text(p)?),
            Long("module") => a.modules.extend(list(text(p)?)),
            Long("sysctl") => {
                let kv = text(p)?;
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| args_err(format!("--sysctl {kv:?} is not key=value")))?;
                a.sysctls.push((k.trim().to_string(), v.trim().to_string()));
            }
            Long("keep-swap") => a.keep_swap = true,
            Long("ntp") => a.ntp.push(text(p)?),
            Long("control-plane") => a.control_plane = true,
            Long("certificate-key") => {
                let text = text(p)?;
                set_certificate_key(
                    &mut a,
                    crate::plan::control_plane::parse_key(&text, "--certificate-key")?,
                )?;
                a.inline_certificate_key = true;
            }
            Long("certificate-key-file") => {
                let path = PathBuf::from(text(p)?);
                input_file("--certificate-key-file", &path)?;
                let key = crate::plan::certificate_key::read_key_file(&path, &path)
                    .map_err(crate::plan::control_plane::ControlPlaneError::from)?;
                set_certificate_key(&mut a, (key, format!("file:{}", path.display())))?;
            }
            Long("apiserver-advertise-address") => a.advertise_address = Some(text(p)?),
            Long("apiserver-bind-port") => {
                let v = text(p)?;
                a.bind_port = Some(v.trim().parse::<u16>().map_err(|_| {
                    args_err(format!(
                        "--apiserver-bind-port {v:?}: expected a port number (1-65535)"
                    ))
                })?);
            }
            Long("control-plane-healthz-url") => a.healthz_url = Some(text(p)?),
            Long("cmdline-file") => a.cmdline_file = Some(text(p)?.into()),
            Long("metadata-dir") => a.metadata_dir = Some(text(p)?.into()),
            Short('v') | Long("verbose") => crate::log::set_level(crate::log::Level::Debug),
            Long("help") | Short('h') => a.help = true,
            other => return Err(unexpected(other, command, help)),
        }
    }
    for (inline, flag, path) in files {
        let slot = match inline {
            "--token" => &mut a.token,
            "--discovery-token" => &mut a.discovery_token,
            _ => &mut a.tls_bootstrap_token,
        };
        if slot.is_some() {
            return Err(args_err(format!(
                "{inline} and {flag} both given (or {flag} twice): give the token once, preferably by file"
            )));
        }
        input_file(flag, &path)?;
        *slot = Some(crate::kube::token::read_token_file(&path, &path)?);
    }
    Ok(a)
}

/// Records the certificate key; a second one (flag and file, or twice) is a usage error.
fn set_certificate_key(
    a: &mut JoinArgs,
    key: (crate::plan::certificate_key::CertificateKey, String),
) -> Result<(), UsageError> {
    if let Some((_, first)) = &a.certificate_key {
        return Err(
            crate::plan::control_plane::ControlPlaneError::KeyTwice(format!(
                "{first} and {}",
                key.1
            ))
            .into(),
        );
    }
    a.certificate_key = Some(key);
    Ok(())
}

/// The warning for a certificate key given inline on `kubejoin join`'s command line.
pub const INLINE_CERTIFICATE_KEY_WARNING: &str = "--certificate-key given on the command line: while the join runs \
     (up to --timeout) every local user can read it in /proc/<pid>/cmdline, and with the bootstrap token it \
     decrypts the cluster's CA keys; put it in a file only root can read (chmod 600) and pass \
     --certificate-key-file FILE instead";

/// The warning for tokens given inline on `kubejoin join`'s command line.
fn inline_token_warning(flags: &[&'static str]) -> Option<String> {
    let first = flags.first()?;
    Some(format!(
        "{} given on the command line: while the join runs (up to --timeout) every local user can read \
         it in /proc/<pid>/cmdline; put the token in a file only root can read (chmod 600) and pass \
         {first}-file FILE instead",
        flags.join(", ")
    ))
}

/// No discovery data on the command line (and no `--config`), or a recorded boot to replay: the
/// join data comes from the boot sources.
fn wants_boot_sources(a: &JoinArgs) -> bool {
    a.cmdline_file.is_some()
        || a.metadata_dir.is_some()
        || (a.endpoints.is_empty()
            && a.discovery_file.is_none()
            && a.discovery_token.is_none()
            && a.token.is_none()
            && a.config.is_none())
}

fn source_args(a: &JoinArgs) -> SourceArgs {
    SourceArgs {
        root: a.root.clone().unwrap_or_else(|| PathBuf::from("/")),
        cmdline_file: a.cmdline_file.clone(),
        metadata_dir: a.metadata_dir.clone(),
        config: a.config.clone(),
    }
}

fn sources_join(a: JoinArgs) -> Result<SourcesJoin, UsageError> {
    if a.control_plane
        || a.certificate_key.is_some()
        || a.advertise_address.is_some()
        || a.bind_port.is_some()
        || a.healthz_url.is_some()
    {
        return Err(args_err(
            "the control-plane flags need the join's discovery flags (or --config) on the same command line; \
             a join from the boot sources takes them from there (kubejoin.control-plane, \
             kubejoin.certificate-key-file, kubejoin.advertise-address, or a JoinConfiguration's controlPlane)",
        ));
    }
    Ok(SourcesJoin {
        sources: source_args(&a),
        dry_run: a.dry_run,
        flags: layer::flag_values(&a)?,
        only: FlagsOnly::of(&a)?,
    })
}

fn token(flag: &'static str, s: &str) -> Result<BootstrapToken, UsageError> {
    BootstrapToken::parse(s).map_err(|source| UsageError::Token { flag, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::Mode;
    use crate::plan::{HandoffMode, DEFAULT_CRI_SOCKET};
    use std::time::Duration;

    const TOKEN: &str = "abcdef.0123456789abcdef";
    const PIN: &str = "sha256:3b793efefe27a19f93b0fbe6e637e9c41d0dde8a377d6ab1c0f656bf1136dd8a";

    fn run(args: &[&str]) -> Result<Command, UsageError> {
        parse(
            std::iter::once("kubejoin")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    fn join(args: &[&str]) -> Result<JoinPlan, UsageError> {
        let mut v = vec!["join"];
        v.extend_from_slice(args);
        match run(&v)? {
            Command::Join(p) => Ok(*p),
            other => panic!("not a join: {other:?}"),
        }
    }

    #[test]
    fn kubeadm_style_token_join() {
        let p = join(&[
            "192.168.0.101:6443",
            "--token",
            TOKEN,
            "--discovery-token-ca-cert-hash",
            PIN,
        ])
        .unwrap();
        match &p.discovery.mode {
            Mode::Token {
                endpoint,
                token,
                pins,
                unsafe_skip_ca_verification,
            } => {
                assert_eq!(endpoint, "192.168.0.101:6443");
                assert_eq!(token.id(), "abcdef");
                assert_eq!(pins.pins()[0].to_string(), PIN);
                assert!(!unsafe_skip_ca_verification);
            }
            m => panic!("{m:?}"),
        }
        assert_eq!(
            p.discovery.tls_bootstrap_token.as_ref().map(|t| t.id()),
            Some("abcdef")
        );
        assert_eq!(p.cri_socket, DEFAULT_CRI_SOCKET);
        assert_eq!(p.discovery.timeout, Duration::from_secs(300));
        assert_eq!(p.handoff, HandoffMode::None);
    }

    #[test]
    fn equals_form_comma_pins_and_durations() {
        let p = join(&[
            "[fd00::1]:6443",
            "--token=abcdef.0123456789abcdef",
            &format!(
                "--discovery-token-ca-cert-hash={PIN},{}",
                PIN.to_uppercase()
            ),
            "--discovery-timeout=30s",
            "--handoff=exec",
            "--kubelet-arg=node-ip=10.0.0.5",
            "--cri-socket=/run/crio/crio.sock",
        ])
        .unwrap();
        assert_eq!(p.discovery.timeout, Duration::from_secs(30));
        assert_eq!(p.handoff, HandoffMode::Exec);
        assert_eq!(
            p.kubelet_extra_args,
            vec![("node-ip".to_string(), "10.0.0.5".to_string())]
        );
        assert_eq!(p.cri_socket, "unix:///run/crio/crio.sock");
        match &p.discovery.mode {
            Mode::Token { pins, .. } => assert_eq!(pins.pins().len(), 1),
            m => panic!("{m:?}"),
        }
    }

    #[test]
    fn refuses_token_discovery_without_pin_unless_unsafe() {
        assert!(matches!(
            join(&["10.0.0.1:6443", "--token", TOKEN]),
            Err(UsageError::Plan(PlanError::NoPin))
        ));
        let p = join(&[
            "10.0.0.1:6443",
            "--token",
            TOKEN,
            "--discovery-token-unsafe-skip-ca-verification",
        ])
        .unwrap();
        assert!(matches!(
            p.discovery.mode,
            Mode::Token {
                unsafe_skip_ca_verification: true,
                ..
            }
        ));
    }

    #[test]
    fn bad_inputs_are_usage_errors_without_secrets() {
        let cases: &[&[&str]] = &[
            &[
                "10.0.0.1:6443",
                "--token",
                "ABCDEF.0123456789abcdef",
                "--discovery-token-ca-cert-hash",
                PIN,
            ],
            &[
                "10.0.0.1:6443",
                "--token",
                TOKEN,
                "--discovery-token-ca-cert-hash",
                "sha256:abcd",
            ],
            &[
                "10.0.0.1",
                "--token",
                TOKEN,
                "--discovery-token-ca-cert-hash",
                PIN,
            ],
            &[
                "https://10.0.0.1:6443",
                "--token",
                TOKEN,
                "--discovery-token-ca-cert-hash",
                PIN,
            ],
            &[
                "10.0.0.1:0",
                "--token",
                TOKEN,
                "--discovery-token-ca-cert-hash",
                PIN,
            ],
            &["--token", TOKEN, "--discovery-token-ca-cert-hash", PIN],
            &["--discovery-file", "http://example.invalid/kubeconfig"],
            &[
                "10.0.0.1:6443",
                "--discovery-file",
                "/tmp/x",
                "--token",
                TOKEN,
            ],
            &[
                "10.0.0.1:6443",
                "--token",
                TOKEN,
                "--discovery-token-ca-cert-hash",
                PIN,
                "--node-name",
                "bad_name",
            ],
            &[
                "10.0.0.1:6443",
                "--token",
                TOKEN,
                "--discovery-token-ca-cert-hash",
                PIN,
                "--bogus",
            ],
            &[
                "10.0.0.1:6443",
                "--token",
                TOKEN,
                "--discovery-token-ca-cert-hash",
                PIN,
                "--discovery-timeout",
                "5",
            ],
        ];
        for c in cases {
            let e = join(c).unwrap_err();
            assert_eq!(e.class(), Class::Usage);
            let text = format!("{e} {e:?} {}", crate::error::Report(&e, e.hint()));
            assert!(!text.contains("0123456789abcdef"), "{c:?}: {text}");
        }
    }

    #[test]
    fn discovery_file_modes() {
        let p = join(&[
            "--discovery-file",
            "https://example.invalid/kc",
            "--tls-bootstrap-token",
            TOKEN,
        ])
        .unwrap();
        assert!(matches!(p.discovery.mode, Mode::Https { .. }));
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kc.yaml");
        std::fs::write(&kc, "").unwrap();
        let p = join(&["--discovery-file", &format!("file://{}", kc.display())]).unwrap();
        assert!(matches!(&p.discovery.mode, Mode::File { path } if *path == kc));
    }

    fn fixture(name: &str) -> String {
        format!(
            "{}/tests/fixtures/config/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    #[test]
    fn config_file_supplies_what_flags_leave_unset() {
        let p = join(&["--config", &fixture("join-v1beta4.yaml")]).unwrap();
        let Mode::Token { endpoint, pins, .. } = &p.discovery.mode else {
            panic!("{:?}", p.discovery.mode)
        };
        assert!(!endpoint.is_empty());
        assert!(!pins.is_empty());
        assert!(p.discovery.tls_bootstrap_token.is_some());
        // a flag wins over the file
        let p2 = join(&[
            "--config",
            &fixture("join-v1beta4.yaml"),
            "--node-name",
            "from-flag",
        ])
        .unwrap();
        assert_eq!(p2.node_name.unwrap().as_str(), "from-flag");
        let p3 = join(&[
            "--config",
            &fixture("join-v1beta4.yaml"),
            "--tls-bootstrap-timeout",
            "42s",
        ])
        .unwrap();
        assert_eq!(p3.tls_bootstrap_timeout, Duration::from_secs(42));
    }

    #[test]
    fn control_plane_flags_and_config_make_one_control_plane_plan() {
        const KEY: &str = "a0be1615d7c9a485438cf1b904ab48ab5c6a055685598ebcbd8a745b00fe75e6";
        let base = [
            "10.0.0.1:6443",
            "--token",
            TOKEN,
            "--discovery-token-ca-cert-hash",
            PIN,
        ];
        let mut args = base.to_vec();
        args.extend([
            "--control-plane",
            "--certificate-key",
            KEY,
            "--apiserver-advertise-address",
            "fd00::2",
            "--apiserver-bind-port",
            "6444",
        ]);
        let cp = join(&args).unwrap().control_plane.unwrap();
        assert_eq!(cp.advertise_address.to_string(), "fd00::2");
        assert_eq!(cp.bind_port, 6444);
        assert_eq!(cp.key_source, "--certificate-key");
        assert!(!format!("{cp:?}").contains(KEY));
        let mut args = base.to_vec();
        args.extend(["--control-plane", "--apiserver-bind-port", "http"]);
        let e = join(&args).unwrap_err();
        assert!(e.to_string().contains("--apiserver-bind-port"), "{e}");
        // The same from a JoinConfiguration; a flag wins over its field.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("join.yaml");
        std::fs::write(
            &f,
            format!(
                "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\ndiscovery:\n  bootstrapToken:\n    \
                 token: {TOKEN}\n    apiServerEndpoint: 10.0.0.1:6443\n    caCertHashes: [\"{PIN}\"]\ncontrolPlane:\n  \
                 localAPIEndpoint:\n    advertiseAddress: 10.0.0.2\n  certificateKey: {KEY}\n"
            ),
        )
        .unwrap();
        let path = f.to_str().unwrap();
        let cp = join(&["--config", path]).unwrap().control_plane.unwrap();
        assert_eq!(cp.advertise_address.to_string(), "10.0.0.2");
        assert_eq!(cp.bind_port, 6443);
        assert_eq!(cp.key_source, format!("file:{path}"));
        let cp = join(&[
            "--config",
            path,
            "--apiserver-advertise-address",
            "10.0.0.3",
        ])
        .unwrap()
        .control_plane
        .unwrap();
        assert_eq!(cp.advertise_address.to_string(), "10.0.0.3");
        // Control-plane flags on the boot-sources route are refused, not dropped.
        let e = run(&["join", "--control-plane"]).unwrap_err();
        assert!(e.to_string().contains("kubejoin.control-plane"), "{e}");
    }

    #[test]
    fn config_file_errors_are_usage_errors() {
        let e = join(&["--config", "/nonexistent/kubejoin.yaml"]).unwrap_err();
        assert!(matches!(e, UsageError::NoSuchFile { .. }), "{e:?}");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.yaml");
        std::fs::write(
            &bad,
            "apiVersion: kubeadm.k8s.io/v1beta4\nkind: JoinConfiguration\nbogus: 1\n",
        )
        .unwrap();
        let e = join(&["--config", bad.to_str().unwrap()]).unwrap_err();
        assert_eq!(e.class(), Class::Usage);
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn no_discovery_flags_means_boot_sources() {
        assert!(matches!(run(&["join"]), Ok(Command::JoinFromSources(_))));
        let dir = tempfile::tempdir().unwrap();
        let x = dir.path().join("x");
        std::fs::write(&x, "").unwrap();
        let (x, m) = (x.to_str().unwrap(), dir.path().to_str().unwrap());
        let c = run(&[
            "join",
            "--cmdline-file",
            x,
            "--metadata-dir",
            m,
            "--dry-run",
        ])
        .unwrap();
        let Command::JoinFromSources(j) = c else {
            panic!("{c:?}")
        };
        assert!(j.dry_run);
        assert_eq!(
            j.sources.cmdline_file.as_deref(),
            Some(std::path::Path::new(x))
        );
        assert!(
            matches!(run(&["plan", "--root", m]), Ok(Command::Plan(a)) if a.root == dir.path())
        );
    }

    #[test]
    fn every_documented_flag_is_accepted_and_nothing_else() {
        for (command, help) in [
            ("join", JOIN_HELP),
            ("plan", PLAN_HELP),
            ("host-prep", HOST_PREP_HELP),
        ] {
            let flags = documented_flags(help);
            assert!(flags.len() > 4, "{command}: {flags:?}");
            for flag in &flags {
                // A value after it keeps flags that take one from swallowing the next flag.
                if let Err(UsageError::UnknownFlag { flag: f, .. }) = run(&[command, flag, "x"]) {
                    panic!("`kubejoin {command} --help` documents {f}, which it refuses")
                }
            }
        }
        // plan and host-prep take only their own flags.
        assert!(matches!(
            run(&["plan", "--force"]),
            Err(UsageError::UnknownFlag {
                command: "plan",
                ..
            })
        ));
        assert!(matches!(
            run(&["host-prep", "--token", TOKEN]),
            Err(UsageError::UnknownFlag {
                command: "host-prep",
                ..
            })
        ));
    }

    #[test]
    fn did_you_mean_reuses_the_kernel_command_lines_edit_distance() {
        assert_eq!(closest("tokn", ["token", "node-name"]), Some("token"));
        assert_eq!(closest("jion", ["join", "plan"]), Some("join"));
        assert_eq!(closest("x", ["join", "plan"]), None);
        assert_eq!(closest("frobnicate", ["join", "plan", "host-prep"]), None);
    }

    #[test]
    fn other_commands() {
        assert!(matches!(run(&[]), Ok(Command::Help(HELP))));
        assert!(matches!(run(&["version"]), Ok(Command::Version)));
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("a.pem");
        std::fs::write(&pem, "").unwrap();
        assert!(
            matches!(run(&["ca-hash", pem.to_str().unwrap()]), Ok(Command::CaHash(f)) if f.len() == 1)
        );
        assert!(run(&["ca-hash"]).is_err());
        assert!(run(&["frobnicate"]).is_err());
    }
}
