#!/usr/bin/env bash
# broker/kafka.sh - run a local Apache Kafka (KRaft) for kafkars development,
# tests, the demo and benchmarks.  No Docker and no Kafka distribution needed:
# the broker jars come from Maven (broker/pom.xml) into .kafka/jars and the
# broker is started straight from them with `java -cp`.
#
# Two independent setups, both broker+controller in the same JVM, static quorum:
#   single   node 1, PLAINTEXT 127.0.0.1:19092, controller 127.0.0.1:19093,
#            data, config, log and pid file under .kafka/single/
#   cluster  nodes 1..3, PLAINTEXT 127.0.0.1:29092..29094,
#            controllers 127.0.0.1:29192..29194, under .kafka/cluster/node<N>/
#
# Run `broker/kafka.sh help` for the subcommands.  Paths are resolved from this
# file's location, so it works from any working directory and any checkout.
#
# Environment overrides (all optional):
#   KAFKA_READY_TIMEOUT   seconds to wait for readiness (default 90)
#   KAFKA_STOP_TIMEOUT    seconds between SIGTERM and SIGKILL (default 30)
#   KAFKA_JVM_OPTS        extra JVM flags appended to every broker JVM
#   KAFKA_INSTANCE        name of the single-broker setup (default "single"); another
#                         name gives a private broker with its own data dir
#                         .kafka/<name>, e.g. for tests that kill or reconfigure it
#   KAFKA_PORT            that broker's PLAINTEXT port (default 19092); its
#                         controller listens on KAFKA_PORT+1
#   KAFKA_EXTRA_PROPS     a file appended to that broker's server.properties on
#                         every start (a later key overrides an earlier one), e.g.
#                         extra listeners, TLS and SASL settings
set -euo pipefail

# --------------------------------------------------------------------------
# Layout and fixed settings
# --------------------------------------------------------------------------
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
POM=$SCRIPT_DIR/pom.xml
STATE_DIR=$REPO_ROOT/.kafka
JARS_DIR=$STATE_DIR/jars
JARS_STAMP=$JARS_DIR/.fetched          # touched after a successful fetch
INSTANCE=${KAFKA_INSTANCE:-single}
[[ $INSTANCE =~ ^[a-z0-9][a-z0-9_-]*$ && $INSTANCE != cluster && $INSTANCE != jars ]] ||
  { echo "kafka.sh: error: KAFKA_INSTANCE '$INSTANCE' must be a lower-case name other than cluster or jars" >&2; exit 1; }
SINGLE_DIR=$STATE_DIR/$INSTANCE
CLUSTER_DIR=$STATE_DIR/cluster

HOST=127.0.0.1
SINGLE_PORT=${KAFKA_PORT:-19092}
[[ $SINGLE_PORT =~ ^[0-9]+$ ]] || { echo "kafka.sh: error: KAFKA_PORT '$SINGLE_PORT' is not a port" >&2; exit 1; }
SINGLE_CPORT=$((SINGLE_PORT + 1))
CLUSTER_NODES=(1 2 3)
# Cluster node N uses broker port 29091+N and controller port 29191+N.
CLUSTER_PORT_BASE=29091
CLUSTER_CPORT_BASE=29191

# Cluster ids must be 16 bytes in URL-safe base64 without padding (22 chars).
# They are fixed so that re-formatting is a no-op and data stays reusable.
SINGLE_CLUSTER_ID=a2Fma2Fycy1zaW5nbGUtMQ     # base64url("kafkars-single-1")
CLUSTER_CLUSTER_ID=a2Fma2Fycy1jbHVzdGVyMw    # base64url("kafkars-cluster3")

READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-90}
STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}

