#!/usr/bin/env bash
# Measurement 5b: the phone library's size on the real architecture. Cross-builds
# tokenkeeper-ffi for aarch64-unknown-linux-gnu (the closest this machine has to an
# Android arm64 build: same ISA, same ELF, GNU instead of Bionic libc), strips it as
# an app packager does (`strip --strip-unneeded`), and reports each feature set and
# profile lever as a RESULT line; `cargo bloat` lists the crates of the shipped build.
#
#   bench/mobile-size.sh            # the shipped build, today's feature set and every lever
#   LEVERS=0 bench/mobile-size.sh   # the shipped build and today's feature set only
#
# The build-std levers need a nightly toolchain with rust-src
# (`rustup component add rust-src --toolchain nightly`); without one they are skipped.
#
# Needs rustup and Debian's gcc-aarch64-linux-gnu (installed here if missing, as root).
# Each lever is one more full LTO build (a few minutes on 2 cores); they share one
# target directory per lever so a rerun rebuilds nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

OUT=${OUT:-target/bench}
RESULTS=${RESULTS:-$OUT/results.txt}
LEVERS=${LEVERS:-1}
TARGET=aarch64-unknown-linux-gnu
mkdir -p "$OUT"

rustup target list --installed | grep -qx "$TARGET" || rustup target add "$TARGET"
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu >/dev/null
fi
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc CARGO_INCREMENTAL=0
# Symbols stay in the built file (cargo bloat reads them); the reported size is after strip.
export CARGO_PROFILE_MOBILE_STRIP=false CARGO_PROFILE_RELEASE_STRIP=false

MOBILE=(--no-default-features --features mobile)
# Today's phone feature set before issue 22: reqwest + rustls inside the library.
TODAY=(--no-default-features --features reqwest,apple-keychain,windows-credential-manager)

# measure NAME PROFILE [ENV=VALUE...] -- CARGO_ARGS...
measure() {
    local name=$1 profile=$2
    shift 2
    local env=()
    while [[ $1 != -- ]]; do env+=("$1"); shift; done
    shift
    local dir="$OUT/aarch64-$name"
    env "${env[@]}" cargo build --quiet -p tokenkeeper-ffi --lib --profile "$profile" --target "$TARGET" \
        --target-dir "$dir" "$@"
    local lib="$dir/$TARGET/$profile/libtokenkeeper.so"
    aarch64-linux-gnu-strip --strip-unneeded -o "$dir/libtokenkeeper.stripped.so" "$lib"
    echo "RESULT tokenkeeper size.aarch64.$name $(stat -c %s "$dir/libtokenkeeper.stripped.so")" | tee -a "$RESULTS"
}

echo "==> 5b. aarch64 phone library (stripped)"
measure mobile mobile -- "${MOBILE[@]}"
measure today release -- "${TODAY[@]}"
if command -v cargo-bloat >/dev/null; then
    cargo bloat --profile mobile --target "$TARGET" --target-dir "$OUT/aarch64-mobile" -p tokenkeeper-ffi --lib \
        "${MOBILE[@]}" --crates -n 20 >"$OUT/bloat.aarch64-mobile.txt" 2>>"$OUT/stderr.log" ||
        echo "(cargo bloat failed; see $OUT/stderr.log)" >"$OUT/bloat.aarch64-mobile.txt"
fi

if ((LEVERS)); then
    echo "==> 5c. size levers, each against the shipped build (mobile profile, opt-level z)"
    measure lever-opt-s mobile CARGO_PROFILE_MOBILE_OPT_LEVEL=s -- "${MOBILE[@]}"
    # Not shippable: UniFFI catches a panic at the FFI boundary only if it unwinds.
    measure lever-panic-abort mobile CARGO_PROFILE_MOBILE_PANIC=abort \
        "RUSTFLAGS=-C force-unwind-tables=no" -- "${MOBILE[@]}"

    # idna_adapter 1.0.0: no Unicode back end, so non-ASCII host names are refused
    # (punycode `xn--` names still work). The pin lives in Cargo.lock, so it is applied
    # for these builds only and the lock file is put back whatever happens.
    cp Cargo.lock "$OUT/Cargo.lock.kept"
    trap 'cp "$OUT/Cargo.lock.kept" Cargo.lock' EXIT
    cargo update --quiet -p idna_adapter --precise 1.0.0
    measure lever-idna-pinned mobile -- "${MOBILE[@]}"
    measure lever-panic-abort-idna-pinned mobile CARGO_PROFILE_MOBILE_PANIC=abort \
        "RUSTFLAGS=-C force-unwind-tables=no" -- "${MOBILE[@]}"

    # A nightly toolchain rebuilds std with the crate (`-Z build-std`), at opt-level z
    # and with std's own `optimize_for_size`; skipped where no nightly with rust-src
    # is installed (a release build on nightly is the app team's choice, not ours).
    if rustup run nightly rustc --print sysroot >/dev/null 2>&1 &&
        [[ -d "$(rustup run nightly rustc --print sysroot)/lib/rustlib/src/rust/library" ]]; then
        measure lever-build-std-idna-pinned mobile RUSTUP_TOOLCHAIN=nightly -- "${MOBILE[@]}" \
            -Z build-std=std,panic_unwind -Z build-std-features=optimize_for_size
        measure lever-floor mobile RUSTUP_TOOLCHAIN=nightly CARGO_PROFILE_MOBILE_PANIC=abort \
            "RUSTFLAGS=-C force-unwind-tables=no" -- "${MOBILE[@]}" \
            -Z build-std=std,panic_abort -Z build-std-features=optimize_for_size
    else
        echo "(no nightly toolchain with rust-src: the build-std levers are not measured)"
    fi
    cp "$OUT/Cargo.lock.kept" Cargo.lock
    trap - EXIT
fi
