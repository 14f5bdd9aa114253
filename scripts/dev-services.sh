#!/usr/bin/env bash
# The real servers weir's tests (and local development) run against, as plain
# processes on free loopback ports:
#   - a Kafka-compatible broker: tansu (crates.io), with durable SQLite storage
#     so a broker restart keeps its data;
#   - an S3-compatible server: s3s-fs (crates.io), SigV4-authenticated, over a
#     directory.
#
# Usage:
#   scripts/dev-services.sh install                 install both (and chromium, for the status page's
#                                                   test) if missing (~12 min the first time)
#   scripts/dev-services.sh start DIR [--watch PID] start both; state, logs and DIR/env live in DIR
#   scripts/dev-services.sh stop DIR [broker|s3]    stop both (or one)
#   scripts/dev-services.sh resume DIR [broker|s3]  start a stopped one again, on the same port and data
#   scripts/dev-services.sh env DIR                 print the environment (export lines)
#
# `start` waits until both answer, then writes DIR/env with WEIR_KAFKA_BROKERS,
# WEIR_S3_ENDPOINT and AWS credentials, and prints it as export lines:
#   eval "$(scripts/dev-services.sh start /tmp/weir-dev)"
# With --watch PID both servers are stopped when process PID exits (tests
# pass their own PID so nothing outlives them).
set -euo pipefail

TANSU_VERSION=0.6.0
S3S_FS_VERSION=0.14.1
ACCESS_KEY=weir-dev
SECRET_KEY=weir-dev-secret-key
REGION=us-east-1

die() { echo "dev-services: $*" >&2; exit 1; }

install() {
    if ! command -v tansu >/dev/null; then
        echo "dev-services: installing tansu $TANSU_VERSION (takes ~12 minutes on 2 cores)" >&2
        cargo install --locked tansu --version "$TANSU_VERSION" --features dynostore,libsql >&2
    fi
    if ! command -v chromium >/dev/null; then
        # The status page's test drives a real headless browser.
        echo "dev-services: installing chromium (Debian package)" >&2
        local sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
        $sudo_cmd apt-get update -qq >&2 && $sudo_cmd apt-get install -y -qq chromium >&2
    fi
    if ! command -v s3s-fs >/dev/null; then
        echo "dev-services: installing s3s-fs $S3S_FS_VERSION" >&2
        cargo install --locked s3s-fs --version "$S3S_FS_VERSION" --features binary >&2
    fi
}

free_ports() { # count; prints that many distinct free ports, one per line
    # All sockets stay bound until every port is chosen: ports asked for one
    # after the other can come back the same (a broker and an S3 server on
    # one port, and the S3 checks then talking to the broker).
    python3 -c '
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
for s in sockets:
    print(s.getsockname()[1])
' "$1"
}

# Until the command succeeds. The caller records the PID only after this
# returns, so a server that failed to start never replaces the PID file of
# one that runs (a `resume` of a server that is still up).
wait_for() { # description, log, pid, command...
    local what=$1 log=$2 pid=$3; shift 3
    local exited="$what exited; the end of its log, $log:"
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || die "$exited
$(tail -n 20 "$log")"
        if "$@" >/dev/null 2>&1; then
            # Something else may answer on the port while our server fails
            # to bind it (and exits at once): only a server still alive
            # after answering counts.
            sleep 0.2
            kill -0 "$pid" 2>/dev/null || die "$exited
$(tail -n 20 "$log")"
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null
    die "$what did not become ready within 30 s"
}

start_broker() {
    local dir=$1 port
    port=$(cat "$dir/broker.port")
    tansu broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "sqlite:///$dir/broker/tansu.db" \
        >>"$dir/broker.log" 2>&1 &
    local pid=$!
    wait_for "the broker on port $port" "$dir/broker.log" "$pid" \
        tansu topic list --broker "tcp://127.0.0.1:$port"
    echo "$pid" >"$dir/broker.pid"
}

