#!/usr/bin/env bash
# Make sure RabbitMQ (5672, management on 15672), Redis (6379) and PostgreSQL (5432)
# answer on 127.0.0.1, for `make test` and `make run` on a Debian/Ubuntu machine.
#
# - A service whose port answers is left alone: this script never stops or restarts one.
# - As root, a missing Debian package is installed (apt-get update runs once) and the
#   service is started without systemd (containers, CI).
# - As another user, it prints the exact commands to run as root and exits 1.
#
# Environment:
#   ENSURE_DRY_RUN=1        print what would be done (commands prefixed "+ "), change nothing
#   ENSURE_WAIT_SECONDS=N   how long to wait for each port after a start (default 90)
#   ENSURE_SKIP_BROWSER=1   do not check chromium/chromium-driver (the UI tests need them)
#   ENSURE_SKIP_PROMETHEUS=1  do not check prometheus/promtool (the monitoring tests run them;
#                           the Debian package is installed, never started by this script)
#   ENSURE_PROMETHEUS_COMMANDS  the commands looked for (default "prometheus promtool"); tests
#                           name a missing one to walk the install path in dry-run mode
#   ENSURE_AS_ROOT=0|1      pretend to be (or not be) root; for the script's own tests
#   ENSURE_RABBITMQ_PORT, ENSURE_MANAGEMENT_PORT, ENSURE_REDIS_PORT, ENSURE_POSTGRES_PORT
#                           the ports probed (defaults 5672, 15672, 6379, 5432); tests point
#                           them at closed ports to walk the start path in dry-run mode
#
# PostgreSQL: the tests connect as user postgres over 127.0.0.1 without a password.
# Debian's default pg_hba.conf asks for a password (scram-sha-256) there, so before
# starting a stopped cluster this script puts one line first in its pg_hba.conf:
#   host all postgres 127.0.0.1/32 trust
# (only loopback, only user postgres; remove it for anything but a test machine).
# It also creates the database `test` when it is missing.
set -euo pipefail

HOST=127.0.0.1
DRY_RUN=${ENSURE_DRY_RUN:-0}
WAIT_SECONDS=${ENSURE_WAIT_SECONDS:-90}
RABBITMQ_PORT=${ENSURE_RABBITMQ_PORT:-5672}
MANAGEMENT_PORT=${ENSURE_MANAGEMENT_PORT:-15672}
REDIS_PORT=${ENSURE_REDIS_PORT:-6379}
POSTGRES_PORT=${ENSURE_POSTGRES_PORT:-5432}
if [[ -n ${ENSURE_AS_ROOT:-} ]]; then AS_ROOT=$ENSURE_AS_ROOT; elif [[ $EUID -eq 0 ]]; then AS_ROOT=1; else AS_ROOT=0; fi

APT_UPDATED=0
MISSING=()      # services still not answering (non-root), for the exit code
TODO=()         # commands a non-root user should run as root

say() { echo "[services] $*"; }

RECORD=0       # 1: run() adds the command to TODO instead of running it

