#!/usr/bin/env bash
# Local services for rowstream development, the demo and the tests.
#
#   scripts/services.sh up     install (apt, cargo) and start, idempotently, as root, without systemd:
#                              - PostgreSQL 15 on 127.0.0.1:5432, wal_level=logical, trust auth (user postgres)
#                              - PostgreSQL 15 on 127.0.0.1:5433, wal_level=replica (a server `check` must reject)
#                              - Apache Kafka 4.4 (KRaft, one combined broker+controller) on
#                                127.0.0.1:9092, its controller on 9093, from Maven Central's jars
#                                (scripts/kafka.sh), its log in $ROWSTREAM_CACHE/kafka-node (emptied
#                                at each `up`, so every run starts from an empty broker)
#                              - MariaDB 10.11 on 127.0.0.1:3306, ROW binlog (FULL image and metadata),
#                                GTIDs, user rowstream/rowstream with the replicator's grants
#                              - MariaDB 10.11 on 127.0.0.1:3307 with binlog_format=STATEMENT (a server
#                                `check` must reject)
#                              - moto, an S3-compatible server (PyPI `moto[server]`, in a venv in the
#                                cache), on 127.0.0.1:9000, for the Parquet sink's S3 test
#                              - for the Kafka Connect conformance tests (nothing runs): Kafka
#                                Connect's jars (scripts/connect.sh jars) and kafka-connect-py's
#                                `kc` (PyPI, in a venv in the cache), pypaimon and pyarrow for the lake tests
#   scripts/services.sh down   stop them
#   scripts/services.sh status show what runs
#
# Kafka's jars are resolved once with Maven and cached in $ROWSTREAM_CACHE (default
# ~/.cache/rowstream), so the second `up` takes seconds.
set -euo pipefail

CACHE="${ROWSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream}"
PG_VER=15
PG_BIN="/usr/lib/postgresql/$PG_VER/bin"
KAFKA_PORT="${ROWSTREAM_KAFKA_PORT:-9092}"
S3_PORT="${ROWSTREAM_S3_PORT:-9000}"
MOTO_VENV="$CACHE/moto-venv"
TOOLS_VENV="$CACHE/tools-venv"
LOG_DIR="$CACHE/log"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"

log() { printf '[services] %s\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "scripts/services.sh must run as root (it installs packages and starts servers)" >&2
    exit 1
  fi
}

wait_port() { # host port what timeout_s
  local deadline=$((SECONDS + $4))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      echo "timed out waiting for $3 on $1:$2" >&2
      return 1
    fi
    sleep 0.2
  done
}

