#!/usr/bin/env bash
# Fetch, assemble, start and stop a local single-node OpenSearch for
# rescore-sidecar development and tests, built only from Maven artifacts
# (no Docker, no tarball downloads).
#
# Usage: scripts/opensearch.sh install|start|stop|status
#        scripts/opensearch.sh start [-Esetting=value ...]   (extra node settings)
#        scripts/opensearch.sh cluster-start|cluster-stop N  (an N-node cluster on loopback:
#          HTTP ports OPENSEARCH_PORT..+N-1, transport ports OPENSEARCH_TRANSPORT_PORT (a single
#          port, default HTTP port + 100)..+N-1; prints the nodes' URLs, comma-separated)
#
# Environment (all optional):
#   OPENSEARCH_PORT            HTTP port (default 9200); binds 127.0.0.1 only
#   OPENSEARCH_TRANSPORT_PORT  transport port or range (default: a 100-port
#                              range starting at HTTP port + 100, so several
#                              instances never collide; nothing connects to it)
#   OPENSEARCH_HEAP            JVM heap (default 1g)
#   OPENSEARCH_HOME            install dir (default ~/.cache/rescore-sidecar/opensearch-<version>)
#   OPENSEARCH_RUN_DIR         per-instance dir with config, data, logs, pid
#                              (default /tmp/rescore-opensearch-<port>); wiped on every start
#   OPENSEARCH_START_TIMEOUT   seconds to wait for yellow/green health (default 180)
#   OPENSEARCH_STOP_TIMEOUT    seconds between SIGTERM and SIGKILL (default 30)
#   OPENSEARCH_JAVA_HOME       JDK to run with (default: newest suitable JDK found)
#   OPENSEARCH_VERSION         distribution version (default below; change with care)
#   OPENSEARCH_ASSEMBLE_MODULES=1  when installing, rebuild modules/lang-painless
#                              and modules/lang-mustache from their Maven jars even
#                              if the distribution ships them (tests the fallback;
#                              only acts when an install actually runs, e.g. with a
#                              fresh OPENSEARCH_HOME)
#
# VERSION CHOICE (probed with `mvn dependency:get`, default repository):
#   3.6.0 is the newest version for which the distribution zip
#   (org.opensearch.distribution.integ-test-zip:opensearch) AND all four plugin
#   zips exist with matching versions:
#     org.opensearch.plugin:opensearch-job-scheduler:3.6.0.0:zip
#     org.opensearch.plugin:opensearch-ml-plugin:3.6.0.0:zip
#     org.opensearch.plugin:opensearch-knn:3.6.0.0:zip
#     org.opensearch.plugin:neural-search:3.6.0.0:zip   <- artifactId is
#       "neural-search"; "opensearch-neural-search" exists for no probed version.
#   Newer: 3.7.0 and 3.8.0 distributions exist, but the job-scheduler,
#   ml-plugin, knn and neural-search 3.7.0.0 / 3.8.0.0 zips do not; 3.8.1,
#   3.9.0 and 3.10.0 distributions do not exist.  Older: no neural-search zip
#   (either artifactId) for 2.19.0-2.19.4 or 3.0.0.0-3.5.0.0, and ml-plugin /
#   job-scheduler zips are missing for several of 3.3.0-3.5.0.
#   3.6.0 needs JDK 21+; it runs on the machine's Temurin 25.
#   The 3.6.0 integ-test-zip already ships modules/lang-painless and
#   modules/lang-mustache; the script only assembles them from the published
#   jars (module.pom.xml) when a distribution lacks them (the 2.19.x zips ship
#   only transport-netty4).
#   The knn zip has no native (faiss/nmslib) libraries: every knn_vector
#   field MUST say  "method": {"name": "hnsw", "engine": "lucene", ...}.
#   Without an explicit engine k-NN 3.x defaults to faiss, and the first
#   indexed document kills the whole node ("fatal error ... UnsatisfiedLinkError:
#   no opensearchknn_faiss_avx512 in java.library.path").
#
# When run as root (containers, CI sandboxes) the node is started with JNA
# disabled, because OpenSearch refuses to run as root and detects it via JNA;
# see do_start.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
HELPER_DIR="$SCRIPT_DIR/opensearch"

