//! Kernel modules without modprobe: name → file through `modules.dep` / `modules.alias`,
//! dependency closure in load order, and loading with `finit_module` / `init_module`.
//!
//! The index files are read as depmod writes them (or as [`generate_modules_dep`] regenerates
//! them for an image), so the runtime and the image builder resolve names identically.

pub mod compress;
mod drivers;
pub mod modinfo;
mod place;

pub use drivers::{matching, read_drivers, Coldplug, DRIVERS_PATH};
pub(crate) use place::place_requests;

pub use compress::Compression;
pub use modinfo::{
    generate_modules_dep, modinfo, scan_tree, DepFiles, ModInfo, ModInfoError, ModuleFile,
};

use crate::fs::root::Root;
use crate::host::{cmdline, confdirs, fnmatch, HostConfig, HostError, ProxyMode};
use crate::sys::host::Host;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Modules every Kubernetes node needs: overlay for containerd's snapshotter, br_netfilter so
/// bridged pod traffic traverses iptables (and so `net.bridge.*` sysctls exist).
pub const DEFAULT_MODULES: &[&str] = &["overlay", "br_netfilter"];
/// What kube-proxy's IPVS mode needs on top: the IPVS core, the schedulers it offers by
/// default, and conntrack.
pub const IPVS_MODULES: &[&str] = &["ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack"];
/// What kube-proxy's nftables mode needs on top.
pub const NFTABLES_MODULES: &[&str] = &["nf_tables", "nf_conntrack"];

pub use super::cmdline::normalize;

/// Alias normalisation as kmod does it: `-` becomes `_` except inside `[...]` character
/// classes (where `-` is a range).
pub fn alias_normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_class = false;
    for c in s.chars() {
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            '-' if !in_class => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// Whether `name` is a plain module name (safe to use as a `/sys/module/<name>` component).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `/sys/module/<name>` exists: the module is loaded (or built in with parameters).
pub fn is_loaded(root: &Root, name: &str) -> bool {
    is_plain_name(name)
        && root
            .join(format!("/sys/module/{}", normalize(name)))
            .is_ok_and(|p| p.exists())
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// The path as modules.dep writes it (relative to the module directory, or absolute).
    path: String,
    deps: Vec<String>,
}

/// The module index of one kernel release: `modules.dep`, `modules.alias`, `modules.softdep`,
/// `modules.builtin` (+ aliases of built-ins from `modules.builtin.modinfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModuleIndex {
    pub release: String,
    /// `/lib/modules/<release>` (node path).
    pub dir: PathBuf,
    /// modules.dep was not there (a kernel package installed without depmod).
    pub missing_dep_file: bool,
    modules: BTreeMap<String, Entry>,
    aliases: Vec<(String, String)>,
    builtin: BTreeSet<String>,
    softdeps: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

/// What a name stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Loadable modules (one for a module name, possibly several for an alias).
    Modules(Vec<String>),
    /// Compiled into the kernel: nothing to load.
    Builtin(String),
    NotFound,
}

