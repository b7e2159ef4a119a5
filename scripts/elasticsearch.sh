#!/usr/bin/env bash
# Fetch, start and stop a local single-node Elasticsearch for rescore-sidecar
# development and tests, from the integ-test-zip published as a Maven artifact
# (no Docker, no tarball downloads).
#
# Usage: scripts/elasticsearch.sh install|start|stop|status
#        scripts/elasticsearch.sh start [-Esetting=value ...]   (extra node settings)
#        scripts/elasticsearch.sh add-user NAME PASSWORD ROLE[,ROLE...]   (security on)
#        scripts/elasticsearch.sh add-role NAME ROLE-YAML-FILE             (security on)
#        scripts/elasticsearch.sh home      (prints the install dir)
#
# Environment (all optional):
#   ELASTICSEARCH_PORT            HTTP port (default 9200); binds 127.0.0.1 only
#   ELASTICSEARCH_TRANSPORT_PORT  transport port or range (default: a 100-port range
#                                 starting at HTTP port + 200; nothing connects to it)
#   ELASTICSEARCH_HEAP            JVM heap (default 512m)
#   ELASTICSEARCH_VERSION         distribution version (default below)
#   ELASTICSEARCH_HOME            install dir (default <cache>/elasticsearch-<version>)
#   ELASTICSEARCH_CACHE_DIR       cache dir (default /var/cache/rescore-sidecar when run
#                                 as root, since the node runs as another user and /root
#                                 is private; else ~/.cache/rescore-sidecar)
#   ELASTICSEARCH_RUN_DIR         per-instance dir with config, data, logs, pid
#                                 (default /tmp/rescore-elasticsearch-<port>); wiped on every start
#   ELASTICSEARCH_USER            user the node runs as when this script runs as root
#                                 (default rescore-es; created if missing)
#   ELASTICSEARCH_START_TIMEOUT   seconds to wait for yellow/green health (default 180)
#   ELASTICSEARCH_STOP_TIMEOUT    seconds between SIGTERM and SIGKILL (default 30)
#   ELASTICSEARCH_JAVA_HOME       JDK to run with (default: newest JDK 21+ found)
#   ELASTICSEARCH_SECURITY        true: xpack security on (HTTP without TLS), with a file
#                                 realm (order 0) and the native realm (order 1).
#                                 Default false (security off, no credentials needed).
#   ELASTICSEARCH_ADMIN_USER      with security on: a superuser created at start
#   ELASTICSEARCH_ADMIN_PASSWORD  (defaults rescore-admin / rescore-admin-pw); start and
#                                 status use it for the health check
#   ELASTICSEARCH_USERS           with security on: more file-realm users created at start,
#                                 space-separated NAME:PASSWORD:ROLE[,ROLE...] entries
#   ELASTICSEARCH_ROLES_FILE      with security on: a roles.yml (file-realm role
#                                 definitions) copied into the instance's config at start
#
# Users and roles with security on (the file realm re-reads its files every few
# seconds, so both also work on a running node):
#   ELASTICSEARCH_SECURITY=true ELASTICSEARCH_ROLES_FILE=roles.yml \
#     ELASTICSEARCH_USERS="alice:alice-pw:reader bob:bob-pw:superuser" scripts/elasticsearch.sh start
#   scripts/elasticsearch.sh add-role reader reader-role.yml   # YAML body of one role:
#       # cluster: [monitor]
#       # indices: [{names: ["docs*"], privileges: [read]}]
#   scripts/elasticsearch.sh add-user carol carol-pw reader
# The native realm's API (PUT /_security/user/..., /_security/role/...) works too,
# authenticated as the admin user.
#
# VERSION CHOICE: 9.5.3 is the newest 9.x release in Maven Central's metadata for
# org.elasticsearch:elasticsearch at the time of writing, and
# org.elasticsearch.distribution.integ-test-zip:elasticsearch:9.5.3:zip resolves (the
# integ-test-zip's own metadata stops at 8.19.x, yet 9.x versions resolve).
#
# MODULES: the integ-test-zip ships only apm, transport-netty4, x-pack-core and
# x-pack-security.  Elasticsearch does not publish the other modules (lang-mustache,
# lang-painless, rest-root, analysis-common, rank-rrf, async-search, inference) as
# Maven artifacts for 9.x (probed: org.elasticsearch.plugin:<name>:9.5.3 and
# x-pack-<name> do not resolve), so they cannot be assembled the way
# scripts/opensearch.sh completes OpenSearch.  What that means for the sidecar
# (no stored search templates, `GET /` answers 405, no rrf/linear retriever, ...)
# is listed in README.md ("Elasticsearch").
#
# Elasticsearch refuses to run as root: when this script runs as root it starts the
# node as ELASTICSEARCH_USER (created with useradd if missing); the install dir is
# made world-readable and the run dir is owned by that user.
set -euo pipefail

