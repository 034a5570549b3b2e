#!/usr/bin/env bash
# finsentry local Apache Kafka broker (single node, KRaft broker+controller, 127.0.0.1 only).
#
# The broker is assembled from Maven Central jars (deploy/kafka/pom.xml) and run with plain
# `java`: no Docker, no tarball. See usage() below, docs in finsentry/broker.py.
set -euo pipefail

readonly KAFKA_VERSION="4.1.1"
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
readonly SCRIPT_DIR
readonly POM="$SCRIPT_DIR/pom.xml"
readonly LOG4J_CONFIG="$SCRIPT_DIR/log4j2.properties"
readonly WAIT_READY="$SCRIPT_DIR/wait_ready.py"
KAFKA_HOME="${FINSENTRY_KAFKA_HOME:-$HOME/.cache/finsentry/kafka-$KAFKA_VERSION}"
readonly LIB_DIR="$KAFKA_HOME/lib"
readonly STAMP="$LIB_DIR/.finsentry-fetch-complete"
readonly RUN_MARKER=".finsentry-kafka-run"
START_TIMEOUT="${FINSENTRY_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${FINSENTRY_KAFKA_STOP_TIMEOUT:-30}"

usage() {
    cat <<EOF
Usage: $(basename "$0") COMMAND [ARGS]

Local single-node Apache Kafka $KAFKA_VERSION broker (KRaft, broker+controller) on 127.0.0.1.

Commands:
  fetch                               Copy the broker jars from Maven Central into
                                      \$FINSENTRY_KAFKA_HOME/lib once (cached; later calls
                                      do not run Maven). Prints the lib dir.
  start RUN_DIR [PORT] [CONTROLLER_PORT]
                                      Fetch if needed, write RUN_DIR/server.properties, format
                                      a fresh data dir RUN_DIR/data (refuses existing data),
                                      start the JVM in the background, wait until a client
                                      round trip works. Free ports are picked when not given.
                                      Writes RUN_DIR/broker.pid and RUN_DIR/bootstrap; prints
                                      the bootstrap address (127.0.0.1:PORT) as the last line.
  stop RUN_DIR                        SIGTERM the recorded JVM, SIGKILL after
                                      \$FINSENTRY_KAFKA_STOP_TIMEOUT s (30), then delete RUN_DIR.
                                      Succeeds when already stopped.
  halt RUN_DIR                        Stop the JVM like 'stop' (SIGTERM: a controlled shutdown;
                                      SIGKILL after the stop timeout) but keep RUN_DIR: its
                                      data dir, config, ports and logs stay for 'resume'.
                                      For fault tests (a broker restart that keeps the data).
  resume RUN_DIR                      Start the JVM again on a halted RUN_DIR: same data dir,
                                      server.properties, ports and cluster id; wait until a
                                      client round trip works; print the bootstrap address.
                                      Fails if it is running or a port was taken meanwhile.
  status RUN_DIR                      Print the state. Exit 0 running, 1 dead but pid file
                                      left, 3 not running.

Environment:
  FINSENTRY_KAFKA_HOME           jar cache (default \$HOME/.cache/finsentry/kafka-$KAFKA_VERSION)
  FINSENTRY_KAFKA_START_TIMEOUT  seconds to wait for readiness (default 90)
  FINSENTRY_KAFKA_STOP_TIMEOUT   seconds between SIGTERM and SIGKILL (default 30)
  FINSENTRY_KAFKA_OWNER_PID      if set, a watchdog stops the broker when this process ends
  FINSENTRY_KAFKA_JVM_OPTS       extra JVM options (word-split)
  FINSENTRY_PYTHON               python with kafka-python for the readiness check
                                 (default \$HOME/.cache/finsentry/venv/bin/python, else python3)
  JAVA_HOME / MVN                java (17+) and maven executables
Logs: RUN_DIR/logs/server.log (broker), RUN_DIR/logs/jvm.out (JVM stdout/stderr).
EOF
}

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { printf 'broker.sh: error: %s\n' "$*" >&2; exit 1; }

