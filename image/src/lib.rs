//! # kubejoin-image
//!
//! Builds the initramfs that boots a machine straight into a Kubernetes join: kubejoin as
//! `/init`, the kernel modules it needs (dependencies closed with kubejoin's own resolver, index
//! files regenerated for the subset), a CA bundle, and any extra files (a kubelet).
//!
//! The output is a `newc` cpio written here ([`cpio`]), gzip- or zstd-compressed
//! ([`compress`]), with a JSON manifest holding the sha256 of every member. The same inputs
//! and `SOURCE_DATE_EPOCH` give the same bytes, on any machine, at any time.
//!
//! ## Image layout
//! | path | what |
//! |---|---|
//! | `/init` | kubejoin (PID 1 mode) |
//! | `/dev/console`, `/dev/null` | device nodes the kernel needs before devtmpfs is mounted |
//! | `/proc`, `/sys`, `/run`, `/sysroot`, `/tmp` | mount points |
//! | `/lib/modules/<release>/…` | the chosen modules + `modules.dep`, `.alias`, `.softdep`, `.builtin` |
//! | `/usr/lib/modules-load.d/kubejoin-image.conf` | the requested module names (loaded at boot) |
//! | `/etc/ssl/certs/ca-certificates.crt` | `--ca-bundle` |
//! | anything else | `--file SRC:DEST[:MODE]` (e.g. `/usr/bin/kubelet`) |

pub mod build;
pub mod compress;
pub mod cpio;
pub mod modules;

pub use build::{build, Built, Extra, Manifest, Spec};