impl ModuleIndex {
    /// Reads the index of `release` under `root`. A missing `modules.dep` gives an empty
    /// index flagged `missing_dep_file` (resolution then fails with a hint saying so); the
    /// other files are optional.
    pub fn load(root: &Root, release: &str) -> Result<Self, HostError> {
        if !is_release(release) {
            return Err(HostError::BadRelease {
                release: release.to_string(),
            });
        }
        let dir = PathBuf::from(format!("/lib/modules/{release}"));
        let read = |name: &str| -> Result<Option<Vec<u8>>, HostError> {
            let p = root.join(dir.join(name))?;
            match std::fs::read(&p) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(HostError::Read { path: p, source }),
            }
        };
        let text = |b: Option<Vec<u8>>| {
            b.map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default()
        };
        let dep = read("modules.dep")?;
        let missing = dep.is_none();
        let mut idx = Self::parse(
            release,
            &text(dep),
            &text(read("modules.alias")?),
            &text(read("modules.builtin")?),
            &text(read("modules.softdep")?),
            &read("modules.builtin.modinfo")?.unwrap_or_default(),
        )?;
        idx.missing_dep_file = missing;
        Ok(idx)
    }

    /// Builds an index from the files' contents (each may be empty).
    pub fn parse(
        release: &str,
        modules_dep: &str,
        modules_alias: &str,
        modules_builtin: &str,
        modules_softdep: &str,
        builtin_modinfo: &[u8],
    ) -> Result<Self, HostError> {
        let mut idx = Self {
            release: release.to_string(),
            dir: PathBuf::from(format!("/lib/modules/{release}")),
            ..Self::default()
        };
        for (n, line) in modules_dep.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((path, deps)) = line.split_once(':') else {
                return Err(HostError::Parse {
                    path: idx.dir.join("modules.dep"),
                    line: n + 1,
                    reason: format!("expected `module.ko: deps…`, found {line:?}"),
                });
            };
            let name = modinfo::name_from_path(path.trim());
            let deps = deps
                .split_whitespace()
                .map(modinfo::name_from_path)
                .collect();
            // depmod lists each module once; should a file repeat one, the first wins like in kmod.
            idx.modules.entry(name).or_insert(Entry {
                path: path.trim().to_string(),
                deps,
            });
        }
        for line in modules_alias.lines() {
            let mut w = line.split_whitespace();
            if let (Some("alias"), Some(pattern), Some(module)) = (w.next(), w.next(), w.next()) {
                idx.aliases
                    .push((alias_normalize(pattern), normalize(module)));
            }
        }
        for line in modules_builtin
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            idx.builtin.insert(modinfo::name_from_path(line));
        }
        for (pattern, module) in modinfo::builtin_modinfo(builtin_modinfo) {
            idx.builtin.insert(module.clone());
            idx.aliases.push((alias_normalize(&pattern), module));
        }
        for line in modules_softdep.lines() {
            let line = line.trim();
            let Some(rest) = line.strip_prefix("softdep ") else {
                continue;
            };
            let rest = rest.trim_start();
            let (module, spec) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let (pre, post) = modinfo::parse_softdep(spec);
            let e = idx.softdeps.entry(normalize(module)).or_default();
            e.0.extend(pre);
            e.1.extend(post);
        }
        Ok(idx)
    }

    /// What `name` (a module name, either separator, or an alias) stands for. Order as kmod:
    /// a module of that name, then a built-in of that name, then aliases (fnmatch patterns).
    pub fn resolve(&self, name: &str) -> Resolved {
        let n = normalize(name);
        if self.modules.contains_key(&n) {
            return Resolved::Modules(vec![n]);
        }
        if self.builtin.contains(&n) {
            return Resolved::Builtin(n);
        }
        let a = alias_normalize(name);
        let mut found: Vec<String> = Vec::new();
        let mut builtin = None;
        for (pattern, module) in &self.aliases {
            if fnmatch::fnmatch(pattern, &a) {
                if self.modules.contains_key(module) {
                    if !found.contains(module) {
                        found.push(module.clone());
                    }
                } else if self.builtin.contains(module) {
                    builtin.get_or_insert_with(|| module.clone());
                }
            }
        }
        match (found.is_empty(), builtin) {
            (false, _) => Resolved::Modules(found),
            (true, Some(b)) => Resolved::Builtin(b),
            (true, None) => Resolved::NotFound,
        }
    }

    /// Whether `name` is compiled into the kernel.
    pub fn is_builtin(&self, name: &str) -> bool {
        self.builtin.contains(&normalize(name))
    }

    /// The module file's node path (`/lib/modules/<release>/kernel/…/x.ko`).
    pub fn node_path(&self, module: &str) -> Option<PathBuf> {
        let e = self.modules.get(&normalize(module))?;
        Some(if e.path.starts_with('/') {
            PathBuf::from(&e.path)
        } else {
            self.dir.join(&e.path)
        })
    }

    /// Direct (as listed) dependencies of `module`.
    pub fn deps(&self, module: &str) -> &[String] {
        self.modules
            .get(&normalize(module))
            .map_or(&[], |e| &e.deps)
    }

    /// `module` and everything it needs, in load order (dependencies first, `module` last),
    /// with `pre:` soft dependencies ahead and `post:` ones after. Each element says whether it
    /// is a hard requirement (`false` for soft dependencies, whose absence or failure modprobe
    /// tolerates too).
    pub fn load_order(&self, module: &str) -> Result<Vec<(String, bool)>, HostError> {
        let mut out = Vec::new();
        let mut state = HashMap::new();
        self.visit(
            &normalize(module),
            true,
            &mut state,
            &mut out,
            &mut Vec::new(),
        )?;
        Ok(out)
    }

    fn visit(
        &self,
        name: &str,
        hard: bool,
        state: &mut HashMap<String, bool>,
        out: &mut Vec<(String, bool)>,
        stack: &mut Vec<String>,
    ) -> Result<(), HostError> {
        match state.get(name) {
            Some(true) => {
                // Already placed; a hard need upgrades an earlier soft placement.
                if hard {
                    if let Some(e) = out.iter_mut().find(|(n, _)| n == name) {
                        e.1 = true;
                    }
                }
                return Ok(());
            }
            Some(false) if hard => {
                stack.push(name.to_string());
                let start = stack.iter().position(|s| s == name).unwrap_or(0);
                return Err(HostError::DependencyCycle {
                    module: name.to_string(),
                    cycle: stack[start..].join(" -> "),
                });
            }
            // A soft dependency looping back is ignored, as modprobe does.
            Some(false) => return Ok(()),
            None => {}
        }
        if !self.modules.contains_key(name) {
            return Ok(()); // a soft dependency that is built in or absent: nothing to load
        }
        state.insert(name.to_string(), false);
        stack.push(name.to_string());
        let (pre, post) = self.softdeps.get(name).cloned().unwrap_or_default();
        for p in &pre {
            self.visit_soft(p, state, out, stack)?;
        }
        // modules.dep lists a module before the modules it needs; walking the list backwards
        // gives modprobe's own order for a depmod-made line (and a valid order for any line).
        for d in self.deps(name).iter().rev() {
            self.visit(d, hard, state, out, stack)?;
        }
        stack.pop();
        state.insert(name.to_string(), true);
        out.push((name.to_string(), hard));
        for p in &post {
            self.visit_soft(p, state, out, stack)?;
        }
        Ok(())
    }

    /// A soft dependency may name an alias (`pre: crypto-md5`); one that resolves to nothing
    /// loadable (built in, or not shipped) is skipped, as modprobe does.
    fn visit_soft(
        &self,
        name: &str,
        state: &mut HashMap<String, bool>,
        out: &mut Vec<(String, bool)>,
        stack: &mut Vec<String>,
    ) -> Result<(), HostError> {
        if let Resolved::Modules(ms) = self.resolve(name) {
            for m in ms {
                self.visit(&m, false, state, out, stack)?;
            }
        }
        Ok(())
    }
}