ES_VERSION=${ELASTICSEARCH_VERSION:-9.5.3}
ARTIFACT="org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip"

if [[ -n "${ELASTICSEARCH_CACHE_DIR:-}" ]]; then
  CACHE_DIR=$ELASTICSEARCH_CACHE_DIR
elif [[ $(id -u) == 0 ]]; then
  CACHE_DIR=/var/cache/rescore-sidecar
else
  CACHE_DIR="$HOME/.cache/rescore-sidecar"
fi
DOWNLOAD_DIR="$CACHE_DIR/downloads/elasticsearch-$ES_VERSION"
ES_INSTALL=${ELASTICSEARCH_HOME:-$CACHE_DIR/elasticsearch-$ES_VERSION}
PORT=${ELASTICSEARCH_PORT:-9200}
HEAP=${ELASTICSEARCH_HEAP:-512m}
RUN_DIR=${ELASTICSEARCH_RUN_DIR:-/tmp/rescore-elasticsearch-$PORT}
START_TIMEOUT=${ELASTICSEARCH_START_TIMEOUT:-180}
STOP_TIMEOUT=${ELASTICSEARCH_STOP_TIMEOUT:-30}
RUN_USER=${ELASTICSEARCH_USER:-rescore-es}
SECURITY=${ELASTICSEARCH_SECURITY:-false}
ADMIN_USER=${ELASTICSEARCH_ADMIN_USER:-rescore-admin}
ADMIN_PASSWORD=${ELASTICSEARCH_ADMIN_PASSWORD:-rescore-admin-pw}
URL="http://127.0.0.1:$PORT"
MARKER="$ES_INSTALL/.rescore-sidecar-install"
MARKER_CONTENT="version=$ES_VERSION"

log() { printf '[elasticsearch.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

case "$SECURITY" in
  true|false) ;;
  *) die "ELASTICSEARCH_SECURITY must be true or false, not '$SECURITY'" ;;
esac

# ---------------------------------------------------------------------------
# JDK selection (Elasticsearch 9.x needs Java 21+)
# ---------------------------------------------------------------------------

java_major() {
  local home=$1 v=""
  [[ -x "$home/bin/java" ]] || return 0
  if [[ -f "$home/release" ]]; then
    v=$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "$home/release")
  fi
  if [[ -z "$v" ]]; then
    v=$("$home/bin/java" -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n1)
  fi
  v=${v#1.}
  echo "${v%%[.+-]*}"
}

