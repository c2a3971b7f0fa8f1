# Shared helpers for scripts/*: prerequisites are installed here, never assumed.
# shellcheck shell=bash

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MUSL_TARGET=x86_64-unknown-linux-musl
export CC_x86_64_unknown_linux_musl=musl-gcc
# Reproducible builds: the binary's clock floor (build.rs) and the initramfs' mtimes come from the
# last commit's time unless the caller sets it. One value for every build of a script run, so
# build.rs (re-run when it changes) does not rebuild kubejoin between the steps of scripts/test.
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || echo 0)}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    die "need root to run: $* (re-run as root or install sudo)"; fi
}

APT_UPDATED=0
# ensure_debs PKG...: installs the Debian packages that are missing.
ensure_debs() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing Debian packages: ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then as_root apt-get update -qq; APT_UPDATED=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

ensure_rust() {
  if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null; then
    ensure_debs rustup
    rustup default stable
  fi
  command -v cargo >/dev/null || die "no Rust toolchain: install rustup (https://rustup.rs) and re-run"
}

# ensure_musl: the musl target and musl-gcc (ring's C code). Returns 1 if the target cannot be had.
ensure_musl() {
  ensure_rust
  ensure_debs musl-tools
  if ! rustup target list --installed 2>/dev/null | grep -qx "$MUSL_TARGET"; then
    say "adding Rust target $MUSL_TARGET"
    rustup target add "$MUSL_TARGET" || return 1
  fi
}
