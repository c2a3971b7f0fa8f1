# Shared helpers for scripts/*: prerequisites are installed here, never assumed.
# shellcheck shell=bash
#
# What a machine needs (README "Prerequisites"): Debian 12/13 or Ubuntu, root (or sudo), network
# access to the Debian mirror and to the Rust installer. Everything else is installed on first use:
#
#   ensure_rust     cargo from rustup; when cargo is missing, the standard installer
#                   (https://sh.rustup.rs, falling back to rustup-init from static.rust-lang.org,
#                   checked against its published sha256) with `-y --default-toolchain none
#                   --profile minimal`, then the toolchain rust-toolchain.toml names. Debian's own
#                   rustc is too old for this code (rust-version in Cargo.toml), and Debian 12 has
#                   no `rustup` package.
#   ensure_debs     the Debian packages below, by what calls them.
#
# KUBEJOIN_SETUP_DRY_RUN=1 prints what ensure_rust and ensure_debs would install instead of
# installing it (tests/setup.rs uses it to check the installer path on a machine that has Rust).

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MUSL_TARGET=x86_64-unknown-linux-musl
export CC_x86_64_unknown_linux_musl=musl-gcc
# Reproducible builds: the binary's clock floor (build.rs) and the initramfs' mtimes come from the
# last commit's time unless the caller sets it. One value for every build of a script run, so
# build.rs (re-run when it changes) does not rebuild kubejoin between the steps of scripts/test.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)}"

# The Debian packages the scripts and the tests call:
#   build-essential, binutils  cc and ld for ring's C code and build scripts; readelf
#   curl, ca-certificates      the Rust installer
#   musl-tools                 musl-gcc, for the static x86_64-unknown-linux-musl build
#   python3                    the demo's and the VM test's summaries of JSON files
#   qemu-system-x86, iproute2  the VMs and their network namespaces
#   e2fsprogs                  mkfs.ext4: the switch-root VM's disk
#   genisoimage                the config-drive VM's ISO 9660 image (and its unit test)
#   dnsmasq-base               the DHCP server of tests/net_dhcp.rs
#   cpio                       image's archives cross-checked with GNU cpio
#   kmod                       depmod: the reference for real_kernel_tree_matches_depmod
#   dosfstools, mtools         a FAT config drive, where the kernel mounts vfat but not iso9660
DEBS_BUILD=(build-essential binutils curl ca-certificates musl-tools)
DEBS_VM=(python3 qemu-system-x86 iproute2 e2fsprogs genisoimage)
DEBS_TEST=(dnsmasq-base cpio kmod dosfstools mtools)