select_jdk() {
  [[ -n "${JAVA_FOR_ES:-}" ]] && return 0
  local min=21 major best="" best_major=0 cand
  if [[ -n "${ELASTICSEARCH_JAVA_HOME:-}" ]]; then
    major=$(java_major "$ELASTICSEARCH_JAVA_HOME")
    [[ -n "$major" ]] || die "ELASTICSEARCH_JAVA_HOME=$ELASTICSEARCH_JAVA_HOME is not a JDK (no bin/java)"
    (( major >= min )) || die "ELASTICSEARCH_JAVA_HOME=$ELASTICSEARCH_JAVA_HOME is Java $major; Elasticsearch $ES_VERSION needs Java $min or newer"
    JAVA_FOR_ES=$ELASTICSEARCH_JAVA_HOME
    return 0
  fi
  local candidates=()
  [[ -n "${JAVA_HOME:-}" ]] && candidates+=("$JAVA_HOME")
  for cand in /usr/lib/jvm/* /opt/java/* /opt/jdk*; do
    [[ -d "$cand" && ! -L "$cand" ]] && candidates+=("$cand")
  done
  if command -v java >/dev/null 2>&1; then
    candidates+=("$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")")
  fi
  for cand in "${candidates[@]}"; do
    major=$(java_major "$cand")
    [[ -n "$major" ]] || continue
    if (( major >= min && major > best_major )); then best=$cand; best_major=$major; fi
  done
  [[ -n "$best" ]] || die "no JDK $min+ for Elasticsearch $ES_VERSION; looked at: ${candidates[*]:-nothing}. Install one or set ELASTICSEARCH_JAVA_HOME."
  JAVA_FOR_ES=$best
  log "using JDK $best (Java $best_major)"
}

# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------

require_tools() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || die "'$t' is required but not installed"
  done
}

mvn_quiet() {
  mvn -B -q -Dstyle.color=never "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
}

fetch_distribution() {
  local zip="$DOWNLOAD_DIR/elasticsearch-$ES_VERSION.zip"
  if [[ -f "$zip" ]]; then
    log "distribution already downloaded: $zip"
    return 0
  fi
  log "resolving $ARTIFACT with Maven -> $DOWNLOAD_DIR"
  mkdir -p "$DOWNLOAD_DIR"
  # Run from an empty dir: the copy goal needs no project, and a pom.xml in the
  # caller's cwd must not be picked up.
  local tmp
  tmp=$(mktemp -d)
  if ! (cd "$tmp" && mvn_quiet -U org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy \
        -Dartifact="$ARTIFACT" -DoutputDirectory="$DOWNLOAD_DIR"); then
    rm -rf "$tmp"
    die "Maven could not resolve $ARTIFACT (see errors above)"
  fi
  rm -rf "$tmp"
  [[ -f "$zip" ]] || die "expected $zip after Maven resolution"
}

do_install() {
  if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_CONTENT" ]]; then
    log "Elasticsearch $ES_VERSION already installed in $ES_INSTALL"
    return 0
  fi
  require_tools mvn unzip flock
  select_jdk
  mkdir -p "$CACHE_DIR" "$(dirname "$ES_INSTALL")"
  chmod a+rx "$CACHE_DIR" 2>/dev/null || true
  exec 9>"$CACHE_DIR/elasticsearch-install.lock"
  log "acquiring install lock $CACHE_DIR/elasticsearch-install.lock"
  flock -w 1800 9 || die "timed out waiting for $CACHE_DIR/elasticsearch-install.lock"
  if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_CONTENT" ]]; then
    log "Elasticsearch $ES_VERSION installed by a concurrent run"
    exec 9>&-
    return 0
  fi
  if [[ -e "$ES_INSTALL" && ! -f "$MARKER" ]]; then
    die "$ES_INSTALL exists but was not installed by this script; remove it or set ELASTICSEARCH_HOME elsewhere"
  fi
  rm -rf "$(dirname "$ES_INSTALL")"/.elasticsearch-staging.*

  fetch_distribution

  local staging home
  staging=$(mktemp -d "$(dirname "$ES_INSTALL")/.elasticsearch-staging.XXXXXX")
  trap 'rm -rf "$staging"' EXIT
  log "unpacking distribution"
  unzip -q "$DOWNLOAD_DIR/elasticsearch-$ES_VERSION.zip" -d "$staging"
  home="$staging/elasticsearch-$ES_VERSION"
  [[ -x "$home/bin/elasticsearch" ]] || die "unexpected distribution layout in elasticsearch-$ES_VERSION.zip"
  log "modules shipped: $(ls "$home/modules" | tr '\n' ' ')"
  echo "$MARKER_CONTENT" >"$home/.rescore-sidecar-install"
  # The node may run as another user: everything readable, nothing writable.
  chmod -R a+rX,go-w "$home"
  rm -rf "$ES_INSTALL"
  mv "$home" "$ES_INSTALL"
  chmod a+rx "$(dirname "$ES_INSTALL")"
  rm -rf "$staging"
  trap - EXIT
  exec 9>&-
  log "installed Elasticsearch $ES_VERSION in $ES_INSTALL"
}

# ---------------------------------------------------------------------------
# start / stop / status
# ---------------------------------------------------------------------------

# PIDs of this instance's processes: the CLI launcher and the server JVM both
# carry ES_PATH_CONF (environment) / -Des.path.conf (server command line).
instance_pids() {
  local f pid args arg env_conf="ES_PATH_CONF=$RUN_DIR/config" conf="-Des.path.conf=$RUN_DIR/config"
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    { mapfile -d '' -t args <"$f"; } 2>/dev/null || continue
    [[ "${args[0]:-}" == */java || "${args[0]:-}" == java ]] || continue
    for arg in "${args[@]}"; do
      if [[ "$arg" == "$conf" ]]; then echo "$pid"; continue 2; fi
    done
    if { tr '\0' '\n' <"/proc/$pid/environ" | grep -qxF "$env_conf"; } 2>/dev/null; then
      echo "$pid"
    fi
  done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

