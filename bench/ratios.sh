# shellcheck shell=bash disable=SC2153  # sourced by scripts/bench.sh, which sets RUN, N, DB, ...
# The issue's throughput targets, as ratios of medians of interleaved runs on a freshly started
# broker. Not a script of its own: scripts/bench.sh sources it (BENCH_ONLY=ratios) after it has
# started the services, built the release binary and defined its helpers (reset_db,
# load_changes, run_rowstream, metric, producer_perf, create_topic, now, mb; PSQL, MYSQL, DB,
# SSLMODE, BIN, WORK, RUN, N, ROOT).
#
#   BENCH_ONLY=ratios scripts/bench.sh [ROWS]     ROWS streamed changes (default 300000)
#   SNAP_ROWS=1000000                             snapshot rows, each source
#   BENCH_RUNS=3                                  interleaved runs; every figure is a median of them
#   BENCH_KAFKA_PORT=19092                        port of the broker this step starts (controller +1)
#
# The targets (from the issue):
#   postgres streaming >= 0.9 of pg_recvlogical (the decode ceiling)
#   mariadb streaming  >= 0.8 of min(mariadb-binlog (the decode ceiling), the producer ceiling)
#   postgres snapshot, mariadb snapshot >= 0.8 of the producer ceiling
# The producer ceiling is Kafka's ProducerPerformance (producer_perf: acks=all, idempotent) with
# the size of rowstream's records in that run: the average bytes of key + value + headers of the
# row records it wrote, read back from its topic (bench/record-sizes.py; ProducerPerformance
# sends a value of that size, no key, no header); one ProducerPerformance run per distinct
# (size, count) in a run.
#
# The broker: a single node of its own (scripts/kafka.sh node, the same settings as the one of
# scripts/services.sh), started empty in $WORK/kafka at the start of the step and stopped at its
# end, so the broker is fresh and the shared one on 9092 (tests may be using it) is left alone.
# The data is loaded once per source; in each run, in this order: pg_recvlogical, rowstream
# Postgres streaming, ProducerPerformance (its record size), rowstream Postgres snapshot,
# ProducerPerformance (its size), mariadb-binlog, rowstream MariaDB streaming, [ProducerPerformance
# (its size, when it differs)], rowstream MariaDB snapshot, [ProducerPerformance (its size, when
# it differs)]. Every rowstream run has a topic prefix, a slot (Postgres) and a state dir of its
# own; a run's topics are deleted once measured (the broker keeps everything otherwise).

SNAP=${SNAP_ROWS:-1000000}
RUNS=${BENCH_RUNS:-3}
KPORT=${BENCH_KAFKA_PORT:-19092}
# the broker and ProducerPerformance with the full JIT, as deployed (the tests' broker runs the
# client compiler only, which starts faster and runs slower)
export KAFKA_JIT_OPTS=""
KAFKA=127.0.0.1:$KPORT
KDIR="$WORK/kafka"
RES="$WORK/ratios.tsv"   # run measurement count secs rss_kb record_bytes
KPID=

ratios_stop_broker() {
  if [ -n "$KPID" ] && kill -0 "$KPID" 2>/dev/null; then
    kill -TERM "$KPID" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$KPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$KPID" 2>/dev/null || true
    wait "$KPID" 2>/dev/null || true
  fi
  KPID=
  rm -rf "$KDIR"
}
ratios_exit() {
  local rc=$?
  ratios_stop_broker
  # the slots left by the runs would hold the WAL for ever
  "${PSQL[@]}" -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = '$DB' AND slot_name LIKE 'rsr\_%' AND NOT active" >/dev/null 2>&1 || true
  write_docs
  return $rc
}
trap ratios_exit EXIT

