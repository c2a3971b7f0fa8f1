//! Reading a module's `.modinfo` ELF section, and regenerating `modules.dep` / `modules.alias` /
//! `modules.softdep` from module files without depmod.
//!
//! A distribution kernel package ships only the `.ko` files: depmod builds the indexes at
//! install time. Every fact depmod needs for these three files is in each module's `.modinfo`
//! section (`depends=` lists the modules whose symbols it uses, computed by modpost at build
//! time), so the image builder can regenerate them for any subset of modules, and the runtime
//! then resolves names with the very same parser it uses on a depmod-made index.

use super::compress::{self, Compression, MAX_MODULE_SIZE};
use super::normalize;
use crate::host::HostError;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What a module says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    /// `name=` (modpost has recorded it since Linux 5.x); `None` in older modules, where the
    /// file name is the name.
    pub name: Option<String>,
    /// `depends=`: modules this one needs loaded first (normalised names).
    pub depends: Vec<String>,
    /// `alias=` patterns (device ids such as `pci:v00001AF4d…`, `fs-overlay`, `net-pf-7`).
    pub aliases: Vec<String>,
    /// `softdep=` values as written (`pre: crypto-md5`; some modules list names without a
    /// `pre:`/`post:` keyword, which modprobe ignores but depmod still copies out).
    pub softdeps: Vec<String>,
    /// Modules (or aliases) to load before this one (`pre:`) and after it (`post:`).
    pub softdep_pre: Vec<String>,
    pub softdep_post: Vec<String>,
    pub vermagic: Option<String>,
    pub license: Option<String>,
    pub description: Option<String>,
    /// `parm=` names, in order.
    pub params: Vec<String>,
    pub firmware: Vec<String>,
    /// Every `key=value` of the section, in order (for anything not broken out above).
    pub fields: Vec<(String, String)>,
    /// How the file was compressed, when it was.
    pub compression: Option<Compression>,
}

/// Why a file's `.modinfo` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModInfoError {
    #[error("not an ELF file")]
    NotElf,
    #[error("truncated or malformed ELF ({0})")]
    Malformed(&'static str),
    #[error("no .modinfo section: not a kernel module")]
    NoModinfo,
    #[error("decompressing: {0}")]
    Decompress(compress::DecompressError),
}

/// Parses the `.modinfo` of a module image, decompressing it first when it is xz/zstd/gzip.
pub fn modinfo(bytes: &[u8]) -> Result<ModInfo, ModInfoError> {
    let compression = Compression::sniff(bytes);
    let plain;
    let elf = match compression {
        Some(c) => {
            plain = compress::decompress(c, bytes, MAX_MODULE_SIZE)
                .map_err(ModInfoError::Decompress)?;
            &plain[..]
        }
        None => bytes,
    };
    let section = elf_section(elf, ".modinfo")?.ok_or(ModInfoError::NoModinfo)?;
    let mut info = parse_modinfo_section(section);
    info.compression = compression;
    Ok(info)
}

/// Parses the content of a `.modinfo` section (NUL-separated `key=value` strings, with NUL
/// padding between them for alignment). Also used for `modules.builtin.modinfo`, whose keys
/// carry a `module.` prefix — see [`builtin_modinfo`].
pub fn parse_modinfo_section(section: &[u8]) -> ModInfo {
    let mut info = ModInfo::default();
    for raw in section.split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let s = String::from_utf8_lossy(raw);
        let Some((k, v)) = s.split_once('=') else {
            continue;
        };
        let (k, v) = (k.to_string(), v.to_string());
        match k.as_str() {
            "name" => info.name = Some(normalize(&v)),
            "depends" => info
                .depends
                .extend(v.split(',').filter(|d| !d.is_empty()).map(normalize)),
            "alias" => info.aliases.push(v.clone()),
            "softdep" => {
                info.softdeps.push(v.clone());
                let (pre, post) = parse_softdep(&v);
                info.softdep_pre.extend(pre);
                info.softdep_post.extend(post);
            }
            "vermagic" => info.vermagic = Some(v.clone()),
            "license" => info.license = Some(v.clone()),
            "description" => info.description = Some(v.clone()),
            "firmware" => info.firmware.push(v.clone()),
            "parm" => {
                if let Some((p, _)) = v.split_once(':') {
                    info.params.push(p.to_string());
                }
            }
            _ => {}
        }
        info.fields.push((k, v));
    }
    info
}

