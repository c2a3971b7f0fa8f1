//! `kubejoin-image`: build a reproducible kubejoin initramfs, or list one.

use kubejoin_image::build::{self, Extra, Spec};
use kubejoin_image::compress::{self, Compression};
use kubejoin_image::cpio;
use std::error::Error as _;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

const HELP: &str = "\
kubejoin-image: build a reproducible initramfs with kubejoin as /init

USAGE:
    kubejoin-image build --init KUBEJOIN --output FILE [FLAGS]
    kubejoin-image list FILE                 print the members of an image (any compression)

BUILD FLAGS:
    --init PATH              the static kubejoin binary (becomes /init)
    --output PATH            where to write the image
    --manifest PATH          where to write the JSON manifest (default: OUTPUT.manifest.json)
    --modules-dir DIR        a kernel's /lib/modules/<release> tree
    --module NAME            a module name or alias to ship, with its dependencies (repeatable)
    --modules-list FILE      module names, one per line (# comments)
    --driver NAME            a module name or alias to ship, with its dependencies, loaded
                             only on demand: for a device present that it matches (its
                             aliases against the devices' modalias), or a filesystem being
                             mounted (fs-<type>); listed in /usr/lib/kubejoin/drivers.conf
    --drivers-list FILE      --driver names, one per line (# comments)
    --ca-bundle FILE         PEM bundle, installed as /etc/ssl/certs/ca-certificates.crt
    --file SRC:DEST[:MODE]   an extra file (repeatable), e.g. ./kubelet:/usr/bin/kubelet:0755
    --compress gzip|zstd|none   (default gzip)
    --compress-modules gzip|zstd|none   each module on its own (default none: as the tree has
                             them); a kernel without in-kernel decompression gets them
                             decompressed by kubejoin before init_module

ENVIRONMENT:
    SOURCE_DATE_EPOCH        mtime of every member (default 0)

The same inputs give the same bytes.
";

fn main() -> ExitCode {
    match run(std::env::args_os().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kubejoin-image: error: {e}");
            let mut cause = e.source();
            while let Some(c) = cause {
                eprintln!("  caused by: {c}");
                cause = c.source();
            }
            ExitCode::from(1)
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Build(#[from] build::BuildError),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn usage(msg: impl Into<String>) -> CliError {
    CliError::Usage(format!("{} (see `kubejoin-image help`)", msg.into()))
}

fn run(args: Vec<OsString>) -> Result<(), CliError> {
    use lexopt::prelude::*;
    let mut p = lexopt::Parser::from_args(args);
    let sub = match p.next().map_err(|e| usage(e.to_string()))? {
        Some(Value(v)) => v.to_string_lossy().into_owned(),
        Some(Long("help")) | Some(Short('h')) | None => {
            print!("{HELP}");
            return Ok(());
        }
        Some(other) => return Err(usage(other.unexpected().to_string())),
    };
    let text = |p: &mut lexopt::Parser| -> Result<String, CliError> {
        p.value()
            .map_err(|e| usage(e.to_string()))?
            .into_string()
            .map_err(|_| usage("a value is not UTF-8"))
    };
    match sub.as_str() {
        "help" => {
            print!("{HELP}");
            Ok(())
        }
        "list" => {
            let file = match p.next().map_err(|e| usage(e.to_string()))? {
                Some(Value(v)) => PathBuf::from(v),
                _ => return Err(usage("list needs an image file")),
            };
            let bytes = std::fs::read(&file).map_err(|source| CliError::Io {
                action: "reading",
                path: file.clone(),
                source,
            })?;
            let raw = compress::decompress(&bytes).map_err(|source| CliError::Io {
                action: "decompressing",
                path: file.clone(),
                source,
            })?;
            let members =
                cpio::read_newc(&raw).map_err(|e| usage(format!("{}: {e}", file.display())))?;
            for m in members {
                println!("{:06o} {:>9} {}", m.mode, m.data.len(), m.path);
            }
            Ok(())
        }
        "build" => {
            let (mut init, mut output, mut manifest, mut modules_dir, mut ca) =
                (None, None, None, None, None);
            let mut modules = Vec::new();
            let mut drivers = Vec::new();
            let mut extra = Vec::new();
            let mut compression = Compression::Gzip;
            let mut module_compression = Compression::None;
            while let Some(arg) = p.next().map_err(|e| usage(e.to_string()))? {
                match arg {
                    Long("init") => init = Some(PathBuf::from(text(&mut p)?)),
                    Long("output") | Short('o') => output = Some(PathBuf::from(text(&mut p)?)),
                    Long("manifest") => manifest = Some(PathBuf::from(text(&mut p)?)),
                    Long("modules-dir") => modules_dir = Some(PathBuf::from(text(&mut p)?)),
                    Long("module") => modules.extend(
                        text(&mut p)?
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from),
                    ),
                    Long("modules-list") => modules.extend(read_list(&text(&mut p)?)?),
                    Long("driver") => drivers.extend(
                        text(&mut p)?
                            .split(',')
                            .filter(|s| !s.is_empty())
                            .map(String::from),
                    ),
                    Long("drivers-list") => drivers.extend(read_list(&text(&mut p)?)?),
                    Long("ca-bundle") => ca = Some(PathBuf::from(text(&mut p)?)),
                    Long("file") => extra.push(parse_extra(&text(&mut p)?)?),
                    Long("compress") => {
                        let v = text(&mut p)?;
                        compression = Compression::parse(&v)
                            .ok_or_else(|| usage(format!("unknown compression {v:?}")))?;
                    }
                    Long("compress-modules") => {
                        let v = text(&mut p)?;
                        module_compression = Compression::parse(&v)
                            .ok_or_else(|| usage(format!("unknown compression {v:?}")))?;
                    }
                    Long("help") | Short('h') => {
                        print!("{HELP}");
                        return Ok(());
                    }
                    other => return Err(usage(other.unexpected().to_string())),
                }
            }
            let init = init.ok_or_else(|| usage("--init is required"))?;
            let output = output.ok_or_else(|| usage("--output is required"))?;
            let mtime = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) if !v.trim().is_empty() => v.trim().parse::<u32>().map_err(|_| {
                    usage(format!(
                        "SOURCE_DATE_EPOCH={v:?} is not a number of seconds"
                    ))
                })?,
                _ => 0,
            };
            let spec = Spec {
                init,
                modules_dir,
                modules,
                drivers,
                ca_bundle: ca,
                extra,
                compression,
                module_compression,
                mtime,
            };
            let built = build::build(&spec)?;
            let manifest_path = manifest.unwrap_or_else(|| {
                let mut s = output.clone().into_os_string();
                s.push(".manifest.json");
                PathBuf::from(s)
            });
            std::fs::write(&output, &built.bytes).map_err(|source| CliError::Io {
                action: "writing",
                path: output.clone(),
                source,
            })?;
            let mut json = serde_json::to_vec_pretty(&built.manifest).unwrap_or_default();
            json.push(b'\n');
            std::fs::write(&manifest_path, json).map_err(|source| CliError::Io {
                action: "writing",
                path: manifest_path.clone(),
                source,
            })?;
            let m = &built.manifest;
            println!(
                "{}: {} bytes ({} KiB, {} of {} KiB), {} members, {} modules ({} on-demand drivers), sha256 {}",
                output.display(),
                m.size,
                m.size / 1024,
                m.compression,
                m.uncompressed_size / 1024,
                m.members.len(),
                m.modules.len(),
                m.drivers.len(),
                m.sha256
            );
            println!("manifest: {}", manifest_path.display());
            Ok(())
        }
        other => Err(usage(format!(
            "unknown command {other:?} (commands: build, list, help)"
        ))),
    }
}

/// The names of a list file: one a line, `#` comments.
fn read_list(file: &str) -> Result<Vec<String>, CliError> {
    let path = PathBuf::from(file);
    let t = std::fs::read_to_string(&path).map_err(|source| CliError::Io {
        action: "reading",
        path: path.clone(),
        source,
    })?;
    Ok(t.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// `SRC:DEST[:MODE]`.
fn parse_extra(s: &str) -> Result<Extra, CliError> {
    let parts: Vec<&str> = s.split(':').collect();
    let (src, dest, mode) = match parts.as_slice() {
        [src, dest] => (*src, *dest, None),
        [src, dest, mode] => {
            let m = u32::from_str_radix(mode, 8)
                .map_err(|_| usage(format!("--file {s:?}: mode {mode:?} is not octal")))?;
            (*src, *dest, Some(m))
        }
        _ => return Err(usage(format!("--file {s:?}: expected SRC:DEST[:MODE]"))),
    };
    if !dest.starts_with('/') {
        return Err(usage(format!("--file {s:?}: DEST must be absolute")));
    }
    Ok(Extra {
        src: PathBuf::from(src),
        dest: dest.to_string(),
        mode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_files() {
        let e = parse_extra("./k:/usr/bin/kubelet:0755").unwrap();
        assert_eq!((e.dest.as_str(), e.mode), ("/usr/bin/kubelet", Some(0o755)));
        assert_eq!(parse_extra("a:/b").unwrap().mode, None);
        assert!(parse_extra("a:b").is_err());
        assert!(parse_extra("a:/b:9").is_err());
        assert!(parse_extra("a").is_err());
    }
}