secs_of() { python3 -c "import sys; print(f'{float(sys.argv[2])-float(sys.argv[1]):.3f}')" "$1" "$2"; }
# one figure: kept in $RES and printed
record() { # run measurement count secs rss_kb bytes label
  echo "$1 $2 $3 $4 ${5:--} ${6:--}" >>"$RES"
  python3 - "$@" <<'PY'
import sys
run, m, n, secs, rss, size, label = sys.argv[1:8]
n, secs = int(n), float(secs)
extra = []
if rss not in ("", "-"):
    extra.append(f"peak RSS {int(rss) // 1024} MB")
if size not in ("", "-"):
    extra.append(f"records of {size} B")
print(f"  {label:<44} {n:>9,} in {secs:8.3f}s  {n / secs:>11,.0f}/s  {', '.join(extra)}".rstrip(), flush=True)
PY
}
drop_topics() { python3 "$ROOT/bench/topic-end-offsets.py" "$KAFKA" --delete "$@" >/dev/null || true; }
# the row records of a topic: "bytes count key value headers", bytes the average of key + value +
# headers (rowstream's one header, rowstream.order, is about 40 B), and the averages of each
record_size() { # topic
  local out
  out=$(python3 "$ROOT/bench/record-sizes.py" "$KAFKA" "$1")
  echo "$out" >>"$WORK/record-sizes.log"
  python3 -c "import sys; f = dict(kv.split('=') for kv in sys.argv[1].split()); print(round(float(f['avg_record'])), f['records'], f['avg_key'], f['avg_value'], f['avg_headers'])" "$out"
}

# ProducerPerformance with `count` records of `bytes`, once per (bytes, count) in a run
declare -A PERF_DONE=()
perf() { # run measurement count bytes label
  local key="$3x$4" rate secs
  if [ -n "${PERF_DONE[$key]:-}" ]; then
    secs=${PERF_DONE[$key]}
    record "$1" "$2" "$3" "$secs" - "$4" "$5 (the run above)"
    return
  fi
  rate=$(producer_perf "$RUN-perf$1-$4" "$3" "$4")
  [ -n "$rate" ] || { echo "ProducerPerformance failed" >&2; exit 1; }
  secs=$(python3 -c "print(f'{$3/float($rate):.3f}')")
  PERF_DONE[$key]=$secs
  record "$1" "$2" "$3" "$secs" - "$4" "$5"
  drop_topics "$RUN-perf$1-$4"
  # and librdkafka with rowstream's producer settings (examples/produce_raw): the same records
  # from the library rowstream sends with, a second, often higher, ceiling
  create_topic "$RUN-raw$1-$4"
  secs=$("$CARGO_TARGET_DIR/release/examples/produce_raw" "$RUN-raw$1-$4" "$3" "$4" "$KAFKA" 2>/dev/null |
    sed -n 's/^DONE .*secs=\([0-9.]*\).*/\1/p')
  [ -n "$secs" ] || { echo "produce_raw failed" >&2; exit 1; }
  record "$1" "raw_${2#perf_}" "$3" "$secs" - "$4" "librdkafka producer, ${5#ProducerPerformance, }"
  drop_topics "$RUN-raw$1-$4"
}

pg_toml() { # slot publication mode prefix [table]
  local tables=
  [ -z "${5:-}" ] || tables="tables = [\"$5\"]"
  cat <<TOML
[source]
type = "postgres"
url = "postgres://postgres@127.0.0.1:5432/$DB?sslmode=$SSLMODE"
slot = "$1"
publication = "$2"
$tables
[kafka]
brokers = "$KAFKA"
topic = "$4.{schema}.{table}"
partitions = 3
[snapshot]
mode = "$3"
[state]
dir = "$WORK/state-$1"
[admin]
listen = "127.0.0.1:18080"
TOML
}
my_toml() { # name server_id mode prefix table
  cat <<TOML
[source]
type = "mysql"
url = "mysql://rowstream:rowstream@127.0.0.1:3306/rsbench"
server_id = $2
tables = ["rsbench.$5"]
[kafka]
brokers = "$KAFKA"
topic = "$4.{db}.{table}"
partitions = 3
[snapshot]
mode = "$3"
[state]
dir = "$WORK/state-$1"
[admin]
listen = "127.0.0.1:18080"
TOML
}

echo "== ratios: $RUNS interleaved runs, $N streamed changes, $SNAP snapshot rows per source, a fresh broker on $KAFKA =="
if (exec 3<>"/dev/tcp/127.0.0.1/$KPORT") 2>/dev/null; then
  echo "bench/ratios.sh: 127.0.0.1:$KPORT is taken (BENCH_KAFKA_PORT picks another port)" >&2
  exit 1
