#!/usr/bin/env bash
# Runs the core library's unit tests for aarch64 (the phones' ISA) under qemu-user:
# cross-built for aarch64-unknown-linux-gnu with Debian's gcc-aarch64-linux-gnu as
# linker (ring's C and assembly too), each test binary run by qemu-aarch64-static
# against the aarch64 glibc the cross toolchain ships. The phone feature set
# (`--no-default-features --features mobile`, no reqwest or rustls) is what runs on
# Android; Bionic and iOS are not emulated here.
#
#   scripts/test-aarch64.sh            # the library's unit tests
#   scripts/test-aarch64.sh -- NAME    # only tests whose name contains NAME
#
# Installs (as root, when missing) the rustup target, gcc-aarch64-linux-gnu and
# qemu-user-static. Builds in target/aarch64-test so no other step's build is touched.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET=aarch64-unknown-linux-gnu
rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
missing=()
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
if ((${#missing[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
SYSROOT=/usr/aarch64-linux-gnu
[[ -d $SYSROOT ]] || { echo "no aarch64 sysroot at $SYSROOT" >&2; exit 1; }

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $SYSROOT"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar

mkdir -p target
status=0
cargo test -p tokenkeeper --lib --no-default-features --features mobile \
    --target "$TARGET" --target-dir target/aarch64-test "$@" >target/aarch64-test.log 2>&1 || status=$?
grep -E '^(test result|running [0-9]|error|failures:|    [a-z_:]+$)' target/aarch64-test.log || true
((status == 0)) || tail -40 target/aarch64-test.log >&2
exit "$status"
