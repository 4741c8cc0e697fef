#!/usr/bin/env bash
# Assembles the Android library (AAR) of the Kotlin bindings from what is already
# built, with no Rust build of its own:
#
#   scripts/build-aar.sh            # prints bindings/kotlin/target/tokenkeeper-kotlin-0.1.0.aar
#
# The AAR (https://developer.android.com/studio/projects/android-library#aar-contents):
#   AndroidManifest.xml        package dev.tokenkeeper, minSdk 24, INTERNET
#   classes.jar                the Kotlin classes (bindings + KeystoreTokenStore), no
#                              JVM native resource, no Android API stubs
#   proguard.txt               bindings/kotlin/consumer-rules.pro (R8 applies it to the app)
#   R.txt                      empty: the library has no resources
#   jni/<abi>/libtokenkeeper.so
#
# The native libraries, from the target directory cargo reports (CARGO_TARGET_DIR and
# .cargo/config.toml honoured):
#   - every Android build present: target/<triple>/{mobile,release}/libtokenkeeper.so for
#     aarch64-linux-android (arm64-v8a), armv7-linux-androideabi (armeabi-v7a),
#     x86_64-linux-android (x86_64), i686-linux-android (x86). On a machine with the NDK:
#       cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 \
#         build --profile mobile --lib -p tokenkeeper-ffi --no-default-features --features mobile
#   - for an ABI with no Android build, this machine's library (target/debug, or
#     target/release with --release) under the host's ABI name (x86_64 or arm64-v8a), so
#     the layout can be checked here. It links against glibc, not bionic: such an AAR is
#     for checking the layout, not for a phone; the script says so when it does this.
#
# The classes come from the Maven build scripts/test-kotlin.sh already ran (the
# android-stub profile's output, which includes KeystoreTokenStore); if there is none,
# `mvn compile` runs here (Kotlin only). Needs python3 (zipfile) and, then, Maven.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PROFILE=debug
for arg in "$@"; do
    case "$arg" in
        --release) PROFILE=release ;;
        *)
            echo "unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done

TARGET_DIR="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
KOTLIN=bindings/kotlin
STUB_CLASSES="$KOTLIN/target/android-check/classes"
CLASSES="$KOTLIN/target/classes"
if [ -d "$STUB_CLASSES/dev/tokenkeeper" ]; then
    CLASSES="$STUB_CLASSES"
elif [ ! -d "$CLASSES/dev/tokenkeeper" ]; then
    echo "==> mvn compile (bindings/kotlin): no compiled classes yet" >&2
    (cd "$KOTLIN" && mvn -B -ntp -q "-Dcargo.target.dir=$TARGET_DIR" compile >&2)
fi

case "$(uname -m)" in
    x86_64) HOST_ABI=x86_64 ;;
    aarch64 | arm64) HOST_ABI=arm64-v8a ;;
    *) HOST_ABI="" ;;
esac

AAR="$ROOT/$KOTLIN/target/tokenkeeper-kotlin-0.1.0.aar"
python3 - "$AAR" "$CLASSES" "$KOTLIN/consumer-rules.pro" "$TARGET_DIR" "$PROFILE" "$HOST_ABI" <<'PY'
import os, sys, zipfile, io
aar, classes, rules, target, profile, host_abi = sys.argv[1:7]

ANDROID = {  # Rust target -> Android ABI
    "aarch64-linux-android": "arm64-v8a",
    "armv7-linux-androideabi": "armeabi-v7a",
    "x86_64-linux-android": "x86_64",
    "i686-linux-android": "x86",
}
libraries = {}
for triple, abi in ANDROID.items():
    for built in ("mobile", "release"):
        path = os.path.join(target, triple, built, "libtokenkeeper.so")
        if os.path.isfile(path) and abi not in libraries:
            libraries[abi] = path
host = os.path.join(target, profile, "libtokenkeeper.so")
if host_abi and host_abi not in libraries and os.path.isfile(host):
    libraries[host_abi] = host
    print(f"build-aar.sh: jni/{host_abi} holds this machine's (glibc) library: "
          "the layout is right, the library is not for a phone", file=sys.stderr)
if not libraries:
    sys.exit(f"build-aar.sh: no libtokenkeeper.so under {target} (run scripts/build-debug.sh or cargo ndk)")

# classes.jar: the dev/tokenkeeper classes only (no Android API stubs, no JVM native dir).
jar = io.BytesIO()
with zipfile.ZipFile(jar, "w", zipfile.ZIP_DEFLATED) as out:
    out.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
    for base, _, files in sorted(os.walk(os.path.join(classes, "dev"))):
        for name in sorted(files):
            path = os.path.join(base, name)
            out.write(path, os.path.relpath(path, classes))

manifest = """<?xml version="1.0" encoding="utf-8"?>
<manifest xmlns:android="http://schemas.android.com/apk/res/android" package="dev.tokenkeeper">
    <uses-sdk android:minSdkVersion="24" />
    <uses-permission android:name="android.permission.INTERNET" />
</manifest>
"""
os.makedirs(os.path.dirname(aar), exist_ok=True)
with zipfile.ZipFile(aar + ".tmp", "w", zipfile.ZIP_DEFLATED) as out:
    out.writestr("AndroidManifest.xml", manifest)
    out.writestr("classes.jar", jar.getvalue())
    out.write(rules, "proguard.txt")
    out.writestr("R.txt", "")
    for abi, path in sorted(libraries.items()):
        out.write(path, f"jni/{abi}/libtokenkeeper.so")
os.replace(aar + ".tmp", aar)
print(f"build-aar.sh: {', '.join(f'{a} <- {p}' for a, p in sorted(libraries.items()))}", file=sys.stderr)
PY
echo "$AAR"
