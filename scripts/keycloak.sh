#!/usr/bin/env bash
# Keycloak for the interop suites (issue 13): a real authorization server on 127.0.0.1.
#
#   scripts/keycloak.sh start       # fetch if needed, start, wait until ready; prints the base URL
#   scripts/keycloak.sh stop        # stops the server started by `start`
#   scripts/keycloak.sh run-tests   # start, run the Rust and Kotlin interop suites, stop (also on failure)
#
# The distribution (org.keycloak:keycloak-quarkus-dist, tar.gz, from Maven Central) and
# its unpacked tree are cached under $TOKENKEEPER_CACHE (default ~/.cache/tokenkeeper)
# and reused; a fresh machine downloads them once. Keycloak runs in dev mode with an
# in-memory database, so every start begins from tests/keycloak/realm.json and nothing
# leaks from one run to the next. Needs curl (or mvn), python3 and a JDK 21+; the
# Temurin 25 JDK under /usr/lib/jvm is preferred (the default java may be 17).
#
# Environment:
#   KEYCLOAK_VERSION          distribution version (default 26.5.6)
#   KEYCLOAK_JAVA_HOME        JDK to run Keycloak with (default: newest JDK 21+ found)
#   KEYCLOAK_START_TIMEOUT    seconds to wait for readiness (default 300; a first start on a
#                             busy 2-core machine took 125 s)
#   TOKENKEEPER_CACHE         download cache (default ~/.cache/tokenkeeper)
#   KEYCLOAK_STATE_DIR        pid, port, log and env of the running server
#                             (default target/keycloak in the repository)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="${KEYCLOAK_VERSION:-26.5.6}"
CACHE="${TOKENKEEPER_CACHE:-$HOME/.cache/tokenkeeper}"
STATE="${KEYCLOAK_STATE_DIR:-$ROOT/target/keycloak}"
TIMEOUT="${KEYCLOAK_START_TIMEOUT:-300}"
REALM=tokenkeeper
ARTIFACT="keycloak-quarkus-dist-$VERSION.tar.gz"
URL="https://repo1.maven.org/maven2/org/keycloak/keycloak-quarkus-dist/$VERSION/$ARTIFACT"
KC_HOME="$CACHE/keycloak-$VERSION"

log() { echo "keycloak.sh: $*" >&2; }
now() { date +%s; }