OS_VERSION=${OPENSEARCH_VERSION:-3.6.0}
PLUGIN_VERSION="$OS_VERSION.0"
# Installed in this order: ml needs job-scheduler, neural-search extends knn
# and uses ml.
PLUGINS=(opensearch-job-scheduler opensearch-ml-plugin opensearch-knn neural-search)

CACHE_DIR="$HOME/.cache/rescore-sidecar"
DOWNLOAD_DIR="$CACHE_DIR/downloads/opensearch-$OS_VERSION"
OS_HOME=${OPENSEARCH_HOME:-$CACHE_DIR/opensearch-$OS_VERSION}
PORT=${OPENSEARCH_PORT:-9200}
HEAP=${OPENSEARCH_HEAP:-1g}
RUN_DIR=${OPENSEARCH_RUN_DIR:-/tmp/rescore-opensearch-$PORT}
START_TIMEOUT=${OPENSEARCH_START_TIMEOUT:-180}
STOP_TIMEOUT=${OPENSEARCH_STOP_TIMEOUT:-30}
URL="http://127.0.0.1:$PORT"
MARKER="$OS_HOME/.rescore-sidecar-install"
# Marker content: a changed plugin list / mode forces a reinstall.
MARKER_CONTENT="version=$OS_VERSION plugins=${PLUGINS[*]}"

log() { printf '[opensearch.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# ---------------------------------------------------------------------------
# JDK selection
# ---------------------------------------------------------------------------

# Major Java version of a JDK home ("" if it is not a usable JDK).
java_major() {
  local home=$1 v=""
  [[ -x "$home/bin/java" ]] || return 0
  if [[ -f "$home/release" ]]; then
    v=$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "$home/release")
  fi
  if [[ -z "$v" ]]; then
    v=$("$home/bin/java" -version 2>&1 | sed -n 's/.* version "\([^"]*\)".*/\1/p' | head -n1)
  fi
  v=${v#1.}            # 1.8.0 -> 8.0
  echo "${v%%[.+-]*}"
}

# OpenSearch 3.x requires Java 21+.  2.x needs 11+ and cannot run on 24+
# (it enables the Java Security Manager, which JDK 24 removed).
java_range() {
  case "$OS_VERSION" in
    1.*|2.*) echo "11 23" ;;
    *)       echo "21 999" ;;
  esac
}

# Sets JAVA_FOR_OS to a suitable JDK home, or dies.
select_jdk() {
  [[ -n "${JAVA_FOR_OS:-}" ]] && return 0
  local min max major best="" best_major=0 cand
  read -r min max < <(java_range)
  local wanted="Java $min..$max"
  (( max >= 999 )) && wanted="Java $min or newer"
  if [[ -n "${OPENSEARCH_JAVA_HOME:-}" ]]; then
    major=$(java_major "$OPENSEARCH_JAVA_HOME")
    [[ -n "$major" ]] || die "OPENSEARCH_JAVA_HOME=$OPENSEARCH_JAVA_HOME is not a JDK (no bin/java)"
    if (( major < min || major > max )); then
      die "OPENSEARCH_JAVA_HOME=$OPENSEARCH_JAVA_HOME is Java $major; OpenSearch $OS_VERSION needs $wanted"
    fi
    JAVA_FOR_OS=$OPENSEARCH_JAVA_HOME
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
    # Prefer the newest JDK in range.
    if (( major >= min && major <= max && major > best_major )); then
      best=$cand; best_major=$major
    fi
  done
  [[ -n "$best" ]] || die "no suitable JDK for OpenSearch $OS_VERSION (needs $wanted); looked at: ${candidates[*]:-nothing}. Install one or set OPENSEARCH_JAVA_HOME."
  JAVA_FOR_OS=$best
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
  # Maven logs to stdout; keep our stdout clean (start prints only the URL).
  # (-q still leaves ANSI reset codes behind; strip them.)
  mvn -B -q -Dstyle.color=never "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' >&2
}

