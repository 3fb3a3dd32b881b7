#!/usr/bin/env bash
# Benchmarks, on demand (not in CI): rowstream against the raw ceilings (pg_recvlogical decoding,
# a bare rdkafka producer, Kafka's ProducerPerformance) and against Debezium 3.6 on a real Kafka
# Connect worker (bench/debezium-connect.sh), same data, same broker, same machine. The report
# also goes into docs/benchmarks.md, between its "bench:begin" and "bench:end" marks, with the
# date, the machine and the versions (BENCH_DOCS=0 leaves the file alone).
#
#   scripts/bench.sh [ROWS]        (default 300000 streamed changes, 200000 snapshot rows)
#   BENCH_DEBEZIUM=0 scripts/bench.sh   skip Debezium
#   BENCH_ONLY=postgres|mysql            one source only
#   BENCH_ONLY=ratios                    only the issue's targets, from medians of BENCH_RUNS (default 3)
#                                        interleaved runs on a broker of its own, freshly started
#                                        (bench/ratios.sh; ROWS default 300000, SNAP_ROWS 1000000)
#   BENCH_ONLY=failover                  only the distributed failover (BENCH_FAILOVER_RUNS, default 3)
#   BENCH_ONLY=scale                     only bench/scale.sh (10,000 tables, 1M-16M row snapshots,
#                                        500-column rows, a 50 MB value, 1,000 connectors)
#   BENCH_SSLMODE=require                Postgres over TLS (default disable), the same for every peer
#   BENCH_ONLY=latency                   only the latency step (below)
#   BENCH_LATENCY=0                      skip the latency step
#   BENCH_LATENCY_RATES="1000 5000 10000", BENCH_LATENCY_SECS=15   its commit rates and run length
#   BENCH_BIN=/path/to/rowstream         measure another build (before/after a change)
#   BENCH_BIN_B=/path/to/rowstream       latency step: A/B, runs of BENCH_BIN and this build
#                                        interleaved (A B A B) on the same broker
#
# The latency step: single-row transactions committed at a fixed rate by a stored procedure
# (Postgres: synchronous_commit = on), each row carrying the database clock at its write (µs),
# after one second of warm-up;
# a consumer (examples/latency) reads the topic and takes p50 / p99 / max of the time each row
# became readable minus that clock. The rate the database achieved is printed beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream/target}"
N=${1:-300000}
SNAP=${SNAP_ROWS:-200000}
DB=rsbench
SSLMODE=${BENCH_SSLMODE:-disable}
export PGSSLMODE=$SSLMODE
RUN="b$(date +%s)"
scripts/services.sh up
# the broker as deployed, with the full JIT: services.sh starts it with the client compiler only
# (a fast start, which the tests want), whose tail latencies are the broker's, not rowstream's
# (MariaDB p99 at 10k commits/s: 32.5 ms on it, 12.2 ms on the full JIT). Restarted once, empty.
KAFKA_PIDFILE="${ROWSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream}/kafka.pid"
if [ -f "$KAFKA_PIDFILE" ] && tr '\0' ' ' <"/proc/$(cat "$KAFKA_PIDFILE")/cmdline" 2>/dev/null | grep -q 'TieredStopAtLevel=1'; then
  echo "restarting the broker on 9092 with the full JIT (the tests start it with the client compiler only)"
  kill "$(cat "$KAFKA_PIDFILE")"
  for _ in $(seq 300); do (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null || break; sleep 0.1; done
  rm -f "$KAFKA_PIDFILE"
  KAFKA_JIT_OPTS="" scripts/services.sh up
fi
# everything printed from here on is the report docs/benchmarks.md gets
REPORT_FILE=$(mktemp)
exec > >(tee "$REPORT_FILE")
write_docs() {
  [ "${BENCH_DOCS:-1}" = 1 ] || return 0
  python3 - "$REPORT_FILE" "$ROOT/docs/benchmarks.md" <<'PY'
import datetime, os, platform, re, subprocess, sys
report, doc = open(sys.argv[1]).read(), sys.argv[2]
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except Exception:
        return "?"
mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
block = "\n".join([
    "<!-- bench:begin (written by scripts/bench.sh; do not edit by hand) -->",
    f"Run of {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, `BENCH_ONLY={os.environ.get('BENCH_ONLY', '')}`, "
    f"rowstream {run('git', 'rev-parse', '--short', 'HEAD')}, {run('rustc', '--version')}.",
    f"Machine: {os.cpu_count()} cores ({cpu}), {int(mem) // 1024 // 1024} GiB, {platform.system()} {platform.release()}.",
    f"Services: {run('psql', '-qAt', '-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-c', 'SHOW server_version')} (PostgreSQL), "
    f"{run('mariadb', '-uroot', '--socket=/run/mysqld/mysqld.sock', '-N', '-e', 'SELECT VERSION()')} (MariaDB), Apache Kafka 4.4.0 (KRaft, one broker), "
    "Debezium 3.6.1.Final on Kafka Connect 4.3.1.",
    "",
    "```text",
    report.strip(),
    "```",
    "<!-- bench:end -->",
])
text = open(doc).read()
new = re.sub(r"<!-- bench:begin.*?<!-- bench:end -->", lambda _: block, text, flags=re.S)
if new == text and "<!-- bench:begin" not in text:
    new = text.rstrip() + "\n\n## The last run\n\n" + block + "\n"
open(doc, "w").write(new)
PY
}
trap write_docs EXIT
if [ "${BENCH_ONLY:-}" = scale ]; then
  bench/scale.sh
  exit 0
fi
if [ "${BENCH_ONLY:-}" = failover ]; then
  # three workers, six connectors, writes running; kill -9 the busiest worker, then SIGTERM a
  # second one: seconds until every connector of the dead / leaving worker runs elsewhere.
  # Dominated by the group's session timeout (10 s), not by CPU: the test build is used.
  echo "== distributed failover: ${BENCH_FAILOVER_RUNS:-3} runs =="
  for i in $(seq "${BENCH_FAILOVER_RUNS:-3}"); do
    cargo test -q --test worker three_workers_share_connectors_and_fail_over -- --nocapture 2>&1 |
      grep -E "failover after kill -9|handover after SIGTERM" | sed -E 's/; placement after.*//'
  done
  exit 0
fi
cargo build --release --bin rowstream --example produce_raw --example latency >/dev/null 2>&1 || cargo build --release --bin rowstream --example produce_raw --example latency
BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/rowstream}"   # BENCH_BIN: compare another build
PSQL=(psql -qAt -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1)
KAFKA=127.0.0.1:9092   # the broker of create_topic and producer_perf (BENCH_ONLY=ratios starts its own)
WORK=$(mktemp -d)
now() { date +%s.%N; }
mb() { case "$1" in ""|*[!0-9]*) echo "-";; *) echo $(($1/1024));; esac; }
ratio() { python3 -c "import sys
try: a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.2f}')
except Exception: print('n/a')" "$1" "$2"; }

