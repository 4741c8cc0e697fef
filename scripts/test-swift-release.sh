#!/usr/bin/env bash
# Checks scripts/release-swift.sh on a machine without Xcode (in test-all, after
# scripts/check-swift.sh, whose tree-sitter venv it reuses): on a copy of the root
# Package.swift and a stand-in XCFramework zip, the script must fill the binary target's
# URL and checksum (the zip's SHA-256, SwiftPM's checksum), replace them on a second
# release, refuse a zip that is not an XCFramework and a non-https URL, and leave a
# manifest that still parses. What it cannot check here: that SwiftPM resolves the URL
# (no Swift toolchain; docs/ios.md has the Mac steps).
#
#   scripts/test-swift-release.sh   # last line: "N passed, M failed"
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
PY="${TOKENKEEPER_VENV:-.venv}/bin/python"
passed=0
failed=0
check() { # name, then the command
    local name="$1"
    shift
    if "$@" >"$WORK/out" 2>&1; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/     /' "$WORK/out"
    fi
}

# A stand-in XCFramework zip laid out as `ditto -c -k --keepParent` writes one.
make_zip() { # path, content
    python3 - "$1" "$2" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    z.writestr("TokenKeeperFFI.xcframework/Info.plist", "<plist>" + sys.argv[2] + "</plist>")
    z.writestr("TokenKeeperFFI.xcframework/ios-arm64/libtokenkeeper.a", sys.argv[2])
PY
}
constants_are() { # manifest, url, zip
    python3 - "$@" <<'PY'
import hashlib, re, sys
manifest, url, zip_path = sys.argv[1:4]
text = open(manifest).read()
found_url = re.search(r'^let releasedXCFrameworkURL = "(.*)"$', text, re.M).group(1)
found_sum = re.search(r'^let releasedXCFrameworkChecksum = "(.*)"$', text, re.M).group(1)
want_sum = hashlib.sha256(open(zip_path, "rb").read()).hexdigest()
print(found_url, found_sum, want_sum)
sys.exit(0 if (found_url, found_sum) == (url, want_sum) else 1)
PY
}
fails() { ! "$@"; }

mkdir -p "$WORK/pkg"
cp Package.swift "$WORK/pkg/Package.swift"
make_zip "$WORK/a.zip" first
make_zip "$WORK/b.zip" second
printf 'not a zip' >"$WORK/bad.zip"
python3 -c 'import zipfile,sys; zipfile.ZipFile(sys.argv[1],"w").writestr("Other.xcframework/Info.plist","")' "$WORK/other.zip"
A=https://example.com/tokenkeeper/0.1.0/TokenKeeperFFI.xcframework.zip
B=https://example.com/tokenkeeper/0.1.1/TokenKeeperFFI.xcframework.zip

check "the committed manifest has empty release constants (local XCFramework)" \
    grep -qx 'let releasedXCFrameworkURL = ""' Package.swift
check "release-swift fills the URL and the zip's SHA-256" \
    bash -c "scripts/release-swift.sh --manifest='$WORK/pkg/Package.swift' --url='$A' --zip='$WORK/a.zip' && \
             $(declare -f constants_are); constants_are '$WORK/pkg/Package.swift' '$A' '$WORK/a.zip'"
check "a second release replaces both" \
    bash -c "scripts/release-swift.sh --manifest='$WORK/pkg/Package.swift' --url='$B' --zip='$WORK/b.zip' && \
             $(declare -f constants_are); constants_are '$WORK/pkg/Package.swift' '$B' '$WORK/b.zip'"
check "a file that is not a zip is refused" \
    fails scripts/release-swift.sh --manifest="$WORK/pkg/Package.swift" --url="$A" --zip="$WORK/bad.zip"
check "a zip of another framework is refused" \
    fails scripts/release-swift.sh --manifest="$WORK/pkg/Package.swift" --url="$A" --zip="$WORK/other.zip"
check "an http URL is refused" \
    fails scripts/release-swift.sh --manifest="$WORK/pkg/Package.swift" --url=http://example.com/x.zip --zip="$WORK/a.zip"
check "the refusals left the last release in place" \
    bash -c "$(declare -f constants_are); constants_are '$WORK/pkg/Package.swift' '$B' '$WORK/b.zip'"
check "without a zip, off a Mac, it stops instead of building" \
    fails scripts/release-swift.sh --manifest="$WORK/pkg/Package.swift" --url="$A"
if [[ -x "$PY" ]]; then
    check "the released manifest parses (tree-sitter-swift)" \
        "$PY" scripts/check_swift_parse.py --require "$WORK/pkg/Package.swift" "$WORK/pkg/Package.swift"
else
    failed=$((failed + 1))
    echo "FAIL no tree-sitter venv at $PY: run scripts/check-swift.sh first"
fi
echo "$passed passed, $failed failed"
[[ "$failed" == 0 ]]
