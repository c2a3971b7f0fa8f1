//! A deterministic `newc` cpio writer (the format the kernel unpacks into its rootfs).
//!
//! Determinism comes from the input, not from luck: entries live in a `BTreeMap` keyed by path,
//! so they come out sorted bytewise — which also puts every directory before what it contains
//! ("etc" < "etc/ssl" < "etc/ssl/certs"); missing parent directories are added; every entry gets
//! uid/gid 0, the same mtime (`SOURCE_DATE_EPOCH`), an inode number from its position, and no
//! host-dependent field at all (no device numbers of the build machine, no link counts from its
//! filesystem). The archive ends with `TRAILER!!!` and is padded to 512 bytes like GNU cpio's.

use std::collections::BTreeMap;
use std::fmt;

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// What an entry is.
#[derive(Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    /// A character device node (`/dev/console`: the kernel opens it for init's stdio before
    /// `/init` runs, so it must exist in the archive itself).
    CharDev {
        major: u32,
        minor: u32,
    },
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Dir => write!(f, "Dir"),
            Kind::File(d) => write!(f, "File({} bytes)", d.len()),
            Kind::Symlink(t) => write!(f, "Symlink({t})"),
            Kind::CharDev { major, minor } => write!(f, "CharDev({major}:{minor})"),
        }
    }
}

impl Kind {
    /// A short name for manifests.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File(_) => "file",
            Kind::Symlink(_) => "symlink",
            Kind::CharDev { .. } => "chardev",
        }
    }
}

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits (the file type is added from `kind`).
    pub mode: u32,
}

/// A path that cannot be an archive member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("archive path {0:?} is empty or `/`")]
    Empty(String),
    #[error("archive path {0:?} contains `.`, `..` or an empty component")]
    BadComponent(String),
    #[error("{0:?} is added twice with different contents")]
    Conflict(String),
    #[error("{path:?} needs {parent:?} to be a directory, but it is a {kind}")]
    NotADir {
        path: String,
        parent: String,
        kind: &'static str,
    },
}

/// The members of an archive, by normalised path (no leading `/`: `etc/ssl/certs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

/// `"/etc//ssl/"` → `"etc/ssl"`; refuses `.` and `..` so nothing can be placed outside the root.
pub fn normalize(path: &str) -> Result<String, PathError> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Err(PathError::Empty(path.to_string()));
    }
    if parts.iter().any(|p| *p == "." || *p == "..") {
        return Err(PathError::BadComponent(path.to_string()));
    }
    Ok(parts.join("/"))
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `path` and, as 0755 directories, every missing parent. Adding the same entry twice
    /// is fine; adding a different one at a taken path is an error (two inputs disagree).
    pub fn add(&mut self, path: &str, kind: Kind, mode: u32) -> Result<(), PathError> {
        let path = normalize(path)?;
        let mut parent = String::new();
        for part in path.split('/').take(path.split('/').count() - 1) {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            match self.entries.get(&parent) {
                Some(Entry {
                    kind: Kind::Dir, ..
                }) => {}
                Some(e) => {
                    return Err(PathError::NotADir {
                        path: path.clone(),
                        parent: parent.clone(),
                        kind: e.kind.name(),
                    })
                }
                None => {
                    self.entries.insert(
                        parent.clone(),
                        Entry {
                            kind: Kind::Dir,
                            mode: 0o755,
                        },
                    );
                }
            }
        }
        let entry = Entry {
            kind,
            mode: mode & 0o7777,
        };
        match self.entries.get(&path) {
            None => {
                self.entries.insert(path, entry);
                Ok(())
            }
            Some(old) if *old == entry => Ok(()),
            // An explicit directory mode wins over the 0755 given to an implied parent.
            Some(Entry {
                kind: Kind::Dir, ..
            }) if entry.kind == Kind::Dir => {
                self.entries.insert(path, entry);
                Ok(())
            }
            Some(_) => Err(PathError::Conflict(path)),
        }
    }

    /// The members, sorted (parents first).
    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `newc` archive, every member with `mtime`.
    pub fn to_newc(&self, mtime: u32) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, e)) in self.entries.iter().enumerate() {
            let (ftype, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match &e.kind {
                Kind::Dir => (S_IFDIR, &[], 2, (0, 0)),
                Kind::File(d) => (S_IFREG, d, 1, (0, 0)),
                Kind::Symlink(t) => (S_IFLNK, t.as_bytes(), 1, (0, 0)),
                Kind::CharDev { major, minor } => (S_IFCHR, &[], 1, (*major, *minor)),
            };
            let ino = u32::try_from(ino + 1).unwrap_or(u32::MAX);
            push_member(
                &mut out,
                ino,
                ftype | e.mode,
                nlink,
                mtime,
                rdev,
                path,
                data,
            );
        }
        push_member(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!", &[]);
        pad(&mut out, 512);
        out
    }
}