reset_db() {
  "${PSQL[@]}" -d postgres -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE database = '$DB' AND active_pid IS NOT NULL" >/dev/null
  sleep 0.5
  "${PSQL[@]}" -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$DB'" >/dev/null
  "${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB"
  "${PSQL[@]}" -d $DB -c "CREATE TABLE t(id bigint PRIMARY KEY, a int, b text, c numeric(12,2), d timestamptz)"
  "${PSQL[@]}" -d $DB -c "CREATE PUBLICATION p FOR ALL TABLES"
}

# $N inserted rows, in transactions of 100
load_changes() {
  "${PSQL[@]}" -d $DB <<SQL
DO \$\$ BEGIN
  FOR i IN 0..($N/100 - 1) LOOP
    INSERT INTO t SELECT g, g, md5(g::text), g * 1.5, now() FROM generate_series(i*100, i*100 + 99) g;
    COMMIT;
  END LOOP;
END \$\$;
SQL
}

config() { # slot mode topicprefix
  cat <<TOML
[source]
type = "postgres"
url = "postgres://postgres@127.0.0.1:5432/$DB?sslmode=$SSLMODE"
slot = "$1"
publication = "p"
[kafka]
brokers = "127.0.0.1:9092"
topic = "$3.{schema}.{table}"
partitions = 3
[snapshot]
mode = "$2"
[state]
dir = "$WORK/state-$1"
[admin]
listen = "127.0.0.1:18080"
TOML
}

metric() { curl -s 127.0.0.1:18080/metrics | awk -v m="$1" '$1==m {print $2}'; }