transport_port() {
  if [[ -n "${ELASTICSEARCH_TRANSPORT_PORT:-}" ]]; then echo "$ELASTICSEARCH_TRANSPORT_PORT"; return; fi
  local base=$((PORT + 200))
  (( base + 99 > 65535 )) && base=$((PORT - 400))
  echo "$base-$((base + 99))"
}

curl_auth() {
  if [[ "$SECURITY" == true ]]; then
    curl -u "$ADMIN_USER:$ADMIN_PASSWORD" "$@"
  else
    curl "$@"
  fi
}

print_log_tail() {
  local f
  for f in "$RUN_DIR/logs/console.log"; do
    [[ -f "$f" ]] || continue
    log "last 60 lines of $f:"
    tail -n 60 "$f" >&2
  done
}

health_status() {
  { curl_auth -s -m 5 "$URL/_cluster/health" 2>/dev/null || true; } \
    | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'
}

do_stop() {
  local pids pid deadline
  pids=$(instance_pids)
  if [[ -z "$pids" ]]; then
    log "no Elasticsearch instance running for port $PORT ($RUN_DIR)"
    rm -f "$RUN_DIR/elasticsearch.pid"
    return 0
  fi
  log "stopping Elasticsearch on port $PORT (pids $(echo $pids))"
  for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
  deadline=$((SECONDS + STOP_TIMEOUT))
  while [[ -n "$(instance_pids)" ]] && (( SECONDS < deadline )); do sleep 0.5; done
  pids=$(instance_pids)
  if [[ -n "$pids" ]]; then
    log "still running after ${STOP_TIMEOUT}s; sending SIGKILL to $(echo $pids)"
    for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + 30))
    while [[ -n "$(instance_pids)" ]] && (( SECONDS < deadline )); do sleep 0.2; done
    [[ -z "$(instance_pids)" ]] || die "could not kill $(instance_pids | tr '\n' ' ')"
  fi
  rm -f "$RUN_DIR/elasticsearch.pid"
  log "stopped"
}

ensure_run_user() {
  [[ $(id -u) == 0 ]] || return 0
  if ! id -u "$RUN_USER" >/dev/null 2>&1; then
    require_tools useradd
    log "creating unprivileged user $RUN_USER (Elasticsearch refuses to run as root)"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$RUN_USER" \
      || id -u "$RUN_USER" >/dev/null 2>&1 || die "could not create user $RUN_USER"
  fi
}

# Runs "$@" as the node's user (as is when not root).
as_run_user() {
  if [[ $(id -u) == 0 ]]; then
    setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --init-groups -- "$@"
  else
    "$@"
  fi
}

# Runs bin/elasticsearch-users for this instance's config.
es_users_tool() {
  as_run_user env ES_JAVA_HOME="$JAVA_FOR_ES" ES_PATH_CONF="$RUN_DIR/config" HOME="$RUN_DIR" \
    "$ES_INSTALL/bin/elasticsearch-users" "$@"
}