/// A release string usable as a path component (`uname -r`).
fn is_release(r: &str) -> bool {
    !r.is_empty() && r != "." && r != ".." && !r.contains('/') && !r.contains('\0')
}

/// One module parameter: `module.name[=value]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleParam {
    pub module: String,
    pub name: String,
    pub value: Option<String>,
}

impl FromStr for ModuleParam {
    type Err = HostError;

    /// `br_netfilter.foo=1` (the kernel command line's syntax; quotes around the value allowed).
    fn from_str(s: &str) -> Result<Self, HostError> {
        let bad = |reason: &str| HostError::ModuleParam {
            module: String::new(),
            param: s.to_string(),
            reason: reason.to_string(),
        };
        let args = cmdline::split(s);
        let [arg] = args.as_slice() else {
            return Err(bad("expected exactly one `module.param=value`"));
        };
        let Some((module, name)) = arg.key.split_once('.') else {
            return Err(bad("expected `module.param=value`"));
        };
        if !is_plain_name(module) || name.is_empty() {
            return Err(bad("expected `module.param=value`"));
        }
        Ok(Self {
            module: normalize(module),
            name: name.to_string(),
            value: arg.value.clone(),
        })
    }
}

impl fmt::Display for ModuleParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            self.module,
            param_arg(&self.name, self.value.as_deref())
        )
    }
}

/// `name=value` as the kernel's argument parser reads it back: quoted when the value holds
/// whitespace.
fn param_arg(name: &str, value: Option<&str>) -> String {
    match value {
        None => name.to_string(),
        Some(v) if v.is_empty() || v.chars().any(char::is_whitespace) => format!("{name}=\"{v}\""),
        Some(v) => format!("{name}={v}"),
    }
}

