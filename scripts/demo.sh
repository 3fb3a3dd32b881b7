#!/usr/bin/env bash
# The demo: bring the services up, create database `shop`, run rowstream (snapshot, then live
# changes), make some changes, and print what landed in Kafka.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream/target}"
scripts/services.sh up
echo "== building rowstream (release)"
cargo build --release --bin rowstream --example tail
BIN="$CARGO_TARGET_DIR/release/rowstream"
TAIL="$CARGO_TARGET_DIR/release/examples/tail"
PSQL=(psql -q -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1)

echo "== fresh database shop"
"${PSQL[@]}" -d postgres -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'rowstream_demo'" >/dev/null
"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS shop WITH (FORCE)" -c "CREATE DATABASE shop"
"${PSQL[@]}" -d shop -f fixtures/demo/shop.sql
rm -rf ./rowstream-state/demo
# topics of an earlier demo run would mix in: use a fresh topic prefix per run
RUN="demo$(date +%s)"
export ROWSTREAM_KAFKA__TOPIC="$RUN.{schema}.{table}"

echo "== rowstream check"
"$BIN" check --config fixtures/demo/rowstream.toml || true

echo "== rowstream run (log: rowstream-state/demo.log)"
mkdir -p rowstream-state
"$BIN" run --config fixtures/demo/rowstream.toml 2> rowstream-state/demo.log &
PID=$!
trap 'kill $PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "streaming" rowstream-state/demo.log && break; sleep 0.1; done

echo "== changes: insert, update, primary-key change, delete, add column"
"${PSQL[@]}" -d shop <<'SQL'
INSERT INTO orders (id, customer_id, amount) VALUES (103, 2, 42.00);
UPDATE orders SET status = 'paid' WHERE id = 100;
UPDATE orders SET id = 200 WHERE id = 101;
DELETE FROM orders WHERE id = 102;
ALTER TABLE customers ADD COLUMN tier text;
INSERT INTO customers (id, name, tier) VALUES (3, 'Linus', 'gold');
SQL

echo "== records in Kafka (topic[partition] key=... record)"
"$TAIL" --idle 3 "$RUN.public.customers" "$RUN.public.orders"

kill -TERM $PID
wait $PID && echo "== rowstream stopped cleanly (exit 0); its position: $(cat rowstream-state/demo/state.json | tr -d '\n ' )"
trap - EXIT