/// `pre: a b post: c` → (`[a, b]`, `[c]`), names normalised.
pub fn parse_softdep(s: &str) -> (Vec<String>, Vec<String>) {
    let (mut pre, mut post) = (Vec::new(), Vec::new());
    let mut into_pre = None;
    for word in s.split_whitespace() {
        match word {
            "pre:" => into_pre = Some(true),
            "post:" => into_pre = Some(false),
            m => match into_pre {
                Some(true) => pre.push(normalize(m)),
                Some(false) => post.push(normalize(m)),
                None => {}
            },
        }
    }
    (pre, post)
}

/// `modules.builtin.modinfo` (`module.key=value` strings): aliases of built-in modules, as
/// (alias pattern, module).
pub fn builtin_modinfo(content: &[u8]) -> Vec<(String, String)> {
    content
        .split(|&b| b == 0)
        .filter_map(|raw| {
            let s = String::from_utf8_lossy(raw);
            let (key, value) = s.split_once('=')?;
            let (module, field) = key.split_once('.')?;
            (field == "alias").then(|| (value.to_string(), normalize(module)))
        })
        .collect()
}

/// The content of the section called `name` in an ELF image (32/64-bit, either byte order),
/// or `None` when there is no such section. Every offset is bounds-checked: a corrupt file is
/// an error, never a panic.
pub fn elf_section<'a>(elf: &'a [u8], name: &str) -> Result<Option<&'a [u8]>, ModInfoError> {
    use ModInfoError::Malformed;
    if elf.get(..4) != Some(b"\x7fELF") {
        return Err(ModInfoError::NotElf);
    }
    let is64 = match elf.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err(Malformed("unknown ELF class")),
    };
    let le = match elf.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err(Malformed("unknown byte order")),
    };
    let rd = Reader { data: elf, le };
    let (shoff, shentsize, mut shnum, mut shstrndx) = if is64 {
        (
            rd.u64(0x28)?,
            rd.u16(0x3A)? as u64,
            rd.u16(0x3C)? as u64,
            rd.u16(0x3E)? as u64,
        )
    } else {
        (
            rd.u32(0x20)? as u64,
            rd.u16(0x2E)? as u64,
            rd.u16(0x30)? as u64,
            rd.u16(0x32)? as u64,
        )
    };
    let min_ent = if is64 { 64 } else { 40 };
    if shoff == 0 {
        return Ok(None);
    }
    if shentsize < min_ent {
        return Err(Malformed("section header size"));
    }
    // Section header (offset, size, link) of section `i`.
    let header = |i: u64| -> Result<(u64, u64, u64, u32, u32), ModInfoError> {
        let at = i
            .checked_mul(shentsize)
            .and_then(|o| o.checked_add(shoff))
            .ok_or(Malformed("section offset"))?;
        let at = usize::try_from(at).map_err(|_| Malformed("section offset"))?;
        // The whole entry must be inside the file; then every field offset below is too.
        if at
            .checked_add(min_ent as usize)
            .is_none_or(|end| end > elf.len())
        {
            return Err(Malformed("section header out of bounds"));
        }
        let name = rd.u32(at)?;
        let kind = rd.u32(at + 4)?;
        if is64 {
            Ok((
                rd.u64(at + 24)?,
                rd.u64(at + 32)?,
                rd.u32(at + 40)? as u64,
                name,
                kind,
            ))
        } else {
            Ok((
                rd.u32(at + 16)? as u64,
                rd.u32(at + 20)? as u64,
                rd.u32(at + 24)? as u64,
                name,
                kind,
            ))
        }
    };
    // Extended numbering: with more than 0xff00 sections, the real counts live in section 0.
    if shnum == 0 || shstrndx == 0xFFFF {
        let (_, size0, link0, _, _) = header(0)?;
        if shnum == 0 {
            shnum = size0;
        }
        if shstrndx == 0xFFFF {
            shstrndx = link0;
        }
    }
    if shstrndx >= shnum {
        return Err(Malformed("section name table index"));
    }
    let data_of = |off: u64, size: u64| -> Result<&'a [u8], ModInfoError> {
        let start = usize::try_from(off).map_err(|_| Malformed("section data"))?;
        let len = usize::try_from(size).map_err(|_| Malformed("section data"))?;
        elf.get(start..start.checked_add(len).ok_or(Malformed("section data"))?)
            .ok_or(Malformed("section data"))
    };
    let (stroff, strsize, _, _, _) = header(shstrndx)?;
    let strtab = data_of(stroff, strsize)?;
    const SHT_NOBITS: u32 = 8;
    for i in 0..shnum {
        let (off, size, _, name_at, kind) = header(i)?;
        let Some(rest) = strtab.get(name_at as usize..) else {
            continue;
        };
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        if &rest[..end] == name.as_bytes() {
            if kind == SHT_NOBITS {
                return Ok(Some(&[]));
            }
            return data_of(off, size).map(Some);
        }
    }
    Ok(None)
}

