#!/usr/bin/env bash
# Benchmark peer: Debezium $DEBEZIUM_VERSION (default 3.6.1.Final) as most people run it, a source
# connector on a real Apache Kafka Connect worker (distributed mode, scripts/connect.sh worker),
# from Maven Central (Debezium's plugin archives, Connect's jars; no Kafka distribution, no
# container image).
#
#   bench/debezium-connect.sh jars        resolve the Debezium connectors once with Maven: each
#                                         connector's own Kafka Connect plugin archive
#                                         (debezium-connector-<c>-<version>-plugin.tar.gz: the
#                                         connector and its runtime dependencies) unpacked into
#                                         its own plugin directory
#                                         $ROWSTREAM_CACHE/bench/debezium-3.6.1/plugins/{postgres,mysql,mariadb}
#                                         less the Kafka and slf4j jars the worker provides (as
#                                         Debezium's docs ask); prints the plugins directory.
#                                         A connector the Maven repository does not serve is
#                                         recorded in .../debezium-3.6.1/<connector>.unavailable,
#                                         skipped from then on (delete that file to try again)
#   bench/debezium-connect.sh run SOURCE TARGET CONFIG_JSON [key=value ...]
#                                         run one connector on a fresh worker until its topic
#                                         holds TARGET records, then print, on stdout, one line
#                                           DONE records=N secs=S rss_kb=K
#                                         and stop the worker. Exit 1 on failure, with the
#                                         connector's status and the worker's last log lines on
#                                         stderr. Progress goes to stderr.
#     SOURCE       postgres | mysql | mariadb: the connector class (io.debezium.connector.
#                  postgresql.PostgresConnector, mysql.MySqlConnector, mariadb.MariaDbConnector)
#                  unless CONFIG_JSON sets connector.class
#     TARGET       records to wait for in the topic (the sum of its end offsets over partitions)
#     CONFIG_JSON  a file holding one flat JSON object, the connector's configuration (values
#                  may be strings, numbers or booleans), or - for none
#     key=value    connector settings added to / overriding CONFIG_JSON; a key starting with
#                  `worker.` is a worker setting instead (prefix removed), e.g.
#                  worker.producer.linger.ms=5
#
# What `run` adds to the connector's configuration unless it is set: connector.class (SOURCE),
# tasks.max=1, topic.creation.default.partitions=3 and topic.creation.default.replication.factor=1
# (the broker of scripts/services.sh has auto.create.topics.enable=false: the worker creates the
# topic, with 3 partitions, unless the caller created it before), and for mysql/mariadb
# schema.history.internal.kafka.{bootstrap.servers,topic} (a topic of its own per run) and a
# random database.server.id.
#
# The topic counted: topic.prefix + "." + table.include.list (Debezium's name for one table:
# prefix.schema.table for Postgres, prefix.database.table for MySQL/MariaDB), or $DBZ_TOPIC. It
# is counted by bench/topic-end-offsets.py, which asks the broker for the end offsets every 50 ms
# over the Kafka protocol (no consumer, no JVM).
#
# Measured: secs from just before POST /connectors (the worker has started and joined its group;
# JVM start and plugin loading are not counted) until the poll that sees TARGET records;
# rss_kb is the worker JVM's peak RSS (VmHWM of /proc/PID/status) at that moment.
#
# At the end, whatever happened, the worker is stopped (SIGTERM, SIGKILL after 30 s) and its
# internal topics (GROUP-configs, -offsets, -status, and the schema history topic `run` named)
# are deleted unless DBZ_KEEP=1; the connector's own topic stays unless DBZ_DROP_TOPIC=1.
#
# The worker (scripts/connect.sh worker: Connect 4.3.1, which Debezium 3.6.1 is built against
# (connect-api 4.3.0)): its own work dir, a free REST port, a fresh group id (so fresh internal
# topics) per run, plugin.path = the plugins directory, and the JSON converter for keys and values
# with schemas.enable=false: each record is the Debezium envelope (before, after, source, op,
# ts_ms...) without the per-record schema the JsonConverter adds by default (schemas.enable=true,
# which most Debezium deployments keep): rowstream writes no schema in its records either.
# JVM: -Xms256m -Xmx$DBZ_HEAP (default 2g), what Kafka's bin/connect-distributed.sh gives a
# worker, and the JVM's default JIT (tiered, C1 then C2) as a deployed worker has it:
# scripts/connect.sh stops at C1 (it starts faster, for the tests); _JAVA_OPTIONS, which the JVM
# reads after the command line, undoes that. Logs at $CONNECT_LOG_LEVEL (default warn) in the
# work dir.
#
# Environment: DBZ_BROKERS (default 127.0.0.1:9092), DBZ_TOPIC (the topic to count),
# DBZ_NAME (connector name, default dbz-bench), DBZ_TIMEOUT (seconds, default 900, from the POST),
# DBZ_HEAP (default 2g), DBZ_JIT=c1 (keep scripts/connect.sh's C1-only JIT),
# DBZ_DROP_TOPIC=1 (delete the connector's topic at the end too; by default it stays),
# DBZ_WORK (work dir; default a fresh temporary one, removed at the end unless DBZ_KEEP=1),
# DEBEZIUM_VERSION (default 3.6.1.Final), ROWSTREAM_CACHE.
#
# Example (Postgres, streaming what a slot made beforehand holds):
#   echo '{"database.hostname":"127.0.0.1","database.port":5432,"database.user":"postgres",
#          "database.password":"x","database.dbname":"rsbench","topic.prefix":"dbz1",
#          "table.include.list":"public.t","plugin.name":"pgoutput","slot.name":"dbz_stream",
#          "publication.name":"p","publication.autocreate.mode":"disabled"}' >/tmp/pg.json
#   bench/debezium-connect.sh run postgres 300000 /tmp/pg.json snapshot.mode=no_data
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
CACHE="${ROWSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream}"
DEBEZIUM_VERSION="${DEBEZIUM_VERSION:-3.6.1.Final}"
HOME_DIR="$CACHE/bench/debezium-${DEBEZIUM_VERSION%.Final}"
PLUGINS="$HOME_DIR/plugins"
CONNECTORS=(postgres mysql mariadb)
OWN_TOPICS=()