artifact_files() {
  echo "$DOWNLOAD_DIR/opensearch-$OS_VERSION.zip"
  local p
  for p in "${PLUGINS[@]}"; do echo "$DOWNLOAD_DIR/$p-$PLUGIN_VERSION.zip"; done
}

# Distribution + plugin zips -> $DOWNLOAD_DIR (via ~/.m2).
fetch_artifacts() {
  local f missing=0
  while read -r f; do [[ -f "$f" ]] || missing=1; done < <(artifact_files)
  if (( missing == 0 )); then
    log "artifacts already downloaded in $DOWNLOAD_DIR"
    return 0
  fi
  log "resolving OpenSearch $OS_VERSION distribution and plugin zips with Maven -> $DOWNLOAD_DIR"
  mkdir -p "$DOWNLOAD_DIR"
  # -U: retry artifacts whose earlier lookup failed (Maven caches misses for a day).
  if ! mvn_quiet -U -f "$HELPER_DIR/artifacts.pom.xml" \
      dependency:copy-dependencies \
      -Dopensearch.version="$OS_VERSION" -Dplugin.version="$PLUGIN_VERSION" \
      -DexcludeTransitive=true -DoutputDirectory="$DOWNLOAD_DIR"; then
    die "Maven could not resolve the OpenSearch $OS_VERSION artifacts (see errors above)"
  fi
  while read -r f; do [[ -f "$f" ]] || die "expected $f after Maven resolution"; done < <(artifact_files)
}