struct Reader<'a> {
    data: &'a [u8],
    le: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], ModInfoError> {
        let s = self
            .data
            .get(at..at.saturating_add(N))
            .ok_or(ModInfoError::Malformed("header out of bounds"))?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u16(&self, at: usize) -> Result<u16, ModInfoError> {
        let b = self.bytes::<2>(at)?;
        Ok(if self.le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }
    fn u32(&self, at: usize) -> Result<u32, ModInfoError> {
        let b = self.bytes::<4>(at)?;
        Ok(if self.le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
    fn u64(&self, at: usize) -> Result<u64, ModInfoError> {
        let b = self.bytes::<8>(at)?;
        Ok(if self.le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    }
}

/// One module file of a module tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Path relative to `/lib/modules/<release>/`, as modules.dep writes it
    /// (`kernel/net/bridge/bridge.ko`, or `….ko.zst`).
    pub path: String,
    pub info: ModInfo,
}

impl ModuleFile {
    /// The module's name: `name=` or, for modules too old to carry it, the file name without
    /// `.ko[.xz|.zst|.gz]`, with `-` folded to `_`.
    pub fn name(&self) -> String {
        self.info
            .name
            .clone()
            .unwrap_or_else(|| name_from_path(&self.path))
    }
}

/// `kernel/drivers/crypto/crc32c-intel.ko.zst` → `crc32c_intel`.
pub fn name_from_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.find(".ko").map_or(base, |i| &base[..i]);
    normalize(stem)
}

/// The index files depmod would write for a set of modules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepFiles {
    /// `modules.dep`: `path: dep-path dep-path …`, each module's full dependency closure listed
    /// with a module before the ones it needs (so loading walks the list backwards).
    pub modules_dep: String,
    /// `modules.alias`: `alias <pattern> <module>`.
    pub modules_alias: String,
    /// `modules.softdep`: `softdep <module> pre: … post: …`.
    pub modules_softdep: String,
}

/// Regenerates modules.dep, modules.alias and modules.softdep for `modules` (lines in the order
/// given). Fails when a module depends on one that is not in the set: an image holding that
/// subset could never load it.
pub fn generate_modules_dep(modules: &[ModuleFile]) -> Result<DepFiles, HostError> {
    let mut by_name: HashMap<String, &ModuleFile> = HashMap::new();
    for m in modules {
        by_name.entry(m.name()).or_insert(m);
    }
    let mut out = DepFiles {
        modules_alias: "# Aliases extracted from modules themselves.\n".to_string(),
        modules_softdep: "# Soft dependencies extracted from modules themselves.\n".to_string(),
        ..DepFiles::default()
    };
    for m in modules {
        let name = m.name();
        for d in &m.info.depends {
            if !by_name.contains_key(d) {
                return Err(HostError::UnresolvedDependency {
                    module: name.clone(),
                    depends: d.clone(),
                });
            }
        }
        // Post-order walk = load order (dependencies first); modules.dep lists it reversed.
        let mut order = Vec::new();
        let mut state = HashMap::new();
        visit(&name, &by_name, &mut state, &mut order, &mut Vec::new())?;
        order.pop(); // the module itself comes last in load order
        let deps: Vec<&str> = order
            .iter()
            .rev()
            .filter_map(|n| by_name.get(n).map(|f| f.path.as_str()))
            .collect();
        let _ = writeln!(
            out.modules_dep,
            "{}:{}{}",
            m.path,
            if deps.is_empty() { "" } else { " " },
            deps.join(" ")
        );
        for a in &m.info.aliases {
            let _ = writeln!(out.modules_alias, "alias {a} {name}");
        }
        for sd in &m.info.softdeps {
            let _ = writeln!(out.modules_softdep, "softdep {name} {sd}");
        }
    }
    Ok(out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mark {
    Visiting,
    Done,
}

fn visit(
    name: &str,
    by_name: &HashMap<String, &ModuleFile>,
    state: &mut HashMap<String, Mark>,
    order: &mut Vec<String>,
    stack: &mut Vec<String>,
) -> Result<(), HostError> {
    match state.get(name) {
        Some(Mark::Done) => return Ok(()),
        Some(Mark::Visiting) => {
            stack.push(name.to_string());
            return Err(HostError::DependencyCycle {
                module: stack[0].clone(),
                cycle: stack.join(" -> "),
            });
        }
        None => {}
    }
    state.insert(name.to_string(), Mark::Visiting);
    stack.push(name.to_string());
    if let Some(m) = by_name.get(name) {
        for d in &m.info.depends {
            visit(d, by_name, state, order, stack)?;
        }
    }
    stack.pop();
    state.insert(name.to_string(), Mark::Done);
    order.push(name.to_string());
    Ok(())
}

/// Reads every module file under `dir` (a `/lib/modules/<release>` tree, e.g. extracted from a
/// kernel package), sorted by path. Not used at boot: this is for the image builder.
pub fn scan_tree(dir: &Path) -> Result<Vec<ModuleFile>, HostError> {
    let mut files = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        let rd = std::fs::read_dir(&d).map_err(|source| HostError::Read {
            path: d.clone(),
            source,
        })?;
        for e in rd {
            let e = e.map_err(|source| HostError::Read {
                path: d.clone(),
                source,
            })?;
            let p = e.path();
            let ft = e.file_type().map_err(|source| HostError::Read {
                path: p.clone(),
                source,
            })?;
            if ft.is_dir() {
                pending.push(p);
            } else if is_module_file(&p.to_string_lossy()) {
                files.insert(p);
            }
        }
    }
    let mut out = Vec::with_capacity(files.len());
    for p in files {
        let bytes = std::fs::read(&p).map_err(|source| HostError::Read {
            path: p.clone(),
            source,
        })?;
        let info = modinfo(&bytes).map_err(|source| HostError::ModInfo {
            path: p.clone(),
            source,
        })?;
        let rel: PathBuf = p
            .strip_prefix(dir)
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| p.clone());
        out.push(ModuleFile {
            path: rel.to_string_lossy().into_owned(),
            info,
        });
    }
    Ok(out)
}

/// Whether a file name is a kernel module (`.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`).
pub fn is_module_file(path: &str) -> bool {
    path.ends_with(".ko") || Compression::from_path(path).is_some()
}
