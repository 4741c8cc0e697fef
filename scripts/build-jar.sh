#!/usr/bin/env bash
# The one command that builds the JVM jar of the Kotlin bindings with the native
# library for this machine inside it, and fails if the library is missing:
#
#   scripts/build-jar.sh            # release cdylib (what an app ships)
#   scripts/build-jar.sh --debug    # debug cdylib (faster; tests)
#   scripts/build-jar.sh --install  # also `mvn install` into ~/.m2 as
#                                   # dev.tokenkeeper:tokenkeeper-kotlin:0.1.0
#
# Honours CARGO_TARGET_DIR (or a target-dir in .cargo/config.toml): the target
# directory is asked of cargo, never assumed, so the jar always gets the library
# cargo just built. Prints the jar's path on success. Needs cargo, a JDK 17+ and
# Maven 3.8+. The JUnit suite is not run here (scripts/test-kotlin.sh runs it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROFILE=release
GOAL=package
for arg in "$@"; do
    case "$arg" in
        --debug) PROFILE=debug ;;
        --install) GOAL=install ;;
        *)
            echo "unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) LIB=libtokenkeeper.so JNA_DIR=linux-x86-64 ;;
    Linux-aarch64) LIB=libtokenkeeper.so JNA_DIR=linux-aarch64 ;;
    Darwin-x86_64) LIB=libtokenkeeper.dylib JNA_DIR=darwin-x86-64 ;;
    Darwin-arm64) LIB=libtokenkeeper.dylib JNA_DIR=darwin-aarch64 ;;
    *)
        echo "build-jar.sh: no JNA resource directory known for $(uname -s)-$(uname -m)" >&2
        exit 2
        ;;
esac

CARGO_FLAGS=(--quiet -p tokenkeeper-ffi --lib)
[ "$PROFILE" = release ] && CARGO_FLAGS+=(--release)
echo "==> cargo build ${CARGO_FLAGS[*]}"
cargo build "${CARGO_FLAGS[@]}"

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
NATIVE="$TARGET_DIR/$PROFILE/$LIB"
if [ ! -f "$NATIVE" ]; then
    echo "build-jar.sh: cargo did not produce $NATIVE" >&2
    exit 1
fi

echo "==> mvn $GOAL (bindings/kotlin, native library $NATIVE)"
(
    cd bindings/kotlin
    mvn -B -ntp -q -DskipTests "-Dcargo.profile=$PROFILE" "-Dcargo.target.dir=$TARGET_DIR" \
        "-Dnative.library.name=$LIB" "-Dnative.jna.dir=$JNA_DIR" "$GOAL" >&2
)

JAR="$ROOT/bindings/kotlin/target/tokenkeeper-kotlin-0.1.0.jar"
if ! python3 - "$JAR" "$JNA_DIR/$LIB" <<'PY'; then
import sys, zipfile
jar, entry = sys.argv[1], sys.argv[2]
names = zipfile.ZipFile(jar).namelist()
sys.exit(0 if entry in names else 1)
PY
    echo "build-jar.sh: $JAR lacks $JNA_DIR/$LIB; the app would fail with UnsatisfiedLinkError" >&2
    exit 1
fi
echo "$JAR"