# JVM flags shared by every broker JVM.  Serial GC keeps the footprint and
# background CPU low on small (2 core) machines.
BROKER_JVM_OPTS=(
  -XX:+UseSerialGC
  -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true
)
# The short-lived StorageTool JVM only needs to start fast.
TOOL_JVM_OPTS=(
  -Xmx256m
  -XX:+UseSerialGC
  -XX:TieredStopAtLevel=1
)
# The only logging binding on the class path is slf4j-simple, which writes to
# stderr; stderr goes to broker.log.  Per-partition chatter that floods the log
# on every start is turned down to warnings.
LOG_OPTS=(
  -Dorg.slf4j.simpleLogger.defaultLogLevel=info
  -Dorg.slf4j.simpleLogger.showDateTime=true
  "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss.SSS"
  -Dorg.slf4j.simpleLogger.log.state.change.logger=warn
  -Dorg.slf4j.simpleLogger.log.kafka.log.LogManager=warn
  -Dorg.slf4j.simpleLogger.log.org.apache.kafka.storage.internals.log=warn
  -Dorg.slf4j.simpleLogger.log.kafka.cluster.Partition=warn
  -Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config.AbstractConfig=warn
  -Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.utils.AppInfoParser=warn
  # log4j-core is on the class path (Kafka depends on it) but unused.
  -Dlog4j2.statusLoggerLevel=OFF
)

# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------
say() { printf 'kafka.sh: %s\n' "$*"; }
die() { printf 'kafka.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<EOF
usage: broker/kafka.sh <command> [args]

single broker (127.0.0.1:$SINGLE_PORT, data in .kafka/$INSTANCE):
  up               fetch jars, format (if needed), start, wait until ready;
                   a no-op if it is already running
  start            like up but skips the format step (restart on same data)
  down [--clean]   stop it (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s); keeps data
                   unless --clean
  kill | kill-9    SIGKILL it (crash test); data is kept
  clean            stop everything, delete .kafka/$INSTANCE and .kafka/cluster

three-node cluster (127.0.0.1:29092-29094, data in .kafka/cluster):
  cluster-up       fetch, format, start the nodes not running, wait for all
  cluster-down [--clean]
  stop-node N      stop node N (1-3) gracefully
  start-node N     start node N again and wait until the cluster has 3 brokers
  kill-node N      SIGKILL node N

other:
  fetch            copy the Kafka jars into .kafka/jars if missing or stale
  status           show what is running
  is-up            exit 0 if the single broker is running, 1 otherwise
  help             this text
EOF
}

# True if something accepts TCP connections on $HOST:$1 (bash's /dev/tcp).
port_open() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Describe the process listening on a port, if the system lets us see it.
who_listens() {
  if command -v ss >/dev/null 2>&1; then
    ss -Hltnp "sport = :$1" 2>/dev/null || true
  fi
}

# Print the broker count from a metadata request to $HOST:$1; fails if the
# request fails.  `timeout` guards against kcat hanging past its own limit.
broker_count() {
  local out guard=()
  command -v timeout >/dev/null 2>&1 && guard=(timeout 15)
  out=$(${guard[@]+"${guard[@]}"} kcat -L -b "$HOST:$1" -m 5 2>/dev/null) || return 1
  # kcat -L prints a line like " 3 brokers:".
  awk '$2 == "brokers:" { print $1; found = 1; exit } END { exit !found }' <<<"$out"
}

need_kcat() {
  command -v kcat >/dev/null 2>&1 ||
    die "kcat is needed for the readiness check (Debian/Ubuntu: apt-get install kcat)"
}

need_java() {
  command -v java >/dev/null 2>&1 || die "java (17 or newer) is not on PATH"
}

