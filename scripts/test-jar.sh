#!/usr/bin/env bash
# Checks the jar build from a clean clone, as a new Android/JVM developer would run
# it: clones this repository's committed HEAD into a temporary directory, builds
# with CARGO_TARGET_DIR pointing elsewhere (the case that used to ship a jar without
# the native library), and checks with scripts/build-jar.sh's own verification plus
# an independent listing that the library is inside the jar.
#
#   scripts/test-jar.sh   # debug cdylib; reuses this checkout's compiled dependencies
#
# Prints "1 passed, 0 failed" (or "0 passed, 1 failed") as its last line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# The dependencies compiled for this checkout are reused (CI stays one build);
# only the workspace's own crates compile again for the clone's paths.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
echo "==> git clone $ROOT (HEAD) into $WORK/clone; CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
git clone --quiet "$ROOT" "$WORK/clone"

start=$(date +%s)
if JAR="$(cd "$WORK/clone" && bash scripts/build-jar.sh --debug | tail -1)" &&
    python3 - "$JAR" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
native = [n for n in names if n.endswith(("libtokenkeeper.so", "libtokenkeeper.dylib"))]
classes = [n for n in names if n.startswith("dev/tokenkeeper/") and n.endswith(".class")]
rules = "META-INF/proguard/consumer-rules.pro" in names
print(f"jar: {len(classes)} classes, native {native}, consumer rules {rules}")
sys.exit(0 if native and classes and rules else 1)
PY
then
    echo "jar built from a clean clone in $(($(date +%s) - start)) s"
    echo "1 passed, 0 failed"
else
    echo "the jar from a clean clone lacks the native library, classes or R8 rules"
    echo "0 passed, 1 failed"
    exit 1
fi
