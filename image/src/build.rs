//! From a [`Spec`] to the archive bytes and their manifest.

use crate::compress::{self, Compression};
use crate::cpio::{Archive, Kind, PathError};
use crate::modules::{self, ModulesError};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where the CA bundle goes (the path Debian, Alpine and rustls-native-certs look at first).
pub const CA_BUNDLE_PATH: &str = "/etc/ssl/certs/ca-certificates.crt";
/// The image's own module list, read at boot like any modules-load.d file (lowest-priority
/// directory, as a distribution package would ship it).
pub const MODULES_LOAD_PATH: &str = "/usr/lib/modules-load.d/kubejoin-image.conf";

/// The image's drivers: loaded at boot only for a device present that matches one of their
/// aliases (host-prep's coldplug), or for a filesystem being mounted (`fs-<type>`). Not a
/// modules-load.d file, which is loaded unconditionally.
pub use kubejoin::host::modules::DRIVERS_PATH;

/// An extra file: `src` on the build machine, `dest` in the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extra {
    pub src: PathBuf,
    pub dest: String,
    /// `None`: 0755 if the source is executable by its owner, else 0644 (never the build
    /// machine's exact bits, which vary with umask).
    pub mode: Option<u32>,
}

/// What goes into an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// The kubejoin binary; becomes `/init`.
    pub init: PathBuf,
    /// A kernel's `/lib/modules/<release>` tree.
    pub modules_dir: Option<PathBuf>,
    /// Module names or aliases to ship (dependencies are added) and load at every boot.
    pub modules: Vec<String>,
    /// Module names or aliases to ship (dependencies are added) and load only on demand: for a
    /// device present that they match, or a filesystem mounted ([`DRIVERS_PATH`]).
    pub drivers: Vec<String>,
    pub ca_bundle: Option<PathBuf>,
    pub extra: Vec<Extra>,
    pub compression: Compression,
    /// Each kernel module compressed on its own (`.ko.zst`, `.ko.gz`), or shipped as the tree
    /// has it (`Compression::None`). The node loads a compressed module with
    /// `finit_module(MODULE_INIT_COMPRESSED_FILE)` when its kernel decompresses that format,
    /// else decompresses it in memory first (Debian 12's kernel has no in-kernel decompression).
    pub module_compression: Compression,
    /// Every member's mtime (`SOURCE_DATE_EPOCH`).
    pub mtime: u32,
}

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Modules(#[from] Box<ModulesError>),
    #[error("--module needs --modules-dir (a kernel's /lib/modules/<release> tree)")]
    ModulesWithoutTree,
    #[error("{0} has no release name (expected …/lib/modules/<release>)")]
    NoRelease(PathBuf),
    #[error("compressing the archive")]
    Compress(#[source] std::io::Error),
}

/// One member in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManifestMember {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Octal permission bits, e.g. `"0755"`.
    pub mode: String,
    pub size: u64,
    /// sha256 of a file's contents, a symlink's target, or empty for directories and devices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// One module in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManifestModule {
    pub name: String,
    pub path: String,
    pub wanted_by: Vec<String>,
}

/// One on-demand driver in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManifestDriver {
    pub name: String,
    pub aliases: Vec<String>,
}

/// Everything about an image, deterministic like the image itself.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Manifest {
    pub format: &'static str,
    pub compression: &'static str,
    pub source_date_epoch: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    pub modules_requested: Vec<String>,
    /// `--driver` / `--drivers-list` names as given.
    pub drivers_requested: Vec<String>,
    /// The drivers' modules listed in [`DRIVERS_PATH`], with the aliases (modules.alias
    /// patterns) a device's modalias or a mount is matched against.
    pub drivers: Vec<ManifestDriver>,
    pub modules_builtin: Vec<String>,
    pub modules: Vec<ManifestModule>,
    pub members: Vec<ManifestMember>,
    pub uncompressed_size: u64,
    pub uncompressed_sha256: String,
    pub size: u64,
    pub sha256: String,
}

