#!/usr/bin/env bash
# Points the root Package.swift's binary target at a published XCFramework zip: computes
# the zip's SwiftPM checksum and writes `releasedXCFrameworkURL` and
# `releasedXCFrameworkChecksum`, so that apps resolve the package by URL with no local
# build. Commit the result and tag it (e.g. 0.1.0); upload the zip to the URL first.
#
#   scripts/release-swift.sh --url=https://example.com/tokenkeeper/0.1.0/TokenKeeperFFI.xcframework.zip
#       on a Mac: builds the zip with scripts/build-xcframework.sh --zip, then fills both
#   scripts/release-swift.sh --url=… --zip=path/TokenKeeperFFI.xcframework.zip
#       any OS: uses a zip built elsewhere (a Mac, CI's macOS runner)
#   --manifest=path/Package.swift   another manifest than the root one (the tests use a copy)
#
# SwiftPM's checksum of a binary target is the SHA-256 of the zip file, in hex: what
# `swift package compute-checksum` prints. That is used when a Swift toolchain is on
# PATH; otherwise the same SHA-256 is computed with Python. The zip must hold
# TokenKeeperFFI.xcframework/Info.plist at its top (what `ditto -c -k --keepParent`
# writes); anything else is refused, as SwiftPM would refuse it at resolution.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

URL=""
ZIP=""
MANIFEST="$ROOT/Package.swift"
for arg in "$@"; do
    case "$arg" in
        --url=*) URL="${arg#--url=}" ;;
        --zip=*) ZIP="${arg#--zip=}" ;;
        --manifest=*) MANIFEST="${arg#--manifest=}" ;;
        *)
            echo "unknown argument: $arg" >&2
            exit 2
            ;;
    esac
done
die() {
    echo "release-swift: $*" >&2
    exit 1
}
[[ "$URL" =~ ^https://[^\"\\[:space:]]+\.zip$ ]] || die "--url must be an https URL of a .zip (got '$URL')"
if [[ -z "$ZIP" ]]; then
    [[ "$(uname -s)" == Darwin ]] || die "no --zip given, and building the XCFramework needs a Mac (scripts/build-xcframework.sh)"
    bash scripts/build-xcframework.sh --zip
    ZIP=bindings/TokenKeeper/TokenKeeperFFI.xcframework.zip
fi
[[ -f "$ZIP" ]] || die "$ZIP does not exist"

python3 - "$ZIP" <<'PY' || die "$ZIP is not a zip of TokenKeeperFFI.xcframework (no TokenKeeperFFI.xcframework/Info.plist)"
import sys, zipfile
try:
    names = zipfile.ZipFile(sys.argv[1]).namelist()
except zipfile.BadZipFile:
    sys.exit(1)
sys.exit(0 if "TokenKeeperFFI.xcframework/Info.plist" in names else 1)
PY

if command -v swift >/dev/null 2>&1; then
    CHECKSUM="$(swift package --package-path "$(dirname "$MANIFEST")" compute-checksum "$ZIP")"
else
    CHECKSUM="$(python3 -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$ZIP")"
fi
[[ "$CHECKSUM" =~ ^[0-9a-f]{64}$ ]] || die "unexpected checksum: $CHECKSUM"

python3 - "$MANIFEST" "$URL" "$CHECKSUM" <<'PY' || die "$MANIFEST lacks the releasedXCFrameworkURL / releasedXCFrameworkChecksum constants"
import re, sys
path, url, checksum = sys.argv[1:4]
text = open(path).read()
new, n = re.subn(r'^let releasedXCFrameworkURL = ".*"$', f'let releasedXCFrameworkURL = "{url}"', text, flags=re.M)
new, m = re.subn(r'^let releasedXCFrameworkChecksum = ".*"$', f'let releasedXCFrameworkChecksum = "{checksum}"', new, flags=re.M)
if n != 1 or m != 1:
    sys.exit(1)
open(path, "w").write(new)
PY
echo "release-swift: $MANIFEST now uses $URL (checksum $CHECKSUM); commit it with the release tag"
