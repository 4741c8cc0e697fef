"""Turns the RESULT lines of one bench/run into the results block of BENCHMARKS.md.

usage: render.py RESULTS_FILE TARGET_MD [EXTRA_MD]

RESULTS_FILE holds `RESULT <implementation> <metric> <value>` lines (implementations:
tokenkeeper, go, mutex). The block between the `results:begin` / `results:end` markers
of TARGET_MD is replaced (TARGET_MD is created from the markers if missing); EXTRA_MD,
if given, is appended inside the block (machine details, cargo bloat output). Exits 1
if a figure the table needs is missing, so a broken measurement fails `--quick` in CI.
"""

import os
import sys

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
PEERS = ("go", "mutex")

# (label, metric, unit, better, target, peers?) — better: "low" or "high".
ROWS = [
    ("1. cached `access_token()`, 1 thread, median", "hot.t1.median_ns", "ns", "low", "≤ 50 ns", True),
    ("1. cached, 1 thread, p99 (of 256-call means)", "hot.t1.p99_ns", "ns", "low", "", True),
    ("1. cached, 2 threads, median per call", "hot.t2.median_ns", "ns", "low", "", True),
    ("1. cached, 2 threads, p99 per call", "hot.t2.p99_ns", "ns", "low", "", True),
    ("1. throughput 2 threads ÷ 1 thread", "hot.t2_speedup", "×", "high", "≥ 1.8×", True),
    ("1a. its parts: `SystemTime::now()`", "parts.clock_ns", "ns", "low", "", False),
    ("1a. its parts: the same through `Arc<dyn Clock>`", "parts.dyn_clock_ns", "ns", "low", "", False),
    ("1a. its parts: arc-swap load", "parts.arc_swap_load_ns", "ns", "low", "", False),
    ("1a. its parts: `AccessToken` copy + drop", "parts.copy_ns", "ns", "low", "", False),
    ("1a. `cached_access_token()` (sync)", "parts.cached_access_token_ns", "ns", "low", "", False),
    ("1a. `access_token()` with its own `now_or_never()` per call", "parts.now_or_never_ns", "ns", "low", "", False),
]
for mode, what in (("empty", "empty cache"), ("expiring", "token inside its refresh margin")):
    for n in (10, 100, 1000, 10000):
        label = f"2. {n:,} callers, {what}"
        ROWS.append((f"{label}: token requests", f"economy.{mode}.n{n}.token_requests", "", "low", "exactly 1", True))
        ROWS.append((f"{label}: wait p50 / p99", f"economy.{mode}.n{n}", "ms", "low", "" if mode == "empty" else "no wait", True))
ROWS += [
    ("3. revocation storm, 1,000 × 401: token requests", "storm.token_requests", "", "low", "exactly 1", True),
    ("3. storm: requests not ending in 200", "storm.failed", "", "low", "0", True),
    ("3. storm: requests that got a 401 and recovered", "storm.recovered", "", "high", "", True),
    ("3. storm: burst p99, valid token → revoked", "storm.burst", "ms", "low", "", True),
    ("3. storm: p99 wait from a 401 to a usable token", "storm.recovery_p99_ms", "ms", "low", "", True),
    ("3. storm: that wait over one token round trip", "storm.added_over_rtt_ms", "ms", "low", "≤ 2 ms", True),
    ("4. RSS per idle session, 1,000 sessions", "memory.n1000.bytes_per_session", "B", "low", "≤ 1 KiB", False),
    ("4. RSS per idle session, 10,000 sessions", "memory.n10000.bytes_per_session", "B", "low", "≤ 1 KiB", False),
    ("4. RSS per idle session, 100,000 sessions", "memory.n100000.bytes_per_session", "B", "low", "≤ 1 KiB", False),
    ("4. growth 10k → 100k (per-session ratio; 1.0 = linear)", "memory.linearity", "×", "low", "linear", False),
    ("5. cdylib x86_64, release profile (as built)", "size.cdylib_bytes", "MiB", "low", "", False),
    ("5. cdylib x86_64, release profile, stripped", "size.stripped_bytes", "MiB", "low", "≤ 3 MiB", False),
    ("5. cdylib x86_64, phone feature set (default without `secret-service`), stripped", "size.phone_stripped_bytes", "MiB", "low", "≤ 3 MiB", False),
    ("5b. aarch64 phone library, `mobile` features + profile (no reqwest/hyper/rustls/webpki), stripped", "size.aarch64.mobile", "MiB", "low", "≤ 1.5 MiB", False),
    ("5b. aarch64, today's phone feature set (reqwest + rustls inside), release, stripped", "size.aarch64.today", "MiB", "low", "", False),
    ("5c. lever: `mobile` with opt-level s instead of z", "size.aarch64.lever-opt-s", "MiB", "low", "", False),
    ("5c. lever: `mobile` with panic = abort and `-C force-unwind-tables=no` (not shipped)", "size.aarch64.lever-panic-abort", "MiB", "low", "", False),
    ("5c. lever: `mobile` with `idna_adapter` 1.0.0 (non-ASCII host names refused)", "size.aarch64.lever-idna-pinned", "MiB", "low", "", False),
    ("5c. lever: panic = abort, no unwind tables, `idna_adapter` 1.0.0 (not shipped)", "size.aarch64.lever-panic-abort-idna-pinned", "MiB", "low", "", False),
    ("5c. lever: nightly `-Z build-std` with `optimize_for_size`, unwinding kept, `idna_adapter` 1.0.0", "size.aarch64.lever-build-std-idna-pinned", "MiB", "low", "", False),
    ("5c. floor: nightly `-Z build-std`, panic = abort, no unwind tables, `idna_adapter` 1.0.0 (not shipped)", "size.aarch64.lever-floor", "MiB", "low", "", False),
    ("6. Kotlin `accessToken()` crossing the FFI (JVM, JNA), paced", "kotlin.ffi_ns", "ns", "low", "", False),
    ("6. Kotlin `cachedAccessToken()` from the session's token copy, paced", "kotlin.sync_ns", "ns", "low", "", False),
    ("6. plain Kotlin `@Volatile` holder, same JVM (reference)", "kotlin.plain_ns", "ns", "low", "", False),
    ("7. fleet on Redis, 8 processes × 50 tenants: token requests per tenant per expiry", "fleet.requests_per_tenant_per_expiry", "", "low", "exactly 1", False),
    ("7. the same 8 processes without Redis (today's per-process cache)", "fleet.requests_per_tenant_per_expiry_without_redis", "", "low", "", False),
    ("7. Redis commands per tenant per expiry, whole fleet", "fleet.redis_commands_per_tenant_per_expiry", "", "low", "", False),
    ("7. cached `access_token()` with Redis configured (release, 1M calls)", "fleet.cached_read_ns", "ns", "low", "unchanged", False),
    ("7. on paper, 1,000 instances × 100,000 tenants, 1 h tokens: Redis commands/s", "fleet.paper_commands_per_second", "", "low", "", False),
    ("7. on paper, same: pub/sub deliveries/s", "fleet.paper_deliveries_per_second", "", "low", "", False),
]


