#!/usr/bin/env bash
# The one debug build every test step shares: the workspace's libraries (the FFI cdylib
# included), binaries (the development server, uniffi-bindgen), tests and examples:
# the targets and features `cargo test` builds.
#
#   scripts/build-debug.sh [cargo args…]     e.g. --quiet
#
# Cargo resolves features per invocation: `cargo build -p tokenkeeper-devserver`,
# `cargo build -p tokenkeeper-ffi` and `cargo test --workspace` would each compile tokio,
# hyper, reqwest and the core again with a different feature set. Every debug step
# (scripts/test-all.sh, test-kotlin.sh, generate-bindings.sh) therefore builds with
# exactly these flags, and cargo finds the work done. `TOKENKEEPER_CARGO_FLAGS` prints
# them for `cargo test` to reuse.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
FLAGS=(--workspace --features tokenkeeper-ffi/bindgen-cli)
if [[ "${1:-}" == --print-flags ]]; then
    echo "${FLAGS[*]}"
    exit 0
fi
cargo build "${FLAGS[@]}" --lib --bins --tests --examples "$@"