fn check_param(module: &str, name: &str, value: Option<&str>) -> Result<(), HostError> {
    let bad = |reason: &str| HostError::ModuleParam {
        module: module.to_string(),
        param: param_arg(name, value),
        reason: reason.to_string(),
    };
    if name.is_empty()
        || name.contains(|c: char| c.is_whitespace() || c == '=' || c == '"' || c == '\0')
    {
        return Err(bad("the parameter name must be a single word"));
    }
    // The kernel's parser has no escape for a quote inside a value, and NUL ends the string.
    if value.is_some_and(|v| v.contains('"') || v.contains('\0')) {
        return Err(bad("a value cannot contain a double quote or NUL byte"));
    }
    Ok(())
}

/// One module asked for, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRequest {
    /// As written (a module name or an alias).
    pub name: String,
    /// `default`, `proxy mode ipvs`, `config`, or `/etc/modules-load.d/x.conf:3`.
    pub source: String,
    /// Defaults and config are required (a failure fails host preparation); modules-load.d
    /// entries are best effort, as systemd-modules-load treats them (logged, not fatal).
    pub required: bool,
}

/// The modules to load for `cfg`, deduplicated by normalised name (first source kept; required
/// if any source requires it).
pub fn module_set(
    cfg: &HostConfig,
    root: &Root,
    notes: &mut Vec<String>,
) -> Result<Vec<ModuleRequest>, HostError> {
    let mut out: Vec<ModuleRequest> = Vec::new();
    let mut add = |name: &str, source: String, required: bool| {
        let key = normalize(name);
        if let Some(r) = out.iter_mut().find(|r| normalize(&r.name) == key) {
            r.required |= required;
        } else {
            out.push(ModuleRequest {
                name: name.to_string(),
                source,
                required,
            });
        }
    };
    if !cfg.skip_default_modules {
        for m in DEFAULT_MODULES {
            add(m, "default".into(), true);
        }
        let extra: &[&str] = match cfg.proxy_mode {
            ProxyMode::Iptables | ProxyMode::None => &[],
            ProxyMode::Ipvs => IPVS_MODULES,
            ProxyMode::Nftables => NFTABLES_MODULES,
        };
        for m in extra {
            add(m, format!("proxy mode {}", cfg.proxy_mode), true);
        }
    }
    for m in &cfg.modules {
        add(m, "config".into(), true);
    }
    if cfg.read_modules_load_d {
        for f in confdirs::collect(root, &confdirs::search_dirs("modules-load.d"))? {
            for (line, text) in confdirs::lines(&f.content) {
                if text.split_whitespace().count() != 1 {
                    notes.push(format!(
                        "{}:{line}: ignoring {text:?}: not a single module name",
                        f.path.display()
                    ));
                    continue;
                }
                add(text, format!("{}:{line}", f.path.display()), false);
            }
        }
    }
    Ok(out)
}

/// How a module file reaches the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMethod {
    /// `finit_module` on the plain `.ko`.
    Finit,
    /// `finit_module(MODULE_INIT_COMPRESSED_FILE)`: the kernel decompresses.
    FinitCompressed(Compression),
    /// Decompressed here, then `init_module`.
    Decompress(Compression),
}

impl fmt::Display for LoadMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Finit => f.write_str("finit_module"),
            Self::FinitCompressed(c) => write!(f, "finit_module, kernel decompresses {c}"),
            Self::Decompress(c) => write!(f, "{c} decompressed in memory, init_module"),
        }
    }
}

/// One module to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedLoad {
    pub name: String,
    /// Node path of the file.
    pub path: PathBuf,
    pub method: LoadMethod,
    /// `param=value` arguments, in the order passed (config first, then the command line: the
    /// kernel keeps the last value of a repeated parameter, so the command line wins).
    pub params: Vec<String>,
    /// Modules it needs (already earlier in the load order, built in or loaded).
    pub deps: Vec<String>,
    /// A failure fails host preparation (false for soft dependencies and modules-load.d).
    pub required: bool,
    /// The requests that pulled it in.
    pub wanted_by: Vec<String>,
}