# Builds modules/<name> from the published jars when the distribution lacks it.
#   $1 staging home, $2 module dir name, $3 Maven artifactId, $4 description,
#   $5 plugin-security.policy body, $6.. candidate plugin classes (first found wins)
assemble_module() {
  local home=$1 name=$2 artifact=$3 desc=$4 policy=$5
  shift 5
  local dir="$home/modules/$name"
  if [[ -d "$dir" ]]; then
    if [[ "${OPENSEARCH_ASSEMBLE_MODULES:-0}" == 1 ]]; then
      log "OPENSEARCH_ASSEMBLE_MODULES=1: replacing shipped modules/$name"
      rm -rf "$dir"
    else
      log "distribution ships modules/$name"
      return 0
    fi
  fi
  log "assembling modules/$name from org.opensearch.plugin:$artifact:$OS_VERSION"
  mkdir -p "$dir"
  mvn_quiet -f "$HELPER_DIR/module.pom.xml" dependency:copy-dependencies \
    -Dopensearch.version="$OS_VERSION" -Dmodule.artifactId="$artifact" \
    -DincludeScope=runtime -DoutputDirectory="$dir" \
    || die "Maven could not resolve org.opensearch.plugin:$artifact:$OS_VERSION"

  # Jar hell guard: drop any jar whose artifact the server already has in lib/.
  local jar base
  for jar in "$dir"/*.jar; do
    base=$(basename "$jar" .jar)
    base=${base%-[0-9]*}
    if compgen -G "$home/lib/$base-[0-9]*.jar" >/dev/null; then
      log "  dropping $(basename "$jar") (server lib/ already has $base)"
      rm -f "$jar"
    fi
  done

  local module_jar="$dir/$artifact-$OS_VERSION.jar" cls classname="" entries
  [[ -f "$module_jar" ]] || die "module jar $module_jar missing"
  # (List once into a variable: `unzip | grep -q` trips pipefail via SIGPIPE.)
  entries=$(unzip -Z1 "$module_jar")
  for cls in "$@"; do
    if grep -qxF "${cls//.//}.class" <<<"$entries"; then classname=$cls; break; fi
  done
  [[ -n "$classname" ]] || die "none of the plugin classes ($*) found in $module_jar"

  local min max
  read -r min max < <(java_range)
  cat >"$dir/plugin-descriptor.properties" <<EOF
# Assembled by scripts/opensearch.sh from Maven jars
description=$desc
version=$OS_VERSION
name=$name
classname=$classname
java.version=$min
opensearch.version=$OS_VERSION
custom.foldername=
extended.plugins=
has.native.controller=false
EOF
  printf 'grant {\n%s\n};\n' "$policy" >"$dir/plugin-security.policy"
  log "  modules/$name: $(cd "$dir" && ls *.jar | tr '\n' ' ')"
}

# Settings shared by every instance (per-instance ones are added at start).
write_base_config() {
  local home=$1
  cat >"$home/config/opensearch.yml" <<'EOF'
# Written by scripts/opensearch.sh (rescore-sidecar). Per-instance settings
# (ports, paths, names) are appended to a copy of this file at start.
discovery.type: single-node
network.host: 127.0.0.1
action.auto_create_index: true
# Dev boxes are often nearly full; never block allocation on disk usage.
cluster.routing.allocation.disk.threshold_enabled: false
# ML commons: run models/connectors on this (data) node, allow connectors to
# a sidecar on localhost, and do not refuse work on a busy machine.
plugins.ml_commons.only_run_on_ml_node: false
plugins.ml_commons.connector.private_ip_enabled: true
plugins.ml_commons.trusted_connector_endpoints_regex:
  - '^https?://(127\.0\.0\.1|localhost)(:[0-9]+)?/.*$'
plugins.ml_commons.native_memory_threshold: 100
plugins.ml_commons.jvm_heap_memory_threshold: 100
EOF
}

do_install() {
  if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_CONTENT" ]]; then
    log "OpenSearch $OS_VERSION already installed in $OS_HOME"
    return 0
  fi
  require_tools mvn unzip
  select_jdk
  mkdir -p "$CACHE_DIR" "$(dirname "$OS_HOME")"
  # Serialize concurrent installs (e.g. parallel test sessions).
  exec 9>"$CACHE_DIR/install.lock"
  log "acquiring install lock $CACHE_DIR/install.lock"
  flock -w 1800 9 || die "timed out waiting for $CACHE_DIR/install.lock"
  if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$MARKER_CONTENT" ]]; then
    log "OpenSearch $OS_VERSION installed by a concurrent run"
    exec 9>&-
    return 0
  fi
  # Never wipe a directory this script did not create.
  if [[ -e "$OS_HOME" && ! -f "$MARKER" ]]; then
    die "$OS_HOME exists but was not installed by this script; remove it or set OPENSEARCH_HOME elsewhere"
  fi
  if [[ -f "$MARKER" ]]; then
    local users
    users=$(node_pids_with_arg "-Dopensearch.path.home=$OS_HOME" | tr '\n' ' ')
    [[ -z "$users" ]] || die "$OS_HOME needs reinstalling but nodes are running from it (pids $users); stop them first"
    log "existing install in $OS_HOME is outdated ($(cat "$MARKER")); reinstalling"
  fi
  # Staging dirs of installs that were killed (we hold the lock, so none is live).
  rm -rf "$(dirname "$OS_HOME")"/.opensearch-staging.*

  fetch_artifacts

  # Assemble in a staging dir next to the target, then rename atomically.
  local staging home
  staging=$(mktemp -d "$(dirname "$OS_HOME")/.opensearch-staging.XXXXXX")
  trap 'rm -rf "$staging"' EXIT
  log "unpacking distribution"
  unzip -q "$DOWNLOAD_DIR/opensearch-$OS_VERSION.zip" -d "$staging"
  home="$staging/opensearch-$OS_VERSION"
  [[ -x "$home/bin/opensearch" ]] || die "unexpected distribution layout in opensearch-$OS_VERSION.zip"

  assemble_module "$home" lang-painless lang-painless \
    "An easy, safe and fast scripting language for OpenSearch" \
    '  permission java.lang.RuntimePermission "createClassLoader";
  permission java.lang.RuntimePermission "getClassLoader";' \
    org.opensearch.painless.PainlessModulePlugin org.opensearch.painless.PainlessPlugin
  assemble_module "$home" lang-mustache lang-mustache-client \
    "Mustache scripting integration for OpenSearch" \
    '  permission java.lang.RuntimePermission "accessDeclaredMembers";' \
    org.opensearch.script.mustache.MustacheModulePlugin org.opensearch.script.mustache.MustachePlugin

  local p plugin_log="$staging/plugin-install.log"
  for p in "${PLUGINS[@]}"; do
    log "installing plugin $p $PLUGIN_VERSION"
    # OPENSEARCH_HOME must point at the staging copy: the launcher scripts
    # prefer the environment variable over their own location.
    OPENSEARCH_HOME="$home" OPENSEARCH_JAVA_HOME="$JAVA_FOR_OS" OPENSEARCH_PATH_CONF="$home/config" \
      "$home/bin/opensearch-plugin" install --batch "file://$DOWNLOAD_DIR/$p-$PLUGIN_VERSION.zip" \
      >"$plugin_log" 2>&1 \
      || { cat "$plugin_log" >&2; die "installing plugin $p failed"; }
  done

  write_base_config "$home"
  echo "$MARKER_CONTENT" >"$home/.rescore-sidecar-install"
  rm -rf "$OS_HOME"
  mv "$home" "$OS_HOME"
  rm -rf "$staging"
  trap - EXIT
  exec 9>&-
  log "installed OpenSearch $OS_VERSION in $OS_HOME"
}

# ---------------------------------------------------------------------------
# start / stop / status
# ---------------------------------------------------------------------------

# PIDs of OpenSearch node JVMs (main class org.opensearch.bootstrap.OpenSearch)
# that have the exact argument $1 on their command line.  The main class must
# match too: the launcher's short-lived helper JVMs (keystore check) carry the
# same -D flags.  Pure bash: a `tr | grep -q` pipeline would fail via SIGPIPE
# under pipefail and a running JVM would go unnoticed.
node_pids_with_arg() {
  local needle=$1 f pid arg args has_arg is_node
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}; pid=${pid%/cmdline}
    { mapfile -d '' -t args <"$f"; } 2>/dev/null || continue
    has_arg=0; is_node=0
    for arg in "${args[@]}"; do
      [[ "$arg" == "$needle" ]] && has_arg=1
      [[ "$arg" == org.opensearch.bootstrap.OpenSearch ]] && is_node=1
    done
    if (( has_arg && is_node )); then echo "$pid"; fi
  done
}

# This instance's JVM, found by its per-instance config dir, so a stale pid
# file or a recycled pid never matters.
instance_pids() { node_pids_with_arg "-Dopensearch.path.conf=$RUN_DIR/config"; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Default transport port: a range well away from the HTTP port so concurrent
# instances (random test ports, a developer's 9200) never collide.
transport_port() {
  if [[ -n "${OPENSEARCH_TRANSPORT_PORT:-}" ]]; then echo "$OPENSEARCH_TRANSPORT_PORT"; return; fi
  local base=$((PORT + 100))
  (( base + 99 > 65535 )) && base=$((PORT - 300))
  echo "$base-$((base + 99))"
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
  { curl -s -m 5 "$URL/_cluster/health" 2>/dev/null || true; } \
    | sed -n 's/.*"status":"\([a-z]*\)".*/\1/p'
}