fi
rm -rf "$KDIR"
"$ROOT/scripts/kafka.sh" node "$KDIR" "$KPORT" "$((KPORT + 1))" >"$WORK/kafka.log" 2>&1 &
KPID=$!
deadline=$((SECONDS + 120))
until python3 "$ROOT/bench/topic-end-offsets.py" "$KAFKA" rsr-probe >/dev/null 2>&1; do
  kill -0 "$KPID" 2>/dev/null || { tail -20 "$WORK/kafka.log" >&2; echo "the broker did not start" >&2; exit 1; }
  [ $SECONDS -lt $deadline ] || { tail -20 "$WORK/kafka.log" >&2; echo "the broker did not answer in 120 s" >&2; exit 1; }
  sleep 0.2
done
echo "broker up (pid $KPID)"

echo "== loading postgres: $SNAP rows to snapshot (table snap), $N changes in transactions of 100 (table t) =="
reset_db
"${PSQL[@]}" -d "$DB" -c "CREATE TABLE snap(id bigint PRIMARY KEY, a int, b text, c numeric(12,2), d timestamptz)" \
  -c "INSERT INTO snap SELECT g, g, md5(g::text), g * 1.5, now() FROM generate_series(1, $SNAP) g" \
  -c "CREATE PUBLICATION ps FOR TABLE snap" -c "VACUUM ANALYZE snap"
# one slot per run and reader, before the changes: pg_recvlogical and rowstream each consume theirs
for i in $(seq "$RUNS"); do
  for s in "rsr_raw_$i" "rsr_pg_$i"; do
    "${PSQL[@]}" -d "$DB" -c "SELECT pg_create_logical_replication_slot('$s', 'pgoutput')" >/dev/null
  done
done
load_changes
END_LSN=$("${PSQL[@]}" -d "$DB" -c "SELECT pg_current_wal_lsn()")

echo "== loading mariadb: $SNAP rows to snapshot (table snap), $N changes in transactions of 100 (table t) =="
"${MYSQL[@]}" -e "DROP DATABASE IF EXISTS rsbench; CREATE DATABASE rsbench;
  CREATE TABLE rsbench.t (id BIGINT PRIMARY KEY, a INT, b VARCHAR(64), c DECIMAL(12,2), d DATETIME(6));
  CREATE TABLE rsbench.snap (id BIGINT PRIMARY KEY, a INT, b VARCHAR(64), c DECIMAL(12,2), d DATETIME(6))"
python3 - "$SNAP" <<'PY' | "${MYSQL[@]}" rsbench
import sys
n, step = int(sys.argv[1]), 100000
for lo in range(1, n + 1, step):
    print(f"INSERT INTO snap SELECT seq, seq, MD5(seq), seq * 1.5, NOW(6) FROM seq_{lo}_to_{min(lo + step - 1, n)};")
PY
# a first run of each streaming connector records the current binlog position in its state dir,
# then the changes pile up while it is stopped (as scripts/bench.sh does)
for i in $(seq "$RUNS"); do
  my_toml "my$i" 7001 never "$RUN-my$i" t >"$WORK/my$i.toml"
  "$BIN" run --config "$WORK/my$i.toml" 2>"$WORK/rs.log" &
  pid=$!
  until grep -q "streaming binlog" "$WORK/rs.log"; do kill -0 $pid 2>/dev/null || { cat "$WORK/rs.log" >&2; exit 1; }; sleep 0.05; done
  sleep 0.5; kill -TERM $pid; wait $pid || true