# Rows that only a full bench/run fills (bench/mobile-size.sh).
FULL_RUN_ONLY = "size.aarch64."


def load(path):
    results = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 4 and parts[0] == "RESULT":
                results[(parts[1], parts[2])] = float(parts[3])
    return results


def fmt(value, unit):
    if unit == "MiB":
        return f"{value / 1048576:.2f} MiB"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit == "ns":
        return f"{value:.1f} ns" if value < 100 else f"{value:,.0f} ns"
    if unit == "B":
        return f"{value:,.0f} B"
    if unit == "×":
        return f"{value:.2f}×"
    return f"{value:,.0f}"


def cell(results, impl, metric, unit, missing):
    """The cell text and the number the ratio uses."""
    def get(m):
        key = (impl, m)
        if key not in results:
            missing.append(f"{impl} {m}")
            return float("nan")
        return results[key]

    if metric.startswith("economy.") and not metric.endswith("token_requests"):
        p50, p99 = get(metric + ".p50_ms"), get(metric + ".p99_ms")
        return f"{p50:.2f} / {p99:.2f} ms", p99
    if metric == "storm.burst":
        valid, storm = get("storm.valid_p99_ms"), get("storm.p99_ms")
        return f"{valid:.1f} → {storm:.1f} ms", storm
    value = get(metric)
    return fmt(value, unit), value


def ratio(ours, theirs, better, unit):
    if unit == "ms" and ours < 0.005 <= theirs:
        return "no wait vs a wait"  # a ratio against ~0 would only measure the timer
    if not (ours > 0 and theirs > 0):
        return "—"
    r = theirs / ours if better == "low" else ours / theirs
    return f"{r:.2f}"


def table(results):
    missing = []
    if ("tokenkeeper", "memory.n10000.bytes_per_session") in results and (
        "tokenkeeper", "memory.n100000.bytes_per_session") in results:
        small = results[("tokenkeeper", "memory.n10000.bytes_per_session")]
        large = results[("tokenkeeper", "memory.n100000.bytes_per_session")]
        results[("tokenkeeper", "memory.linearity")] = large / small if small > 0 else float("nan")
    lines = [
        "| measurement | tokenkeeper | golang.org/x/oauth2 | mutex cache | × vs x/oauth2 | × vs mutex | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, metric, unit, better, target, peers in ROWS:
        if metric.startswith(FULL_RUN_ONLY) and ("tokenkeeper", metric) not in results and os.environ.get("QUICK") == "1":
            # The aarch64 cross-builds are one LTO build each: full runs only.
            lines.append(f"| {label} | not built in quick mode | — | — | — | — | {target} |")
            continue
        ours_text, ours = cell(results, "tokenkeeper", metric, unit, missing)
        cols = [label, ours_text]
        ratios = []
        for peer in PEERS:
            if peers:
                text, theirs = cell(results, peer, metric, unit, missing)
                cols.append(text)
                ratios.append(ratio(ours, theirs, better, unit))
            else:
                cols.append("—")
                ratios.append("—")
        lines.append("| " + " | ".join(cols + ratios + [target]) + " |")
    return "\n".join(lines), missing


def main():
    results_path, target = sys.argv[1], sys.argv[2]
    extra = open(sys.argv[3]).read().rstrip() + "\n" if len(sys.argv) > 3 else ""
    text, missing = table(load(results_path))
    block = f"{BEGIN}\n{extra}\n{text}\n{END}"
    try:
        doc = open(target).read()
    except FileNotFoundError:
        doc = f"{BEGIN}\n{END}\n"
    start, end = doc.find(BEGIN), doc.find(END)
    if start < 0 or end < 0:
        doc = doc.rstrip() + f"\n\n{BEGIN}\n{END}\n"
        start, end = doc.find(BEGIN), doc.find(END)
    doc = doc[:start] + block + doc[end + len(END):]
    with open(target, "w") as f:
        f.write(doc)
    if missing:
        print("render.py: missing figures: " + ", ".join(missing), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
