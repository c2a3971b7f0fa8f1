//! Test helpers: synthetic ELF modules and a fake root laid out like `/proc`, `/sys` and
//! `/lib/modules` with the committed Debian 6.1 fixture index.

use crate::fs::root::Root;
use std::path::{Path, PathBuf};

pub const RELEASE: &str = "6.1.0-56-cloud-amd64";

/// The committed fixture directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/modules")
}

/// A minimal relocatable ELF holding `sections` (name, content), 64- or 32-bit, either byte
/// order — enough for a `.modinfo` reader.
pub fn elf(sections: &[(&str, &[u8])], is64: bool, le: bool) -> Vec<u8> {
    let put16 =
        |v: &mut Vec<u8>, x: u16| v.extend(if le { x.to_le_bytes() } else { x.to_be_bytes() });
    let put32 =
        |v: &mut Vec<u8>, x: u32| v.extend(if le { x.to_le_bytes() } else { x.to_be_bytes() });
    let put64 =
        |v: &mut Vec<u8>, x: u64| v.extend(if le { x.to_le_bytes() } else { x.to_be_bytes() });
    let ehsize: usize = if is64 { 64 } else { 52 };
    let mut data = Vec::new();
    let mut shstr = vec![0u8];
    let mut placed = Vec::new(); // (name offset, data offset, size, type)
    for (name, content) in sections {
        let name_at = shstr.len() as u32;
        shstr.extend(name.as_bytes());
        shstr.push(0);
        placed.push((name_at, ehsize + data.len(), content.len(), 1u32));
        data.extend_from_slice(content);
    }
    let strtab_name = shstr.len() as u32;
    shstr.extend(b".shstrtab\0");
    let strtab_at = ehsize + data.len();
    data.extend_from_slice(&shstr);
    placed.push((strtab_name, strtab_at, shstr.len(), 3));
    while !(ehsize + data.len()).is_multiple_of(8) {
        data.push(0);
    }
    let shoff = ehsize + data.len();
    let shnum = placed.len() + 1;

    let mut out = vec![
        0x7f,
        b'E',
        b'L',
        b'F',
        if is64 { 2 } else { 1 },
        if le { 1 } else { 2 },
        1,
        0,
    ];
    out.resize(16, 0);
    put16(&mut out, 1); // ET_REL
    put16(&mut out, 62); // EM_X86_64
    put32(&mut out, 1);
    if is64 {
        put64(&mut out, 0);
        put64(&mut out, 0);
        put64(&mut out, shoff as u64);
    } else {
        put32(&mut out, 0);
        put32(&mut out, 0);
        put32(&mut out, shoff as u32);
    }
    put32(&mut out, 0);
    put16(&mut out, ehsize as u16);
    put16(&mut out, 0);
    put16(&mut out, 0);
    put16(&mut out, if is64 { 64 } else { 40 });
    put16(&mut out, shnum as u16);
    put16(&mut out, (shnum - 1) as u16);
    assert_eq!(out.len(), ehsize);
    out.extend(data);
    let header = |v: &mut Vec<u8>, name: u32, kind: u32, off: usize, size: usize| {
        put32(v, name);
        put32(v, kind);
        if is64 {
            put64(v, 0);
            put64(v, 0);
            put64(v, off as u64);
            put64(v, size as u64);
            put32(v, 0);
            put32(v, 0);
            put64(v, 1);
            put64(v, 0);
        } else {
            for x in [0, 0, off as u32, size as u32, 0, 0, 1, 0] {
                put32(v, x);
            }
        }
    };
    header(&mut out, 0, 0, 0, 0);
    for (name, off, size, kind) in placed {
        header(&mut out, name, kind, off, size);
    }
    out
}

/// A synthetic module: 64-bit little-endian ELF with `.text` and a `.modinfo` of `fields`.
pub fn synthetic_ko(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut modinfo = Vec::new();
    for (k, v) in fields {
        modinfo.extend(format!("{k}={v}").as_bytes());
        modinfo.push(0);
        modinfo.push(0); // alignment padding, as the compiler leaves between entries
    }
    elf(&[(".text", b"\xc3"), (".modinfo", &modinfo)], true, true)
}

