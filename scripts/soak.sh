#!/usr/bin/env bash
# Soak: kill -9 rowstream N times at random moments (during the snapshot and the stream) under
# concurrent inserts, updates, deletes and primary-key changes, for Postgres and MariaDB, then
# check the replica with `rowstream verify` and the per-key order of the records.
#
#   scripts/soak.sh 100
#
# Prints, per source: kills, lost (rows missing), extra and different rows (by `rowstream
# verify`), duplicated records (a record equal to one its key already had: at-least-once
# replays after a kill) and order violations (any other record taking a key's value back).
# Exit 0 when nothing was lost and no order was violated.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-100}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rowstream/target}"
scripts/services.sh up >/dev/null
log="$(mktemp)"
status=0
ROWSTREAM_SOAK_ITERATIONS="$N" cargo test --locked --test both kill9_at_random_moments_then_verify \
  -- --nocapture --test-threads=1 >"$log" 2>&1 || status=$?
grep -E '^soak ' "$log" || { tail -50 "$log"; exit 1; }
if [ "$status" -ne 0 ]; then
  grep -E 'panicked|assertion' -A3 "$log" | head -30
fi
exit "$status"
