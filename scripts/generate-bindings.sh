#!/usr/bin/env bash
# Regenerates the Kotlin and Swift bindings from the built tokenkeeper-ffi cdylib
# (UniFFI library mode: the interface is read from the library's metadata).
#
#   scripts/generate-bindings.sh            # debug build, write the bindings
#   scripts/generate-bindings.sh --release  # from a release build
#   scripts/generate-bindings.sh --check    # regenerate into a temp dir and diff
#                                           # against the committed files; exit 1 on drift
#
# Outputs (generated, never edited by hand):
#   bindings/kotlin/src/main/kotlin/dev/tokenkeeper/tokenkeeper.kt
#   bindings/TokenKeeper/Sources/TokenKeeper/TokenKeeper.swift
#   bindings/TokenKeeper/Sources/TokenKeeperFFI/include/TokenKeeperFFI.h
#   bindings/TokenKeeper/Sources/TokenKeeperFFI/include/module.modulemap
#
# Deterministic: no formatter is run (--no-format; ktlint/swiftformat would make the
# output depend on what is installed), and the inputs are only the library and
# uniffi.toml.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROFILE=debug
CHECK=0
for arg in "$@"; do
    case "$arg" in
        --release) PROFILE=release ;;
        --check) CHECK=1 ;;
        -h | --help)
            sed -n '2,20p' "$0"
            exit 0
            ;;
        *)
            echo "unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$(uname -s)" in
    Darwin) LIB_FILE=libtokenkeeper.dylib ;;
    MINGW* | MSYS* | CYGWIN*) LIB_FILE=tokenkeeper.dll ;;
    *) LIB_FILE=libtokenkeeper.so ;;
esac

KOTLIN_DIR=bindings/kotlin/src/main/kotlin
SWIFT_SOURCES_DIR=bindings/TokenKeeper/Sources/TokenKeeper
SWIFT_FFI_DIR=bindings/TokenKeeper/Sources/TokenKeeperFFI/include

cargo_flags=(--quiet)
[[ "$PROFILE" == release ]] && cargo_flags+=(--release)

# The generator and the library the bindings are read from. Release: the generator
# first (its build may refresh the cdylib with the `bindgen-cli` feature on), then the
# library itself with the crate's default features, the one apps load.
if [[ "$PROFILE" == debug ]]; then
    # The debug build every test step shares (scripts/build-debug.sh): the cdylib and
    # uniffi-bindgen with the workspace's feature set, so nothing is compiled twice.
    bash scripts/build-debug.sh "${cargo_flags[@]}"
else
    cargo build "${cargo_flags[@]}" -p tokenkeeper-ffi --features bindgen-cli --bin uniffi-bindgen
    cargo build "${cargo_flags[@]}" -p tokenkeeper-ffi --lib
fi
BINDGEN="$TARGET_DIR/$PROFILE/uniffi-bindgen"
LIBRARY="$TARGET_DIR/$PROFILE/$LIB_FILE"

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

generate() { # language out-dir
    "$BINDGEN" generate --library "$LIBRARY" --language "$1" --out-dir "$2" \
        --config "$ROOT/bindings/ffi/uniffi-roots.toml" --no-format --metadata-no-deps >/dev/null
}
generate kotlin "$OUT/kotlin"
generate swift "$OUT/swift"

# The layout the repository keeps, as relative-path pairs "generated -> committed".
FILES=(
    "kotlin/dev/tokenkeeper/tokenkeeper.kt|$KOTLIN_DIR/dev/tokenkeeper/tokenkeeper.kt"
    "swift/TokenKeeper.swift|$SWIFT_SOURCES_DIR/TokenKeeper.swift"
    "swift/TokenKeeperFFI.h|$SWIFT_FFI_DIR/TokenKeeperFFI.h"
    "swift/TokenKeeperFFI.modulemap|$SWIFT_FFI_DIR/module.modulemap"
)

for pair in "${FILES[@]}"; do
    if [[ ! -f "$OUT/${pair%%|*}" ]]; then
        echo "generate-bindings: UniFFI did not produce ${pair%%|*}" >&2
        exit 1
    fi
done

status=0
for pair in "${FILES[@]}"; do
    generated="$OUT/${pair%%|*}"
    committed="${pair##*|}"
    if [[ "$CHECK" == 1 ]]; then
        if [[ ! -f "$committed" ]]; then
            echo "generate-bindings: $committed is missing" >&2
            status=1
        elif ! diff -u "$committed" "$generated" >"$OUT/diff" 2>&1; then
            echo "generate-bindings: $committed is out of date with the Rust interface:" >&2
            head -n 40 "$OUT/diff" >&2
            status=1
        fi
    else
        mkdir -p "$(dirname "$committed")"
        cp "$generated" "$committed"
    fi
done

if [[ "$CHECK" == 1 ]]; then
    if [[ "$status" != 0 ]]; then
        echo "generate-bindings: run scripts/generate-bindings.sh and commit the result." >&2
    else
        echo "generate-bindings: bindings are up to date."
    fi
else
    echo "generate-bindings: wrote the Kotlin and Swift bindings ($PROFILE build)."
fi
exit "$status"