/// How one request resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestOutcome {
    /// These modules are loaded for it (in order); `already` were loaded before.
    Load {
        modules: Vec<String>,
        already: Vec<String>,
    },
    AlreadyLoaded,
    Builtin,
    /// Only for best-effort requests; a required one fails planning.
    NotFound,
}

/// A request with its resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRequest {
    pub request: ModuleRequest,
    pub outcome: RequestOutcome,
}

/// Everything about modules in a host plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModulePlan {
    /// The format the kernel decompresses itself (`/sys/module/compression`), if any.
    pub kernel_compression: Option<Compression>,
    pub requests: Vec<PlannedRequest>,
    /// In load order: every module after the modules it needs.
    pub loads: Vec<PlannedLoad>,
    /// The image's drivers, loaded for the devices present once `loads` are in
    /// (`crate::host::coldplug`); `None` where no image lists any (a booted node: udev's job).
    pub coldplug: Option<Coldplug>,
}

/// The format the running kernel decompresses itself (`/sys/module/compression`), if any.
pub fn kernel_compression(root: &Root) -> Option<Compression> {
    root.join("/sys/module/compression")
        .ok()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|s| Compression::from_kernel_name(&s))
}

/// Resolves the module set of `cfg` for kernel `release` into a load plan.
pub fn plan_modules(
    cfg: &HostConfig,
    root: &Root,
    release: &str,
    args: &[cmdline::Arg],
    notes: &mut Vec<String>,
) -> Result<ModulePlan, HostError> {
    let requests = module_set(cfg, root, notes)?;
    let drivers = if cfg.coldplug {
        read_drivers(root)?
    } else {
        None
    };
    let mut plan = ModulePlan::default();
    if requests.is_empty() && drivers.is_none() {
        return Ok(plan);
    }
    plan.kernel_compression = kernel_compression(root);
    let index = ModuleIndex::load(root, release)?;

    // Parameters: config first, then the command line (the kernel keeps the last value).
    let mut params: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
    for p in &cfg.module_params {
        check_param(&p.module, &p.name, p.value.as_deref())?;
        params
            .entry(normalize(&p.module))
            .or_default()
            .push((param_arg(&p.name, p.value.as_deref()), true));
    }
    if cfg.read_kernel_cmdline {
        for (m, name, value) in cmdline::module_params(args) {
            match check_param(&m, &name, value.as_deref()) {
                Ok(()) => params
                    .entry(m)
                    .or_default()
                    .push((param_arg(&name, value.as_deref()), false)),
                Err(e) => notes.push(format!("kernel command line: ignoring {e}")),
            }
        }
    }

    let args_of: BTreeMap<String, Vec<String>> = params
        .iter()
        .map(|(m, ps)| (m.clone(), ps.iter().map(|(a, _)| a.clone()).collect()))
        .collect();
    let placed = place_requests(&mut plan, requests, &index, root, &args_of, notes)?;
    // `module_blacklist=` makes the kernel itself refuse these modules (EPERM on load).
    let blacklist: Vec<String> = args
        .iter()
        .filter(|a| a.key == "module_blacklist")
        .filter_map(|a| a.value.as_deref())
        .flat_map(|v| v.split(',').map(normalize))
        .collect();
    for l in plan.loads.iter().filter(|l| blacklist.contains(&l.name)) {
        notes.push(format!(
            "module {} is in module_blacklist= on the kernel command line: the kernel will refuse to load it",
            l.name
        ));
    }
    // Config parameters for a module that will not be loaded here cannot take effect.
    for (m, ps) in &params {
        let from_config: Vec<&str> = ps
            .iter()
            .filter(|(_, c)| *c)
            .map(|(a, _)| a.as_str())
            .collect();
        let coldplugged = drivers.as_ref().is_some_and(|(_, d)| d.contains(m));
        if !from_config.is_empty() && !placed.contains_key(m) && !coldplugged {
            let why = if index.is_builtin(m) {
                "it is built into the kernel (use the kernel command line)"
            } else if is_loaded(root, m) {
                "it is already loaded (see /sys/module/<name>/parameters)"
            } else {
                "it is not in the module set"
            };
            notes.push(format!(
                "parameters {} for module {m} are not applied: {why}",
                from_config.join(" ")
            ));
        }
    }
    plan.coldplug = drivers.map(|(source, drivers)| Coldplug {
        source,
        drivers,
        params: args_of,
        index,
    });
    Ok(plan)
}