# --------------------------------------------------------------------------
# Jars
# --------------------------------------------------------------------------
# Copy the broker's runtime jars into .kafka/jars, but only when they are
# missing or broker/pom.xml changed since the last copy.  The copy goes to a
# scratch directory first so a failed or interrupted download never leaves a
# half-filled jars directory, and jars of an older Kafka never linger.
cmd_fetch() {
  if [[ -f $JARS_STAMP && ! $POM -nt $JARS_STAMP ]] &&
     compgen -G "$JARS_DIR/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn is needed to fetch the Kafka jars"
  mkdir -p "$STATE_DIR"
  local tmp=$STATE_DIR/jars.tmp
  rm -rf "$tmp"
  say "fetching Kafka jars (mvn dependency:copy-dependencies) into .kafka/jars"
  # mvn's own output goes to a file (it only matters when something fails).
  if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
         -DoutputDirectory="$tmp" -DincludeScope=runtime >"$STATE_DIR/fetch.log" 2>&1; then
    tail -n 40 "$STATE_DIR/fetch.log" >&2
    die "mvn failed to fetch the Kafka jars (full output: .kafka/fetch.log)"
  fi
  compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null ||
    die "mvn finished but no kafka_2.13 jar arrived in $tmp"
  rm -rf "$JARS_DIR"
  mv "$tmp" "$JARS_DIR"
  touch "$JARS_STAMP"
}

# --------------------------------------------------------------------------
# Node primitives.  A "node dir" holds server.properties, data/, broker.log
# (previous run in broker.log.1), format.log and broker.pid.
# --------------------------------------------------------------------------

# Print the pid of the broker running from node dir $1, or fail.  The pid file
# is trusted only if that pid really runs kafka.Kafka with this directory's
# config (guards against stale files and pid reuse); if the pid file was lost,
# the process table is searched for that same command line instead.
node_pid() {
  local dir=$1 props=$1/server.properties pid=""
  if [[ -f $dir/broker.pid ]]; then
    pid=$(<"$dir/broker.pid")
    if [[ $pid =~ ^[0-9]+$ ]] &&
       ps -ww -p "$pid" -o args= 2>/dev/null | grep -qF "kafka.Kafka $props"; then
      echo "$pid"
      return 0
    fi
  fi
  # shellcheck disable=SC2009  # fixed-string match; pgrep -f would take a regex
  pid=$(ps -ww -eo pid=,args= 2>/dev/null |
        grep -F "kafka.Kafka $props" | grep -v grep | awk 'NR == 1 { print $1 }')
  [[ -n $pid ]] || return 1
  echo "$pid" >"$dir/broker.pid"
  echo "$pid"
}

# write_props DIR NODE_ID PORT CPORT VOTERS EXTRA_LINES
# (Re)writes DIR/server.properties on every start so config changes made in
# this script always take effect.
write_props() {
  local dir=$1 id=$2 port=$3 cport=$4 voters=$5 extra=$6
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
# Generated by broker/kafka.sh on every start; edits here are overwritten.
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://$HOST:$port,CONTROLLER://$HOST:$cport
advertised.listeners=PLAINTEXT://$HOST:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/data

# Keep everything (tests and demos read old data) and accept any timestamp.
log.retention.ms=-1
log.message.timestamp.after.max.ms=9223372036854775807
# Tests create their topics explicitly.
auto.create.topics.enable=false
num.partitions=1
group.initial.rebalance.delay.ms=0
# Compaction on, and quick to pick up newly dirty logs.
log.cleaner.enable=true
log.cleaner.backoff.ms=1000
# Light on small machines.
num.network.threads=2
num.io.threads=2

$extra
EOF
}

# format_node DIR CLUSTER_ID
# Formats the log dir; --ignore-formatted makes this a no-op on existing data.
format_node() {
  local dir=$1 cid=$2
  if ! java "${TOOL_JVM_OPTS[@]}" "${LOG_OPTS[@]}" -cp "$JARS_DIR/*" \
        kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" \
        --ignore-formatted >"$dir/format.log" 2>&1; then
    say "formatting $dir/data failed:"
    tail -n 40 "$dir/format.log" >&2
    return 1
  fi
}