do_stop() {
  local pids pid deadline
  pids=$(instance_pids)
  if [[ -z "$pids" ]]; then
    log "no OpenSearch instance running for port $PORT ($RUN_DIR)"
    rm -f "$RUN_DIR/opensearch.pid"
    return 0
  fi
  log "stopping OpenSearch on port $PORT (pid $(echo $pids))"
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
  rm -f "$RUN_DIR/opensearch.pid"
  log "stopped"
}

# Fresh per-instance config dir: own opensearch.yml (ports/paths), own
# jvm.options (absolute log paths, so instances sharing one install do not
# write the same gc.log) and own keystore.
prepare_run_dir() {
  case "$RUN_DIR" in
    ""|/|"$HOME"|"$OS_HOME") die "refusing to use OPENSEARCH_RUN_DIR=$RUN_DIR" ;;
  esac
  rm -rf "$RUN_DIR"
  mkdir -p "$RUN_DIR/data" "$RUN_DIR/logs" "$RUN_DIR/tmp"
  cp -r "$OS_HOME/config" "$RUN_DIR/config"
  cat >>"$RUN_DIR/config/opensearch.yml" <<EOF

# --- per-instance settings (scripts/opensearch.sh start) ---
cluster.name: ${OPENSEARCH_CLUSTER_NAME:-rescore-opensearch-$PORT}
node.name: rescore-node-$PORT
http.port: $PORT
transport.port: $(transport_port)
path.data: $RUN_DIR/data
path.logs: $RUN_DIR/logs
EOF
  if [[ -n "${OPENSEARCH_SEED_HOSTS:-}" ]]; then  # a node of cluster-start: discover the others
    sed -i '/^discovery.type: single-node/d' "$RUN_DIR/config/opensearch.yml"
    cat >>"$RUN_DIR/config/opensearch.yml" <<EOF