/// The fixture's `modinfo.txt`: (path, fields) per module.
pub fn fixture_modinfo() -> Vec<(String, Vec<(String, String)>)> {
    let text = std::fs::read_to_string(fixtures().join(RELEASE).join("modinfo.txt")).unwrap();
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        if let Some(p) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            out.push((p.to_string(), Vec::new()));
        } else if let (Some(last), Some((k, v))) = (out.last_mut(), line.split_once('=')) {
            last.1.push((k.to_string(), v.to_string()));
        }
    }
    out
}

/// A temporary node root.
pub struct FakeRoot {
    pub dir: tempfile::TempDir,
    pub root: Root,
}

impl FakeRoot {
    /// An empty root with `/proc/cmdline` (empty), `/proc/swaps` (header only) and
    /// `/sys/module`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let r = Self { dir, root };
        r.write(
            "/proc/cmdline",
            "BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro quiet\n",
        );
        r.write(
            "/proc/swaps",
            "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
        );
        std::fs::create_dir_all(r.real("/sys/module")).unwrap();
        r
    }

    pub fn real(&self, node: &str) -> PathBuf {
        self.root.join(node).unwrap()
    }

    pub fn write(&self, node: &str, content: impl AsRef<[u8]>) {
        let p = self.real(node);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn read(&self, node: &str) -> String {
        std::fs::read_to_string(self.real(node)).unwrap()
    }

    /// Marks a module as loaded (`/sys/module/<name>`).
    pub fn loaded(&self, name: &str) {
        self.write(&format!("/sys/module/{name}/initstate"), "live\n");
    }

    /// A sysctl file with its current value.
    pub fn sysctl(&self, dotted: &str, value: &str) {
        self.write(
            &format!("/proc/sys/{}", crate::host::sysctl::to_path(dotted)),
            format!("{value}\n"),
        );
    }

    /// `/lib/modules/<RELEASE>` with the fixture index and a synthetic `.ko` (carrying the real
    /// module's metadata) at every path of modules.dep.
    pub fn with_fixture_kernel(self) -> Self {
        let dir = format!("/lib/modules/{RELEASE}");
        for f in [
            "modules.dep",
            "modules.alias",
            "modules.softdep",
            "modules.builtin",
            "modules.builtin.modinfo",
        ] {
            self.write(
                &format!("{dir}/{f}"),
                std::fs::read(fixtures().join(RELEASE).join(f)).unwrap(),
            );
        }
        for (path, fields) in fixture_modinfo() {
            let f: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            self.write(&format!("{dir}/{path}"), synthetic_ko(&f));
        }
        self
    }

    /// The sysctls a default plan sets, present with the kernel's defaults.
    pub fn with_default_sysctls(self) -> Self {
        for (k, v) in [
            ("net.bridge.bridge-nf-call-iptables", "0"),
            ("net.bridge.bridge-nf-call-ip6tables", "0"),
            ("net.ipv4.ip_forward", "0"),
            ("net.ipv6.conf.all.forwarding", "0"),
            ("vm.overcommit_memory", "0"),
            ("vm.panic_on_oom", "0"),
            ("kernel.panic", "0"),
            ("kernel.panic_on_oops", "0"),
            ("kernel.keys.root_maxkeys", "200"),
            ("kernel.keys.root_maxbytes", "20000"),
        ] {
            self.sysctl(k, v);
        }
        self
    }

    /// Every file under the root with its content and modification time (to prove a dry run
    /// changed nothing).
    pub fn snapshot(&self) -> Vec<(PathBuf, Vec<u8>, std::time::SystemTime)> {
        let mut out = Vec::new();
        let mut pending = vec![self.dir.path().to_path_buf()];
        while let Some(d) = pending.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                let m = std::fs::symlink_metadata(&p).unwrap();
                if m.is_dir() {
                    pending.push(p.clone());
                    out.push((p, Vec::new(), m.modified().unwrap()));
                } else if m.is_file() {
                    out.push((p.clone(), std::fs::read(&p).unwrap(), m.modified().unwrap()));
                } else {
                    out.push((p, Vec::new(), m.modified().unwrap()));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