die() { echo "bench/debezium-connect.sh: $*" >&2; exit 1; }
log() { echo "[debezium] $*" >&2; }

# One connector's plugin directory: Debezium's own archive for Kafka Connect (the Maven artifact
# io.debezium:debezium-connector-<c>:<version>:tar.gz:plugin, which Debezium's docs tell Connect
# users to unpack into plugin.path), unpacked by Maven, less the jars the worker provides: the
# 3.6.1 archives hold connect-api and kafka-clients 4.3.0 and slf4j-api 1.7.36, which a plugin
# directory must not (Debezium's docs; the worker's Kafka classes are the ones a plugin must link
# to). Everything else stays as shipped (the archives hold no Jackson: the worker's is used).
resolve() { # connector
  local c=$1 dir="$PLUGINS/$1" work="$HOME_DIR/resolve/$1"
  [ -f "$dir/.complete" ] && return 0
  [ -f "$HOME_DIR/$c.unavailable" ] && return 0
  mkdir -p "$work"
  cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rowstream</groupId><artifactId>debezium-$c-plugin</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.debezium</groupId><artifactId>debezium-connector-$c</artifactId><version>$DEBEZIUM_VERSION</version>
      <classifier>plugin</classifier><type>tar.gz</type>
      <exclusions><exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion></exclusions>
    </dependency>
  </dependencies>
</project>
POM
  rm -rf "$dir" "$work/unpacked"
  log "resolving io.debezium:debezium-connector-$c:$DEBEZIUM_VERSION:tar.gz:plugin from Maven Central (first time only; cached in $HOME_DIR)"
  if ! mvn -q -B -f "$work/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:unpack-dependencies -DexcludeTransitive=true -DoutputDirectory="$work/unpacked" >"$work/resolve.log" 2>&1; then
    # the repository answered that it has no such artifact (now, or in an attempt Maven cached):
    # a fact, not a failure to retry
    local miss
    miss=$(grep -oE "(Could not find artifact|Failure to find) io\.debezium:debezium-connector-$c:[^ ]+ in [^ ]+|io\.debezium:debezium-connector-$c:[^ ]+ was not found in [^ ]+" "$work/resolve.log" | head -1 || true)
    if [ -n "$miss" ]; then
      echo "$miss" >"$HOME_DIR/$c.unavailable"
      log "debezium-connector-$c $DEBEZIUM_VERSION is not served: $miss (recorded in $HOME_DIR/$c.unavailable)"
      return 0
    fi
    tail -20 "$work/resolve.log" >&2
    die "Maven could not resolve io.debezium:debezium-connector-$c:$DEBEZIUM_VERSION:tar.gz:plugin (see $work/resolve.log)"
  fi
  [ -f "$work/unpacked/debezium-connector-$c/debezium-connector-$c-$DEBEZIUM_VERSION.jar" ] ||
    die "the plugin archive of debezium-connector-$c has an unexpected layout (see $work/unpacked)"
  mkdir -p "$dir"
  local j kept=0
  for j in "$work/unpacked/debezium-connector-$c"/*.jar; do
    case "${j##*/}" in
      connect-*.jar | kafka-*.jar | kafka_*.jar | slf4j-*.jar) echo "${j##*/}" >>"$dir/.left-out" ;;
      *) cp "$j" "$dir/" && kept=$((kept + 1)) ;;
    esac
  done
  rm -rf "$work/unpacked"
  touch "$dir/.complete"
  log "$c: $kept jars in $dir (left out: $(tr '\n' ' ' <"$dir/.left-out" 2>/dev/null || true))"
}

