#!/usr/bin/env bash
# The demo: bring the services up, create database `shop` (two small tables and one of 2M
# rows), run rowstream (its progress display while it snapshots, then its streaming status),
# make some changes, and show them with `rowstream tail`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream/target}"
scripts/services.sh up
echo "== building rowstream (release)"
cargo build --release --bin rowstream
BIN="$CARGO_TARGET_DIR/release/rowstream"
PSQL=(psql -q -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1)
CFG=fixtures/demo/rowstream.toml

echo "== fresh database shop"
"${PSQL[@]}" -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'rowstream_demo'" >/dev/null
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS shop WITH (FORCE)" -c "CREATE DATABASE shop"
"${PSQL[@]}" -d shop -f fixtures/demo/shop.sql
rm -rf ./rowstream-state/demo
mkdir -p rowstream-state
# topics of an earlier demo run would mix in: use a fresh topic prefix per run
RUN="demo$(date +%s)"
export ROWSTREAM_KAFKA__TOPIC="$RUN.{schema}.{table}"
export ROWSTREAM_ADMIN__LISTEN="127.0.0.1:8089"

echo "== rowstream check"
"$BIN" check --config $CFG || true

ready() { curl -fsS "http://$ROWSTREAM_ADMIN__LISTEN/ready" >/dev/null 2>&1; }
metric() { curl -fsS "http://$ROWSTREAM_ADMIN__LISTEN/metrics" 2>/dev/null | awk -v s="$1" '$1 == s { print $2 }'; }
snapshot_done() { [ "$(metric 'rowstream_snapshot_table_done{table="public.events"}')" = "1" ]; }

echo "== rowstream run: snapshot, then streaming"
if [ -t 2 ]; then
  # on a terminal: the live display (a bar per table being snapshotted, then one status line)
  "$BIN" run --config $CFG --progress bar 2>&1 &
else
  "$BIN" run --config $CFG --progress log --progress-interval-secs 1 2> rowstream-state/demo.log &
fi
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 600); do snapshot_done && ready && break; sleep 0.1; done

# changes: insert, update, primary-key change, delete, add column, and a burst of 5000 updates
"${PSQL[@]}" -d shop <<'SQL'
INSERT INTO orders (id, customer_id, amount) VALUES (103, 2, 42.00);
UPDATE orders SET status = 'paid' WHERE id = 100;
UPDATE orders SET id = 200 WHERE id = 101;
DELETE FROM orders WHERE id = 102;
ALTER TABLE customers ADD COLUMN tier text;
INSERT INTO customers (id, name, tier) VALUES (3, 'Linus', 'gold');
UPDATE events SET kind = 'seen' WHERE id <= 5000;
SQL
sleep 3   # let the status line show the burst and the lag settling
kill -TERM $PID
wait $PID && echo && echo "== rowstream stopped cleanly (exit 0); its position: $(tr -d '\n ' < rowstream-state/demo/state.json | cut -c1-120)"
trap - EXIT
if [ ! -t 2 ]; then
  echo "== its progress log lines"
  grep -E "snapshot (started|progress|finished)|rowstream::progress: streaming" rowstream-state/demo.log | head -14
fi

echo "== rowstream tail: the changes (time, table, op, key, changed columns)"
"$BIN" tail --config $CFG --from-beginning --idle-secs 3 "$RUN.public.customers" "$RUN.public.orders"
echo "== rowstream tail --json --max 1: one record as it is in Kafka"
"$BIN" tail --config $CFG --from-beginning --idle-secs 3 --json --max 1 "$RUN.public.orders"