# The JDK: KEYCLOAK_JAVA_HOME, else a Temurin 25, else any JDK whose major version is 21+.
find_java_home() {
    if [[ -n "${KEYCLOAK_JAVA_HOME:-}" ]]; then
        echo "$KEYCLOAK_JAVA_HOME"
        return
    fi
    local candidate major
    for candidate in /usr/lib/jvm/temurin-25* /usr/lib/jvm/*25* /usr/lib/jvm/*; do
        [[ -x "$candidate/bin/java" ]] || continue
        major="$("$candidate/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
        if [[ -n "$major" && "$major" -ge 21 ]]; then
            echo "$candidate"
            return
        fi
    done
    log "no JDK 21+ found under /usr/lib/jvm; set KEYCLOAK_JAVA_HOME"
    return 1
}

# Downloads and unpacks the distribution once; later runs reuse the cache.
fetch() {
    mkdir -p "$CACHE"
    if [[ -x "$KC_HOME/bin/kc.sh" ]]; then
        return
    fi
    local started
    started="$(now)"
    if [[ ! -s "$CACHE/$ARTIFACT" ]]; then
        log "downloading $ARTIFACT from Maven Central"
        if command -v curl >/dev/null; then
            curl -fsSL --retry 3 --connect-timeout 20 -o "$CACHE/$ARTIFACT.part" "$URL"
            local expected actual
            expected="$(curl -fsSL --retry 3 "$URL.sha1" | cut -c1-40)"
            actual="$(sha1sum "$CACHE/$ARTIFACT.part" | cut -c1-40)"
            if [[ "$expected" != "$actual" ]]; then
                rm -f "$CACHE/$ARTIFACT.part"
                log "checksum mismatch for $ARTIFACT (expected $expected, got $actual)"
                return 1
            fi
            mv "$CACHE/$ARTIFACT.part" "$CACHE/$ARTIFACT"
        else
            mvn -q -B -ntp dependency:copy "-Dartifact=org.keycloak:keycloak-quarkus-dist:$VERSION:tar.gz" \
                "-DoutputDirectory=$CACHE"
        fi
    fi
    # Unpack beside the final place and rename, so an interrupted run leaves no half tree.
    local tmp
    tmp="$(mktemp -d "$CACHE/unpack.XXXXXX")"
    tar -xzf "$CACHE/$ARTIFACT" -C "$tmp"
    rm -rf "$KC_HOME"
    mv "$tmp/keycloak-$VERSION" "$KC_HOME"
    rm -rf "$tmp"
    log "fetched and unpacked in $(($(now) - started)) s"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

is_running() {
    [[ -f "$STATE/pid" ]] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null
}

start() {
    if is_running; then
        log "already running (pid $(cat "$STATE/pid"))"
        cat "$STATE/url"
        return
    fi
    fetch
    local java_home port mgmt_port admin_password started
    java_home="$(find_java_home)"
    port="$(free_port)"
    mgmt_port="$(free_port)"
    admin_password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
    mkdir -p "$STATE" "$KC_HOME/data/import"
    cp "$ROOT/tests/keycloak/realm.json" "$KC_HOME/data/import/$REALM-realm.json"
    : >"$STATE/keycloak.log"
    started="$(now)"
    log "starting Keycloak $VERSION on 127.0.0.1:$port with $java_home (log: $STATE/keycloak.log)"
    # setsid: the server gets its own process group, so `stop` ends kc.sh and its JVM together.
    # --add-opens: on Java 24+ JBoss Threads' thread-local reset otherwise kills
    # executor threads with an IllegalAccessError (Keycloak's own log says so).
    JAVA_HOME="$java_home" \
        JAVA_OPTS_APPEND="--add-opens=java.base/java.lang=ALL-UNNAMED" \
        KC_BOOTSTRAP_ADMIN_USERNAME=admin \
        KC_BOOTSTRAP_ADMIN_PASSWORD="$admin_password" \
        setsid "$KC_HOME/bin/kc.sh" start-dev \
        --http-host=127.0.0.1 --http-port="$port" \
        --http-management-port="$mgmt_port" \
        --hostname-strict=false \
        --db=dev-mem \
        --import-realm \
        >>"$STATE/keycloak.log" 2>&1 </dev/null &
    echo $! >"$STATE/pid"
    local url="http://127.0.0.1:$port"
    echo "$url" >"$STATE/url"
    (
        umask 077
        cat >"$STATE/env" <<EOF
export TOKENKEEPER_KEYCLOAK_URL=$url
export TOKENKEEPER_KEYCLOAK_REALM=$REALM
export TOKENKEEPER_KEYCLOAK_ADMIN_USER=admin
export TOKENKEEPER_KEYCLOAK_ADMIN_PASSWORD=$admin_password
EOF
    )
    # Ready means the imported realm serves its discovery document.
    local deadline=$((started + TIMEOUT))
    until curl -fsS -o /dev/null "$url/realms/$REALM/.well-known/openid-configuration" 2>/dev/null; do
        if ! is_running; then
            log "Keycloak exited during start-up; last lines of its log:"
            tail -n 60 "$STATE/keycloak.log" >&2
            rm -f "$STATE/pid"
            return 1
        fi
        if (($(now) >= deadline)); then
            log "Keycloak not ready after $TIMEOUT s; last lines of its log:"
            tail -n 60 "$STATE/keycloak.log" >&2
            stop
            return 1
        fi
        sleep 1
    done
    log "ready in $(($(now) - started)) s; environment for the tests: source $STATE/env"
    echo "$url"
}

stop() {
    if [[ ! -f "$STATE/pid" ]]; then
        return
    fi
    local pid
    pid="$(cat "$STATE/pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        local waited=0
        while kill -0 "$pid" 2>/dev/null && ((waited < 30)); do
            sleep 1
            waited=$((waited + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "Keycloak did not stop in 30 s; killing it"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$STATE/pid" "$STATE/url" "$STATE/env"
    log "stopped"
}

run_tests() {
    local t0 t1 t2 t3 status=0
    t0="$(now)"
    fetch
    t1="$(now)"
    trap 'status=$?; stop; exit $status' EXIT
    trap 'exit 130' INT TERM
    start >/dev/null
    t2="$(now)"
    # shellcheck disable=SC1091
    source "$STATE/env"
    cd "$ROOT"
    echo "==> cargo test --test keycloak_interop --test keycloak_login (against $TOKENKEEPER_KEYCLOAK_URL)"
    if ! cargo test --test keycloak_interop --test keycloak_login -- --nocapture; then
        status=1
    fi
    echo "==> Kotlin KeycloakInteropTest (bindings/kotlin)"
    cargo build --quiet --lib
    (
        cd bindings/kotlin
        set +e
        mvn -B -ntp "-Dcargo.target.dir=${CARGO_TARGET_DIR:-$ROOT/target}" \
            -Dtest=KeycloakInteropTest -Dsurefire.failIfNoSpecifiedTests=false test 2>&1 |
            grep -E --line-buffered '(Tests run:|FAIL|ERROR|BUILD|Exception|^\s+at |expected|skipped)'
        exit "${PIPESTATUS[0]}"
    ) || status=1
    t3="$(now)"
    if ((status != 0)); then
        echo "==> Keycloak log (last 40 lines)"
        tail -n 40 "$STATE/keycloak.log"
    fi
    echo "==> Keycloak interop timings: fetch $((t1 - t0)) s, start $((t2 - t1)) s, suites $((t3 - t2)) s"
    return "$status"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    run-tests) run_tests ;;
    fetch) fetch ;;
    *)
        echo "usage: $0 start|stop|run-tests|fetch" >&2
        exit 2
        ;;
esac