java_bin() {
    if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        printf '%s\n' "$JAVA_HOME/bin/java"
    elif command -v java >/dev/null 2>&1; then
        command -v java
    else
        die "java not found (need OpenJDK 17+; set JAVA_HOME or put java on PATH)"
    fi
}

python_bin() {
    if [[ -n "${FINSENTRY_PYTHON:-}" ]]; then
        printf '%s\n' "$FINSENTRY_PYTHON"
    elif [[ -x "$HOME/.cache/finsentry/venv/bin/python" ]]; then
        printf '%s\n' "$HOME/.cache/finsentry/venv/bin/python"
    elif command -v python3 >/dev/null 2>&1; then
        command -v python3
    else
        die "python3 not found (set FINSENTRY_PYTHON to a python with kafka-python)"
    fi
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

fetched() { [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(pom_hash)" ]]; }

# fetch: copy the runtime classpath into $LIB_DIR, once. The jars go to a temporary folder
# that is renamed into place only after Maven succeeded and the stamp is written, so an
# interrupted fetch leaves no half-filled lib dir and is simply redone.
cmd_fetch() {
    [[ -f "$POM" ]] || die "missing $POM"
    if fetched; then
        log "jars already fetched in $LIB_DIR (Maven not called)"
        printf '%s\n' "$LIB_DIR"
        return 0
    fi
    mkdir -p "$KAFKA_HOME"
    exec 9>"$KAFKA_HOME/.fetch.lock"
    flock 9   # serialise concurrent fetches; re-check once we hold the lock
    if fetched; then
        exec 9>&-
        log "jars already fetched in $LIB_DIR (Maven not called)"
        printf '%s\n' "$LIB_DIR"
        return 0
    fi
    local mvn="${MVN:-mvn}"
    command -v "$mvn" >/dev/null 2>&1 || die "maven ('$mvn') not found; install maven or set MVN"
    rm -rf "$KAFKA_HOME"/lib.tmp.* "$KAFKA_HOME/lib.old"
    local tmp="$KAFKA_HOME/lib.tmp.$$"
    local fetch_log="$KAFKA_HOME/fetch.log"
    log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIB_DIR ..."
    local t0=$SECONDS
    if ! "$mvn" -q -B -f "$POM" \
            org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$fetch_log" 2>&1; then
        tail -n 40 "$fetch_log" >&2 || true
        rm -rf "$tmp"
        die "maven copy-dependencies failed (full log: $fetch_log)"
    fi
    local jar
    for jar in "kafka_2.13-$KAFKA_VERSION.jar" "kafka-clients-$KAFKA_VERSION.jar" \
               "slf4j-api-1.7.36.jar" "log4j-slf4j-impl-2.24.3.jar" "log4j-core-2.24.3.jar"; do
        [[ -f "$tmp/$jar" ]] || { rm -rf "$tmp"; die "fetch incomplete: $jar missing (see $fetch_log)"; }
    done
    if compgen -G "$tmp/slf4j-api-2.*.jar" >/dev/null || compgen -G "$tmp/log4j-slf4j2-impl-*.jar" >/dev/null; then
        rm -rf "$tmp"
        die "fetch pulled an SLF4J 2.x jar; the pom must pin slf4j-api 1.7.36"
    fi
    pom_hash >"$tmp/.finsentry-fetch-complete"
    if [[ -e "$LIB_DIR" ]]; then mv "$LIB_DIR" "$KAFKA_HOME/lib.old"; fi
    mv "$tmp" "$LIB_DIR"
    rm -rf "$KAFKA_HOME/lib.old"
    exec 9>&-
    log "fetched $(find "$LIB_DIR" -name '*.jar' | wc -l) jars in $((SECONDS - t0)) s"
    printf '%s\n' "$LIB_DIR"
}

# pid_alive PID: true when the process exists and is not a zombie.
pid_alive() {
    local pid="$1" state
    kill -0 "$pid" 2>/dev/null || return 1
    state="$(awk '{sub(/.*\) /, ""); print $1}' "/proc/$pid/stat" 2>/dev/null || true)"
    [[ "$state" != "Z" ]]
}

# is_our_broker PID RUN_DIR: the PID is a java kafka.Kafka started with RUN_DIR's config
# (guards against signalling an unrelated process that reused the PID).
is_our_broker() {
    local pid="$1" run_dir="$2" cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"kafka.Kafka $run_dir/server.properties"* ]]
}

is_our_watchdog() {
    local pid="$1" run_dir="$2" cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *"finsentry-kafka-watchdog $run_dir "* ]]
}