fn pad(out: &mut Vec<u8>, to: usize) {
    while !out.len().is_multiple_of(to) {
        out.push(0);
    }
}

#[allow(clippy::too_many_arguments)]
fn push_member(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    rdev: (u32, u32),
    name: &str,
    data: &[u8],
) {
    let namesize = name.len() + 1;
    // newc: magic, then 13 eight-digit hex fields: ino mode uid gid nlink mtime filesize
    // devmajor devminor rdevmajor rdevminor namesize check.
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        mtime,
        u32::try_from(data.len()).unwrap_or(u32::MAX),
        0,
        0,
        rdev.0,
        rdev.1,
        u32::try_from(namesize).unwrap_or(u32::MAX),
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad(out, 4);
    out.extend_from_slice(data);
    pad(out, 4);
}

/// One member read back from a `newc` archive (for tests and `kubejoin-image list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

/// Reads a `newc` archive up to its trailer.
pub fn read_newc(mut buf: &[u8]) -> Result<Vec<Member>, String> {
    let mut out = Vec::new();
    let start_len = buf.len();
    loop {
        if buf.len() < 110 || &buf[..6] != b"070701" {
            return Err(format!(
                "no newc header at offset {}",
                start_len - buf.len()
            ));
        }
        let field = |i: usize| -> Result<u32, String> {
            let s = std::str::from_utf8(&buf[6 + i * 8..14 + i * 8]).map_err(|e| e.to_string())?;
            u32::from_str_radix(s, 16).map_err(|e| e.to_string())
        };
        let (mode, uid, gid, mtime, size) = (
            field(1)?,
            field(2)?,
            field(3)?,
            field(5)?,
            field(6)? as usize,
        );
        let (rdev, namesize) = ((field(9)?, field(10)?), field(11)? as usize);
        let name_end = 110 + namesize;
        if buf.len() < name_end || namesize == 0 {
            return Err("truncated name".into());
        }
        let path = String::from_utf8_lossy(&buf[110..name_end - 1]).into_owned();
        let data_start = name_end.div_ceil(4) * 4;
        let data_end = data_start + size;
        if buf.len() < data_end {
            return Err(format!("truncated data of {path}"));
        }
        let data = buf[data_start..data_end].to_vec();
        buf = &buf[(data_end.div_ceil(4) * 4).min(buf.len())..];
        if path == "TRAILER!!!" {
            return Ok(out);
        }
        out.push(Member {
            path,
            mode,
            uid,
            gid,
            mtime,
            rdev,
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_first_and_sorted() {
        let mut a = Archive::new();
        a.add("/usr/bin/kubelet", Kind::File(b"x".to_vec()), 0o755)
            .unwrap();
        a.add("init", Kind::File(b"elf".to_vec()), 0o755).unwrap();
        a.add("/etc-x/y", Kind::File(vec![]), 0o644).unwrap();
        a.add("/etc/ssl/certs/ca.crt", Kind::File(vec![]), 0o644)
            .unwrap();
        a.add("/dev/console", Kind::CharDev { major: 5, minor: 1 }, 0o600)
            .unwrap();
        a.add("/tmp", Kind::Dir, 0o1777).unwrap();
        let names: Vec<&str> = a.entries().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "dev",
                "dev/console",
                "etc",
                // Bytewise: '-' sorts before '/', so a sibling can come between a directory and
                // its children; every parent still comes before what it contains.
                "etc-x",
                "etc-x/y",
                "etc/ssl",
                "etc/ssl/certs",
                "etc/ssl/certs/ca.crt",
                "init",
                "tmp",
                "usr",
                "usr/bin",
                "usr/bin/kubelet",
            ]
        );
    }

    #[test]
    fn round_trips_with_fixed_metadata() {
        let mut a = Archive::new();
        a.add("init", Kind::File(b"#!elf".to_vec()), 0o755).unwrap();
        a.add("bin/sh", Kind::Symlink("/init".into()), 0o777)
            .unwrap();
        a.add("dev/console", Kind::CharDev { major: 5, minor: 1 }, 0o600)
            .unwrap();
        let bytes = a.to_newc(1_700_000_000);
        assert_eq!(bytes.len() % 512, 0);
        let m = read_newc(&bytes).unwrap();
        type Summary = (String, u32, u32, (u32, u32), Vec<u8>);
        let summary: Vec<Summary> = m
            .iter()
            .map(|m| (m.path.clone(), m.mode, m.mtime, m.rdev, m.data.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("bin".into(), 0o040755, 1_700_000_000, (0, 0), vec![]),
                (
                    "bin/sh".into(),
                    0o120777,
                    1_700_000_000,
                    (0, 0),
                    b"/init".to_vec()
                ),
                ("dev".into(), 0o040755, 1_700_000_000, (0, 0), vec![]),
                (
                    "dev/console".into(),
                    0o020600,
                    1_700_000_000,
                    (5, 1),
                    vec![]
                ),
                (
                    "init".into(),
                    0o100755,
                    1_700_000_000,
                    (0, 0),
                    b"#!elf".to_vec()
                ),
            ]
        );
        assert!(m.iter().all(|m| m.uid == 0 && m.gid == 0));
        assert_eq!(a.to_newc(1_700_000_000), bytes, "same input, same bytes");
    }

    #[test]
    fn refuses_escapes_and_conflicts() {
        let mut a = Archive::new();
        assert!(matches!(
            a.add("/", Kind::Dir, 0o755),
            Err(PathError::Empty(_))
        ));
        assert!(matches!(
            a.add("../etc/x", Kind::Dir, 0o755),
            Err(PathError::BadComponent(_))
        ));
        a.add("etc/x", Kind::File(b"1".to_vec()), 0o644).unwrap();
        a.add("etc/x", Kind::File(b"1".to_vec()), 0o644).unwrap();
        assert_eq!(
            a.add("etc/x", Kind::File(b"2".to_vec()), 0o644),
            Err(PathError::Conflict("etc/x".into()))
        );
        assert!(matches!(
            a.add("etc/x/y", Kind::Dir, 0o755),
            Err(PathError::NotADir { .. })
        ));
        // An explicit mode for an implied parent directory wins.
        a.add("etc", Kind::Dir, 0o700).unwrap();
        assert_eq!(a.entries().next().unwrap().1.mode, 0o700);
    }

    #[test]
    fn gnu_cpio_reads_it() {
        // GNU cpio is a prerequisite the scripts install (Debian package cpio): without it this
        // test fails rather than passing without having compared anything.
        let out = std::process::Command::new("cpio")
            .arg("--version")
            .output()
            .unwrap_or_else(|e| panic!("GNU cpio is needed (apt-get install cpio): {e}"));
        assert!(out.status.success());
        let mut a = Archive::new();
        a.add("init", Kind::File(b"hello".to_vec()), 0o755).unwrap();
        a.add("etc/ssl/certs/ca.crt", Kind::File(b"pem".to_vec()), 0o644)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.cpio");
        std::fs::write(&archive, a.to_newc(0)).unwrap();
        let out = std::process::Command::new("cpio")
            .args(["-i", "-t", "--quiet", "-F"])
            .arg(&archive)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "etc\netc/ssl\netc/ssl/certs\netc/ssl/certs/ca.crt\ninit\n"
        );
    }
}
