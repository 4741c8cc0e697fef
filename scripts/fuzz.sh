#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time, starting from the seed
# corpus in fuzz/seeds/<target> (responses in the documented formats of Keycloak,
# Auth0, Okta, Azure AD, Google and GitHub, plus edge cases).
#
#   scripts/fuzz.sh [seconds-per-target] [target...]     (default: 10 s, every target)
#
# New inputs go to a scratch corpus under $FUZZ_WORK (default: a temp dir), never into
# the repo; a crash leaves its input in fuzz/artifacts/<target>/ and fails the script.
# Limits: inputs up to 64 KiB, 5 s per input (super-linear time shows up as a timeout),
# 256 MiB per allocation and 2 GiB in all (unbounded allocation shows up as a crash).
# Needs a nightly toolchain (or RUSTC_BOOTSTRAP=1 on stable, with FUZZ_SANITIZER=none
# when the AddressSanitizer runtime is missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-10}"
shift || true

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
else
    toolchain=()
    export RUSTC_BOOTSTRAP=1
fi
sanitizer="${FUZZ_SANITIZER:-address}"
# Outside the repo so that CI's fresh clones on the same machine reuse the build.
target_dir="${FUZZ_TARGET_DIR:-${HOME}/.cache/tokenkeeper/fuzz-target}"
work="${FUZZ_WORK:-$(mktemp -d)}"

cd fuzz
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo "${toolchain[@]}" fuzz list)
fi
echo "==> building ${#targets[@]} fuzz targets (sanitizer: ${sanitizer})"
cargo "${toolchain[@]}" fuzz build -s "${sanitizer}" --target-dir "${target_dir}"

status=0
for target in "${targets[@]}"; do
    corpus="${work}/${target}"
    mkdir -p "${corpus}"
    log="${work}/${target}.log"
    if cargo "${toolchain[@]}" fuzz run -s "${sanitizer}" --target-dir "${target_dir}" "${target}" \
        "${corpus}" "seeds/${target}" -- \
        -max_total_time="${seconds}" -max_len=65536 -timeout=5 \
        -malloc_limit_mb=256 -rss_limit_mb=2048 -print_final_stats=1 >"${log}" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
        tail -40 "${log}"
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "${log}" | grep -o '[0-9]*$' || echo "?")
    echo "fuzz ${target}: ${result}, ${execs} executions in ${seconds} s"
done
exit "${status}"
