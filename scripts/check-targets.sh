#!/usr/bin/env bash
# Type-checks the library for the platforms this Linux machine can neither build a
# binary for nor run: iOS, macOS, Android and Windows. `cargo check` and
# `cargo clippy -D warnings` with default features compile every line of Rust that
# only those platforms see (the Keychain, Credential Manager and Android code paths,
# their keyring store crates, the UniFFI exports) against the real target's std.
#
#   scripts/check-targets.sh                 # every target below
#   scripts/check-targets.sh aarch64-apple-ios
#
# Nothing is linked or run. The C and assembly inside `ring` need each platform's
# SDK (Xcode, the NDK), which is not here; `check` never links, so a stand-in C
# compiler and archiver (written to a temporary directory below) produce empty
# objects and archives. A target whose standard library rustup cannot download is
# reported as SKIPPED, loudly; any compile error or lint fails the script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(aarch64-apple-ios x86_64-apple-darwin aarch64-linux-android x86_64-pc-windows-gnu)
fi

STUBS="$(mktemp -d)"
trap 'rm -rf "$STUBS"' EXIT
cat >"$STUBS/cc" <<'STUB'
#!/bin/sh
# Stand-in C compiler for `cargo check`: an empty object where one was asked for.
out=""
while [ $# -gt 0 ]; do
    case "$1" in -o) out="$2"; shift ;; esac
    shift
done
[ -z "$out" ] || : >"$out"
STUB
cat >"$STUBS/ar" <<'STUB'
#!/bin/sh
# Stand-in archiver for `cargo check`: an empty archive where one was asked for.
for arg in "$@"; do
    case "$arg" in *.a) : >"$arg" ;; esac
done
STUB
chmod +x "$STUBS/cc" "$STUBS/ar"
# cc-rs asks xcrun for the Apple SDK unless SDKROOT names one; an empty one will do.
mkdir -p "$STUBS/sdk"
export SDKROOT="$STUBS/sdk"

skipped=()
for target in "${TARGETS[@]}"; do
    if ! rustup target list --installed | grep -qx "$target"; then
        if ! rustup target add "$target" >/dev/null 2>&1; then
            echo "check-targets: SKIPPED $target: rustup could not install its standard library" >&2
            skipped+=("$target")
            continue
        fi
    fi
    var="${target//-/_}"
    export "CC_$var=$STUBS/cc" "AR_$var=$STUBS/ar"
    echo "==> $target: cargo clippy --lib -D warnings (default features)"
    cargo clippy --quiet --lib --target "$target" -- -D warnings
done

checked=$((${#TARGETS[@]} - ${#skipped[@]}))
echo "check-targets: $checked of ${#TARGETS[@]} targets type-checked${skipped:+; SKIPPED: ${skipped[*]}}"