# s3s-fs does not set TCP_NODELAY on its connections, so on loopback each
# GET of an object larger than one write waits ~40 ms for a delayed ACK
# (scripts/tcp-nodelay.c says why). The shim sets it; built once per DIR
# with the C compiler librdkafka's build needs anyway. Without a compiler,
# or off Linux, the server runs as it is (correct, only slower).
nodelay_shim() { # dir; prints the LD_PRELOAD value ("" without the shim)
    local dir=$1 shim="$1/tcp-nodelay.so"
    if [ ! -f "$shim" ] && [ "$(uname -s)" = Linux ] && command -v cc >/dev/null; then
        if ! cc -shared -fPIC -O2 -o "$shim" "$(dirname "$0")/tcp-nodelay.c" -ldl >>"$dir/s3.log" 2>&1; then
            rm -f "$shim"
            echo "dev-services: could not build the TCP_NODELAY shim (see $dir/s3.log); S3 GETs will be slow" >&2
        fi
    fi
    [ -f "$shim" ] && echo "$shim" || echo ""
}

start_s3() {
    local dir=$1 port
    port=$(cat "$dir/s3.port")
    LD_PRELOAD=$(nodelay_shim "$dir") s3s-fs --host 127.0.0.1 --port "$port" --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" \
        "$dir/s3" >>"$dir/s3.log" 2>&1 &
    local pid=$!
    wait_for "the S3 server on port $port" "$dir/s3.log" "$pid" \
        curl -s -o /dev/null "http://127.0.0.1:$port/"
    echo "$pid" >"$dir/s3.pid"
}

stop_one() { # dir, name
    local pidfile="$1/$2.pid"
    if [ -f "$pidfile" ]; then
        kill "$(cat "$pidfile")" 2>/dev/null || true
        # Wait until the port is released so `resume` can bind it again.
        for _ in $(seq 1 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
        rm -f "$pidfile"
    fi
}

print_env() {
    local dir=$1
    sed 's/^/export /' "$dir/env"
}

command=${1:-}
case "$command" in
    install)
        install
        ;;
    start)
        dir=${2:?usage: start DIR [--watch PID]}
        command -v tansu >/dev/null && command -v s3s-fs >/dev/null ||
            die "tansu or s3s-fs is missing: run '$0 install' first"
        mkdir -p "$dir/broker" "$dir/s3"
        dir=$(cd "$dir" && pwd)
        { read -r broker_port; read -r s3_port; } < <(free_ports 2)
        echo "$broker_port" >"$dir/broker.port"
        echo "$s3_port" >"$dir/s3.port"
        start_broker "$dir"
        start_s3 "$dir"
        cat >"$dir/env" <<EOF
WEIR_KAFKA_BROKERS=127.0.0.1:$(cat "$dir/broker.port")
WEIR_S3_ENDPOINT=http://127.0.0.1:$(cat "$dir/s3.port")
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
AWS_REGION=$REGION
EOF
        if [ "${3:-}" = "--watch" ]; then
            watched=${4:?--watch needs a PID}
            # Detached watchdog (its own session, so a Ctrl-C of the watched
            # process group does not take it down first): once the watched
            # process is gone, stop the servers. It stops them by the PID
            # files when DIR still exists, else by the PIDs it started with
            # (a caller that removed DIR without stopping them first).
            pids="$(cat "$dir/broker.pid") $(cat "$dir/s3.pid")"
            setsid nohup bash -c "while kill -0 $watched 2>/dev/null; do sleep 0.5; done
                if [ -d '$dir' ]; then '$0' stop '$dir'; else kill $pids 2>/dev/null; fi" \
                >/dev/null 2>&1 </dev/null &
        fi
        print_env "$dir"
        ;;
    stop)
        dir=${2:?usage: stop DIR [broker|s3]}
        case "${3:-both}" in
            broker) stop_one "$dir" broker ;;
            s3) stop_one "$dir" s3 ;;
            both) stop_one "$dir" broker; stop_one "$dir" s3 ;;
            *) die "stop: unknown service ${3}" ;;
        esac
        ;;
    resume)
        dir=${2:?usage: resume DIR [broker|s3]}
        case "${3:-both}" in
            broker) start_broker "$dir" ;;
            s3) start_s3 "$dir" ;;
            both) start_broker "$dir"; start_s3 "$dir" ;;
            *) die "resume: unknown service ${3}" ;;
        esac
        ;;
    env)
        print_env "${2:?usage: env DIR}"
        ;;
    *)
        sed -n '2,22p' "$0" >&2
        exit 2
        ;;
esac
