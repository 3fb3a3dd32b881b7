#!/usr/bin/env bash
# Scale measurements (issue: thousands of tables, huge tables, wide rows, huge values, many
# connectors), on demand, never in CI. Called by scripts/bench.sh (BENCH_ONLY=scale) or alone:
#
#   bench/scale.sh [step...]       steps: tables mytables snapshots wide huge connectors
#                                  (or SCALE_STEPS="...")
#                                  (default: all)
#   SCALE_TABLES=10000             tables of the tables / mytables steps
#   SCALE_SNAPSHOTS="1000000 4000000 16000000"   snapshot sizes (rows)
#   SCALE_WIDE_ROWS=100000         rows of the 500-column table
#   SCALE_HUGE_MB=50               size of the one huge value
#   SCALE_CONNECTORS=1000          connectors on the worker group
#   BENCH_BIN=/path/to/rowstream   another build
#
# Each step prints one or more `RESULT <name> <value> <unit>` lines (scripts/bench.sh collects
# them into docs/benchmarks.md) and cleans up its databases and topics, so a 16M-row snapshot
# does not stay on the disk.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream/target}"
BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/rowstream}"
[ -x "$BIN" ] || cargo build --release --bin rowstream
PSQL=(psql -qAt -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1)
MYSQL=(mariadb -uroot --socket=/run/mysqld/mysqld.sock)
WORK=$(mktemp -d)
RUN="sc$(date +%s)"
ADMIN=127.0.0.1:18090
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  [ -z "${SCALE_KEEP_LOGS:-}" ] || cp "$WORK"/*.log "$SCALE_KEEP_LOGS"/ 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2-$1:.2f}')"; }
metric() { curl -s "$ADMIN/metrics" | awk -v m="$1" '$1==m {print $2}'; }
result() { echo "RESULT $*"; }
kafka_tool() { KAFKA_HEAP=256m "$ROOT/scripts/kafka.sh" tool "$@"; }
delete_topics() { # regex
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --delete --topic "$1" >/dev/null 2>&1 || true
}
rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
rss_now_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
pg_reset() { # db
  "${PSQL[@]}" -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$1' AND NOT active" >/dev/null
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1"
}
pg_drop() { # db
  "${PSQL[@]}" -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$1' AND NOT active" >/dev/null
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"
}
pg_config() { # db slot topic-template snapshot-mode [extra toml]
  cat <<TOML
[source]
type = "postgres"
url = "postgres://postgres@127.0.0.1:5432/$1"
slot = "$2"
publication = "p"
[kafka]
brokers = "127.0.0.1:9092"
topic = "$3"
partitions = 3
${5:-}
[snapshot]
mode = "$4"
[state]
dir = "$WORK/state-$2"
[admin]
listen = "$ADMIN"
TOML
}
start_rs() { # config-file log
  "$BIN" run --config "$1" 2>"$2" &
  RS_PID=$!
  PIDS+=("$RS_PID")
}
stop_rs() {
  kill -TERM "$RS_PID" 2>/dev/null || true
  wait "$RS_PID" 2>/dev/null || true
}
wait_log() { # log pattern timeout-secs
  local deadline=$(( $(date +%s) + $3 ))
  until grep -qs "$2" "$1"; do
    kill -0 "$RS_PID" 2>/dev/null || { tail -20 "$1" >&2; return 1; }
    [ "$(date +%s)" -lt $deadline ] || { tail -5 "$1" >&2; echo "timed out waiting for '$2'" >&2; return 1; }
    sleep 0.05
  done
}
wait_metric() { # name value timeout
  local deadline=$(( $(date +%s) + $3 ))
  until [ "$(metric "$1" 2>/dev/null || echo 0)" -ge "$2" ] 2>/dev/null && [ "$(metric rowstream_in_flight_records)" = 0 ]; do
    kill -0 "$RS_PID" 2>/dev/null || return 1
    [ "$(date +%s)" -lt $deadline ] || { echo "timed out waiting for $1 >= $2" >&2; return 1; }
    sleep 0.1
  done
}

# Thousands of tables in one topic: start (snapshot of every empty table included) until
# streaming, RSS, one change in each of 1,000 tables, and heartbeats per interval.
step_tables() {
  local n=${SCALE_TABLES:-10000} db=rsscale t0 t1
  echo "== $n tables (postgres), one shared topic =="
  pg_reset $db
  "${PSQL[@]}" -d $db -c "DO \$\$ BEGIN FOR i IN 1..$n LOOP EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, v int)', i); END LOOP; END \$\$" -c "CREATE PUBLICATION p FOR ALL TABLES"
  pg_config $db rsscale "$RUN-tables.{schema}" initial "[heartbeat]
interval_ms = 1000" >"$WORK/tables.toml"
  t0=$(now)
  start_rs "$WORK/tables.toml" "$WORK/tables.log"
  wait_log "$WORK/tables.log" "streaming" 600
  t1=$(now)
  result pg_tables_start_to_streaming "$(secs "$t0" "$t1")" s
  result pg_tables_rss_streaming "$(( $(rss_kb "$RS_PID") / 1024 ))" MB
  "${PSQL[@]}" -d $db -c "DO \$\$ BEGIN FOR i IN 1..1000 LOOP EXECUTE format('INSERT INTO t%s VALUES (1, 1)', i * ($n / 1000)); END LOOP; END \$\$"
  wait_metric rowstream_changes_total 1000 120
  local h0 h1
  h0=$(metric rowstream_heartbeats_total); sleep 5; h1=$(metric rowstream_heartbeats_total)
  result pg_tables_heartbeats_per_second "$(python3 -c "print(f'{($h1-$h0)/5:.1f}')")" records/s
  result pg_tables_rss_peak "$(( $(rss_kb "$RS_PID") / 1024 ))" MB
  stop_rs
  pg_drop $db
  delete_topics "$RUN-tables.*"
}

# The same on MariaDB.
step_mytables() {
  local n=${SCALE_TABLES:-10000} t0 t1
  echo "== $n tables (mariadb), one shared topic =="
  "${MYSQL[@]}" -e "DROP DATABASE IF EXISTS rsscale; CREATE DATABASE rsscale"
  python3 -c "
for i in range(1, $n + 1):
    print(f'CREATE TABLE t{i} (id INT PRIMARY KEY, v INT);')" | "${MYSQL[@]}" rsscale
  cat >"$WORK/mytables.toml" <<TOML
[source]
type = "mysql"
url = "mysql://rowstream:rowstream@127.0.0.1:3306/rsscale"
server_id = 7101
[kafka]
brokers = "127.0.0.1:9092"
topic = "$RUN-mytables.{db}"
partitions = 3
[heartbeat]
interval_ms = 1000
[snapshot]
mode = "initial"
[state]
dir = "$WORK/state-mytables"
[admin]
listen = "$ADMIN"
TOML
  t0=$(now)
  start_rs "$WORK/mytables.toml" "$WORK/mytables.log"
  wait_log "$WORK/mytables.log" "streaming" 600
  t1=$(now)
  result my_tables_start_to_streaming "$(secs "$t0" "$t1")" s
  result my_tables_rss_streaming "$(( $(rss_kb "$RS_PID") / 1024 ))" MB
  python3 -c "
for i in range(1, 1001):
    print(f'INSERT INTO t{i * ($n // 1000)} VALUES (1, 1);')" | "${MYSQL[@]}" rsscale
  wait_metric rowstream_changes_total 1000 120
  result my_tables_rss_peak "$(( $(rss_kb "$RS_PID") / 1024 ))" MB
  stop_rs
  "${MYSQL[@]}" -e "DROP DATABASE IF EXISTS rsscale"
  delete_topics "$RUN-mytables.*"
}

# Snapshots of growing tables: rows/s should stay flat (time linear) and RSS flat.
step_snapshots() {
  local db=rsscale n t0 t1
  for n in ${SCALE_SNAPSHOTS:-1000000 4000000 16000000}; do
    echo "== snapshot of $n rows (postgres) =="
    pg_reset $db
    "${PSQL[@]}" -d $db -c "CREATE TABLE t(id bigint PRIMARY KEY, a int, b text, c numeric(12,2), d timestamptz)" \
      -c "INSERT INTO t SELECT g, g, md5(g::text), g * 1.5, now() FROM generate_series(1, $n) g" \
      -c "VACUUM ANALYZE t" -c "CREATE PUBLICATION p FOR ALL TABLES"
    pg_config $db rsscale_snap "$RUN-snap$n.{schema}.{table}" initial >"$WORK/snap.toml"
    t0=$(now)
    start_rs "$WORK/snap.toml" "$WORK/snap$n.log"
    wait_metric rowstream_snapshot_rows_total "$n" 3600
    t1=$(now)
    result "pg_snapshot_${n}_secs" "$(secs "$t0" "$t1")" s
    result "pg_snapshot_${n}_rate" "$(python3 -c "print(f'{$n/($t1-$t0):.0f}')")" rows/s
    result "pg_snapshot_${n}_rss" "$(( $(rss_kb "$RS_PID") / 1024 ))" MB
    stop_rs
    pg_drop $db
    delete_topics "$RUN-snap$n.public.t"
  done
}

# 500-column rows: a snapshot and streamed inserts.
step_wide() {
  local db=rsscale n=${SCALE_WIDE_ROWS:-100000} cols t0 t1
  echo "== $n rows of 500 columns (postgres) =="
  pg_reset $db
  cols=$(python3 -c "print(', '.join(f'c{i} int' for i in range(1, 500)))")
  "${PSQL[@]}" -d $db -c "CREATE TABLE w(id bigint PRIMARY KEY, $cols)" -c "CREATE PUBLICATION p FOR ALL TABLES"
  local vals
  vals=$(python3 -c "print(', '.join(f'g + {i}' for i in range(1, 500)))")
  "${PSQL[@]}" -d $db -c "INSERT INTO w SELECT g, $vals FROM generate_series(1, $n) g"
  pg_config $db rsscale_wide "$RUN-wide.{schema}.{table}" initial >"$WORK/wide.toml"
  t0=$(now)
  start_rs "$WORK/wide.toml" "$WORK/wide.log"
  wait_metric rowstream_snapshot_rows_total "$n" 1800
  t1=$(now)
  result pg_wide_snapshot_rate "$(python3 -c "print(f'{$n/($t1-$t0):.0f}')")" rows/s
  wait_log "$WORK/wide.log" "streaming" 60
  t0=$(now)
  "${PSQL[@]}" -d $db -c "INSERT INTO w SELECT g, $vals FROM generate_series($n + 1, $n + $n / 5) g"
  wait_metric rowstream_changes_total "$(( n / 5 ))" 1800
  t1=$(now)
  result pg_wide_stream_rate "$(python3 -c "print(f'{$n/5/($t1-$t0):.0f}')")" rows/s
  result pg_wide_rss "$(( $(rss_kb "$RS_PID") / 1024 ))" MB
  stop_rs
  pg_drop $db
  delete_topics "$RUN-wide.public.w"
}

# One huge value (SCALE_HUGE_MB, 50 by default) in a snapshot row and in a streamed change, on
# a topic that takes records that large.
step_huge() {
  local db=rsscale mb=${SCALE_HUGE_MB:-50} topic t0 t1 max
  echo "== a $mb MB value (postgres) =="
  max=$(( (mb * 2 + 16) * 1024 * 1024 ))
  pg_reset $db
  "${PSQL[@]}" -d $db -c "CREATE TABLE h(id int PRIMARY KEY, body text)" -c "CREATE PUBLICATION p FOR ALL TABLES" \
    -c "INSERT INTO h SELECT 1, string_agg(md5(g::text), '') FROM generate_series(1, $mb * 32768) g"
  topic="$RUN-huge.public.h"
  kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --create --topic "$topic" \
    --partitions 3 --config max.message.bytes=$max >/dev/null
  pg_config $db rsscale_huge "$RUN-huge.{schema}.{table}" initial "[kafka.properties]
\"message.max.bytes\" = $max" >"$WORK/huge.toml"
  t0=$(now)
  start_rs "$WORK/huge.toml" "$WORK/huge.log"
  wait_metric rowstream_snapshot_rows_total 1 600
  t1=$(now)
  result pg_huge_snapshot_secs "$(secs "$t0" "$t1")" s
  wait_log "$WORK/huge.log" "streaming" 60
  t0=$(now)
  "${PSQL[@]}" -d $db -c "INSERT INTO h SELECT 2, string_agg(md5((g + 7)::text), '') FROM generate_series(1, $mb * 32768) g"
  wait_metric rowstream_changes_total 1 600
  t1=$(now)
  result pg_huge_stream_secs "$(secs "$t0" "$t1")" s
  result pg_huge_rss "$(( $(rss_kb "$RS_PID") / 1024 ))" MB
  stop_rs
  pg_drop $db
  delete_topics "$topic"
}

# Many connectors on one worker group: two workers, SCALE_CONNECTORS connectors created held
# (KIP-980 initial_state STOPPED: no database is touched), then REST latencies.
step_connectors() {
  local n=${SCALE_CONNECTORS:-1000} group="$RUN-group" a1 a2 i
  echo "== $n connectors on a group of two workers =="
  a1=127.0.0.1:18091; a2=127.0.0.1:18092
  for a in $a1 $a2; do
    cat >"$WORK/worker-${a##*:}.toml" <<TOML
[worker]
listen = "$a"
group_id = "$group"
config_topic = "$group-configs"
[kafka]
brokers = "127.0.0.1:9092"
[state]
topic = "$group-offsets"
history_topic = "$group-history"
TOML
    "$BIN" worker --config "$WORK/worker-${a##*:}.toml" 2>"$WORK/worker-${a##*:}.log" &
    PIDS+=("$!")
  done
  local w1=${PIDS[-2]} w2=${PIDS[-1]}
  for a in $a1 $a2; do
    until curl -sf "http://$a/" >/dev/null; do sleep 0.1; done
  done
  python3 - "$a1" "$a2" "$n" "$RUN" <<'PY'
import json, sys, time, urllib.request
a1, a2, n, run = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def call(addr, method, path, body=None):
    req = urllib.request.Request(f"http://{addr}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
        code = r.status
    return code, (time.perf_counter() - t) * 1000
def pct(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2], xs[min(len(xs) - 1, int(len(xs) * 0.99))], xs[-1]
create = []
t0 = time.time()
for i in range(n):
    cfg = {"source.type": "postgres", "source.url": f"postgres://postgres@127.0.0.1:5432/db{i}",
           "source.slot": f"s{i}", "kafka.topic": f"{run}-c{i}.{{schema}}.{{table}}"}
    code, ms = call(a1 if i % 2 else a2, "POST", "/connectors",
                    {"name": f"c{i}", "config": cfg, "initial_state": "STOPPED"})
    assert code == 201, code
    create.append(ms)
print(f"RESULT connectors_create_all {time.time() - t0:.1f} s")
print("RESULT connectors_create_p50_p99_max " + " / ".join(f"{x:.1f}" for x in pct(create)) + " ms")
# both workers see every connector
deadline = time.time() + 120
while time.time() < deadline:
    seen = [len(json.loads(urllib.request.urlopen(f"http://{a}/connectors", timeout=60).read())) for a in (a1, a2)]
    if seen == [n, n]:
        break
    time.sleep(0.5)
print(f"RESULT connectors_listed_by_both {seen[0]} / {seen[1]} connectors")
for name, path in [("list", "/connectors"), ("expand_status", "/connectors?expand=status"),
                   ("status", f"/connectors/c{n // 2}/status"), ("config", f"/connectors/c{n // 2}/config")]:
    xs = [call(a1 if k % 2 else a2, "GET", path)[1] for k in range(40)]
    print(f"RESULT connectors_get_{name}_p50_p99_max " + " / ".join(f"{x:.1f}" for x in pct(xs)) + " ms")
PY
  result connectors_worker_rss "$(( $(rss_kb "$w1") / 1024 )) / $(( $(rss_kb "$w2") / 1024 ))" MB
  kill -TERM "$w1" "$w2"; wait "$w1" "$w2" 2>/dev/null || true
  delete_topics "$group-.*"
}

step="${*:-${SCALE_STEPS:-tables mytables snapshots wide huge connectors}}"
for s in $step; do
  "step_$s"
done
