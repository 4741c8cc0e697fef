#!/usr/bin/env bash
# Builds the tokenkeeper cdylib and the development authorization server, checks
# that the committed Kotlin/Swift bindings match the Rust interface, then runs the
# Kotlin JUnit tests on the JVM (same generated code and JNA path as Android).
#
#   scripts/test-kotlin.sh            # debug build
#   scripts/test-kotlin.sh --release  # test against the release cdylib
#
# Needs: cargo, a JDK 17+, Maven 3.8+ (dependencies come from Maven Central).
# Exit status is non-zero if anything fails. Surefire's "Tests run: N, Failures: F"
# lines are printed (CI reads them); Maven's download and plugin chatter is not.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROFILE=debug
BINDGEN_ARGS=(--check)
CARGO_ARGS=(--quiet)
for arg in "$@"; do
    case "$arg" in
        --release)
            PROFILE=release
            BINDGEN_ARGS+=(--release)
            CARGO_ARGS+=(--release)
            ;;
        *)
            echo "unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

if [[ "$PROFILE" == debug ]]; then
    # The shared debug build (dev server, cdylib, uniffi-bindgen): a no-op after test-all's.
    echo "==> cargo build (debug): scripts/build-debug.sh"
    bash scripts/build-debug.sh "${CARGO_ARGS[@]}"
else
    echo "==> cargo build ($PROFILE): tokenkeeper-devserver"
    cargo build "${CARGO_ARGS[@]}" -p tokenkeeper-devserver
fi

# Builds the cdylib too (default features), then diffs freshly generated bindings
# against the committed ones.
echo "==> scripts/generate-bindings.sh ${BINDGEN_ARGS[*]}"
scripts/generate-bindings.sh "${BINDGEN_ARGS[@]}"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
echo "==> mvn test (bindings/kotlin, $PROFILE cdylib from $TARGET_DIR)"
cd bindings/kotlin
set +e
mvn -B -ntp "-Dcargo.profile=$PROFILE" "-Dcargo.target.dir=$TARGET_DIR" test 2>&1 |
    grep -E --line-buffered '(Tests run:|FAIL|ERROR|BUILD|Exception|^\s+at |expected)'
status=${PIPESTATUS[0]}
set -e
[ "$status" -eq 0 ] || exit "$status"

# The Android-only KeystoreTokenStore, compiled against stubs of the Android SDK
# classes it uses (no Android SDK here); never packaged or run.
echo "==> mvn -Pandroid-stub compile (KeystoreTokenStore against Android API stubs)"
mvn -B -ntp -q -Pandroid-stub "-Dcargo.target.dir=$TARGET_DIR" compile