/// A built image.
#[derive(Debug, Clone)]
pub struct Built {
    /// The (compressed) archive.
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

fn read(path: &Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|source| BuildError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The directories every image has: mount points for the API filesystems and the real root,
/// and `/dev/console`, which the kernel opens for `/init`'s stdin/stdout/stderr before running
/// it (devtmpfs is not mounted yet at that point).
pub fn skeleton(a: &mut Archive) -> Result<(), PathError> {
    for (dir, mode) in [
        ("/dev", 0o755),
        ("/proc", 0o555),
        ("/sys", 0o555),
        ("/run", 0o755),
        ("/sysroot", 0o755),
        ("/tmp", 0o1777),
        ("/etc", 0o755),
        ("/var", 0o755),
        ("/var/lib", 0o755),
    ] {
        a.add(dir, Kind::Dir, mode)?;
    }
    a.add("/dev/console", Kind::CharDev { major: 5, minor: 1 }, 0o600)?;
    a.add("/dev/null", Kind::CharDev { major: 1, minor: 3 }, 0o666)?;
    Ok(())
}

/// Builds the image `spec` describes.
/// The file name suffix of a module compressed with `c` (`None`: shipped as is).
fn module_suffix(c: Compression) -> Option<&'static str> {
    match c {
        Compression::None => None,
        Compression::Gzip => Some(".gz"),
        Compression::Zstd => Some(".zst"),
    }
}

/// `modules.dep` with every renamed path replaced (each line is `path: dep dep …`).
fn rename_in_dep(dep: &str, renamed: &BTreeMap<String, String>) -> String {
    if renamed.is_empty() {
        return dep.to_string();
    }
    let mut out = String::with_capacity(dep.len() + renamed.len() * 4);
    for line in dep.lines() {
        let (head, rest) = line.split_once(':').unwrap_or((line, ""));
        let name = |p: &str| renamed.get(p).cloned().unwrap_or_else(|| p.to_string());
        out.push_str(&name(head.trim()));
        out.push(':');
        for d in rest.split_whitespace() {
            out.push(' ');
            out.push_str(&name(d));
        }
        out.push('\n');
    }
    out
}

pub fn build(spec: &Spec) -> Result<Built, BuildError> {
    let mut a = Archive::new();
    skeleton(&mut a)?;
    a.add("/init", Kind::File(read(&spec.init)?), 0o755)?;
    if let Some(ca) = &spec.ca_bundle {
        a.add(CA_BUNDLE_PATH, Kind::File(read(ca)?), 0o644)?;
    }
    let mut release = None;
    let mut mods = Vec::new();
    let mut builtin = Vec::new();
    let mut drivers = Vec::new();
    let requested: Vec<String> = spec.modules.iter().chain(&spec.drivers).cloned().collect();
    match (&spec.modules_dir, requested.is_empty()) {
        (None, false) => return Err(BuildError::ModulesWithoutTree),
        (None, true) => {}
        (Some(dir), _) => {
            let rel = dir
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| !n.is_empty())
                .ok_or_else(|| BuildError::NoRelease(dir.clone()))?
                .to_string();
            let sel = modules::select(dir, &rel, &requested).map_err(Box::new)?;
            let base = format!("/lib/modules/{rel}");
            // Renamed members (`x.ko` -> `x.ko.zst`), for modules.dep.
            let mut renamed: BTreeMap<String, String> = BTreeMap::new();
            for c in &sel.chosen {
                let bytes = read(&dir.join(&c.path))?;
                let (path, bytes) = match module_suffix(spec.module_compression) {
                    Some(suffix) if c.path.ends_with(".ko") => {
                        let packed = compress::compress(spec.module_compression, &bytes)
                            .map_err(BuildError::Compress)?;
                        let path = format!("{}{suffix}", c.path);
                        renamed.insert(c.path.clone(), path.clone());
                        (path, packed)
                    }
                    _ => (c.path.clone(), bytes),
                };
                a.add(&format!("{base}/{path}"), Kind::File(bytes), 0o644)?;
                mods.push(ManifestModule {
                    name: c.name.clone(),
                    path,
                    wanted_by: c.wanted_by.clone(),
                });
            }
            a.add(
                &format!("{base}/modules.dep"),
                Kind::File(rename_in_dep(&sel.index.modules_dep, &renamed).into_bytes()),
                0o644,
            )?;
            a.add(
                &format!("{base}/modules.alias"),
                Kind::File(sel.index.modules_alias.clone().into_bytes()),
                0o644,
            )?;
            a.add(
                &format!("{base}/modules.softdep"),
                Kind::File(sel.index.modules_softdep.into_bytes()),
                0o644,
            )?;
            for (name, bytes) in sel.builtin_files {
                a.add(&format!("{base}/{name}"), Kind::File(bytes), 0o644)?;
            }
            if !spec.modules.is_empty() {
                let mut conf =
                    String::from("# Modules this image was built for (kubejoin-image --module).\n");
                for m in &spec.modules {
                    conf.push_str(m);
                    conf.push('\n');
                }
                a.add(MODULES_LOAD_PATH, Kind::File(conf.into_bytes()), 0o644)?;
            }
            if !spec.drivers.is_empty() {
                let mut names: Vec<String> = Vec::new();
                for d in &spec.drivers {
                    for t in sel.targets.get(d).into_iter().flatten() {
                        if !names.contains(t) {
                            names.push(t.clone());
                        }
                    }
                }
                let mut conf = String::from(
                    "# Drivers this image ships for on demand (kubejoin-image --driver): loaded for a\n\
                     # device present whose modalias matches one of their aliases, or a filesystem mounted.\n",
                );
                for n in &names {
                    conf.push_str(n);
                    conf.push('\n');
                    let aliases = sel
                        .index
                        .modules_alias
                        .lines()
                        .filter_map(|l| {
                            let mut w = l.split_whitespace();
                            match (w.next(), w.next(), w.next()) {
                                (Some("alias"), Some(p), Some(m)) if m == n => Some(p.to_string()),
                                _ => None,
                            }
                        })
                        .collect();
                    drivers.push(ManifestDriver {
                        name: n.clone(),
                        aliases,
                    });
                }
                a.add(DRIVERS_PATH, Kind::File(conf.into_bytes()), 0o644)?;
            }
            builtin = sel.builtin;
            release = Some(rel);
        }
    }
    for x in &spec.extra {
        let bytes = read(&x.src)?;
        let mode = match x.mode {
            Some(m) => m,
            None => {
                use std::os::unix::fs::PermissionsExt as _;
                let md = std::fs::metadata(&x.src).map_err(|source| BuildError::Read {
                    path: x.src.clone(),
                    source,
                })?;
                if md.permissions().mode() & 0o100 != 0 {
                    0o755
                } else {
                    0o644
                }
            }
        };
        a.add(&x.dest, Kind::File(bytes), mode)?;
    }