# run rowstream until `metric` reaches N with nothing in flight; prints "secs rss_kb"
run_rowstream() { # config-file metric target
  local t0 pid
  t0=$(now)
  "$BIN" run --config "$1" 2>"$WORK/rs.log" &
  pid=$!
  until [ "$(metric "$2" 2>/dev/null || echo 0)" -ge "$3" ] 2>/dev/null && [ "$(metric rowstream_in_flight_records)" = 0 ]; do
    kill -0 $pid 2>/dev/null || { cat "$WORK/rs.log" >&2; exit 1; }
    sleep 0.05
  done
  local t1 rss
  t1=$(now)
  rss=$(awk '/VmHWM/ {print $2}' /proc/$pid/status)
  kill -TERM $pid; wait $pid || true
  echo "$(python3 -c "print(f'{$t1-$t0:.3f}')") $rss"
}

# Debezium 3.6.1 as deployed: the Postgres connector on a real Kafka Connect worker (distributed
# mode, JSON converter; bench/debezium-connect.sh), timed from POST /connectors until the topic
# holds `target` records; prints "secs rss_kb" (the worker JVM's peak RSS)
run_debezium() { # snapshot.mode target slot
  [ "${BENCH_DEBEZIUM:-1}" = 1 ] || { echo "skipped -"; return; }
  cat >"$WORK/dbz-$3.json" <<JSON
{"database.hostname": "127.0.0.1", "database.port": "5432", "database.user": "postgres",
 "database.password": "x", "database.dbname": "$DB", "database.sslmode": "$SSLMODE",
 "table.include.list": "public.t", "plugin.name": "pgoutput", "publication.name": "p",
 "publication.autocreate.mode": "disabled", "message.prefix.exclude.list": "rowstream.*"}
JSON
  local out
  out=$("$ROOT/bench/debezium-connect.sh" run postgres "$2" "$WORK/dbz-$3.json" \
    topic.prefix="$RUN-dbz-$3" slot.name="$3" snapshot.mode="$1" 2>"$WORK/dbz-$3.log") ||
    { tail -20 "$WORK/dbz-$3.log" >&2; echo "failed -"; return; }
  local secs rss
  secs=$(echo "$out" | sed -n 's/^DONE records=[0-9]* secs=\([0-9.]*\).*/\1/p' | tail -1)
  rss=$(echo "$out" | sed -n 's/.* rss_kb=\([0-9]*\).*/\1/p' | tail -1)
  [ -n "$secs" ] || { tail -20 "$WORK/dbz-$3.log" >&2; echo "failed -"; return; }
  echo "$secs $rss"
}