jars() {
  command -v java >/dev/null || die "java is missing: install Java 17 (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "mvn is missing: install Maven (apt-get install maven)"
  mkdir -p "$PLUGINS"
  for c in "${CONNECTORS[@]}"; do resolve "$c"; done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

now() { date +%s.%N; }

# the connector's JSON (for POST /connectors) from CONFIG_JSON, the key=value arguments and the
# defaults; prints it; `worker.` keys are written, one key=value a line, to $WORK/worker.extra
build_config() { # name source brokers group config_json key=value...
  python3 - "$@" <<'PY'
import json, random, sys
name, source, brokers, group, path, *kvs = sys.argv[1:]
classes = {
    "postgres": "io.debezium.connector.postgresql.PostgresConnector",
    "mysql": "io.debezium.connector.mysql.MySqlConnector",
    "mariadb": "io.debezium.connector.mariadb.MariaDbConnector",
}
cfg = {}
if path != "-":
    with open(path) as f:
        cfg = json.load(f)
    if not isinstance(cfg, dict):
        sys.exit(f"{path}: not a JSON object")
worker = []
for kv in kvs:
    if "=" not in kv:
        sys.exit(f"not key=value: {kv}")
    k, v = kv.split("=", 1)
    if k.startswith("worker."):
        worker.append(f"{k[len('worker.'):]}={v}")
    else:
        cfg[k] = v
def s(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)
cfg = {k: s(v) for k, v in cfg.items()}
cfg.setdefault("connector.class", classes[source])
cfg.setdefault("tasks.max", "1")
cfg.setdefault("topic.creation.default.partitions", "3")
cfg.setdefault("topic.creation.default.replication.factor", "1")
if source in ("mysql", "mariadb"):
    cfg.setdefault("schema.history.internal.kafka.bootstrap.servers", brokers)
    cfg.setdefault("schema.history.internal.kafka.topic", f"{group}-schemahistory")
    cfg.setdefault("database.server.id", str(random.randint(100000, 999999)))
with open("/dev/fd/3", "w") as w:  # the worker settings, for the caller
    w.write("".join(x + "\n" for x in worker))
print(json.dumps({"name": name, "config": cfg}))
PY
}

# the topic Debezium writes the one captured table to
topic_of() { # connector-json
  python3 -c '
import json, re, sys
c = json.loads(sys.argv[1])["config"]
p, t = c.get("topic.prefix"), c.get("table.include.list", "")
if not p or not t or "," in t or re.search(r"[*+?()\[\]|^$\\]", t):
    sys.exit("cannot tell the topic from topic.prefix and table.include.list (one plain table): set DBZ_TOPIC")
print(p + "." + t)' "$1"
}

run() { # source target config_json key=value...
  [ $# -ge 3 ] || die "usage: $0 run SOURCE TARGET CONFIG_JSON [key=value ...]"
  local source=$1 target=$2 config=$3
  shift 3
  case "$source" in postgres | mysql | mariadb) ;; *) die "SOURCE must be postgres, mysql or mariadb, not '$source'" ;; esac
  case "$target" in '' | *[!0-9]*) die "TARGET must be a number of records, not '$target'" ;; esac
  [ "$config" = - ] || [ -f "$config" ] || die "no such file: $config"
  local brokers="${DBZ_BROKERS:-127.0.0.1:9092}" name="${DBZ_NAME:-dbz-bench}" timeout="${DBZ_TIMEOUT:-900}"
  local first="${brokers%%,*}"
  (exec 3<>"/dev/tcp/${first%:*}/${first##*:}") 2>/dev/null || die "no Kafka broker on $first (scripts/services.sh up)"

  jars
  [ -f "$PLUGINS/$source/.complete" ] ||
    die "no Debezium $source connector: $(cat "$HOME_DIR/$source.unavailable" 2>/dev/null || echo "run $0 jars")"

  WORK="${DBZ_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/dbz-bench.XXXXXX")}"
  mkdir -p "$WORK"
  WORKER_PID="" WATCH_PID=""
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  local group port body topic
  group="dbzbench-$(date +%s)-$$"
  # the worker's internal topics: deleted at the end (cleanup)
  OWN_TOPICS=("$group-configs" "$group-offsets" "$group-status") BROKERS=$brokers
  port=$(free_port)
  body=$(build_config "$name" "$source" "$brokers" "$group" "$config" "$@" 3>"$WORK/worker.extra") || die "bad connector configuration"
  topic="${DBZ_TOPIC:-$(topic_of "$body")}" || die "cannot tell the topic"
  [ "${DBZ_DROP_TOPIC:-0}" = 1 ] && OWN_TOPICS+=("$topic")
  if [[ "$body" == *"\"schema.history.internal.kafka.topic\": \"$group-schemahistory\""* ]]; then
    OWN_TOPICS+=("$group-schemahistory")
  fi
  printf '%s\n' "$body" >"$WORK/connector.json"
  local extra=()
  mapfile -t extra <"$WORK/worker.extra"

  local jopts="-Xms256m -Xmx${DBZ_HEAP:-2g}"
  [ "${DBZ_JIT:-}" = c1 ] || jopts="$jopts -XX:TieredStopAtLevel=4"
  log "worker $group on 127.0.0.1:$port (log: $WORK/worker.log), counting topic $topic up to $target records"
  _JAVA_OPTIONS="$jopts" "$ROOT/scripts/connect.sh" worker "$WORK/worker" "$port" "$group" "$brokers" \
    plugin.path="$PLUGINS" \
    key.converter=org.apache.kafka.connect.json.JsonConverter \
    value.converter=org.apache.kafka.connect.json.JsonConverter \
    key.converter.schemas.enable=false value.converter.schemas.enable=false \
    "${extra[@]}" >"$WORK/worker.log" 2>&1 &
  WORKER_PID=$!
  local started=$SECONDS

  # the REST API answers, and the plugin is loaded
  local deadline=$((SECONDS + 180)) cls
  cls=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["config"]["connector.class"])' "$body")
  until curl -sf "http://127.0.0.1:$port/connector-plugins" 2>/dev/null | grep -q "\"$cls\""; do
    kill -0 "$WORKER_PID" 2>/dev/null || fail "the worker exited before its REST API answered"
    [ $SECONDS -lt $deadline ] || fail "the worker's REST API did not list $cls within 180 s"
    sleep 0.2
  done

  log "worker up, $cls loaded, in $((SECONDS - started)) s"

  # watch the topic from before the connector exists
  python3 "$HERE/topic-end-offsets.py" "$brokers" "$topic" --wait-for "$target" --interval 0.05 \
    >"$WORK/watch.out" 2>"$WORK/watch.err" &
  WATCH_PID=$!

  # create the connector; a worker whose group is still rebalancing answers 409 (or 503, or a
  # 500 'timed out'): again. Any other answer is final (a configuration Debezium's validation
  # rejects comes back as a 400, or as a 500 from Connect 4.3.1's own NullPointerException).
  local t0 code
  deadline=$((SECONDS + 120))
  while :; do
    t0=$(now)
    code=$(curl -s -o "$WORK/post.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
      --data @"$WORK/connector.json" "http://127.0.0.1:$port/connectors" || true)
    [ "$code" = 201 ] && break
    kill -0 "$WORKER_PID" 2>/dev/null || fail "the worker exited"
    case "$code" in
      409 | 503 | 000) [ $SECONDS -lt $deadline ] || fail "POST /connectors: HTTP $code $(cat "$WORK/post.out")" ;;
      500) grep -qi 'timed out' "$WORK/post.out" && [ $SECONDS -lt $deadline ] ||
        fail "POST /connectors: HTTP $code $(cat "$WORK/post.out")" ;;
      *) fail "POST /connectors: HTTP $code $(cat "$WORK/post.out")" ;;
    esac
    sleep 0.2
  done
  log "connector $name created"

  # wait for the watcher, watching the worker and the connector's state meanwhile
  deadline=$((SECONDS + timeout))
  local next_status=$((SECONDS + 2)) st
  while kill -0 "$WATCH_PID" 2>/dev/null; do
    kill -0 "$WORKER_PID" 2>/dev/null || fail "the worker exited"
    [ $SECONDS -lt $deadline ] || fail "timed out after ${timeout}s with $(python3 "$HERE/topic-end-offsets.py" "$brokers" "$topic" 2>/dev/null || echo '?') records in $topic"
    if [ $SECONDS -ge $next_status ]; then
      st=$(curl -s "http://127.0.0.1:$port/connectors/$name/status" || true)
      if printf '%s' "$st" | grep -q '"state":"FAILED"'; then fail "the connector failed"; fi
      next_status=$((SECONDS + 2))
    fi
    sleep 0.05
  done
  local rss line
  rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$WORKER_PID/status" 2>/dev/null || echo "")
  # CPU the worker used since its start (user + system), for the log: the machine's load moves
  # secs more than it moves this
  local cpu
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{sub(/^.*\) /, ""); printf "%.1f", ($12 + $13) / hz}' "/proc/$WORKER_PID/stat" 2>/dev/null || echo "?")
  wait "$WATCH_PID" || fail "counting the topic failed: $(cat "$WORK/watch.out" "$WORK/watch.err")"
  WATCH_PID=""
  line=$(grep '^REACHED' "$WORK/watch.out") || fail "counting the topic failed: $(cat "$WORK/watch.err")"
  local records at
  records=$(sed -n 's/^REACHED records=\([0-9]*\) .*/\1/p' <<<"$line")
  at=$(sed -n 's/.* at=\([0-9.]*\)$/\1/p' <<<"$line")
  stop_worker
  log "worker CPU until then: ${cpu}s (user+system, JVM start included)"
  printf 'DONE records=%s secs=%s rss_kb=%s\n' "$records" "$(python3 -c "import sys; print(f'{float(sys.argv[1]) - float(sys.argv[2]):.3f}')" "$at" "$t0")" "${rss:-0}"
}