    let raw = a.to_newc(spec.mtime);
    let bytes = compress::compress(spec.compression, &raw).map_err(BuildError::Compress)?;
    let members = a
        .entries()
        .map(|(path, e)| {
            let (size, sha256, target, device) = match &e.kind {
                Kind::File(d) => (d.len() as u64, Some(sha256_hex(d)), None, None),
                Kind::Symlink(t) => (
                    t.len() as u64,
                    Some(sha256_hex(t.as_bytes())),
                    Some(t.clone()),
                    None,
                ),
                Kind::Dir => (0, None, None, None),
                Kind::CharDev { major, minor } => {
                    (0, None, None, Some(format!("c {major}:{minor}")))
                }
            };
            ManifestMember {
                path: path.clone(),
                kind: e.kind.name(),
                mode: format!("{:04o}", e.mode),
                size,
                sha256,
                target,
                device,
            }
        })
        .collect();
    let manifest = Manifest {
        format: "newc",
        compression: spec.compression.name(),
        source_date_epoch: spec.mtime,
        kernel_release: release,
        modules_requested: spec.modules.clone(),
        drivers_requested: spec.drivers.clone(),
        drivers,
        modules_builtin: builtin,
        modules: mods,
        members,
        uncompressed_size: raw.len() as u64,
        uncompressed_sha256: sha256_hex(&raw),
        size: bytes.len() as u64,
        sha256: sha256_hex(&bytes),
    };
    Ok(Built { bytes, manifest })
}
