#!/usr/bin/env bash
# The whole test suite, as README.md states it: Rust unit, integration and doc tests
# (against the development authorization server on 127.0.0.1), the Kotlin JUnit tests
# on the JVM with the real native library, and the Swift parse check.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# One debug build for every step below (see scripts/build-debug.sh): the same flags
# everywhere, so nothing is compiled twice with another feature set.
read -r -a FLAGS <<<"$(bash scripts/build-debug.sh --print-flags)"
echo "==> cargo build (debug, shared by every step): scripts/build-debug.sh"
bash scripts/build-debug.sh

echo "==> cargo test ${FLAGS[*]}"
cargo test "${FLAGS[@]}"

echo "==> the demo (examples/demo.rs, built by scripts/build-debug.sh; about 1 s)"
# The binary itself: `cargo run --example demo` would resolve features for the root
# package alone and compile tokio and the core again.
"$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/debug/examples/demo"

echo "==> KeyringStore against a real Secret Service (private D-Bus + GNOME Keyring)"
bash scripts/with-secret-service.sh cargo test "${FLAGS[@]}" --test keyring_store

echo "==> Kotlin bindings (JVM)"
bash scripts/test-kotlin.sh

echo "==> the jar from a clean clone with CARGO_TARGET_DIR set (scripts/test-jar.sh)"
bash scripts/test-jar.sh

echo "==> the AAR layout (scripts/test-aar.sh: assembled from the builds above, no Rust build)"
bash scripts/test-aar.sh

echo "==> Swift bindings (generated + hand-written, parsed with tree-sitter-swift)"
bash scripts/check-swift.sh

echo "==> the Swift release manifest (scripts/test-swift-release.sh: URL + checksum filled, still parses)"
bash scripts/test-swift-release.sh
