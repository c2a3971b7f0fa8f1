//! The image's on-demand drivers: the list host-prep's coldplug reads, and matching a device's
//! modalias against the drivers' own aliases.

use super::{alias_normalize, fnmatch, is_plain_name, normalize, ModuleIndex};
use crate::fs::root::Root;
use crate::host::HostError;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where an image lists the drivers it ships for coldplug: module names, one a line, `#`
/// comments (written by `kubejoin-image build --drivers-list`). Not a modules-load.d file: these
/// modules are loaded only for a device present that matches them, or a filesystem mounted.
pub const DRIVERS_PATH: &str = "/usr/lib/kubejoin/drivers.conf";

/// Drivers loaded for the devices present, as udev's coldplug does in an initramfs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coldplug {
    /// The list's node path ([`DRIVERS_PATH`]).
    pub source: PathBuf,
    /// Module names (normalised), in the list's order.
    pub drivers: Vec<String>,
    /// `param=value` arguments per module (config first, then the kernel command line).
    pub params: BTreeMap<String, Vec<String>>,
    /// The module index the devices' modaliases are matched against (read once, by the plan).
    pub index: ModuleIndex,
}

/// The image's driver list under `root`: `None` when there is none.
pub fn read_drivers(root: &Root) -> Result<Option<(PathBuf, Vec<String>)>, HostError> {
    let p = root.join(DRIVERS_PATH)?;
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(HostError::Read { path: p, source }),
    };
    let mut drivers: Vec<String> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if !is_plain_name(line) {
            return Err(HostError::Parse {
                path: PathBuf::from(DRIVERS_PATH),
                line: n + 1,
                reason: format!("expected a module name, found {line:?}"),
            });
        }
        let m = normalize(line);
        if !drivers.contains(&m) {
            drivers.push(m);
        }
    }
    Ok(Some((PathBuf::from(DRIVERS_PATH), drivers)))
}

impl ModuleIndex {
    /// The aliases (normalised fnmatch patterns, module) of the loadable modules among `among`
    /// (normalised names): what a device's modalias is matched against in coldplug — a handful,
    /// where the whole index of a kernel (built-ins' aliases included) holds thousands.
    pub fn aliases_of(&self, among: &[String]) -> Vec<(String, String)> {
        self.aliases
            .iter()
            .filter(|(_, m)| among.contains(m) && self.modules.contains_key(m))
            .cloned()
            .collect()
    }

    /// The loadable modules among `among` that a device's `modalias` selects (one of their
    /// aliases matches it, as `resolve` matches); built-in ones are left out: nothing to load.
    /// In the index's order.
    pub fn matching(&self, modalias: &str, among: &[String]) -> Vec<String> {
        matching(&self.aliases_of(among), modalias)
    }
}

/// The modules of `aliases` (from [`ModuleIndex::aliases_of`]) whose pattern matches
/// `modalias`, each once, in order.
pub fn matching(aliases: &[(String, String)], modalias: &str) -> Vec<String> {
    let a = alias_normalize(modalias);
    let mut found: Vec<String> = Vec::new();
    for (pattern, module) in aliases {
        if !found.contains(module) && fnmatch::fnmatch(pattern, &a) {
            found.push(module.clone());
        }
    }
    found
}