add_user() {
  local name=$1 password=$2 roles=$3
  [[ -n "$name" && -n "$password" && -n "$roles" ]] || die "add-user needs NAME PASSWORD ROLE[,ROLE...]"
  if grep -q "^$name:" "$RUN_DIR/config/users" 2>/dev/null; then
    es_users_tool userdel "$name" >/dev/null
  fi
  es_users_tool useradd "$name" -p "$password" -r "$roles" >&2 \
    || die "elasticsearch-users useradd $name failed"
  log "file-realm user $name (roles $roles)"
}

# Appends one role (YAML body in $2, without the role name) to roles.yml.
add_role() {
  local name=$1 file=$2
  [[ -n "$name" && -f "$file" ]] || die "add-role needs NAME and a YAML file with the role body"
  {
    printf '\n%s:\n' "$name"
    sed 's/^/  /' "$file"
  } >>"$RUN_DIR/config/roles.yml"
  log "file-realm role $name"
}

prepare_run_dir() {
  case "$RUN_DIR" in
    ""|/|"$HOME"|"$ES_INSTALL"|/tmp) die "refusing to use ELASTICSEARCH_RUN_DIR=$RUN_DIR" ;;
  esac
  rm -rf "$RUN_DIR"
  mkdir -p "$RUN_DIR/data" "$RUN_DIR/logs" "$RUN_DIR/tmp"
  cp -r "$ES_INSTALL/config" "$RUN_DIR/config"
  cat >"$RUN_DIR/config/elasticsearch.yml" <<EOF
# Written by scripts/elasticsearch.sh start (rescore-sidecar).
cluster.name: rescore-elasticsearch-$PORT
node.name: rescore-es-node-$PORT
discovery.type: single-node
network.host: 127.0.0.1
http.port: $PORT
transport.port: $(transport_port)
path.data: $RUN_DIR/data
path.logs: $RUN_DIR/logs
action.auto_create_index: true
action.destructive_requires_name: false
# Dev boxes are often nearly full; never block allocation on disk usage.
cluster.routing.allocation.disk.threshold_enabled: false
EOF
  if [[ "$SECURITY" == true ]]; then
    cat >>"$RUN_DIR/config/elasticsearch.yml" <<'EOF'
xpack.security.enabled: true
xpack.security.http.ssl.enabled: false
xpack.security.transport.ssl.enabled: false
xpack.security.authc.realms.file.file1.order: 0
xpack.security.authc.realms.native.native1.order: 1
EOF
    if [[ -n "${ELASTICSEARCH_ROLES_FILE:-}" ]]; then
      [[ -f "$ELASTICSEARCH_ROLES_FILE" ]] || die "ELASTICSEARCH_ROLES_FILE=$ELASTICSEARCH_ROLES_FILE does not exist"
      cp "$ELASTICSEARCH_ROLES_FILE" "$RUN_DIR/config/roles.yml"
    fi
  else
    echo "xpack.security.enabled: false" >>"$RUN_DIR/config/elasticsearch.yml"
  fi
  sed -i \
    -e "s#-XX:ErrorFile=hs_err#-XX:ErrorFile=$RUN_DIR/logs/hs_err#" \
    -e "s#-XX:ErrorFile=logs/#-XX:ErrorFile=$RUN_DIR/logs/#" \
    -e "s#file=gc.log#file=$RUN_DIR/logs/gc.log#" \
    -e "s#file=logs/gc.log#file=$RUN_DIR/logs/gc.log#" \
    "$RUN_DIR/config/jvm.options"
  if [[ $(id -u) == 0 ]]; then
    chown -R "$RUN_USER:$(id -g "$RUN_USER")" "$RUN_DIR"
    as_run_user test -w "$RUN_DIR/config" \
      || die "user $RUN_USER cannot reach $RUN_DIR (a parent directory is private); choose another ELASTICSEARCH_RUN_DIR"
  fi
}