# terminate PID TIMEOUT: SIGTERM, wait up to TIMEOUT s, then SIGKILL and wait for the end.
terminate() {
    local pid="$1" timeout="$2" waited=0
    pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    while pid_alive "$pid" && ((waited < timeout * 10)); do
        sleep 0.1
        waited=$((waited + 1))
    done
    if pid_alive "$pid"; then
        log "pid $pid still alive after ${timeout} s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        waited=0
        while pid_alive "$pid" && ((waited < 100)); do
            sleep 0.1
            waited=$((waited + 1))
        done
        pid_alive "$pid" && die "pid $pid survived SIGKILL"
    fi
    return 0
}

print_log_tail() {
    local run_dir="$1" n="${2:-60}" f
    for f in "$run_dir/logs/format.log" "$run_dir/logs/jvm.out" "$run_dir/logs/server.log"; do
        if [[ -s "$f" ]]; then
            printf -- '----- last %s lines of %s -----\n' "$n" "$f" >&2
            tail -n "$n" "$f" >&2 || true
        fi
    done
    # The root cause is often far above the tail (shutdown noise follows it).
    if grep -qs -E '^\[[^]]*\] (ERROR|FATAL) ' "$run_dir/logs/server.log"; then
        printf -- '----- first ERROR/FATAL lines of %s -----\n' "$run_dir/logs/server.log" >&2
        grep -m 5 -E '^\[[^]]*\] (ERROR|FATAL) ' "$run_dir/logs/server.log" | cut -c1-400 >&2 || true
    fi
}

write_server_properties() {
    local run_dir="$1" port="$2" cport="$3"
    cat >"$run_dir/server.properties" <<EOF
# Written by deploy/kafka/broker.sh: single-node KRaft broker+controller for finsentry.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$run_dir/data

# One node: every internal topic gets replication factor 1 and min ISR 1.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=4
default.replication.factor=1
min.insync.replicas=1

# Fast tests; finsentry creates its topics explicitly.
group.initial.rebalance.delay.ms=0
num.partitions=4
auto.create.topics.enable=false
delete.topic.enable=true

# Keep data for the life of the run dir (it is deleted by 'stop').
log.retention.hours=876000
log.retention.bytes=-1

# Small machine.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
EOF
}

# Prints "PORT CONTROLLER_PORT CLUSTER_ID". Free ports come from the kernel (bind to port 0);
# the cluster id is 16 random bytes, base64url without padding, not starting with '-'
# (the same rules as Kafka's Uuid.randomUuid / StorageTool random-uuid, without a JVM start).
pick_ports_and_id() {
    "$(python_bin)" - "$1" "$2" <<'EOF'
import base64, socket, sys, uuid
want = [int(a) for a in sys.argv[1:]]
socks, ports = [], []
for p in want:
    if p:
        ports.append(p)
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
    ports.append(s.getsockname()[1])
for s in socks:
    s.close()
while True:
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not cid.startswith("-"):
        break
print(ports[0], ports[1], cid)
EOF
}

valid_port() { [[ "$1" =~ ^[0-9]+$ ]] && (("$1" >= 1 && "$1" <= 65535)); }