apt_install() { # packages...
  local missing=()
  for p in "$@"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

configure_cluster() { # name port wal_level
  local name=$1 port=$2 wal=$3
  if [ ! -d "/etc/postgresql/$PG_VER/$name" ]; then
    log "creating cluster $PG_VER/$name on port $port"
    pg_createcluster "$PG_VER" "$name" -p "$port" >/dev/null
  fi
  local conf="/etc/postgresql/$PG_VER/$name"
  mkdir -p "$conf/conf.d"
  cat >"$conf/conf.d/rowstream.conf" <<CONF
# written by rowstream scripts/services.sh
listen_addresses = '127.0.0.1'
port = $port
wal_level = $wal
max_replication_slots = 256
max_wal_senders = 256
wal_sender_timeout = 10s
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  # trust for local, 127.0.0.1 and ::1, replication included (development and tests only)
  cat >"$conf/pg_hba.conf" <<HBA
local   all             all                                     trust
host    all             all             127.0.0.1/32            trust
host    all             all             ::1/128                 trust
local   replication     all                                     trust
host    replication     all             127.0.0.1/32            trust
host    replication     all             ::1/128                 trust
HBA
}

cluster_running() { pg_lsclusters -h 2>/dev/null | awk -v n="$1" '$2==n {print $4}' | grep -q online; }

start_cluster() { # name port
  if cluster_running "$1"; then
    # settings may have changed since it started: a restart applies them (cheap)
    # (the test suite keeps one slot per Postgres test: more than 64 of them)
    local want have
    want=$(awk '/^(wal_level|max_replication_slots) / {print $3}' "/etc/postgresql/$PG_VER/$1/conf.d/rowstream.conf" | tr '\n' ' ')
    have=$(su postgres -c "psql -p $2 -h 127.0.0.1 -Atc \"SELECT current_setting('wal_level') || ' ' || current_setting('max_replication_slots') || ' '\"" 2>/dev/null || true)
    if [ "$have" != "$want" ]; then
      log "restarting $PG_VER/$1 (wal_level, max_replication_slots: $have -> $want)"
      pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$1" restart
    fi
  else
    log "starting postgres $PG_VER/$1"
    pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$1" start
  fi
  wait_port 127.0.0.1 "$2" "postgres $1" 60
}

MY_SOCK=/run/mysqld/mysqld.sock
MY2_DIR=/var/lib/mysql-stmt
MY2_SOCK=/run/mysqld/mysqld-stmt.sock

mariadb_configure() {
  cat >/etc/mysql/mariadb.conf.d/60-rowstream-cdc.cnf <<CNF
# written by rowstream scripts/services.sh
[mariadbd]
server_id = 1
log_bin = /var/lib/mysql/mysql-bin
binlog_format = ROW
binlog_row_image = FULL
binlog_row_metadata = FULL
bind-address = 127.0.0.1
port = 3306
expire_logs_days = 3
log_bin_trust_function_creators = 1
max_connections = 300
innodb_flush_log_at_trx_commit = 2
sync_binlog = 0
CNF
}

mariadb_wait() { # socket
  local deadline=$((SECONDS + 60))
  until mariadb --socket="$1" -uroot -e "SELECT 1" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "mariadb on $1 did not start" >&2; return 1; fi
    sleep 0.2
  done
}

mariadb_up() {
  mariadb_configure
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
  if ! mariadb --socket=$MY_SOCK -uroot -e "SELECT 1" >/dev/null 2>&1; then
    log "starting mariadb on 127.0.0.1:3306"
    start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/rowstream-main.pid --make-pidfile \
      --exec /usr/sbin/mariadbd -- --user=mysql
    mariadb_wait $MY_SOCK
  fi
  mariadb --socket=$MY_SOCK -uroot <<SQL
CREATE USER IF NOT EXISTS 'rowstream'@'%' IDENTIFIED BY 'rowstream';
CREATE USER IF NOT EXISTS 'rowstream'@'localhost' IDENTIFIED BY 'rowstream';
GRANT SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, BINLOG MONITOR, SHOW DATABASES, CREATE, DROP, INSERT, UPDATE, DELETE, ALTER, INDEX ON *.* TO 'rowstream'@'%';
GRANT SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, BINLOG MONITOR, SHOW DATABASES, CREATE, DROP, INSERT, UPDATE, DELETE, ALTER, INDEX ON *.* TO 'rowstream'@'localhost';
-- the tests create triggers and views as this user
GRANT TRIGGER, CREATE VIEW ON *.* TO 'rowstream'@'%';
GRANT TRIGGER, CREATE VIEW ON *.* TO 'rowstream'@'localhost';
SET GLOBAL log_bin_trust_function_creators = 1;
SQL
  # a second server whose binlog is STATEMENT-based: `check` must name the problem
  if [ ! -d "$MY2_DIR/mysql" ]; then
    log "initialising the STATEMENT-binlog mariadb in $MY2_DIR"
    mariadb-install-db --user=mysql --datadir="$MY2_DIR" --auth-root-authentication-method=socket >/dev/null
  fi
  if ! mariadb --socket=$MY2_SOCK -uroot -e "SELECT 1" >/dev/null 2>&1; then
    log "starting mariadb (binlog_format=STATEMENT) on 127.0.0.1:3307"
    start-stop-daemon --start --oknodo --background --pidfile /run/mysqld/rowstream-stmt.pid --make-pidfile \
      --exec /usr/sbin/mariadbd -- --no-defaults --user=mysql --datadir="$MY2_DIR" --socket=$MY2_SOCK \
      --port=3307 --bind-address=127.0.0.1 --server-id=2 --log-bin="$MY2_DIR/mysql-bin" \
      --binlog-format=STATEMENT --pid-file=/run/mysqld/mysqld-stmt.pid
    mariadb_wait $MY2_SOCK
  fi
  mariadb --socket=$MY2_SOCK -uroot <<SQL
DELETE FROM mysql.global_priv WHERE User = '';
FLUSH PRIVILEGES;
CREATE USER IF NOT EXISTS 'rowstream'@'%' IDENTIFIED BY 'rowstream';
CREATE USER IF NOT EXISTS 'rowstream'@'localhost' IDENTIFIED BY 'rowstream';
GRANT SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'rowstream'@'%';
GRANT SELECT, RELOAD, LOCK TABLES, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'rowstream'@'localhost';
SQL
}

kafka_up() {
  "$ROOT/scripts/kafka.sh" jars >/dev/null
  if (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; then
    log "broker already listening on 127.0.0.1:$KAFKA_PORT"
    return
  fi
  log "starting Apache Kafka on 127.0.0.1:$KAFKA_PORT (controller on $((KAFKA_PORT + 1)))"
  rm -rf "$CACHE/kafka-node"
  nohup "$ROOT/scripts/kafka.sh" node "$CACHE/kafka-node" "$KAFKA_PORT" "$((KAFKA_PORT + 1))" >"$LOG_DIR/kafka.log" 2>&1 &
  echo $! >"$CACHE/kafka.pid"
  wait_port 127.0.0.1 "$KAFKA_PORT" "Apache Kafka (log: $LOG_DIR/kafka.log)" 120
}

s3_up() {
  if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
    log "installing moto[server] from PyPI into $MOTO_VENV (first time only)"
    python3 -m venv "$MOTO_VENV" >"$LOG_DIR/moto-install.log" 2>&1 &&
      "$MOTO_VENV/bin/pip" install -q 'moto[server]' >>"$LOG_DIR/moto-install.log" 2>&1 ||
      { tail -20 "$LOG_DIR/moto-install.log" >&2; echo "moto install failed" >&2; exit 1; }
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null; then
    log "S3 server already listening on 127.0.0.1:$S3_PORT"
    return
  fi
  log "starting moto (S3) on 127.0.0.1:$S3_PORT"
  nohup "$MOTO_VENV/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$LOG_DIR/moto.log" 2>&1 &
  echo $! >"$CACHE/moto.pid"
  wait_port 127.0.0.1 "$S3_PORT" moto 60
}

# What the Kafka Connect conformance tests drive: a real Connect worker's jars (resolved once by
# scripts/connect.sh) and kafka-connect-py's `kc`, a Connect REST client from PyPI.
tools_up() {
  "$ROOT/scripts/connect.sh" jars >/dev/null
  # Paimon's own Java reader, which the lake tests read the sink's Paimon tables with
  "$ROOT/scripts/paimon-read.sh" jars >/dev/null
  # Paimon's own Kafka ingest (kafka_sync_database on a local Flink), which the paimon-profile
  # test runs over rowstream's topics
  "$ROOT/scripts/flink-ingest.sh" jars >/dev/null
  # Hadoop's MiniDFSCluster, which the hdfs:// sink tests start themselves (scripts/hdfs.sh up)
  "$ROOT/scripts/hdfs.sh" jars >/dev/null
  if [ ! -x "$TOOLS_VENV/bin/kc" ]; then
    log "installing kafka-connect-py from PyPI into $TOOLS_VENV (first time only)"
    python3 -m venv "$TOOLS_VENV" >"$LOG_DIR/tools-install.log" 2>&1 &&
      "$TOOLS_VENV/bin/pip" install -q 'kafka-connect-py==1.0.0' >>"$LOG_DIR/tools-install.log" 2>&1 ||
      { tail -20 "$LOG_DIR/tools-install.log" >&2; echo "kafka-connect-py install failed" >&2; exit 1; }
  fi
  # the lake tests read what the sink writes with real readers: pyarrow's dataset reader (the
  # Parquet files) and pypaimon (the Paimon tables; it brings the pyarrow it needs)
  if ! "$TOOLS_VENV/bin/python" -c 'import pypaimon, pyarrow' 2>/dev/null; then
    log "installing pypaimon and pyarrow from PyPI into $TOOLS_VENV (first time only)"
    "$TOOLS_VENV/bin/pip" install -q 'pypaimon==2.1.0' >>"$LOG_DIR/tools-install.log" 2>&1 ||
      { tail -20 "$LOG_DIR/tools-install.log" >&2; echo "pypaimon install failed" >&2; exit 1; }
  fi
}

up() {
  need_root
  mkdir -p "$CACHE" "$LOG_DIR"
  # postgres server and client; build dependencies of rdkafka (ssl, sasl/gssapi, zstd)
  apt_install postgresql-$PG_VER postgresql-client-$PG_VER mariadb-server mariadb-client build-essential pkg-config libssl-dev libsasl2-dev libzstd-dev zlib1g-dev python3 python3-venv openjdk-17-jdk-headless maven
  configure_cluster main 5432 logical
  configure_cluster replica 5433 replica
  start_cluster main 5432
  start_cluster replica 5433
  mariadb_up
  kafka_up
  s3_up
  tools_up
  log "up: postgres 127.0.0.1:5432 (logical), 127.0.0.1:5433 (replica), mariadb 127.0.0.1:3306 (ROW), 127.0.0.1:3307 (STATEMENT), kafka 127.0.0.1:$KAFKA_PORT, s3 (moto) 127.0.0.1:$S3_PORT"
}

down() {
  need_root
  for c in main replica; do
    cluster_running "$c" && pg_ctlcluster --skip-systemctl-redirect "$PG_VER" "$c" stop || true
  done
  for p in /run/mysqld/rowstream-main.pid /run/mysqld/rowstream-stmt.pid; do
    [ -f "$p" ] && start-stop-daemon --stop --oknodo --pidfile "$p" --retry 30 >/dev/null || true
  done
  if [ -f "$CACHE/kafka.pid" ]; then
    kill "$(cat "$CACHE/kafka.pid")" 2>/dev/null || true
    rm -f "$CACHE/kafka.pid"
  fi
  if [ -f "$CACHE/moto.pid" ]; then
    kill "$(cat "$CACHE/moto.pid")" 2>/dev/null || true
    rm -f "$CACHE/moto.pid"
  fi
  log "down"
}

status() {
  pg_lsclusters 2>/dev/null || true
  if (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; then echo "kafka: up on $KAFKA_PORT"; else echo "kafka: down"; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
