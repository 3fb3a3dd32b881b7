#!/usr/bin/env bash
# Apache Kafka Connect (distributed mode) for the Connect-compatibility work, run from the jars of
# Maven Central (no distribution tarball is needed, none is downloaded), like scripts/kafka.sh.
#
#   scripts/connect.sh jars               resolve connect-runtime, connect-file (FileStreamSource
#                                         and FileStreamSink), connect-json and slf4j-simple with
#                                         Maven once (cached in
#                                         $ROWSTREAM_CACHE/connect-$CONNECT_VERSION/libs); prints the
#                                         classpath
#   scripts/connect.sh worker DIR REST_PORT GROUP_ID [BROKERS] [key=value ...]
#                                         run one distributed worker in the foreground (exec: the
#                                         caller's child *is* the JVM, so it can be paused or
#                                         killed): REST on http://127.0.0.1:REST_PORT, Kafka at
#                                         BROKERS (default 127.0.0.1:9092), its properties written
#                                         to DIR/worker.properties; extra worker settings as
#                                         key=value (they override the defaults). Workers started
#                                         with the same GROUP_ID form one Connect cluster.
#
# Worker settings: internal topics GROUP_ID-configs, GROUP_ID-offsets (5 partitions) and
# GROUP_ID-status (5 partitions), replication factor 1, created by the worker; JSON converters
# without schemas; offsets flushed every second; scheduled.rebalance.max.delay.ms 10000 instead
# of 5 minutes (a kill -9'd worker's connectors and tasks run again on a live worker about 20 s
# later: the 10 s session timeout, then that delay); no plugin.path (connect-file is on the
# classpath), plugins found by ServiceLoader only. Heap $CONNECT_HEAP (default 384m). Logs go to
# stdout at $CONNECT_LOG_LEVEL (default warn, slf4j-simple).
#
# Version: Connect $CONNECT_VERSION (default 4.3.1) against the 4.4.0 broker of scripts/kafka.sh
# (clients and brokers of 4.x talk across versions). connect-file, the FileStream example
# connectors the tests run, is not on Maven Central for 4.4.0 (404 there, like connect-mirror),
# and connect-file 4.3.1 does not run on a 4.4.0 runtime (it links a class 4.4.0 moved), so the
# whole worker is 4.3.1.
set -euo pipefail

CACHE="${ROWSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream}"
CONNECT_VERSION="${CONNECT_VERSION:-4.3.1}"
SLF4J_VERSION=2.0.17
HOME_DIR="$CACHE/connect-$CONNECT_VERSION"
LIBS="$HOME_DIR/libs"
HEAP="${CONNECT_HEAP:-384m}"

die() { echo "scripts/connect.sh: $*" >&2; exit 1; }

jars() {
  [ -f "$LIBS/.complete" ] && return 0
  command -v java >/dev/null || die "java is missing: install Java 17 (apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null || die "mvn is missing: install Maven (apt-get install maven)"
  mkdir -p "$HOME_DIR"
  cat >"$HOME_DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rowstream</groupId><artifactId>connect-runtime</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId><version>$CONNECT_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-api</artifactId><version>$CONNECT_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-json</artifactId><version>$CONNECT_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>connect-file</artifactId><version>$CONNECT_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$LIBS"
  echo "[connect] resolving Kafka Connect $CONNECT_VERSION from Maven Central (first time only; cached in $HOME_DIR)" >&2
  mvn -q -B -f "$HOME_DIR/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DoutputDirectory="$LIBS" >"$HOME_DIR/resolve.log" 2>&1 ||
    { tail -20 "$HOME_DIR/resolve.log" >&2; die "Maven could not resolve org.apache.kafka:connect-runtime:$CONNECT_VERSION (see $HOME_DIR/resolve.log)"; }
  touch "$LIBS/.complete"
}

write_props() { # dir port group brokers extra...
  local dir=$1 port=$2 group=$3 brokers=$4
  shift 4
  {
    cat <<EOF
bootstrap.servers=$brokers
group.id=$group
config.storage.topic=$group-configs
offset.storage.topic=$group-offsets
status.storage.topic=$group-status
config.storage.replication.factor=1
offset.storage.replication.factor=1
offset.storage.partitions=5
status.storage.replication.factor=1
status.storage.partitions=5
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false
listeners=http://127.0.0.1:$port
rest.advertised.host.name=127.0.0.1
rest.advertised.port=$port
offset.flush.interval.ms=1000
scheduled.rebalance.max.delay.ms=10000
# every plugin on the classpath has a ServiceLoader manifest: no reflective scan (2-3 s faster)
plugin.discovery=service_load
EOF
    # later lines win in java.util.Properties: the caller's settings override the defaults
    for kv in "$@"; do echo "$kv"; done
  } >"$dir/worker.properties"
}

case "${1:-}" in
  jars)
    jars
    echo "$LIBS/*"
    ;;
  worker)
    [ $# -ge 4 ] || die "usage: $0 worker DIR REST_PORT GROUP_ID [BROKERS] [key=value ...]"
    dir=$2 port=$3 group=$4
    shift 4
    brokers=127.0.0.1:9092
    # the optional fourth argument is the broker list (it has no '=')
    if [ $# -gt 0 ] && [[ "$1" != *=* ]]; then brokers=$1; shift; fi
    jars
    mkdir -p "$dir"
    write_props "$dir" "$port" "$group" "$brokers" "$@"
    exec java -Xms128m -Xmx"$HEAP" -XX:+UseG1GC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
      -Dorg.slf4j.simpleLogger.defaultLogLevel="${CONNECT_LOG_LEVEL:-warn}" \
      -cp "$LIBS/*" org.apache.kafka.connect.cli.ConnectDistributed "$dir/worker.properties"
    ;;
  *)
    die "usage: $0 jars | worker DIR REST_PORT GROUP_ID [BROKERS] [key=value ...]"
    ;;
esac