# launch_node DIR HEAP
# Starts kafka.Kafka in the background, detached from the caller (own session
# via setsid, SIGHUP ignored via nohup, no inherited stdio or lock fd) so it
# outlives the shell or make process that ran this script.  The launcher shell
# writes its own pid and then execs java, so the pid file holds java's pid.
launch_node() {
  local dir=$1 heap=$2 detach=() extra=()
  command -v setsid >/dev/null 2>&1 && detach=(setsid)
  read -r -a extra <<<"${KAFKA_JVM_OPTS:-}"
  [[ -f $dir/broker.log ]] && mv -f "$dir/broker.log" "$dir/broker.log.1"
  rm -f "$dir/broker.pid"
  echo "# kafka.sh: starting $dir at $(date '+%Y-%m-%d %H:%M:%S')" >"$dir/broker.log"
  (
    cd "$dir"
    # shellcheck disable=SC2016  # $$ and $@ belong to the inner sh
    exec ${detach[@]+"${detach[@]}"} nohup sh -c 'echo $$ >"$0"; exec "$@"' "$dir/broker.pid" \
      java "$heap" "${BROKER_JVM_OPTS[@]}" "${LOG_OPTS[@]}" \
        ${extra[@]+"${extra[@]}"} \
        -cp "$JARS_DIR/*" kafka.Kafka "$dir/server.properties" \
      </dev/null >>"$dir/broker.log" 2>&1 9>&-
  ) &
  # Wait (briefly) for the launcher to record the pid.
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $dir/broker.pid ]] && return 0
    sleep 0.1
  done
  say "the broker in $dir did not record its pid"
  return 1
}

# show_log DIR: the last 40 lines of a node's log, for failure reports.
show_log() {
  echo "----- last 40 lines of $1/broker.log -----" >&2
  tail -n 40 "$1/broker.log" >&2 2>/dev/null || echo "(no log)" >&2
  echo "----- end of $1/broker.log -----" >&2
}

