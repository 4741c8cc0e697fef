#!/usr/bin/env bash
# Builds bindings/TokenKeeper/TokenKeeperFFI.xcframework, the binary target of the Swift
# package: the tokenkeeper static library for every Apple platform we ship, plus
# the UniFFI C header and module map (module `TokenKeeperFFI`).
#
# macOS with Xcode only (xcodebuild, lipo). Not run on tokenkeeper's Linux
# development machines or CI, which have no Apple toolchain: see docs/ios.md.
#
#   scripts/build-xcframework.sh               # release build, all slices
#   scripts/build-xcframework.sh --debug       # debug build (faster, unoptimised)
#   scripts/build-xcframework.sh --macos-only  # only this Mac's architecture, for `swift test`
#   scripts/build-xcframework.sh --zip         # also TokenKeeperFFI.xcframework.zip + its
#                                              # SwiftPM checksum (printed and written to
#                                              # TokenKeeperFFI.xcframework.zip.checksum)
#   scripts/build-xcframework.sh --release-url=https://…/TokenKeeperFFI.xcframework.zip
#                                              # --zip, then scripts/release-swift.sh points the
#                                              # root Package.swift's binary target at that URL
#
# Slices (xcodebuild -create-xcframework takes one library per platform variant, so
# the simulator and macOS architectures are first merged with lipo):
#   ios-arm64                    aarch64-apple-ios
#   ios-arm64_x86_64-simulator   aarch64-apple-ios-sim + x86_64-apple-ios
#   macos-arm64_x86_64           aarch64-apple-darwin + x86_64-apple-darwin
# Each slice carries Headers/TokenKeeperFFI/{TokenKeeperFFI.h,module.modulemap}: the
# extra directory keeps the module map from colliding with other XCFrameworks'
# `Headers/module.modulemap` when Xcode copies headers into one include folder
# (clang also finds `<include dir>/<Module>/module.modulemap`).
#
# The header and module map are generated here, from the built library, with the
# crate's uniffi-bindgen (the same invocation as scripts/generate-bindings.sh). The
# committed Swift bindings must come from the same Rust interface, or the bindings'
# API checksums fail at first call: the script compares them and stops on a mismatch.
set -euo pipefail

die() {
    echo "build-xcframework: $*" >&2
    exit 1
}

if [[ "$(uname -s)" != Darwin ]]; then
    die "needs macOS with Xcode (xcodebuild, lipo); this machine runs $(uname -s). Nothing was built."
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROFILE=release
MACOS_ONLY=0
ZIP=0
RELEASE_URL=""
for arg in "$@"; do
    case "$arg" in
        --debug) PROFILE=debug ;;
        --release) PROFILE=release ;;
        --macos-only) MACOS_ONLY=1 ;;
        --zip) ZIP=1 ;;
        --release-url=*)
            ZIP=1
            RELEASE_URL="${arg#--release-url=}"
            ;;
        -h | --help)
            sed -n '2,28p' "$0"
            exit 0
            ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done

for tool in cargo xcodebuild lipo; do
    command -v "$tool" >/dev/null || die "$tool not found (install Xcode and its command line tools, and Rust)"
done

# Keep in step with `platforms:` in the root Package.swift, so the linker does
# not warn that the library was built for a newer OS than the app.
export IPHONEOS_DEPLOYMENT_TARGET=15.0
export MACOSX_DEPLOYMENT_TARGET=12.0

case "$(uname -m)" in
    arm64) HOST_TARGET=aarch64-apple-darwin ;;
    x86_64) HOST_TARGET=x86_64-apple-darwin ;;
    *) die "unexpected Mac architecture $(uname -m)" ;;
esac

if [[ "$MACOS_ONLY" == 1 ]]; then
    TARGETS=("$HOST_TARGET")
else
    TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
fi

if command -v rustup >/dev/null; then
    rustup target add "${TARGETS[@]}"
else
    echo "build-xcframework: no rustup; assuming the standard libraries for ${TARGETS[*]} are installed" >&2
fi

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# The phone build: no reqwest, hyper, rustls or webpki; URLSession carries the requests.
cargo_flags=(-p tokenkeeper-ffi --lib --no-default-features --features mobile)
[[ "$PROFILE" == release ]] && cargo_flags+=(--release)

for target in "${TARGETS[@]}"; do
    echo "build-xcframework: cargo build --target $target ($PROFILE)"
    cargo build "${cargo_flags[@]}" --target "$target"
