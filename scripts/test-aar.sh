#!/usr/bin/env bash
# Checks the AAR scripts/build-aar.sh assembles (in test-all, after the Kotlin tests,
# whose compiled classes it packages; no Rust build): unzips it and checks the layout an
# Android build reads.
#
#   scripts/test-aar.sh   # last line: "N passed, M failed"
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

AAR="$(bash scripts/build-aar.sh | tail -1)"
python3 - "$AAR" bindings/kotlin/consumer-rules.pro <<'PY'
import io, sys, zipfile
import xml.etree.ElementTree as ET

aar, rules = sys.argv[1], sys.argv[2]
archive = zipfile.ZipFile(aar)
names = archive.namelist()
ANDROID = "{http://schemas.android.com/apk/res/android}"
# ELF e_machine for each Android ABI (the library must be built for the ABI it is filed under).
MACHINE = {"arm64-v8a": 183, "armeabi-v7a": 40, "x86_64": 62, "x86": 3}
results = []

def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}")

manifest = ET.fromstring(archive.read("AndroidManifest.xml")) if "AndroidManifest.xml" in names else None
check("AndroidManifest.xml names the package dev.tokenkeeper",
      manifest is not None and manifest.get("package") == "dev.tokenkeeper")
sdk = manifest.find("uses-sdk") if manifest is not None else None
check("the manifest's minSdkVersion is 24", sdk is not None and sdk.get(ANDROID + "minSdkVersion") == "24")

classes = zipfile.ZipFile(io.BytesIO(archive.read("classes.jar"))).namelist() if "classes.jar" in names else []
for wanted in ("dev/tokenkeeper/AuthClient.class", "dev/tokenkeeper/Session.class",
               "dev/tokenkeeper/KeystoreTokenStore.class", "dev/tokenkeeper/AndroidKeystoreDpopKeys.class",
               "dev/tokenkeeper/DpopPublicKeys.class", "dev/tokenkeeper/UniffiLib.class"):
    check(f"classes.jar has {wanted}", wanted in classes)
check("classes.jar holds only dev/tokenkeeper classes (no Android stubs, no JVM native library)",
      bool(classes) and all(n.startswith(("dev/tokenkeeper/", "META-INF/")) for n in classes),
      ", ".join(n for n in classes if not n.startswith(("dev/tokenkeeper/", "META-INF/")))[:200])

check("proguard.txt is bindings/kotlin/consumer-rules.pro",
      "proguard.txt" in names and archive.read("proguard.txt") == open(rules, "rb").read())
check("R.txt is present", "R.txt" in names)

libraries = [n for n in names if n.startswith("jni/")]
check("jni/ holds at least one ABI", bool(libraries), ", ".join(libraries))
for entry in libraries:
    parts = entry.split("/")
    abi = parts[1] if len(parts) == 3 else None
    head = archive.read(entry)[:20]
    elf = head[:4] == b"\x7fELF" and int.from_bytes(head[16:18], "little") == 3  # ET_DYN
    machine = int.from_bytes(head[18:20], "little")
    check(f"{entry} is a shared library for {abi}",
          parts[-1] == "libtokenkeeper.so" and abi in MACHINE and elf and machine == MACHINE[abi],
          f"e_machine {machine}")

passed = sum(results)
print(f"{passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
PY
