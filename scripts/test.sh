#!/usr/bin/env bash
# The one command that runs every volscan test on a fresh Debian machine, as root:
# it installs what the tests need (PostgreSQL, diskus, promtool, busybox, docker-compose, systemd-analyze,
# strip, Chromium and chromedriver, schemathesis, cargo-deny), starts a throwaway
# PostgreSQL cluster, runs `cargo xtask ci` against it, and stops the cluster.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

log() { printf '\n==> %s\n' "$*"; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- PostgreSQL -------------------------------------------------------------
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pg_bin)" ] || [ ! -x "$(pg_bin)/initdb" ]; then
  log "installing PostgreSQL"
  apt_install postgresql
fi

# --- promtool (Debian package prometheus), to check a real metrics scrape --------
if ! command -v promtool >/dev/null 2>&1; then
  log "installing prometheus (for promtool)"
  apt_install prometheus
fi

# --- busybox, for the Docker tests' image (volscan-testing imports it; nothing is pulled) ---
if ! [ -x /bin/busybox ]; then
  log "installing busybox-static"
  apt_install busybox-static
fi

# --- the deployment checks: docker-compose config, systemd-analyze verify; strip for the image ---
if ! command -v docker-compose >/dev/null 2>&1; then
  log "installing docker-compose"
  apt_install docker-compose
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  log "installing systemd (for systemd-analyze)"
  apt_install systemd
fi
if ! command -v strip >/dev/null 2>&1; then
  log "installing binutils (for strip)"
  apt_install binutils
fi

# --- Chromium and chromedriver, for the dashboard's browser tests (Debian's packages) ---
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  log "installing chromium and chromium-driver"
  apt_install chromium chromium-driver
fi

PG_BIN="$(pg_bin)"
PG_PORT="${VOLSCAN_TEST_PG_PORT:-55432}"
PG_DIR="$(mktemp -d /tmp/volscan-pg.XXXXXX)"
chown postgres "$PG_DIR"
stop_pg() {
  su postgres -s /bin/sh -c "'$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m immediate stop" >/dev/null 2>&1 || true
  rm -rf "$PG_DIR"
}
trap stop_pg EXIT
log "starting a throwaway PostgreSQL cluster on 127.0.0.1:$PG_PORT"
su postgres -s /bin/sh -c "'$PG_BIN/initdb' -D '$PG_DIR/data' -A trust -U postgres" >/dev/null
su postgres -s /bin/sh -c "'$PG_BIN/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/log' -w \
  -o \"-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c shared_preload_libraries=pg_stat_statements\" start" >/dev/null
export VOLSCAN_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

# --- diskus, for the diskus engine's tests --------------------------------------
# Installed under /usr/local so that the unprivileged-user tests can run it too.
if ! [ -x /usr/local/bin/diskus ]; then
  log "installing diskus"
  cargo install --locked --root /usr/local diskus
fi

# --- schemathesis (PyPI), for the API fuzzing test, in a virtualenv of its own ---
SCHEMATHESIS_VERSION=4.32.5
VENV=/opt/volscan-test-venv
if ! [ -x "$VENV/bin/schemathesis" ] || ! "$VENV/bin/schemathesis" --version | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi
export VOLSCAN_SCHEMATHESIS="$VENV/bin/schemathesis"

# --- cargo-deny and its advisory database -------------------------------------
if ! command -v cargo-deny >/dev/null 2>&1; then
  log "installing cargo-deny"
  cargo install --locked cargo-deny
fi

log "running cargo xtask ci"
cargo xtask ci