kafka_tool() { KAFKA_HEAP=256m "$ROOT/scripts/kafka.sh" tool "$@"; }
create_topic() { kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA" --create --if-not-exists --topic "$1" --partitions 3 >/dev/null 2>&1 || true; }
# Kafka's own producer ceiling: ProducerPerformance (what kafka-producer-perf-test.sh runs), from
# the broker's jars, same record size, acks=all, idempotence on; prints records/s
producer_perf() { # topic records size
  create_topic "$1"
  kafka_tool org.apache.kafka.tools.ProducerPerformance --topic "$1" --num-records "$2" --record-size "$3" \
    --throughput -1 --producer-props bootstrap.servers="$KAFKA" acks=all enable.idempotence=true linger.ms=5 2>/dev/null |
    tail -1 | sed -n 's/^[0-9]* records sent, \([0-9.]*\) records\/sec.*/\1/p'
}

# commit-to-consumable latency: one run of BIN at RATE single-row commits/s for SECS seconds;
# prints "achieved p50 p99 max" (ms)
latency_run() { # postgres|mysql bin rate secs
  local src=$1 bin=$2 rate=$3 secs=$4 topic pid cpid t0 t1 w
  w="$WORK/lat-$src"; rm -rf "$w"; mkdir -p "$w"
  topic="$RUN-lat$rate-$RANDOM"
  if [ "$src" = postgres ]; then
    "${PSQL[@]}" -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'rsb_lat'" >/dev/null
    "${PSQL[@]}" -d $DB -c "DROP TABLE IF EXISTS lat" -c "CREATE TABLE lat(id bigint PRIMARY KEY, ts bigint NOT NULL)"
    cat >"$w/c.toml" <<TOML
[source]
type = "postgres"
url = "postgres://postgres@127.0.0.1:5432/$DB?sslmode=$SSLMODE"
slot = "rsb_lat"
publication = "p"
TOML
    topic="$topic.public.lat"
  else
    "${MYSQL[@]}" -e "DROP TABLE IF EXISTS rsbench.lat; CREATE TABLE rsbench.lat (id BIGINT PRIMARY KEY, ts BIGINT NOT NULL)"
    cat >"$w/c.toml" <<TOML
[source]
type = "mysql"
url = "mysql://rowstream:rowstream@127.0.0.1:3306/rsbench"
server_id = 7002
TOML
    topic="$topic.rsbench.lat"
  fi
  cat >>"$w/c.toml" <<TOML
[kafka]
brokers = "127.0.0.1:9092"
topic = "${topic%.*.lat}.{db}.{table}"
partitions = 3
[snapshot]
mode = "never"
[state]
dir = "$w/state"
[admin]
listen = "127.0.0.1:18080"
TOML
  [ "$src" = postgres ] && sed -i 's/{db}/{schema}/' "$w/c.toml"
  create_topic "$topic"
  "$bin" run --config "$w/c.toml" 2>"$w/rs.log" &
  pid=$!
  until grep -qs "streaming" "$w/rs.log"; do kill -0 $pid 2>/dev/null || { cat "$w/rs.log" >&2; return 1; }; sleep 0.05; done
  # one second of warm-up rows (ids up to $rate), read but not counted
  "$CARGO_TARGET_DIR/release/examples/latency" "$topic" $((rate * secs)) $((secs + 60)) $rate >"$w/lat.out" &
  cpid=$!
  until grep -qs READY "$w/lat.out"; do sleep 0.05; done
  t0=$(now)
  if [ "$src" = postgres ]; then
    "${PSQL[@]}" -d $DB -c "SET synchronous_commit = on" -c "CALL lat_gen($rate, $((secs + 1)))"
  else
    "${MYSQL[@]}" rsbench -e "CALL lat_gen($rate, $((secs + 1)))"
  fi
  t1=$(now)
  wait $cpid || true
  kill -TERM $pid; wait $pid || true
  python3 -c "print(f'{$rate*($secs+1)/($t1-$t0):,.0f}/s', end=' ')"
  sed -n 's/^LATENCY n=[0-9]* p50=\([0-9.]*\) p99=\([0-9.]*\) max=\([0-9.]*\) missing=\([0-9]*\)/\1 \2 \3 \4/p' "$w/lat.out"
}

latency_step() { # postgres|mysql
  local src=$1 rate i label bin
  if [ "$src" = postgres ]; then
    reset_db
    "${PSQL[@]}" -d $DB <<'SQL'
CREATE PROCEDURE lat_gen(rate int, secs int) LANGUAGE plpgsql AS $$
DECLARE t0 timestamptz := clock_timestamp(); ahead float8;
BEGIN
  FOR i IN 1..rate*secs LOOP
    INSERT INTO lat VALUES (i, (extract(epoch from clock_timestamp()) * 1000000)::bigint);
    COMMIT;
    ahead := i::float8 / rate - extract(epoch from clock_timestamp() - t0);
    IF ahead > 0 THEN PERFORM pg_sleep(ahead); END IF;
  END LOOP;
END $$;
SQL
  else
    "${MYSQL[@]}" -e "CREATE DATABASE IF NOT EXISTS rsbench; DROP PROCEDURE IF EXISTS rsbench.lat_gen"
    "${MYSQL[@]}" rsbench <<'SQL'
DELIMITER //
CREATE PROCEDURE lat_gen(rate INT, secs INT)
BEGIN
  DECLARE i INT DEFAULT 0;
  DECLARE t0 DOUBLE DEFAULT UNIX_TIMESTAMP(SYSDATE(6));
  DECLARE ahead DOUBLE;
  WHILE i < rate * secs DO
    SET i = i + 1;
    INSERT INTO lat VALUES (i, CAST(UNIX_TIMESTAMP(SYSDATE(6)) * 1000000 AS SIGNED));
    SET ahead = i / rate - (UNIX_TIMESTAMP(SYSDATE(6)) - t0);
    IF ahead > 0 THEN DO SLEEP(ahead); END IF;
  END WHILE;
END //
DELIMITER ;
SQL
  fi
  echo "== latency, $src: single-row commits at a fixed rate, ${LAT_SECS}s per run (ms from the row's write to readable in Kafka) =="
  printf '  %-6s %-8s %10s %8s %8s %8s %8s\n' rate build achieved p50 p99 max missing
  for rate in $LAT_RATES; do
    for i in 1 2; do
      for label in A B; do
        if [ $label = A ]; then bin=$BIN; else bin=${BENCH_BIN_B:-}; fi
        [ -n "$bin" ] || continue
        [ $label = A ] && [ $i = 2 ] && [ -z "${BENCH_BIN_B:-}" ] && continue
        printf '  %-6s %-8s %10s %8s %8s %8s %8s\n' "$rate" "$label" $(latency_run "$src" "$bin" "$rate" "$LAT_SECS")
      done
    done
  done
}
LAT_RATES=${BENCH_LATENCY_RATES:-1000 5000 10000}
LAT_SECS=${BENCH_LATENCY_SECS:-15}
MYSQL=(mariadb -uroot --socket=/run/mysqld/mysqld.sock)
if [ "${BENCH_ONLY:-}" = ratios ]; then
  # bench/ratios.sh runs in this shell: it uses the helpers above
  # shellcheck source=bench/ratios.sh
  . "$ROOT/bench/ratios.sh"
  rm -rf "$WORK"
  exit 0
fi
if [ "${BENCH_ONLY:-}" = latency ]; then
  [ -n "${BENCH_BIN_B:-}" ] && echo "latency A/B: A = $BIN, B = $BENCH_BIN_B"
  latency_step postgres
  latency_step mysql
  rm -rf "$WORK"
  exit 0
fi

if [ "${BENCH_ONLY:-}" != mysql ]; then
echo "== streaming: $N changes (inserts in transactions of 100) =="
reset_db
for s in rsb_stream dbzb_stream rawb_stream; do
  "${PSQL[@]}" -d $DB -c "SELECT pg_create_logical_replication_slot('$s', 'pgoutput')" >/dev/null
done
create_topic "$RUN-dbz-dbzb_stream.public.t"
load_changes
END_LSN=$("${PSQL[@]}" -d $DB -c "SELECT pg_current_wal_lsn()")
t0=$(now)
pg_recvlogical -h 127.0.0.1 -U postgres -d $DB --slot rawb_stream --start -o proto_version=1 -o publication_names=p --endpos="$END_LSN" -f /dev/null
RAW_DECODE=$(python3 -c "print(f'{$(now)-$t0:.3f}')")
config rsb_stream never "$RUN" >"$WORK/stream.toml"
read -r RS_SECS RS_RSS < <(run_rowstream "$WORK/stream.toml" rowstream_changes_total "$N")
create_topic "$RUN.raw"
read -r RAW_KAFKA_LINE < <("$CARGO_TARGET_DIR/release/examples/produce_raw" "$RUN.raw" "$N" 400 2>/dev/null | grep DONE || echo "n/a")
RAW_KAFKA=$(echo "$RAW_KAFKA_LINE" | sed -n 's/.*secs=\([0-9.]*\).*/\1/p')
PERF_RATE=$(producer_perf "$RUN.perf" "$N" 400)
PERF_SECS=$(python3 -c "r='$PERF_RATE'; print(f'{$N/float(r):.3f}' if r else '-')")
read -r DBZ_SECS DBZ_RSS < <(run_debezium no_data "$N" dbzb_stream)

echo "== snapshot: $SNAP rows =="
reset_db
"${PSQL[@]}" -d $DB -c "INSERT INTO t SELECT g, g, md5(g::text), g * 1.5, now() FROM generate_series(1, $SNAP) g"
create_topic "$RUN-dbz-dbzb_snap.public.t"
config rsb_snap initial "$RUN-snap" >"$WORK/snap.toml"
read -r RSS_SECS RSS_RSS < <(run_rowstream "$WORK/snap.toml" rowstream_snapshot_rows_total "$SNAP")
read -r DBZS_SECS DBZS_RSS < <(run_debezium initial "$SNAP" dbzb_snap)

echo "== sink: the snapshot's topic ($SNAP rows) into Parquet files =="
cat >"$WORK/sink.toml" <<TOML
[kafka]
brokers = "127.0.0.1:9092"
[sink]
topics = ["$RUN-snap.public.t"]
url = "$WORK/lake"
flush_records = 50000
TOML
t0=$(now)
/usr/bin/time -f "RSS %M" "$BIN" sink --config "$WORK/sink.toml" --idle-exit-secs 1 2>"$WORK/sink.log" || { tail -5 "$WORK/sink.log" >&2; }
# the last second was the idle wait that ends the run
SINK_SECS=$(python3 -c "print(f'{$(now)-$t0-1:.3f}')")
SINK_RSS=$(sed -n 's/^RSS \([0-9]*\)/\1/p' "$WORK/sink.log" | tail -1)
SINK_ROWS=$(sed -n 's/.*sink stopped files=[0-9]* rows=\([0-9]*\).*/\1/p' "$WORK/sink.log" | tail -1)
SINK_BYTES=$(du -sb "$WORK/lake" | cut -f1)

echo "== sink: the snapshot's topic ($SNAP rows) into a Paimon table =="
mkdir -p "$WORK/warehouse"
cat >"$WORK/sink-paimon.toml" <<TOML
[kafka]
brokers = "127.0.0.1:9092"
[sink]
format = "paimon"
topics = ["$RUN-snap.public.t"]
url = "$WORK/warehouse"
flush_records = 50000
[sink.table_options]
bucket = "2"
TOML
t0=$(now)
/usr/bin/time -f "RSS %M" "$BIN" sink --config "$WORK/sink-paimon.toml" --idle-exit-secs 1 2>"$WORK/sink-paimon.log" || { tail -5 "$WORK/sink-paimon.log" >&2; }
PSINK_SECS=$(python3 -c "print(f'{$(now)-$t0-1:.3f}')")
PSINK_RSS=$(sed -n 's/^RSS \([0-9]*\)/\1/p' "$WORK/sink-paimon.log" | tail -1)
PSINK_ROWS=$(sed -n 's/.*sink stopped files=[0-9]* rows=\([0-9]*\).*/\1/p' "$WORK/sink-paimon.log" | tail -1)
PSINK_BYTES=$(du -sb "$WORK/warehouse" | cut -f1)

echo "== lake: the snapshot as a paimon-profile topic, into Paimon by rowstream sink and by Paimon's Flink ingest =="
config rsb_psnap initial "$RUN-psnap" | sed 's/^\[state\]/[encode]\nprofile = "paimon"\nside_topic = "'"$RUN"'-side"\n[state]/' >"$WORK/psnap.toml"
run_rowstream "$WORK/psnap.toml" rowstream_snapshot_rows_total "$SNAP" >/dev/null
mkdir -p "$WORK/warehouse-p"
sed -e "s|$RUN-snap.public.t|$RUN-psnap.public.t|" -e "s|$WORK/warehouse|$WORK/warehouse-p|" "$WORK/sink-paimon.toml" >"$WORK/sink-paimon-p.toml"
t0=$(now)
/usr/bin/time -f "RSS %M" "$BIN" sink --config "$WORK/sink-paimon-p.toml" --idle-exit-secs 1 2>"$WORK/sink-paimon-p.log" || { tail -5 "$WORK/sink-paimon-p.log" >&2; }
LSINK_SECS=$(python3 -c "print(f'{$(now)-$t0-1:.3f}')")
LSINK_RSS=$(sed -n 's/^RSS \([0-9]*\)/\1/p' "$WORK/sink-paimon-p.log" | tail -1)
LSINK_ROWS=$(sed -n 's/.*sink stopped files=[0-9]* rows=\([0-9]*\).*/\1/p' "$WORK/sink-paimon-p.log" | tail -1)
# Paimon's kafka_sync_database on a local Flink MiniCluster (scripts/flink-ingest.sh), from JVM
# start until a Paimon snapshot holds every row (its totalRecordCount), peak RSS of the JVM
FLINK_SECS=failed; FLINK_RSS=
if "$ROOT/scripts/flink-ingest.sh" jars >/dev/null 2>"$WORK/flink-jars.log"; then
  t0=$(now)
  FLINK_CHECKPOINT_MS=1000 "$ROOT/scripts/flink-ingest.sh" run "$WORK/warehouse-f" rsbench 127.0.0.1:9092 "$RUN-psnap.public.t" \
    --table_conf bucket=2 2>"$WORK/flink.log" &
  fpid=$!
  deadline=$(( $(date +%s) + 600 ))
  while kill -0 $fpid 2>/dev/null && [ "$(date +%s)" -lt $deadline ]; do
    n=$(python3 - "$WORK/warehouse-f/rsbench.db/t/snapshot" <<'PY' 2>/dev/null
import json, os, sys
d = sys.argv[1]
try:
    latest = open(os.path.join(d, "LATEST")).read().strip()
    print(json.load(open(os.path.join(d, "snapshot-" + latest))).get("totalRecordCount", 0))
except OSError:
    print(0)
PY
)
    if [ "${n:-0}" -ge "$SNAP" ]; then
      FLINK_SECS=$(python3 -c "print(f'{$(now)-$t0:.3f}')")
      FLINK_RSS=$(awk '/VmHWM/ {print $2}' /proc/$fpid/status)
      break
    fi
    sleep 0.2
  done
  kill $fpid 2>/dev/null; wait $fpid 2>/dev/null || true
  [ "$FLINK_SECS" = failed ] && tail -5 "$WORK/flink.log" >&2
else
  tail -3 "$WORK/flink-jars.log" >&2
fi


echo "== exactly-once: $N changes, off vs on (state in Kafka both times) =="
reset_db
for s in rsb_eos_off rsb_eos_on; do
  "${PSQL[@]}" -d $DB -c "SELECT pg_create_logical_replication_slot('$s', 'pgoutput')" >/dev/null
done
load_changes
for mode in off on; do
  config "rsb_eos_$mode" never "$RUN-eos-$mode" | python3 -c "
import sys
t = sys.stdin.read()
t = t.replace('partitions = 3', 'partitions = 3\nexactly_once = ' + ('true' if '$mode' == 'on' else 'false'))
t = t.replace('[state]', '[state]\nbackend = \"kafka\"\nconnector = \"$RUN-$mode\"\ntopic = \"$RUN-$mode-offsets\"\nhistory_topic = \"$RUN-$mode-history\"')
print(t)" >"$WORK/eos-$mode.toml"
done
read -r EOS_OFF_SECS EOS_OFF_RSS < <(run_rowstream "$WORK/eos-off.toml" rowstream_changes_total "$N")
read -r EOS_ON_SECS EOS_ON_RSS < <(run_rowstream "$WORK/eos-on.toml" rowstream_changes_total "$N")
fi

rate() { python3 -c "import sys; n,s=float(sys.argv[1]),sys.argv[2]; print(f'{n/float(s):,.0f}/s' if s not in ('-','failed','skipped','') else s)" "$1" "$2"; }
if [ "${BENCH_ONLY:-}" != mysql ]; then
cat <<REPORT

== results ($(nproc) cores, postgres sslmode=$SSLMODE) ==
streaming $N changes, end to end into Kafka (acks=all), from process start:
  rowstream           ${RS_SECS}s  $(rate $N $RS_SECS)  max RSS $(mb "$RS_RSS") MB
  debezium 3.6        ${DBZ_SECS}s  $(rate $N $DBZ_SECS)  max RSS $(mb "${DBZ_RSS:-}") MB  (on Kafka Connect 4.3.1, from connector creation)
  pg_recvlogical      ${RAW_DECODE}s  $(rate $N $RAW_DECODE)  (decode ceiling, no Kafka)
  raw producer        ${RAW_KAFKA}s  $(rate $N ${RAW_KAFKA:-})  (librdkafka ceiling, 400 B records)
  producer-perf-test  ${PERF_SECS}s  $(rate $N ${PERF_SECS:-})  (Kafka's ProducerPerformance, 400 B, acks=all, idempotent)
  rowstream / decode ceiling: $(ratio "$RAW_DECODE" "$RS_SECS") of its speed; / producer-perf-test: $(ratio "${PERF_SECS:-0}" "$RS_SECS"); vs debezium: $(ratio "${DBZ_SECS:-0}" "$RS_SECS")x faster
snapshot $SNAP rows:
  rowstream           ${RSS_SECS}s  $(rate $SNAP $RSS_SECS)  max RSS $(mb "$RSS_RSS") MB
  debezium 3.6        ${DBZS_SECS}s  $(rate $SNAP $DBZS_SECS)  max RSS $(mb "${DBZS_RSS:-}") MB  (on Kafka Connect 4.3.1, from connector creation)
  rowstream vs debezium: $(ratio "${DBZS_SECS:-0}" "$RSS_SECS")x faster
rowstream sink, the snapshot topic into Parquet (zstd) on the local disk:
  ${SINK_ROWS:-?} rows in ${SINK_SECS}s  $(rate "${SINK_ROWS:-0}" $SINK_SECS)  max RSS $(mb "${SINK_RSS:-}") MB  files $(mb "$((SINK_BYTES/1024))") MB
rowstream sink, the snapshot topic into a Paimon primary-key table (bucket = 2) on the local disk:
  ${PSINK_ROWS:-?} rows in ${PSINK_SECS}s  $(rate "${PSINK_ROWS:-0}" $PSINK_SECS)  max RSS $(mb "${PSINK_RSS:-}") MB  warehouse $(mb "$((PSINK_BYTES/1024))") MB
the same $SNAP rows as a paimon-profile topic into a Paimon table (bucket = 2), two ways:
  rowstream sink      ${LSINK_SECS}s  $(rate "${LSINK_ROWS:-0}" $LSINK_SECS)  max RSS $(mb "${LSINK_RSS:-}") MB
  paimon flink ingest ${FLINK_SECS}s  $(rate $SNAP $FLINK_SECS)  max RSS $(mb "${FLINK_RSS:-}") MB  (kafka_sync_database, local MiniCluster, 1 s checkpoints, from JVM start)
  rowstream sink vs Flink: $(ratio "${FLINK_SECS:-0}" "$LSINK_SECS")x faster
exactly-once, $N changes into Apache Kafka (state in Kafka both times):
  exactly_once = false ${EOS_OFF_SECS}s  $(rate $N $EOS_OFF_SECS)  max RSS $(mb "$EOS_OFF_RSS") MB
  exactly_once = true  ${EOS_ON_SECS}s  $(rate $N $EOS_ON_SECS)  max RSS $(mb "$EOS_ON_RSS") MB
  transactions on / off: $(ratio "$EOS_OFF_SECS" "$EOS_ON_SECS") of the speed
REPORT
fi

if [ "${BENCH_ONLY:-}" != postgres ]; then
echo "== mariadb: $N binlog changes (inserts in transactions of 100) =="
"${MYSQL[@]}" -e "DROP DATABASE IF EXISTS rsbench; CREATE DATABASE rsbench; CREATE TABLE rsbench.t (id BIGINT PRIMARY KEY, a INT, b VARCHAR(64), c DECIMAL(12,2), d DATETIME(6))"
cat >"$WORK/my.toml" <<TOML
[source]
type = "mysql"
url = "mysql://rowstream:rowstream@127.0.0.1:3306/rsbench"
server_id = 7001
[kafka]
brokers = "127.0.0.1:9092"
topic = "$RUN-my.{db}.{table}"
partitions = 3
[snapshot]
mode = "never"
[state]
dir = "$WORK/state-my"
[admin]
listen = "127.0.0.1:18080"
TOML
# a first run records the current binlog position, then the changes pile up while it is stopped
"$BIN" run --config "$WORK/my.toml" 2>"$WORK/rs.log" &
pid=$!
until grep -q "streaming binlog" "$WORK/rs.log"; do sleep 0.05; done
sleep 0.5; kill -TERM $pid; wait $pid || true
START=$(python3 -c "import json; p=json.load(open('$WORK/state-my/state.json')).get('position') or {}; print(p.get('file',''), p.get('pos',''))")
read -r MFILE MPOS <<<"$START"
if [ -z "$MFILE" ]; then read -r MFILE MPOS < <("${MYSQL[@]}" -N -e "SHOW MASTER STATUS" | awk '{print $1, $2}'); fi
python3 - "$N" <<PY | "${MYSQL[@]}" rsbench
import sys
n = int(sys.argv[1])
for i in range(n // 100):
    print(f"INSERT INTO t SELECT seq, seq, MD5(seq), seq * 1.5, NOW(6) FROM seq_{i*100}_to_{i*100+99};")
PY
read -r EFILE EPOS < <("${MYSQL[@]}" -N -e "SHOW MASTER STATUS" | awk '{print $1, $2}')
t0=$(now)
mariadb-binlog --read-from-remote-server -h127.0.0.1 -urowstream -prowstream --base64-output=decode-rows -v \
  --start-position="$MPOS" --stop-position="$EPOS" "$MFILE" >/dev/null
MY_RAW=$(python3 -c "print(f'{$(now)-$t0:.3f}')")
read -r MY_SECS MY_RSS < <(run_rowstream "$WORK/my.toml" rowstream_changes_total "$N")
cat <<REPORT
mariadb $N binlog changes, end to end into Kafka, from process start:
  rowstream           ${MY_SECS}s  $(rate $N $MY_SECS)  max RSS $(mb "$MY_RSS") MB
  mariadb-binlog      ${MY_RAW}s  $(rate $N $MY_RAW)  (decode ceiling, -v to /dev/null)
  rowstream / decode ceiling: $(ratio "$MY_RAW" "$MY_SECS") of its speed
  (no Debezium figure: its MySQL connector refuses MariaDB 10.11 (SHOW BINARY LOG STATUS), and
   debezium-connector-mariadb is not on Maven Central here; Redpanda Connect's mysql_cdc is
   enterprise-licensed, see bench/redpanda/NOTES.md)
REPORT
fi
if [ "${BENCH_LATENCY:-1}" = 1 ]; then
  [ -n "${BENCH_BIN_B:-}" ] && echo "latency A/B: A = $BIN, B = $BENCH_BIN_B"
  [ "${BENCH_ONLY:-}" = mysql ] || latency_step postgres
  [ "${BENCH_ONLY:-}" = postgres ] || latency_step mysql
fi
rm -rf "$WORK"