done
lib() { echo "$TARGET_DIR/$1/$PROFILE/libtokenkeeper.a"; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# --- Bindings: header + module map for the XCFramework, and a drift check -------
echo "build-xcframework: generating the Swift bindings from $HOST_TARGET"
bindgen_flags=(--features bindgen-cli --bin uniffi-bindgen)
[[ "$PROFILE" == release ]] && bindgen_flags+=(--release)
cargo run --quiet -p tokenkeeper-ffi "${bindgen_flags[@]}" -- generate \
    --library "$TARGET_DIR/$HOST_TARGET/$PROFILE/libtokenkeeper.dylib" \
    --language swift --out-dir "$WORK/bindings" --config "$ROOT/bindings/ffi/uniffi-roots.toml" \
    --no-format --metadata-no-deps >/dev/null

[[ -f "$WORK/bindings/TokenKeeperFFI.h" && -f "$WORK/bindings/TokenKeeperFFI.modulemap" ]] ||
    die "uniffi-bindgen produced no TokenKeeperFFI.h/.modulemap; is [bindings.swift] set in uniffi.toml?"
generated_swift=("$WORK"/bindings/*.swift)
# The committed copy is found by UniFFI's header line, whatever its file name.
committed_swift="$(grep -l -s "autogenerated by some hot garbage in the \`uniffi\` crate" \
    bindings/TokenKeeper/Sources/TokenKeeper/*.swift | head -n 1 || true)"
[[ -n "$committed_swift" ]] || die "no generated bindings in bindings/TokenKeeper/Sources/TokenKeeper; run scripts/generate-bindings.sh"
if ! cmp -s "${generated_swift[0]}" "$committed_swift"; then
    die "$committed_swift does not match this library's interface; run scripts/generate-bindings.sh and commit it"
fi

committed_header=bindings/TokenKeeper/Sources/TokenKeeperFFI/include/TokenKeeperFFI.h
if [[ -f "$committed_header" ]] && ! cmp -s "$WORK/bindings/TokenKeeperFFI.h" "$committed_header"; then
    die "$committed_header does not match this library's interface; run scripts/generate-bindings.sh and commit it"
fi

HEADERS="$WORK/headers"
mkdir -p "$HEADERS/TokenKeeperFFI"
cp "$WORK/bindings/TokenKeeperFFI.h" "$HEADERS/TokenKeeperFFI/TokenKeeperFFI.h"
cp "$WORK/bindings/TokenKeeperFFI.modulemap" "$HEADERS/TokenKeeperFFI/module.modulemap"

# --- Libraries: one per platform variant --------------------------------------------
xcframework_args=()
add_slice() { # name, libraries...
    local name="$1"
    shift
    mkdir -p "$WORK/$name"
    if [[ $# -eq 1 ]]; then
        cp "$1" "$WORK/$name/libtokenkeeper.a"
    else
        lipo -create "$@" -output "$WORK/$name/libtokenkeeper.a"
    fi
    xcframework_args+=(-library "$WORK/$name/libtokenkeeper.a" -headers "$HEADERS")
}

if [[ "$MACOS_ONLY" == 1 ]]; then
    add_slice macos "$(lib "$HOST_TARGET")"
else
    add_slice ios "$(lib aarch64-apple-ios)"
    add_slice ios-simulator "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)"
    add_slice macos "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)"
fi

OUTPUT=bindings/TokenKeeper/TokenKeeperFFI.xcframework
rm -rf "$OUTPUT" # xcodebuild refuses to overwrite
xcodebuild -create-xcframework "${xcframework_args[@]}" -output "$OUTPUT"
echo "build-xcframework: wrote $OUTPUT ($PROFILE; ${TARGETS[*]})"

if [[ "$ZIP" == 1 ]]; then
    rm -f "$OUTPUT.zip"
    (cd "$(dirname "$OUTPUT")" && ditto -c -k --sequesterRsrc --keepParent "$(basename "$OUTPUT")" "$(basename "$OUTPUT").zip")
    # SwiftPM's checksum is the SHA-256 of the zip; compute-checksum says so itself.
    CHECKSUM="$(swift package compute-checksum "$OUTPUT.zip")"
    [[ "$CHECKSUM" =~ ^[0-9a-f]{64}$ ]] || die "unexpected checksum output: $CHECKSUM"
    echo "$CHECKSUM" >"$OUTPUT.zip.checksum"
    echo "build-xcframework: wrote $OUTPUT.zip and $OUTPUT.zip.checksum ($CHECKSUM)"
    if [[ -n "$RELEASE_URL" ]]; then
        # Points the root Package.swift's binary target at the published zip (see its header).
        bash scripts/release-swift.sh "--url=$RELEASE_URL" "--zip=$OUTPUT.zip"
    fi
fi
