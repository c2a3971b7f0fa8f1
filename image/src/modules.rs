//! Choosing the kernel modules of an image: the requested names, closed over their dependencies
//! with the resolver the node itself uses at boot (`kubejoin::host::modules`), plus index files
//! regenerated for exactly that subset.
//!
//! Distribution kernel packages ship `.ko` files without `modules.dep` (depmod runs at install
//! time), so the whole tree's index is first regenerated from every module's `.modinfo`, names
//! and aliases are resolved against it, and the chosen subset gets its own `modules.dep`,
//! `modules.alias` and `modules.softdep` — the files the runtime reads in the initramfs.

use kubejoin::host::modules::{
    self, generate_modules_dep, DepFiles, ModuleFile, ModuleIndex, Resolved,
};
use kubejoin::host::HostError;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a module set could not be chosen.
#[derive(Debug, thiserror::Error)]
pub enum ModulesError {
    #[error("reading the module tree {dir}")]
    Tree {
        dir: PathBuf,
        #[source]
        source: HostError,
    },
    #[error("resolving module {name:?}")]
    Resolve {
        name: String,
        #[source]
        source: HostError,
    },
    #[error("module {name:?} is neither a module nor an alias of kernel {release}")]
    NotFound { name: String, release: String },
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// One chosen module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub name: String,
    /// Relative to `/lib/modules/<release>/`.
    pub path: String,
    /// The requested names that pulled it in (a module asked for itself lists its own name).
    pub wanted_by: Vec<String>,
}

/// The modules of an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub release: String,
    pub chosen: Vec<Chosen>,
    /// Requested names that are compiled into this kernel (nothing to ship).
    pub builtin: Vec<String>,
    /// What each requested name resolved to (module names; empty for a built-in).
    pub targets: BTreeMap<String, Vec<String>>,
    /// `modules.dep`, `modules.alias`, `modules.softdep` for the chosen subset.
    pub index: DepFiles,
    /// Copied verbatim when the tree has them: `modules.builtin`, `modules.builtin.modinfo`,
    /// `modules.order` is not needed at boot.
    pub builtin_files: Vec<(String, Vec<u8>)>,
}

/// Closes `requested` (module names or aliases) over dependencies in the tree `dir`
/// (`/lib/modules/<release>`).
pub fn select(dir: &Path, release: &str, requested: &[String]) -> Result<Selection, ModulesError> {
    let all = modules::scan_tree(dir).map_err(|source| ModulesError::Tree {
        dir: dir.to_path_buf(),
        source,
    })?;
    let by_name: BTreeMap<String, &ModuleFile> = all.iter().map(|m| (m.name(), m)).collect();
    // The whole tree's index, built the way the image's own will be, so resolution here and at
    // boot agree. Modules whose dependencies are missing from the tree are left out of it.
    let complete: Vec<ModuleFile> = all
        .iter()
        .filter(|m| m.info.depends.iter().all(|d| by_name.contains_key(d)))
        .cloned()
        .collect();
    let tree = generate_modules_dep(&complete).map_err(|source| ModulesError::Tree {
        dir: dir.to_path_buf(),
        source,
    })?;
    let read_opt = |name: &str| -> Result<Option<Vec<u8>>, ModulesError> {
        let p = dir.join(name);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ModulesError::Read { path: p, source }),
        }
    };
    let builtin = read_opt("modules.builtin")?;
    let builtin_modinfo = read_opt("modules.builtin.modinfo")?;
    let index = ModuleIndex::parse(
        release,
        &tree.modules_dep,
        &tree.modules_alias,
        &String::from_utf8_lossy(builtin.as_deref().unwrap_or_default()),
        &tree.modules_softdep,
        builtin_modinfo.as_deref().unwrap_or_default(),
    )
    .map_err(|source| ModulesError::Tree {
        dir: dir.to_path_buf(),
        source,
    })?;

    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut builtins = Vec::new();
    let mut resolved: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in requested {
        let targets = match index.resolve(name) {
            Resolved::Modules(ms) => ms,
            Resolved::Builtin(b) => {
                builtins.push(b);
                resolved.entry(name.clone()).or_default();
                continue;
            }
            Resolved::NotFound => {
                return Err(ModulesError::NotFound {
                    name: name.clone(),
                    release: release.to_string(),
                })
            }
        };
        resolved.insert(name.clone(), targets.clone());
        for t in targets {
            let closure = index
                .load_order(&t)
                .map_err(|source| ModulesError::Resolve {
                    name: name.clone(),
                    source,
                })?;
            for (m, _hard) in closure {
                let w = wanted.entry(m.clone()).or_default();
                if !w.contains(name) {
                    w.push(name.clone());
                }
                if !order.contains(&m) {
                    order.push(m);
                }
            }
        }
    }
    // Sorted by path: the subset's index (and so the image) does not depend on request order.
    let mut subset: Vec<ModuleFile> = order
        .iter()
        .filter_map(|n| by_name.get(n).map(|m| (*m).clone()))
        .collect();
    subset.sort_by(|a, b| a.path.cmp(&b.path));
    let sub_index = generate_modules_dep(&subset).map_err(|source| ModulesError::Resolve {
        name: requested.join(","),
        source,
    })?;
    let chosen = subset
        .iter()
        .map(|m| Chosen {
            name: m.name(),
            path: m.path.clone(),
            wanted_by: wanted.get(&m.name()).cloned().unwrap_or_default(),
        })
        .collect();
    let mut builtin_files = Vec::new();
    if let Some(b) = builtin {
        builtin_files.push(("modules.builtin".to_string(), b));
    }
    if let Some(b) = builtin_modinfo {
        builtin_files.push(("modules.builtin.modinfo".to_string(), b));
    }
    builtins.sort();
    builtins.dedup();
    Ok(Selection {
        release: release.to_string(),
        chosen,
        builtin: builtins,
        targets: resolved,
        index: sub_index,
        builtin_files,
    })
}
