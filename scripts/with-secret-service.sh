#!/usr/bin/env bash
# Runs CMD… with a real Secret Service: a private D-Bus session bus and an unlocked
# GNOME Keyring in a throwaway HOME, so tests never touch the user's own keyring.
# Needs dbus-run-session (dbus) and gnome-keyring-daemon (.ci/run installs them).
# Without them, CMD still runs, with TOKENKEEPER_NO_SECRET_SERVICE set to the reason,
# and the tests that need the service say so and skip.
set -euo pipefail
if [ "$#" -eq 0 ]; then
    echo "usage: $0 CMD [ARG…]" >&2
    exit 2
fi
if [ -z "${TOKENKEEPER_INSIDE_SECRET_SERVICE:-}" ]; then
    missing=""
    for tool in dbus-run-session gnome-keyring-daemon; do
        command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
    done
    if [ -n "$missing" ]; then
        export TOKENKEEPER_NO_SECRET_SERVICE="not installed:$missing"
        exec "$@"
    fi
    home="$(mktemp -d "${TMPDIR:-/tmp}/tokenkeeper-keyring-XXXXXX")"
    trap 'rm -rf "$home"' EXIT
    # Cargo and rustup stay where they are; only the keyring's files go to the new HOME.
    export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}"
    export HOME="$home" XDG_DATA_HOME="$home/.local/share" XDG_RUNTIME_DIR="$home/run"
    mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
    TOKENKEEPER_INSIDE_SECRET_SERVICE=1 dbus-run-session -- "$0" "$@"
    exit $?
fi
# Inside the private bus: start the keyring, unlocked with a throwaway password (the
# daemon reads it on stdin), and export the variables it prints.
# shellcheck disable=SC2046
if ! eval "$(printf 'tokenkeeper-ci' | gnome-keyring-daemon --unlock --components=secrets)"; then
    export TOKENKEEPER_NO_SECRET_SERVICE="gnome-keyring-daemon did not start"
fi
"$@"
