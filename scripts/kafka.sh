#!/usr/bin/env bash
# Apache Kafka (KRaft, no ZooKeeper) for the demo, the tests and the benchmarks, run from the
# jars of Maven Central (no distribution tarball is needed, none is downloaded).
#
#   scripts/kafka.sh jars                 resolve the broker's and the tools' jars with Maven once
#                                         (cached in $ROWSTREAM_CACHE/kafka-$KAFKA_VERSION/libs);
#                                         prints the classpath
#   scripts/kafka.sh node DIR PORT CONTROLLER_PORT [key=value ...]
#                                         run one combined broker+controller in the foreground
#                                         (exec: the caller's child *is* the JVM, so it can be
#                                         paused or killed): plaintext on 127.0.0.1:PORT, its
#                                         KRaft log in DIR (formatted on first use), extra broker
#                                         settings as key=value (they override the defaults)
#   scripts/kafka.sh cluster DIR PORT1,PORT2,PORT3 CPORT1,CPORT2,CPORT3 N [key=value ...]
#                                         run node N (1-based) of a three-node cluster: every node
#                                         is broker and controller, replication factor 3,
#                                         min.insync.replicas 2 (for the broker-loss tests)
#   scripts/kafka.sh tool CLASS [args...] run a Kafka tool class on the same classpath, e.g.
#                                         org.apache.kafka.tools.ProducerPerformance
#
# Settings for a single node: replication factors 1, group.initial.rebalance.delay.ms 0 (groups
# form at once), topics are not created on first use (rowstream creates its own), heap
# $KAFKA_HEAP (default 512m). Logs go to stdout at WARN (slf4j-simple).
set -euo pipefail

CACHE="${ROWSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream}"
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
SLF4J_VERSION=2.0.17
HOME_DIR="$CACHE/kafka-$KAFKA_VERSION"
LIBS="$HOME_DIR/libs"
HEAP="${KAFKA_HEAP:-512m}"

die() { echo "scripts/kafka.sh: $*" >&2; exit 1; }

jars() {
  [ -f "$LIBS/.complete" ] && return 0
  command -v java >/dev/null || die "java is missing: install Java 17 (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "mvn is missing: install Maven (apt-get install maven)"
  mkdir -p "$HOME_DIR"
  cat >"$HOME_DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rowstream</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$LIBS"
  echo "[kafka] resolving Apache Kafka $KAFKA_VERSION from Maven Central (first time only; cached in $HOME_DIR)" >&2
  mvn -q -B -f "$HOME_DIR/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DoutputDirectory="$LIBS" >"$HOME_DIR/resolve.log" 2>&1 ||
    { tail -20 "$HOME_DIR/resolve.log" >&2; die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (see $HOME_DIR/resolve.log)"; }
  touch "$LIBS/.complete"
}

# KAFKA_JIT_OPTS: the JIT options, by default the client compiler only (starts fast, which the
# tests want); the bench sets it empty for the full JIT a real deployment runs with
java_run() { # class args...
  # shellcheck disable=SC2086
  exec java -Xms128m -Xmx"$HEAP" -XX:+UseG1GC ${KAFKA_JIT_OPTS--XX:TieredStopAtLevel=1} -Djava.awt.headless=true \
    -Dorg.slf4j.simpleLogger.defaultLogLevel="${KAFKA_LOG_LEVEL:-warn}" \
    -cp "$LIBS/*" "$@"
}

write_props() { # dir node_id voters listeners advertised extra...
  local dir=$1 id=$2 voters=$3 listeners=$4 advertised=$5 rf=$6
  shift 6
  {
    cat <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL
log.dirs=$dir/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$(( rf > 1 ? 2 : 1 ))
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=5
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$(( rf > 1 ? 2 : 1 ))
transaction.state.log.num.partitions=5
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
log.retention.hours=-1
# the log cleaner (compacted topics) keeps its dedupe buffer on the heap: 128 MB by default,
# half of a test node's heap
log.cleaner.dedupe.buffer.size=16777216
EOF
    # later lines win in java.util.Properties: the caller's settings override the defaults
    for kv in "$@"; do echo "$kv"; done
  } >"$dir/server.properties"
}

format() { # dir
  local dir=$1
  if [ ! -f "$dir/data/meta.properties" ]; then
    # one fixed cluster id: the nodes of a cluster must share it, and separate clusters on one
    # machine never meet
    java -cp "$LIBS/*" kafka.tools.StorageTool format -t "${CLUSTER_ID:-MkU3OEVBNTcwNTJENDM2Qg}" -c "$dir/server.properties" \
      "${FORMAT_ARGS[@]}" >"$dir/format.log" 2>&1 ||
      { cat "$dir/format.log" >&2; die "formatting $dir failed"; }
  fi
}

case "${1:-}" in
  jars)
    jars
    echo "$LIBS/*"
    ;;
  node)
    [ $# -ge 4 ] || die "usage: $0 node DIR PORT CONTROLLER_PORT [key=value ...]"
    dir=$2 port=$3 cport=$4
    shift 4
    jars
    mkdir -p "$dir"
    FORMAT_ARGS=()
    extra=()
    for kv in "$@"; do
      # format-time SCRAM users: scram=SCRAM-SHA-512=[name=u,password=p]
      case "$kv" in
        scram=*) FORMAT_ARGS+=(--add-scram "${kv#scram=}") ;;
        *) extra+=("$kv") ;;
      esac
    done
    write_props "$dir" 1 "1@127.0.0.1:$cport" \
      "PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport" "PLAINTEXT://127.0.0.1:$port" 1 "${extra[@]}"
    format "$dir"
    java_run kafka.Kafka "$dir/server.properties"
    ;;
  cluster)
    [ $# -ge 5 ] || die "usage: $0 cluster DIR PORT1,PORT2,PORT3 CPORT1,CPORT2,CPORT3 N [key=value ...]"
    dir=$2 n=$5
    IFS=, read -r -a ports <<<"$3"
    IFS=, read -r -a cports <<<"$4"
    shift 5
    jars
    voters=""
    for i in 0 1 2; do voters+="${voters:+,}$((i + 1))@127.0.0.1:${cports[$i]}"; done
    port=${ports[$((n - 1))]} cport=${cports[$((n - 1))]}
    mkdir -p "$dir/node$n"
    FORMAT_ARGS=()
    write_props "$dir/node$n" "$n" "$voters" \
      "PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport" "PLAINTEXT://127.0.0.1:$port" 3 "$@"
    format "$dir/node$n"
    java_run kafka.Kafka "$dir/node$n/server.properties"
    ;;
  tool)
    [ $# -ge 2 ] || die "usage: $0 tool CLASS [args...]"
    shift
    jars
    java_run "$@"
    ;;
  *)
    die "usage: $0 jars | node DIR PORT CONTROLLER_PORT [key=value ...] | cluster DIR PORTS CPORTS N [key=value ...] | tool CLASS [args...]"
    ;;
esac