do_start() {
  do_install
  select_jdk
  require_tools curl setsid
  [[ $(id -u) == 0 ]] && require_tools setpriv
  ensure_run_user

  if [[ -n "$(instance_pids)" ]]; then
    log "an instance is already running for port $PORT; restarting it fresh"
    do_stop
  fi
  port_in_use "$PORT" && die "port $PORT is already in use by another process (not started by this script with ELASTICSEARCH_RUN_DIR=$RUN_DIR)"

  prepare_run_dir
  if [[ "$SECURITY" == true ]]; then
    add_user "$ADMIN_USER" "$ADMIN_PASSWORD" superuser
    local entry name rest password roles
    for entry in ${ELASTICSEARCH_USERS:-}; do
      name=${entry%%:*}; rest=${entry#*:}
      password=${rest%%:*}; roles=${rest#*:}
      [[ "$entry" == *:*:* && -n "$name" && -n "$password" && -n "$roles" ]] \
        || die "ELASTICSEARCH_USERS entry '$entry' is not NAME:PASSWORD:ROLE[,ROLE...]"
      add_user "$name" "$password" "$roles"
    done
  fi
  local who="" runas=()
  if [[ $(id -u) == 0 ]]; then
    who=" as user $RUN_USER"
    runas=(setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --init-groups --)
  fi
  log "starting Elasticsearch $ES_VERSION on $URL$who (heap $HEAP, transport $(transport_port), security $SECURITY, dir $RUN_DIR)"
  (
    cd "$RUN_DIR"
    unset JAVA_HOME ES_HOME
    setsid nohup env ES_JAVA_HOME="$JAVA_FOR_ES" ES_PATH_CONF="$RUN_DIR/config" \
        ES_TMPDIR="$RUN_DIR/tmp" HOME="$RUN_DIR" \
        ES_JAVA_OPTS="-Xms$HEAP -Xmx$HEAP ${ELASTICSEARCH_JAVA_OPTS:-}" \
        "${runas[@]}" "$ES_INSTALL/bin/elasticsearch" "$@" >"$RUN_DIR/logs/console.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/elasticsearch.pid"
  )

  local deadline=$((SECONDS + START_TIMEOUT)) status="" launcher
  launcher=$(cat "$RUN_DIR/elasticsearch.pid")
  while (( SECONDS < deadline )); do
    status=$(health_status)
    if [[ "$status" == yellow || "$status" == green ]]; then
      instance_pids | tr '\n' ' ' >"$RUN_DIR/elasticsearch.pid"
      log "Elasticsearch is up ($status) after ${SECONDS}s: $URL"
      echo "$URL"
      return 0
    fi
    if ! kill -0 "$launcher" 2>/dev/null && [[ -z "$(instance_pids)" ]]; then
      print_log_tail
      do_stop >/dev/null 2>&1 || true
      die "Elasticsearch exited during startup (port $PORT)"
    fi
    sleep 1
  done
  print_log_tail
  log "Elasticsearch did not reach yellow/green within ${START_TIMEOUT}s (last status: ${status:-no answer}); stopping it"
  do_stop || true
  exit 1
}

do_status() {
  local body
  if body=$(curl_auth -sf -m 5 "$URL/_cluster/health?pretty" 2>/dev/null); then
    echo "$body"
    return 0
  fi
  if [[ -n "$(instance_pids)" ]]; then
    log "Elasticsearch process for port $PORT is running but $URL does not answer (starting?)"
  else
    log "Elasticsearch is not running on port $PORT"
  fi
  return 1
}

require_running_security() {
  [[ "$SECURITY" == true ]] || die "$1 needs ELASTICSEARCH_SECURITY=true (and the same ELASTICSEARCH_PORT as start)"
  [[ -d "$RUN_DIR/config" ]] || die "no instance dir $RUN_DIR (start one first)"
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) do_install ;;
    start)   do_start "$@" ;;
    stop)    do_stop ;;
    status)  do_status ;;
    home)    echo "$ES_INSTALL" ;;
    add-user)
      require_running_security add-user
      select_jdk
      add_user "${1:-}" "${2:-}" "${3:-}" ;;
    add-role)
      require_running_security add-role
      add_role "${1:-}" "${2:-}" ;;
    *) echo "usage: $0 install|start|stop|status|home|add-user NAME PASSWORD ROLES|add-role NAME FILE" >&2; exit 2 ;;
  esac
}

main "$@"