RUSTUP_SH_URL=${KUBEJOIN_RUSTUP_SH_URL:-https://sh.rustup.rs}
RUSTUP_INIT_URL=${KUBEJOIN_RUSTUP_INIT_URL:-https://static.rust-lang.org/rustup/dist/x86_64-unknown-linux-gnu/rustup-init}
RUSTUP_ARGS=(-y --default-toolchain none --profile minimal)

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
dry_run() { [ -n "${KUBEJOIN_SETUP_DRY_RUN:-}" ]; }

# Seconds since the script started, for step timings ("[12s]").
SCRIPT_START=${SCRIPT_START:-$(date +%s)}
export SCRIPT_START
elapsed() { echo "$(( $(date +%s) - SCRIPT_START ))s"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $* (re-run as root or install sudo)"; fi
}

APT_UPDATED=0
# ensure_debs PKG...: installs the Debian packages that are missing (apt's own output shows
# what it downloads and unpacks).
ensure_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if dry_run; then
    note "would install Debian packages: ${missing[*]}"
    return 0
  fi
  command -v apt-get >/dev/null || die "no apt-get here: install ${missing[*]} (or your distribution's equivalents) and re-run"
  say "installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -q | sed 's/^/    /'; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" \
    | { grep -E '^(Get:|Setting up|Need to get|After this)' || true; } | sed 's/^/    /'
}

# install_rustup: rustup without a toolchain, the standard way; the toolchain comes from
# rust-toolchain.toml afterwards.
install_rustup() {
  if dry_run; then
    note "would run: curl --proto '=https' --tlsv1.2 -sSf $RUSTUP_SH_URL | sh -s -- ${RUSTUP_ARGS[*]}"
    note "  (if $RUSTUP_SH_URL cannot be reached: $RUSTUP_INIT_URL, checked against $RUSTUP_INIT_URL.sha256)"
    note "would run: rustup toolchain install   (in $REPO: the toolchain of rust-toolchain.toml)"
    return 0
  fi
  ensure_debs curl ca-certificates
  say "installing Rust with rustup (no cargo found; Debian's rustc is too old for this code)"
  local tmp
  tmp=$(mktemp -d)
  if curl --proto '=https' --tlsv1.2 -sSf --connect-timeout 20 "$RUSTUP_SH_URL" -o "$tmp/rustup.sh" 2>/dev/null; then
    sh "$tmp/rustup.sh" "${RUSTUP_ARGS[@]}" || { rm -rf "$tmp"; die "the rustup installer from $RUSTUP_SH_URL failed (see above)"; }
  elif curl --proto '=https' --tlsv1.2 -sSf --connect-timeout 20 "$RUSTUP_INIT_URL" -o "$tmp/rustup-init" 2>/dev/null \
    && curl --proto '=https' --tlsv1.2 -sSf --connect-timeout 20 "$RUSTUP_INIT_URL.sha256" -o "$tmp/rustup-init.sha256" 2>/dev/null; then
    note "$RUSTUP_SH_URL cannot be reached: using $RUSTUP_INIT_URL"
    [ "$(sha256sum <"$tmp/rustup-init" | cut -d' ' -f1)" = "$(cut -d' ' -f1 <"$tmp/rustup-init.sha256")" ] \
      || { rm -rf "$tmp"; die "rustup-init from $RUSTUP_INIT_URL does not match its published sha256: not running it"; }
    chmod +x "$tmp/rustup-init"
    "$tmp/rustup-init" "${RUSTUP_ARGS[@]}" || { rm -rf "$tmp"; die "rustup-init failed (see above)"; }
  else
    rm -rf "$tmp"
    die "cannot reach the Rust installer ($RUSTUP_SH_URL or static.rust-lang.org): install Rust with rustup as https://rustup.rs describes (Debian's rustc is too old; Rust >= $(rust_version) is needed), then re-run."
  fi
  rm -rf "$tmp"
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  say "installing the Rust toolchain of rust-toolchain.toml"
  (cd "$REPO" && rustup toolchain install) || die "rustup could not install the toolchain of rust-toolchain.toml (see above)"
}

# The oldest Rust this workspace builds with (Cargo.toml's rust-version).
rust_version() { sed -n 's/^rust-version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -1; }

ensure_rust() {
  if ! command -v cargo >/dev/null && [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null; then
    install_rustup
    dry_run && return 0
  fi
  command -v cargo >/dev/null || die "no cargo after installing rustup: add ${CARGO_HOME:-$HOME/.cargo}/bin to PATH and re-run"
  # rustup without the toolchain rust-toolchain.toml names (an interrupted first install, or
  # RUSTUP_AUTO_INSTALL=0): install it now rather than fail at the first cargo command.
  if ! (cd "$REPO" && cargo --version >/dev/null 2>&1) && command -v rustup >/dev/null; then
    say "installing the Rust toolchain of rust-toolchain.toml"
    (cd "$REPO" && rustup toolchain install) || die "rustup could not install the toolchain of rust-toolchain.toml (see above)"
  fi
}

# ensure_musl: the musl target and musl-gcc (ring's C code). Returns 1 if the target cannot be had.
ensure_musl() {
  ensure_rust
  ensure_debs musl-tools
  dry_run && return 0
  if ! (cd "$REPO" && rustup target list --installed 2>/dev/null) | grep -qx "$MUSL_TARGET"; then
    say "adding Rust target $MUSL_TARGET"
    (cd "$REPO" && rustup target add "$MUSL_TARGET") || return 1
  fi
}

# ensure_prereqs [vm] [test]: everything the build needs, plus what the VMs and the tests call.
ensure_prereqs() {
  local debs=("${DEBS_BUILD[@]}")
  for what in "$@"; do
    case "$what" in
      vm) debs+=("${DEBS_VM[@]}") ;;
      test) debs+=("${DEBS_VM[@]}" "${DEBS_TEST[@]}") ;;
    esac
  done
  ensure_debs "${debs[@]}"
  ensure_rust
}

# build_testcp: the test control plane, release and static, built as scripts/vm-image builds it
# (the same packages selected, so the same features: one build serves the demo, the smoke test
# and the VMs).
build_testcp() {
  ensure_musl || die "the $MUSL_TARGET target cannot be installed"
  cargo build --release --locked --target "$MUSL_TARGET" -p kubejoin-testcp -p kubejoin-vmtest \
    --no-default-features --bin kubejoin-testcp
}