discovery.seed_hosts: [$OPENSEARCH_SEED_HOSTS]
cluster.initial_cluster_manager_nodes: [$OPENSEARCH_INITIAL_MANAGERS]
EOF
  fi
  sed -i \
    -e "s#^\(.*\)-XX:HeapDumpPath=data#\1-XX:HeapDumpPath=$RUN_DIR/data#" \
    -e "s#-XX:ErrorFile=logs/#-XX:ErrorFile=$RUN_DIR/logs/#" \
    -e "s#file=logs/gc.log#file=$RUN_DIR/logs/gc.log#" \
    -e "s#-Xloggc:logs/gc.log#-Xloggc:$RUN_DIR/logs/gc.log#" \
    "$RUN_DIR/config/jvm.options"
}

do_start() {
  do_install
  select_jdk
  require_tools curl setsid

  if [[ -n "$(instance_pids)" ]]; then
    log "an instance is already running for port $PORT; restarting it fresh"
    do_stop
  fi
  port_in_use "$PORT" && die "port $PORT is already in use by another process (not started by this script with OPENSEARCH_RUN_DIR=$RUN_DIR)"

  prepare_run_dir
  [[ $(id -u) == 0 ]] && log "running as root: starting with JNA disabled (OpenSearch refuses root, detected via JNA)"
  log "starting OpenSearch $OS_VERSION on $URL (heap $HEAP, transport $(transport_port), dir $RUN_DIR)"
  # setsid + nohup: own session, survives the calling shell and its signals.
  # bin/opensearch cds to OPENSEARCH_HOME and execs java, so $! is the JVM pid.
  (
    cd "$OS_HOME"
    export OPENSEARCH_HOME="$OS_HOME"
    export OPENSEARCH_JAVA_HOME="$JAVA_FOR_OS"
    export OPENSEARCH_PATH_CONF="$RUN_DIR/config"
    export OPENSEARCH_TMPDIR="$RUN_DIR/tmp"
    # Appended after jvm.options, so this heap wins.
    export OPENSEARCH_JAVA_OPTS="-Xms$HEAP -Xmx$HEAP ${OPENSEARCH_JAVA_OPTS:-}"
    if [[ $(id -u) == 0 ]]; then
      # OpenSearch refuses to run as root, but it can only tell via JNA
      # (geteuid).  Containers/CI sandboxes often are root, so keep JNA's
      # native library from loading: the check is skipped with a warning
      # (as are mlockall and the seccomp filter, irrelevant for a dev node).
      export OPENSEARCH_JAVA_OPTS="$OPENSEARCH_JAVA_OPTS -Djna.nosys=true -Djna.nounpack=true -Djna.noclasspath=true"
    fi
    unset JAVA_HOME
    setsid nohup "$OS_HOME/bin/opensearch" "$@" >"$RUN_DIR/logs/console.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/opensearch.pid"
  )

  if [[ "${OPENSEARCH_NO_WAIT:-0}" == 1 ]]; then  # cluster-start waits for all nodes together
    echo "$URL"
    return 0
  fi
  local deadline=$((SECONDS + START_TIMEOUT)) status="" launcher
  launcher=$(cat "$RUN_DIR/opensearch.pid")
  while (( SECONDS < deadline )); do
    status=$(health_status)
    if [[ "$status" == yellow || "$status" == green ]]; then
      # Record the real JVM pid (in case setsid had to fork).
      instance_pids | head -n1 >"$RUN_DIR/opensearch.pid"
      log "OpenSearch is up ($status) after ${SECONDS}s: $URL"
      echo "$URL"
      return 0
    fi
    # The launcher script execs the JVM, so its pid stays alive while the
    # node runs; instance_pids covers the case where setsid had to fork.
    if ! kill -0 "$launcher" 2>/dev/null && [[ -z "$(instance_pids)" ]]; then
      print_log_tail
      do_stop >/dev/null 2>&1 || true   # belt and braces: leave nothing behind
      die "OpenSearch exited during startup (port $PORT)"
    fi
    sleep 1
  done
  print_log_tail
  log "OpenSearch did not reach yellow/green within ${START_TIMEOUT}s (last status: ${status:-no answer}); stopping it"
  do_stop || true
  exit 1
}

