#!/usr/bin/env bash
# Fault rounds for distributed workers (issue 21, item 1): three `rowstream worker`s of one group
# run six connectors (3 Postgres, 3 MariaDB) while a writer changes every table (~20 changes/s
# each); round after round a random worker is killed with -9 and restarted, stopped with SIGTERM
# and restarted, or frozen with SIGSTOP for 15 s (past the group's 10 s session timeout) and
# thawed. The test is tests/worker_faults.rs (4 rounds in the normal test run).
#
#   scripts/worker-faults.sh                                 20 rounds (~6 min)
#   scripts/worker-faults.sh 50                              50 rounds
#   ROWSTREAM_FAULT_SEED=<seed> scripts/worker-faults.sh     the schedule of an earlier run
#
# Prints the seed, then per round the fault, the victim and the seconds from the fault's end
# until every connector is RUNNING, rows flow again and every worker's status agrees; at the end
# per table its rows and records (replays counted). Exit 0 when every round recovered within
# 45 s, every topic holds its table and every worker stopped on SIGTERM with exit code 0.
# The workers' logs: ${TMPDIR:-/tmp}/rowstream-test-rs_faults_w{0,1,2}.log (each fault marked).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/rowstream/target}"
export ROWSTREAM_FAULT_ROUNDS="${1:-20}"
scripts/services.sh up >/dev/null
exec cargo test --locked --release --test worker_faults -- --nocapture