# launch_jvm RUN_DIR JAVA PORT: start the broker JVM in the background on RUN_DIR's
# server.properties and data dir; write RUN_DIR/broker.pid and RUN_DIR/bootstrap, start the
# owner watchdog when FINSENTRY_KAFKA_OWNER_PID is set; print the JVM's pid.
launch_jvm() {
    local run_dir="$1" java="$2" port="$3" pid
    # shellcheck disable=SC2086  # FINSENTRY_KAFKA_JVM_OPTS is word-split on purpose
    "$java" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dkafka.logs.dir="$run_dir/logs" -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
        ${FINSENTRY_KAFKA_JVM_OPTS:-} \
        -cp "$LIB_DIR/*" kafka.Kafka "$run_dir/server.properties" \
        </dev/null >"$run_dir/logs/jvm.out" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$run_dir/broker.pid"
    printf '127.0.0.1:%s\n' "$port" >"$run_dir/bootstrap"

    if [[ -n "${FINSENTRY_KAFKA_OWNER_PID:-}" ]]; then
        # Watchdog: stop the broker if the owning process dies without calling 'stop'.
        nohup bash -c '
            run_dir=$1 owner=$2 jvm=$3
            while kill -0 "$owner" 2>/dev/null && kill -0 "$jvm" 2>/dev/null; do sleep 2; done
            kill -0 "$jvm" 2>/dev/null || exit 0
            kill -TERM "$jvm" 2>/dev/null
            for _ in $(seq 1 300); do kill -0 "$jvm" 2>/dev/null || exit 0; sleep 0.1; done
            kill -KILL "$jvm" 2>/dev/null
        ' finsentry-kafka-watchdog "$run_dir" "$FINSENTRY_KAFKA_OWNER_PID" "$pid" \
            </dev/null >/dev/null 2>&1 &
        printf '%s\n' "$!" >"$run_dir/watchdog.pid"
    fi

    printf '%s\n' "$pid"
}

cmd_start() {
    (($# >= 1 && $# <= 3)) || { usage >&2; exit 2; }
    local run_dir="$1" want_port="${2:-0}" want_cport="${3:-0}"
    [[ "$want_port" == 0 ]] || valid_port "$want_port" || die "bad PORT '$want_port'"
    [[ "$want_cport" == 0 ]] || valid_port "$want_cport" || die "bad CONTROLLER_PORT '$want_cport'"
    [[ "$START_TIMEOUT" =~ ^[0-9]+$ ]] || die "FINSENTRY_KAFKA_START_TIMEOUT must be whole seconds"
    [[ -f "$LOG4J_CONFIG" ]] || die "missing $LOG4J_CONFIG"
    [[ -f "$WAIT_READY" ]] || die "missing $WAIT_READY"

    mkdir -p "$run_dir"
    run_dir="$(cd "$run_dir" && pwd -P)"
    if [[ -f "$run_dir/broker.pid" ]]; then
        local old_pid
        old_pid="$(cat "$run_dir/broker.pid")"
        if pid_alive "$old_pid" && is_our_broker "$old_pid" "$run_dir"; then
            die "a broker is already running from $run_dir (pid $old_pid); stop it first"
        fi
    fi
    if [[ -d "$run_dir/data" ]] && [[ -n "$(ls -A "$run_dir/data")" ]]; then
        die "$run_dir/data already holds KRaft data; a data dir is never reused (use a new RUN_DIR, or 'stop' deletes this one)"
    fi
    : >"$run_dir/$RUN_MARKER"

    cmd_fetch >/dev/null
    local java py
    java="$(java_bin)"
    py="$(python_bin)"

    local attempt port cport cid pid rc
    for attempt in 1 2 3; do
        rm -rf "$run_dir/data" "$run_dir/logs" "$run_dir/broker.pid" "$run_dir/bootstrap"
        mkdir -p "$run_dir/data" "$run_dir/logs"
        read -r port cport cid < <(pick_ports_and_id "$want_port" "$want_cport")
        [[ -n "$cid" ]] || die "could not pick ports / cluster id with $py"
        write_server_properties "$run_dir" "$port" "$cport"

        if ! "$java" -cp "$LIB_DIR/*" \
                -Dkafka.logs.dir="$run_dir/logs" -Dlog4j2.configurationFile="$LOG4J_CONFIG" \
                kafka.tools.StorageTool format --standalone -t "$cid" \
                -c "$run_dir/server.properties" >"$run_dir/logs/format.log" 2>&1; then
            print_log_tail "$run_dir"
            die "StorageTool format failed (see $run_dir/logs/format.log)"
        fi

        pid="$(launch_jvm "$run_dir" "$java" "$port")"
        rc=0
        "$py" "$WAIT_READY" "127.0.0.1:$port" --timeout "$START_TIMEOUT" --pid "$pid" \
            --log "$run_dir/logs/server.log" || rc=$?
        if ((rc == 0)); then
            log "Kafka $KAFKA_VERSION ready on 127.0.0.1:$port (pid $pid, run dir $run_dir)"
            printf '127.0.0.1:%s\n' "$port"
            return 0
        fi

        # After a fatal startup error Kafka 4.1 can linger ~30 s before exiting: don't wait.
        terminate "$pid" 5
        rm -f "$run_dir/broker.pid" "$run_dir/bootstrap"
        if ((attempt < 3)) && {
            { [[ "$want_port" == 0 ]] && grep -qsF "127.0.0.1:$port: Address already in use" "$run_dir/logs/server.log"; } ||
                { [[ "$want_cport" == 0 ]] && grep -qsF "127.0.0.1:$cport: Address already in use" "$run_dir/logs/server.log"; }
        }; then
            log "picked port was taken meanwhile; retrying with new ports (attempt $((attempt + 1)))"
            continue
        fi
        print_log_tail "$run_dir"
        case "$rc" in
            3) die "the broker JVM (pid $pid) failed during start; logs in $run_dir/logs" ;;
            1) die "the broker was not ready within ${START_TIMEOUT} s (FINSENTRY_KAFKA_START_TIMEOUT); killed it; logs in $run_dir/logs" ;;
            *) die "readiness check failed (exit $rc, python: $py); logs in $run_dir/logs" ;;
        esac
    done
}