# Run a command, or print it in dry-run mode (quoted so it can be pasted).
run() {
    local text
    if [[ $RECORD == 1 ]]; then
        printf -v text '%q ' "$@"
        TODO+=("${text% }")
    elif [[ $DRY_RUN == 1 ]]; then
        printf '+'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

wait_for_port() {  # NAME PORT
    local name=$1 port=$2 waited=0
    [[ $DRY_RUN == 1 ]] && { say "would wait up to ${WAIT_SECONDS}s for $name on $HOST:$port"; return 0; }
    until port_open "$port"; do
        if (( waited >= WAIT_SECONDS )); then
            say "$name did not answer on $HOST:$port within ${WAIT_SECONDS}s" >&2
            return 1
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "$name answers on $HOST:$port"
}

missing_packages() {  # PACKAGE... -> prints the ones not installed
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
    done
}

install_packages() {  # PACKAGE...
    local -a wanted
    mapfile -t wanted < <(missing_packages "$@")
    (( ${#wanted[@]} )) || return 0
    if [[ $AS_ROOT != 1 ]]; then
        TODO+=("apt-get install -y ${wanted[*]}")
        return 0
    fi
    if [[ $APT_UPDATED == 0 ]]; then
        run apt-get update -qq
        APT_UPDATED=1
    fi
    # The packages' own start attempts may fail without an init system; we start them below.
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${wanted[@]}"
}

# start NAME PORT PACKAGE PREPARE COMMAND...: unless the port answers, install PACKAGE,
# run the function PREPARE (":" for nothing), then COMMAND (a command, or a function
# that uses run), and wait for the port.
start() {
    local name=$1 port=$2 package=$3 prepare=$4
    shift 4
    if port_open "$port"; then
        say "$name already answers on $HOST:$port"
        return 0
    fi
    install_packages "$package"
    if [[ $AS_ROOT != 1 ]]; then
        RECORD=1
        if declare -F "$1" >/dev/null; then "$@"; else run "$@"; fi
        RECORD=0
        MISSING+=("$name")
        return 0
    fi
    # An install can start the service by itself; never start a second one.
    if [[ $DRY_RUN != 1 ]] && port_open "$port"; then
        say "$name answers on $HOST:$port (started by its package)"
        return 0
    fi
    "$prepare"
    say "starting $name"
    if declare -F "$1" >/dev/null; then "$@"; else run "$@"; fi
    wait_for_port "$name" "$port"
}

postgres_version() {
    # Newest cluster version; Debian creates <version>/main on install.
    local version
    version=$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1)
    echo "${version:-15}"
}

trust_loopback_postgres() {
    local hba rule="host all postgres 127.0.0.1/32 trust"
    hba=/etc/postgresql/$(postgres_version)/main/pg_hba.conf
    [[ -f $hba ]] || { [[ $DRY_RUN == 1 ]] && say "would put '$rule' first in $hba"; return 0; }
    grep -qE '^host[[:space:]]+all[[:space:]]+(postgres|all)[[:space:]]+127\.0\.0\.1/32[[:space:]]+trust' "$hba" && return 0
    if [[ $DRY_RUN == 1 ]]; then
        say "would put '$rule' first in $hba"
        return 0
    fi
    say "letting user postgres connect over $HOST without a password ($hba)"
    { echo "# broker_jobs deploy/ensure-services.sh: tests connect as postgres on loopback"; echo "$rule"; cat "$hba"; } \
        > "$hba.broker-jobs" && cat "$hba.broker-jobs" > "$hba" && rm -f "$hba.broker-jobs"
}

ensure_test_database() {
    [[ $AS_ROOT == 1 ]] || return 0
    command -v psql >/dev/null || return 0
    if [[ $DRY_RUN == 1 ]] && ! port_open "$POSTGRES_PORT"; then
        say "would create the database test if missing"
        return 0
    fi
    # Over the Unix socket (peer authentication as user postgres), whatever pg_hba says for TCP.
    if runuser -u postgres -- psql -p "$POSTGRES_PORT" -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'test'" postgres 2>/dev/null | grep -q 1; then
        return 0
    fi
    say "creating the PostgreSQL database test"
    run runuser -u postgres -- createdb -p "$POSTGRES_PORT" test || say "could not create the database test" >&2
}

ensure_rabbitmq() {
    start RabbitMQ "$RABBITMQ_PORT" rabbitmq-server : rabbitmq-server -detached
    port_open "$MANAGEMENT_PORT" && return 0
    if [[ $AS_ROOT != 1 ]]; then
        TODO+=("rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus")
        MISSING+=("RabbitMQ management API")
        return 0
    fi
    # Enabling plugins on a running node is online: nothing restarts.
    run rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus
    wait_for_port "RabbitMQ management API" "$MANAGEMENT_PORT"
}

ensure_redis() {
    start Redis "$REDIS_PORT" redis-server : \
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
}

start_postgres_cluster() {
    # The version is read only now: the cluster may have just been created by the install.
    run pg_ctlcluster --skip-systemctl-redirect "$(postgres_version)" main start
}

ensure_postgres() {
    start PostgreSQL "$POSTGRES_PORT" postgresql trust_loopback_postgres start_postgres_cluster
    ensure_test_database
}

ensure_browser() {
    [[ ${ENSURE_SKIP_BROWSER:-0} == 1 ]] && return 0
    local -a wanted
    mapfile -t wanted < <(missing_packages chromium chromium-driver)
    (( ${#wanted[@]} )) || return 0
    install_packages chromium chromium-driver
    [[ $AS_ROOT == 1 ]] || MISSING+=("${wanted[*]} (UI tests)")
}

# tests/framework/ops/test_prometheus_real.py runs Debian's prometheus (its own process, its own port)
# against the shipped scrape config and alert rules, and promtool on them.
ensure_prometheus() {
    [[ ${ENSURE_SKIP_PROMETHEUS:-0} == 1 ]] && return 0
    local cmd missing=0
    for cmd in ${ENSURE_PROMETHEUS_COMMANDS:-prometheus promtool}; do
        command -v "$cmd" >/dev/null || missing=1
    done
    (( missing )) || return 0
    if [[ $AS_ROOT != 1 ]]; then
        TODO+=("apt-get install -y --no-install-recommends prometheus")
        MISSING+=("prometheus (monitoring tests)")
        return 0
    fi
    if [[ $APT_UPDATED == 0 ]]; then
        run apt-get update -qq
        APT_UPDATED=1
    fi
    say "installing prometheus (the monitoring tests start their own; on a host with systemd the package also enables prometheus.service on :9090)"
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
}

ensure_rabbitmq
ensure_redis
ensure_postgres
ensure_browser
ensure_prometheus

if (( ${#MISSING[@]} )); then
    {
        echo "[services] not running: ${MISSING[*]}."
        echo "[services] Run these as root (sudo), then run make again:"
        printf '    %s\n' "${TODO[@]}"
        if [[ " ${MISSING[*]} " == *" PostgreSQL "* ]]; then
            echo "[services] PostgreSQL: the tests connect as postgres@127.0.0.1 without a password: before"
            echo "    starting it, put 'host all postgres 127.0.0.1/32 trust' first in"
            echo "    /etc/postgresql/*/main/pg_hba.conf; once it runs: runuser -u postgres -- createdb test"
        fi
    } >&2
    exit 1
fi
if [[ $DRY_RUN == 1 ]]; then say "dry run: nothing was changed"; else say "RabbitMQ, Redis and PostgreSQL are up"; fi