# stop_nodes SIGNAL DIR...
# SIGTERM: signal all nodes at once (so a cluster shuts down in parallel while
# its quorum is still there), wait up to STOP_TIMEOUT seconds, then SIGKILL
# whatever is left.  SIGKILL: kill and wait for the processes to vanish.
# Pid files are removed; data is kept.
stop_nodes() {
  local sig=$1 dir pid; shift
  local -a dirs=() pids=()
  for dir in "$@"; do
    if pid=$(node_pid "$dir"); then
      dirs+=("$dir"); pids+=("$pid")
      say "stopping ${dir#"$REPO_ROOT"/} (pid $pid, SIG$sig)"
      kill "-$sig" "$pid" 2>/dev/null || true
    else
      say "${dir#"$REPO_ROOT"/} is not running"
      rm -f "$dir/broker.pid"
    fi
  done
  ((${#pids[@]})) || return 0
  local deadline=$((SECONDS + STOP_TIMEOUT)) i alive
  while :; do
    alive=0
    for i in "${!pids[@]}"; do
      node_pid "${dirs[i]}" >/dev/null && alive=1
    done
    ((alive)) || break
    if ((SECONDS >= deadline)); then
      for i in "${!pids[@]}"; do
        if node_pid "${dirs[i]}" >/dev/null; then
          say "${dirs[i]#"$REPO_ROOT"/} still running after ${STOP_TIMEOUT}s, sending SIGKILL"
          kill -KILL "${pids[i]}" 2>/dev/null || true
        fi
      done
      deadline=$((SECONDS + 10))    # SIGKILL cannot be ignored; just let it land
    fi
    sleep 0.2
  done
  for dir in "${dirs[@]}"; do rm -f "$dir/broker.pid"; done
}

# wait_ready EXPECTED_BROKERS ENTRY...   (ENTRY is "dir|port")
# Polls until every listed node answers a metadata request that lists at
# least EXPECTED_BROKERS brokers.  Fails (after printing the log tail) as soon
# as a node's process dies, or when READY_TIMEOUT runs out.
wait_ready() {
  local expected=$1; shift
  local deadline=$((SECONDS + READY_TIMEOUT))
  local -a pending=("$@") still
  local entry dir port n
  while :; do
    still=()
    for entry in "${pending[@]}"; do
      dir=${entry%%|*} port=${entry##*|}
      if ! node_pid "$dir" >/dev/null; then
        say "the broker in ${dir#"$REPO_ROOT"/} exited during startup" >&2
        show_log "$dir"
        return 1
      fi
      if port_open "$port" && n=$(broker_count "$port") && ((n >= expected)); then
        continue
      fi
      still+=("$entry")
    done
    ((${#still[@]})) || return 0
    if ((SECONDS >= deadline)); then
      for entry in "${still[@]}"; do
        dir=${entry%%|*} port=${entry##*|}
        say "timed out after ${READY_TIMEOUT}s: $HOST:$port does not answer metadata with $expected broker(s)" >&2
        show_log "$dir"
      done
      return 1
    fi
    pending=("${still[@]}")
    sleep 0.5
  done
}

# ensure_ports_free LABEL PORT...: fail if a port is held by some other process.
ensure_ports_free() {
  local label=$1 port i; shift
  for port in "$@"; do
    # A broker killed a moment ago may still hold its sockets briefly: give it 10 s.
    for ((i = 0; i < 50; i++)); do port_open "$port" || break; sleep 0.2; done
    if port_open "$port"; then
      say "port $HOST:$port (needed by $label) is in use by something else:" >&2
      who_listens "$port" >&2
      die "free port $port (or stop that process) and retry"
    fi
  done
}

# --------------------------------------------------------------------------
# Single broker
# --------------------------------------------------------------------------
single_props() {
  write_props "$SINGLE_DIR" 1 "$SINGLE_PORT" "$SINGLE_CPORT" "1@$HOST:$SINGLE_CPORT" \
"# One node: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1"
  if [[ -n ${KAFKA_EXTRA_PROPS:-} ]]; then
    [[ -f $KAFKA_EXTRA_PROPS ]] || die "KAFKA_EXTRA_PROPS: no such file: $KAFKA_EXTRA_PROPS"
    { echo; echo "# From KAFKA_EXTRA_PROPS=$KAFKA_EXTRA_PROPS"; cat "$KAFKA_EXTRA_PROPS"; } \
      >>"$SINGLE_DIR/server.properties"
  fi
}

# single_up FORMAT: FORMAT=1 always runs StorageTool (up), 0 only when the
# data dir was never formatted (start).
single_up() {
  local do_format=$1 pid t0=$SECONDS
  need_kcat; need_java
  cmd_fetch
  mkdir -p "$SINGLE_DIR"
  exec 9>"$STATE_DIR/.lock.$INSTANCE"; command -v flock >/dev/null 2>&1 && flock 9
  say "log: ${SINGLE_DIR}/broker.log"
  if pid=$(node_pid "$SINGLE_DIR"); then
    if broker_count "$SINGLE_PORT" >/dev/null; then
      say "already up on $HOST:$SINGLE_PORT (pid $pid); nothing to do"
      return 0
    fi
    say "already running (pid $pid) but not answering yet; waiting"
  else
    ensure_ports_free "the single broker" "$SINGLE_PORT" "$SINGLE_CPORT"
    single_props
    if ((do_format)) || [[ ! -f $SINGLE_DIR/data/meta.properties ]]; then
      format_node "$SINGLE_DIR" "$SINGLE_CLUSTER_ID" || exit 1
    fi
    launch_node "$SINGLE_DIR" -Xmx1g || { show_log "$SINGLE_DIR"; exit 1; }
    say "started pid $(<"$SINGLE_DIR/broker.pid"), waiting for $HOST:$SINGLE_PORT"
  fi
  if ! wait_ready 1 "$SINGLE_DIR|$SINGLE_PORT"; then
    node_pid "$SINGLE_DIR" >/dev/null && say "stopping the broker that did not become ready"
    stop_nodes TERM "$SINGLE_DIR" >/dev/null
    say "log: ${SINGLE_DIR}/broker.log"
    die "the single broker did not come up"
  fi
  say "ready on $HOST:$SINGLE_PORT after $((SECONDS - t0))s (log: ${SINGLE_DIR}/broker.log)"
}

# --------------------------------------------------------------------------
# Three-node cluster
# --------------------------------------------------------------------------
node_dir()   { echo "$CLUSTER_DIR/node$1"; }
node_port()  { echo $((CLUSTER_PORT_BASE + $1)); }
node_cport() { echo $((CLUSTER_CPORT_BASE + $1)); }

cluster_voters() {
  local n v=()
  for n in "${CLUSTER_NODES[@]}"; do v+=("$n@$HOST:$(node_cport "$n")"); done
  (IFS=,; echo "${v[*]}")
}

cluster_props() {
  local n=$1
  write_props "$(node_dir "$n")" "$n" "$(node_port "$n")" "$(node_cport "$n")" \
    "$(cluster_voters)" \
"# Internal topics are replicated to all three nodes and survive one down.
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2"
}

check_node_arg() {
  [[ ${1:-} =~ ^[123]$ ]] || die "expected a cluster node number 1, 2 or 3, got '${1:-}'"
}

cluster_lock() {
  mkdir -p "$CLUSTER_DIR"
  exec 9>"$STATE_DIR/.lock.cluster"; command -v flock >/dev/null 2>&1 && flock 9
  return 0
}

cluster_logs_hint() {
  say "logs: ${CLUSTER_DIR}/node{1,2,3}/broker.log"
}

# Starts every node that is not running (formatting its data first, in
# parallel since each format is a JVM start), then waits for all of them.
cmd_cluster_up() {
  local n dir t0=$SECONDS
  local -a to_start=() entries=() fmt_pids=()
  need_kcat; need_java
  cmd_fetch
  cluster_lock
  cluster_logs_hint
  for n in "${CLUSTER_NODES[@]}"; do
    dir=$(node_dir "$n")
    entries+=("$dir|$(node_port "$n")")
    if node_pid "$dir" >/dev/null; then continue; fi
    ensure_ports_free "cluster node $n" "$(node_port "$n")" "$(node_cport "$n")"
    to_start+=("$n")
  done
  if ((${#to_start[@]} == 0)); then
    local all_ok=1
    for n in "${CLUSTER_NODES[@]}"; do
      [[ $(broker_count "$(node_port "$n")" 2>/dev/null) == 3 ]] || all_ok=0
    done
    if ((all_ok)); then
      say "cluster already up on $HOST:29092-29094; nothing to do"
      return 0
    fi
    say "all three nodes are running but not all ready yet; waiting"
  fi
  for n in ${to_start[@]+"${to_start[@]}"}; do
    cluster_props "$n"
    format_node "$(node_dir "$n")" "$CLUSTER_CLUSTER_ID" & fmt_pids+=($!)
  done
  for n in ${fmt_pids[@]+"${fmt_pids[@]}"}; do wait "$n" || exit 1; done
  for n in ${to_start[@]+"${to_start[@]}"}; do
    launch_node "$(node_dir "$n")" -Xmx512m || { show_log "$(node_dir "$n")"; exit 1; }
    say "started node $n (pid $(<"$(node_dir "$n")/broker.pid"))"
  done
  if ! wait_ready 3 "${entries[@]}"; then
    cmd_cluster_down_nolock >/dev/null
    cluster_logs_hint
    die "the cluster did not come up (all nodes stopped again)"
  fi
  say "cluster ready on $HOST:29092,$HOST:29093,$HOST:29094 after $((SECONDS - t0))s"
}

cluster_dirs() {
  local n
  for n in "${CLUSTER_NODES[@]}"; do node_dir "$n"; done
}

cmd_cluster_down_nolock() {
  local -a dirs
  mapfile -t dirs < <(cluster_dirs)
  stop_nodes TERM "${dirs[@]}"
}

cmd_cluster_down() {
  [[ -d $CLUSTER_DIR ]] || { say "cluster is not running"; return 0; }
  cluster_lock
  cmd_cluster_down_nolock
}

cmd_stop_node() {
  check_node_arg "${1:-}"
  cluster_lock
  stop_nodes TERM "$(node_dir "$1")"
}

cmd_kill_node() {
  check_node_arg "${1:-}"
  cluster_lock
  stop_nodes KILL "$(node_dir "$1")"
}

# Restarts one node on its existing data and waits until it answers and sees
# all three brokers.  Only formats if the node was never formatted.
cmd_start_node() {
  check_node_arg "${1:-}"
  local n=$1 dir port t0=$SECONDS
  dir=$(node_dir "$n") port=$(node_port "$n")
  need_kcat; need_java
  cmd_fetch
  cluster_lock
  say "log: $dir/broker.log"
  if node_pid "$dir" >/dev/null; then
    say "node $n is already running"
  else
    ensure_ports_free "cluster node $n" "$port" "$(node_cport "$n")"
    cluster_props "$n"
    if [[ ! -f $dir/data/meta.properties ]]; then
      format_node "$dir" "$CLUSTER_CLUSTER_ID" || exit 1
    fi
    launch_node "$dir" -Xmx512m || { show_log "$dir"; exit 1; }
    say "started node $n (pid $(<"$dir/broker.pid"))"
  fi
  if ! wait_ready 3 "$dir|$port"; then
    node_pid "$dir" >/dev/null && say "stopping node $n, it did not become ready"
    stop_nodes TERM "$dir" >/dev/null
    die "node $n did not come up"
  fi
  say "node $n ready on $HOST:$port after $((SECONDS - t0))s"
}

# --------------------------------------------------------------------------
# Status and cleanup
# --------------------------------------------------------------------------
cmd_status() {
  local pid n dir
  if pid=$(node_pid "$SINGLE_DIR" 2>/dev/null); then
    say "$INSTANCE: running, pid $pid, $HOST:$SINGLE_PORT, brokers in metadata: $(broker_count "$SINGLE_PORT" || echo '?')"
  else
    say "$INSTANCE: stopped"
  fi
  for n in "${CLUSTER_NODES[@]}"; do
    dir=$(node_dir "$n")
    if [[ -d $dir ]] && pid=$(node_pid "$dir" 2>/dev/null); then
      say "cluster node $n: running, pid $pid, $HOST:$(node_port "$n"), brokers in metadata: $(broker_count "$(node_port "$n")" || echo '?')"
    else
      say "cluster node $n: stopped"
    fi
  done
}

cmd_clean() {
  if [[ -d $SINGLE_DIR ]]; then stop_nodes TERM "$SINGLE_DIR"; fi
  if [[ -d $CLUSTER_DIR ]]; then cmd_cluster_down_nolock; fi
  rm -rf "$SINGLE_DIR" "$CLUSTER_DIR"
  say "deleted .kafka/$INSTANCE and .kafka/cluster (jars kept)"
}

# --------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------
main() {
  local cmd=${1:-help}
  shift || true
  case $cmd in
    fetch)        cmd_fetch; say "jars ready in .kafka/jars" ;;
    up)           single_up 1 ;;
    start)        single_up 0 ;;
    down)
      if [[ ${1:-} == --clean ]]; then cmd_clean
      elif [[ -d $SINGLE_DIR ]]; then stop_nodes TERM "$SINGLE_DIR"
      else say "single broker is not running"
      fi ;;
    kill|kill-9)
      if [[ -d $SINGLE_DIR ]]; then stop_nodes KILL "$SINGLE_DIR"
      else say "single broker is not running"; fi ;;
    clean)        cmd_clean ;;
    cluster-up)   cmd_cluster_up ;;
    cluster-down)
      if [[ ${1:-} == --clean ]]; then cmd_clean; else cmd_cluster_down; fi ;;
    stop-node)    cmd_stop_node "$@" ;;
    start-node)   cmd_start_node "$@" ;;
    kill-node)    cmd_kill_node "$@" ;;
    status)       cmd_status ;;
    is-up)        [[ -d $SINGLE_DIR ]] && node_pid "$SINGLE_DIR" >/dev/null 2>&1 ;;
    help|-h|--help) usage ;;
    *)            usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