/// What happened to one module load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadOutcome {
    Loaded,
    /// `EEXIST`: someone loaded it between planning and now.
    AlreadyLoaded,
}

/// Loads one module through the seam.
pub fn load(load: &PlannedLoad, root: &Root, sys: &dyn Host) -> Result<LoadOutcome, HostError> {
    let real = root.join(&load.path)?;
    let params = load.params.join(" ");
    let fail = |e: std::io::Error| HostError::ModuleLoad {
        module: load.name.clone(),
        path: load.path.clone(),
        errno: e.raw_os_error().unwrap_or(0),
        meaning: errno_meaning(&e),
    };
    let result = match load.method {
        LoadMethod::Finit | LoadMethod::FinitCompressed(_) => {
            let flags = match load.method {
                LoadMethod::FinitCompressed(_) => compress::MODULE_INIT_COMPRESSED_FILE,
                _ => 0,
            };
            let file = sys
                .open_module(&real)
                .map_err(|source| HostError::ModuleOpen {
                    module: load.name.clone(),
                    path: load.path.clone(),
                    source,
                })?;
            match (
                sys.finit_module(&load.name, &load.path, &file, &params, flags),
                load.method,
            ) {
                // A kernel that advertises a format but refuses the flag (older than the flag,
                // or built without in-kernel decompression after all): decompress here instead.
                (Err(e), LoadMethod::FinitCompressed(c))
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINVAL) | Some(libc::EOPNOTSUPP)
                    ) =>
                {
                    init_decompressed(load, &real, c, &params, sys)?
                }
                (r, _) => r,
            }
        }
        LoadMethod::Decompress(c) => init_decompressed(load, &real, c, &params, sys)?,
    };
    match result {
        Ok(()) => Ok(LoadOutcome::Loaded),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(LoadOutcome::AlreadyLoaded),
        Err(e) => Err(fail(e)),
    }
}

fn init_decompressed(
    load: &PlannedLoad,
    real: &Path,
    c: Compression,
    params: &str,
    sys: &dyn Host,
) -> Result<std::io::Result<()>, HostError> {
    let mut data = Vec::new();
    sys.open_module(real)
        .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut data))
        .map_err(|source| HostError::ModuleOpen {
            module: load.name.clone(),
            path: load.path.clone(),
            source,
        })?;
    let image = compress::decompress(c, &data, compress::MAX_MODULE_SIZE).map_err(|reason| {
        HostError::Decompress {
            module: load.name.clone(),
            path: load.path.clone(),
            format: c,
            reason,
        }
    })?;
    Ok(sys.init_module(&load.name, &load.path, &image, params))
}

/// What an errno from `(f)init_module` means for someone fixing the node (init_module(2) and
/// the kernel's load path).
pub fn errno_meaning(e: &std::io::Error) -> String {
    let s = match e.raw_os_error() {
        Some(libc::ENOEXEC) => "invalid module format: built for another kernel, or corrupt",
        Some(libc::ENOENT) => "unknown symbol in module or unknown parameter (see dmesg)",
        Some(libc::EPERM) => "operation not permitted: needs CAP_SYS_MODULE, and module loading must not be disabled (kernel.modules_disabled, lockdown)",
        Some(libc::EKEYREJECTED) | Some(libc::EBADMSG) | Some(libc::ENOKEY) | Some(libc::EKEYEXPIRED) => {
            "module signature rejected: the kernel enforces signed modules (Secure Boot or module.sig_enforce)"
        }
        Some(libc::EINVAL) => "invalid module parameters or module layout (see dmesg)",
        Some(libc::ENODEV) => "no such device: the module found no hardware to drive",
        Some(libc::ENOSYS) => "the kernel was built without loadable module support",
        Some(libc::ETXTBSY) => "the module file is open for writing",
        Some(libc::ENOMEM) => "out of memory",
        Some(libc::EBUSY) => "busy: the module is being loaded or removed concurrently",
        _ => return e.to_string(),
    };
    s.to_string()
}

#[cfg(test)]
mod tests;