# SIGTERM (Connect stops its tasks and leaves the group), SIGKILL after 30 s
stop_worker() {
  [ -n "${WORKER_PID:-}" ] || return 0
  if kill -0 "$WORKER_PID" 2>/dev/null; then
    kill -TERM "$WORKER_PID" 2>/dev/null || true
    local i
    for i in $(seq 300); do kill -0 "$WORKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$WORKER_PID" 2>/dev/null || true
  fi
  wait "$WORKER_PID" 2>/dev/null || true
  WORKER_PID=""
}

fail() {
  echo "bench/debezium-connect.sh: $*" >&2
  if [ -n "${WORKER_PID:-}" ] && [ -n "${port:-}" ]; then
    echo "-- connector status:" >&2
    curl -s "http://127.0.0.1:$port/connectors/${name:-dbz-bench}/status" >&2 || true
    echo >&2
  fi
  if [ -f "${WORK:-}/worker.log" ]; then
    echo "-- the worker's last log lines ($WORK/worker.log):" >&2
    tail -40 "$WORK/worker.log" >&2
  fi
  FAILED=1
  exit 1
}

cleanup() {
  local rc=$?
  [ -n "${WATCH_PID:-}" ] && kill "$WATCH_PID" 2>/dev/null || true
  stop_worker
  if [ ${#OWN_TOPICS[@]} -gt 0 ] && [ "${DBZ_KEEP:-0}" != 1 ]; then
    python3 "$HERE/topic-end-offsets.py" "$BROKERS" --delete "${OWN_TOPICS[@]}" >/dev/null ||
      echo "bench/debezium-connect.sh: could not delete the topics ${OWN_TOPICS[*]}" >&2
  fi
  if [ -n "${WORK:-}" ] && [ -z "${DBZ_WORK:-}" ] && [ "${DBZ_KEEP:-0}" != 1 ] && [ -z "${FAILED:-}" ] && [ $rc = 0 ]; then
    rm -rf "$WORK"
  elif [ -n "${WORK:-}" ] && [ $rc != 0 ]; then
    if [ -f "$WORK/worker.log" ] || [ -n "${DBZ_WORK:-}" ]; then
      echo "bench/debezium-connect.sh: work dir kept: $WORK" >&2
    else
      rm -rf "$WORK" # failed before the worker started: nothing to look at
    fi
  fi
  exit $rc
}

case "${1:-}" in
  jars)
    jars
    echo "$PLUGINS"
    ;;
  run)
    shift
    run "$@"
    ;;
  *)
    die "usage: $0 jars | run SOURCE TARGET CONFIG_JSON [key=value ...]"
    ;;
esac