done
read -r MFILE MPOS < <(python3 -c "import json; p=json.load(open('$WORK/state-my$RUNS/state.json')).get('position') or {}; print(p.get('file',''), p.get('pos',''))")
if [ -z "${MFILE:-}" ]; then read -r MFILE MPOS < <("${MYSQL[@]}" -N -e "SHOW MASTER STATUS" | awk '{print $1, $2}'); fi
python3 - "$N" <<PY | "${MYSQL[@]}" rsbench
import sys
n = int(sys.argv[1])
for i in range(n // 100):
    print(f"INSERT INTO t SELECT seq, seq, MD5(seq), seq * 1.5, NOW(6) FROM seq_{i*100}_to_{i*100+99};")
PY
read -r EFILE EPOS < <("${MYSQL[@]}" -N -e "SHOW MASTER STATUS" | awk '{print $1, $2}')
# every binlog from MFILE to EFILE (one, unless the server rotated its log meanwhile):
# --start-position applies to the first, --stop-position to the last
mapfile -t MFILES < <("${MYSQL[@]}" -N -e "SHOW BINARY LOGS" | awk -v a="$MFILE" -v b="$EFILE" '$1 == a {on = 1} on {print $1} $1 == b {on = 0}')
[ ${#MFILES[@]} -gt 0 ] || MFILES=("$MFILE")

: >"$RES"
for i in $(seq "$RUNS"); do
  echo "== run $i of $RUNS =="
  PERF_DONE=()

  t0=$(now)
  pg_recvlogical -h 127.0.0.1 -U postgres -d "$DB" --slot "rsr_raw_$i" --start -o proto_version=1 -o publication_names=p --endpos="$END_LSN" -f /dev/null
  record "$i" pg_decode "$N" "$(secs_of "$t0" "$(now)")" - - "pg_recvlogical (decode ceiling)"

  pg_toml "rsr_pg_$i" p never "$RUN-pg$i" >"$WORK/pg$i.toml"
  read -r secs rss < <(run_rowstream "$WORK/pg$i.toml" rowstream_changes_total "$N")
  read -r size cnt key val hdr < <(record_size "$RUN-pg$i.public.t")
  [ "$cnt" = "$N" ] || echo "  (the topic holds $cnt row records, not $N)"
  record "$i" pg_stream "$N" "$secs" "$rss" "$size" "rowstream postgres streaming"
  echo "    (its records: key $key B + value $val B + headers $hdr B on average)"
  drop_topics "$RUN-pg$i.public.t"
  perf "$i" perf_pg_stream "$N" "$size" "ProducerPerformance, postgres streaming size"

  pg_toml "rsr_pgsnap_$i" ps initial "$RUN-pgsnap$i" public.snap >"$WORK/pgsnap$i.toml"
  read -r secs rss < <(run_rowstream "$WORK/pgsnap$i.toml" rowstream_snapshot_rows_total "$SNAP")
  read -r size cnt key val hdr < <(record_size "$RUN-pgsnap$i.public.snap")
  [ "$cnt" = "$SNAP" ] || echo "  (the topic holds $cnt row records, not $SNAP)"
  record "$i" pg_snap "$SNAP" "$secs" "$rss" "$size" "rowstream postgres snapshot"
  echo "    (its records: key $key B + value $val B + headers $hdr B on average)"
  drop_topics "$RUN-pgsnap$i.public.snap"
  perf "$i" perf_pg_snap "$SNAP" "$size" "ProducerPerformance, postgres snapshot size"

  t0=$(now)
  mariadb-binlog --read-from-remote-server -h127.0.0.1 -urowstream -prowstream --base64-output=decode-rows -v \
    --start-position="$MPOS" --stop-position="$EPOS" "${MFILES[@]}" >/dev/null
  record "$i" my_decode "$N" "$(secs_of "$t0" "$(now)")" - - "mariadb-binlog (decode ceiling)"

  read -r secs rss < <(run_rowstream "$WORK/my$i.toml" rowstream_changes_total "$N")
  read -r size cnt key val hdr < <(record_size "$RUN-my$i.rsbench.t")
  [ "$cnt" = "$N" ] || echo "  (the topic holds $cnt row records, not $N)"
  record "$i" my_stream "$N" "$secs" "$rss" "$size" "rowstream mariadb streaming"
  echo "    (its records: key $key B + value $val B + headers $hdr B on average)"
  drop_topics "$RUN-my$i.rsbench.t"
  perf "$i" perf_my_stream "$N" "$size" "ProducerPerformance, mariadb streaming size"

  my_toml "mysnap$i" 7003 initial "$RUN-mysnap$i" snap >"$WORK/mysnap$i.toml"
  read -r secs rss < <(run_rowstream "$WORK/mysnap$i.toml" rowstream_snapshot_rows_total "$SNAP")
  read -r size cnt key val hdr < <(record_size "$RUN-mysnap$i.rsbench.snap")
  [ "$cnt" = "$SNAP" ] || echo "  (the topic holds $cnt row records, not $SNAP)"
  record "$i" my_snap "$SNAP" "$secs" "$rss" "$size" "rowstream mariadb snapshot"
  echo "    (its records: key $key B + value $val B + headers $hdr B on average)"
  drop_topics "$RUN-mysnap$i.rsbench.snap"
  perf "$i" perf_my_snap "$SNAP" "$size" "ProducerPerformance, mariadb snapshot size"
done

ratios_stop_broker
echo
python3 - "$RES" "$RUNS" "$N" "$SNAP" <<'PY'
import statistics, sys
res, runs = sys.argv[1], int(sys.argv[2])
n, snap = int(sys.argv[3]), int(sys.argv[4])
rows = {}  # measurement -> run -> (rate, rss_kb, bytes)
for line in open(res):
    run, m, count, secs, rss, size = line.split()
    rows.setdefault(m, {})[int(run)] = (int(count) / float(secs), None if rss == "-" else int(rss), None if size == "-" else int(size))
labels = [
    ("pg_decode", "pg_recvlogical (decode ceiling)"),
    ("pg_stream", "rowstream postgres streaming"),
    ("perf_pg_stream", "ProducerPerformance, its record size"),
    ("raw_pg_stream", "librdkafka producer, its record size"),
    ("pg_snap", "rowstream postgres snapshot"),
    ("perf_pg_snap", "ProducerPerformance, its record size"),
    ("raw_pg_snap", "librdkafka producer, its record size"),
    ("my_decode", "mariadb-binlog (decode ceiling)"),
    ("my_stream", "rowstream mariadb streaming"),
    ("perf_my_stream", "ProducerPerformance, its record size"),
    ("raw_my_stream", "librdkafka producer, its record size"),
    ("my_snap", "rowstream mariadb snapshot"),
    ("perf_my_snap", "ProducerPerformance, its record size"),
    ("raw_my_snap", "librdkafka producer, its record size"),
]
med = {}
head = "".join(f"{'run ' + str(r):>11}" for r in range(1, runs + 1))
print(f"== ratios: records/s of each run and their median ({n:,} streamed changes, {snap:,} snapshot rows) ==")
print(f"  {'measurement':<38}{head}{'median':>11}  {'record':>7}  peak RSS (median)")
for m, label in labels:
    if m not in rows:
        continue
    got = rows[m]
    rates = [got[r][0] for r in sorted(got)]
    med[m] = statistics.median(rates)
    cells = "".join(f"{got[r][0]:>11,.0f}" if r in got else f"{'-':>11}" for r in range(1, runs + 1))
    sizes = [got[r][2] for r in got if got[r][2] is not None]
    rss = [got[r][1] for r in got if got[r][1] is not None]
    size = f"{round(statistics.median(sizes))} B" if sizes else "-"
    mem = f"{int(statistics.median(rss)) // 1024} MB" if rss else "-"
    print(f"  {label:<38}{cells}{med[m]:>11,.0f}  {size:>7}  {mem}")
print()
print("== ratios of the medians ==")

def line(name, num, den, target, den_name):
    if num not in med or any(d not in med for d in den):
        print(f"  {name:<52} n/a")
        return
    base = min(med[d] for d in den)
    r = med[num] / base
    print(f"  {name:<52} median {r:.2f}  (target >= {target})  {'met' if r >= target else 'NOT met'}" + (f"  [{den_name(base)}]" if den_name else ""))

line("postgres streaming / pg_recvlogical", "pg_stream", ["pg_decode"], 0.9, None)
line("mariadb streaming / min(mariadb-binlog, producer)", "my_stream", ["my_decode", "perf_my_stream"], 0.8,
     lambda b: "min is " + ("mariadb-binlog" if b == med["my_decode"] else "the producer"))
line("postgres snapshot / producer ceiling", "pg_snap", ["perf_pg_snap"], 0.8, None)
line("mariadb snapshot / producer ceiling", "my_snap", ["perf_my_snap"], 0.8, None)
print()
print("== the same against librdkafka's own producer (rowstream's settings, no encoding, no source) ==")
line("postgres streaming / librdkafka producer", "pg_stream", ["raw_pg_stream"], 0.8, None)
line("mariadb streaming / librdkafka producer", "my_stream", ["raw_my_stream"], 0.8, None)
line("postgres snapshot / librdkafka producer", "pg_snap", ["raw_pg_snap"], 0.8, None)
line("mariadb snapshot / librdkafka producer", "my_snap", ["raw_my_snap"], 0.8, None)
PY