cmd_stop() {
    (($# == 1)) || { usage >&2; exit 2; }
    local run_dir="$1"
    if [[ ! -e "$run_dir" ]]; then
        log "$run_dir does not exist; nothing to stop"
        return 0
    fi
    run_dir="$(cd "$run_dir" && pwd -P)"
    [[ -f "$run_dir/$RUN_MARKER" ]] ||
        die "$run_dir was not created by 'broker.sh start' (no $RUN_MARKER); refusing to delete it"
    local pid
    stop_watchdog "$run_dir"
    if [[ -f "$run_dir/broker.pid" ]]; then
        pid="$(cat "$run_dir/broker.pid")"
        if [[ "$pid" =~ ^[0-9]+$ ]] && pid_alive "$pid"; then
            if is_our_broker "$pid" "$run_dir"; then
                log "stopping broker pid $pid (SIGTERM, SIGKILL after ${STOP_TIMEOUT} s)"
                terminate "$pid" "$STOP_TIMEOUT"
            else
                log "pid $pid is not this run dir's broker (pid reused?); not signalling it"
            fi
        fi
    fi
    rm -rf -- "$run_dir"
    log "stopped; removed $run_dir"
}

# stop_watchdog RUN_DIR: end the owner watchdog recorded in RUN_DIR, if it is ours and alive.
stop_watchdog() {
    local run_dir="$1" wpid
    if [[ -f "$run_dir/watchdog.pid" ]]; then
        wpid="$(cat "$run_dir/watchdog.pid")"
        if [[ "$wpid" =~ ^[0-9]+$ ]] && pid_alive "$wpid" && is_our_watchdog "$wpid" "$run_dir"; then
            kill -TERM "$wpid" 2>/dev/null || true
        fi
    fi
    rm -f "$run_dir/watchdog.pid"
}

# halt RUN_DIR: stop the JVM (SIGTERM: a controlled shutdown that flushes the logs) and keep
# RUN_DIR (config, data, logs, bootstrap) for 'resume'.
cmd_halt() {
    (($# == 1)) || { usage >&2; exit 2; }
    local run_dir="$1" pid
    [[ -d "$run_dir" ]] || die "$run_dir does not exist; nothing to halt"
    run_dir="$(cd "$run_dir" && pwd -P)"
    [[ -f "$run_dir/$RUN_MARKER" ]] || die "$run_dir was not created by 'broker.sh start' (no $RUN_MARKER)"
    [[ -f "$run_dir/broker.pid" ]] || die "no broker running from $run_dir (no broker.pid; halted already?)"
    pid="$(cat "$run_dir/broker.pid")"
    [[ "$pid" =~ ^[0-9]+$ ]] && pid_alive "$pid" && is_our_broker "$pid" "$run_dir" ||
        die "the broker of $run_dir (pid $pid) is not running"
    stop_watchdog "$run_dir"
    log "halting broker pid $pid (SIGTERM, SIGKILL after ${STOP_TIMEOUT} s); keeping $run_dir/data"
    terminate "$pid" "$STOP_TIMEOUT"
    rm -f "$run_dir/broker.pid"
    log "halted; 'resume $run_dir' starts it again on the same data dir and ports"
}

# resume RUN_DIR: start the JVM again on a halted RUN_DIR (same server.properties, data dir,
# ports and cluster id), wait until a client round trip works, print the bootstrap address.
cmd_resume() {
    (($# == 1)) || { usage >&2; exit 2; }
    local run_dir="$1" pid port java py rc=0
    [[ -d "$run_dir" ]] || die "$run_dir does not exist; nothing to resume"
    run_dir="$(cd "$run_dir" && pwd -P)"
    [[ -f "$run_dir/$RUN_MARKER" ]] || die "$run_dir was not created by 'broker.sh start' (no $RUN_MARKER)"
    [[ -f "$run_dir/server.properties" && -f "$run_dir/data/meta.properties" ]] ||
        die "$run_dir holds no formatted broker (server.properties, data/meta.properties); use 'start'"
    if [[ -f "$run_dir/broker.pid" ]]; then
        pid="$(cat "$run_dir/broker.pid")"
        if pid_alive "$pid" && is_our_broker "$pid" "$run_dir"; then
            die "the broker of $run_dir is running (pid $pid); 'halt' it first"
        fi
    fi
    [[ "$START_TIMEOUT" =~ ^[0-9]+$ ]] || die "FINSENTRY_KAFKA_START_TIMEOUT must be whole seconds"
    port="$(sed -n 's/^listeners=PLAINTEXT:\/\/127\.0\.0\.1:\([0-9]*\),.*/\1/p' "$run_dir/server.properties")"
    valid_port "$port" || die "no PLAINTEXT port in $run_dir/server.properties"
    cmd_fetch >/dev/null
    java="$(java_bin)"
    py="$(python_bin)"
    mkdir -p "$run_dir/logs"
    pid="$(launch_jvm "$run_dir" "$java" "$port")"
    "$py" "$WAIT_READY" "127.0.0.1:$port" --timeout "$START_TIMEOUT" --pid "$pid" \
        --log "$run_dir/logs/server.log" || rc=$?
    if ((rc != 0)); then
        terminate "$pid" 5
        rm -f "$run_dir/broker.pid"
        print_log_tail "$run_dir"
        die "the resumed broker was not ready (exit $rc; a port taken meanwhile?); logs in $run_dir/logs"
    fi
    log "Kafka $KAFKA_VERSION resumed on 127.0.0.1:$port (pid $pid, data kept in $run_dir/data)"
    printf '127.0.0.1:%s\n' "$port"
}

cmd_status() {
    (($# == 1)) || { usage >&2; exit 2; }
    local run_dir="$1" pid
    if [[ ! -f "$run_dir/broker.pid" ]]; then
        if [[ -f "$run_dir/data/meta.properties" ]]; then echo "halted (data kept; 'resume' starts it)"; else echo "stopped"; fi
        return 3
    fi
    run_dir="$(cd "$run_dir" && pwd -P)"
    pid="$(cat "$run_dir/broker.pid")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && pid_alive "$pid" && is_our_broker "$pid" "$run_dir"; then
        echo "running pid=$pid bootstrap=$(cat "$run_dir/bootstrap" 2>/dev/null || echo '?')"
        return 0
    fi
    echo "dead (pid $pid recorded in $run_dir/broker.pid is not running)"
    return 1
}

main() {
    local cmd="${1:-}"
    (($# > 0)) && shift
    case "$cmd" in
        fetch) (($# == 0)) || { usage >&2; exit 2; }; cmd_fetch ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        halt) cmd_halt "$@" ;;
        resume) cmd_resume "$@" ;;
        status) cmd_status "$@" ;;
        -h | --help | help) usage ;;
        "") usage >&2; exit 2 ;;
        *) printf 'broker.sh: unknown command %q\n\n' "$cmd" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