do_status() {
  local body
  if body=$(curl -sf -m 5 "$URL/_cluster/health?pretty" 2>/dev/null); then
    echo "$body"
    return 0
  fi
  if [[ -n "$(instance_pids)" ]]; then
    log "OpenSearch process for port $PORT is running but $URL does not answer (starting?)"
  else
    log "OpenSearch is not running on port $PORT"
  fi
  return 1
}

# An N-node cluster on loopback, one instance of this script per node.
cluster_nodes() {
  local n=$1 i tbase=${OPENSEARCH_TRANSPORT_PORT:-$((PORT + 100))}
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "cluster-start/cluster-stop need a node count, got '$n'"
  [[ "$tbase" =~ ^[0-9]+$ ]] || die "cluster mode needs OPENSEARCH_TRANSPORT_PORT to be one port (the first node's)"
  for ((i = 0; i < n; i++)); do echo "$((PORT + i)) $((tbase + i))"; done
}

do_cluster_start() {
  local n=${1:-} seeds="" managers="" urls="" port tport deadline health=""
  do_install
  while read -r port tport; do
    seeds+="${seeds:+, }\"127.0.0.1:$tport\""
    managers+="${managers:+, }\"rescore-node-$port\""
  done < <(cluster_nodes "$n")
  while read -r port tport; do
    OPENSEARCH_PORT=$port OPENSEARCH_TRANSPORT_PORT=$tport OPENSEARCH_RUN_DIR=/tmp/rescore-opensearch-$port \
      OPENSEARCH_CLUSTER_NAME=rescore-cluster-$PORT OPENSEARCH_SEED_HOSTS=$seeds \
      OPENSEARCH_INITIAL_MANAGERS=$managers OPENSEARCH_NO_WAIT=1 bash "$SCRIPT_DIR/opensearch.sh" start >/dev/null \
      || { do_cluster_stop "$n"; die "node on port $port did not start"; }
    urls+="${urls:+,}http://127.0.0.1:$port"
  done < <(cluster_nodes "$n")
  deadline=$((SECONDS + START_TIMEOUT))
  while (( SECONDS < deadline )); do
    health=$(curl -s -m 10 "$URL/_cluster/health?wait_for_nodes=$n&wait_for_status=yellow&timeout=5s" || true)
    if [[ "$health" == *'"timed_out":false'* ]]; then
      log "cluster of $n nodes is up after ${SECONDS}s: $urls"
      echo "$urls"
      return 0
    fi
    sleep 1
  done
  log "the $n-node cluster did not form within ${START_TIMEOUT}s (last answer: ${health:-none})"
  print_log_tail
  do_cluster_stop "$n"
  exit 1
}

do_cluster_stop() {
  local n=${1:-} port tport
  while read -r port tport; do
    OPENSEARCH_PORT=$port OPENSEARCH_RUN_DIR=/tmp/rescore-opensearch-$port bash "$SCRIPT_DIR/opensearch.sh" stop || true
  done < <(cluster_nodes "$n")
}

main() {
  local cmd=${1:-}
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    install) do_install ;;
    start)   do_start "$@" ;;
    stop)    do_stop ;;
    status)  do_status ;;
    cluster-start) do_cluster_start "$@" ;;
    cluster-stop)  do_cluster_stop "$@" ;;
    *) echo "usage: $0 install|start|stop|status|cluster-start N|cluster-stop N" >&2; exit 2 ;;
  esac
}

main "$@"
