#!/usr/bin/env bash
# Run Apache Paimon's own Kafka ingest, the `kafka_sync_database` action with the `aliyun-json`
# format, in a plain JVM (a local Flink MiniCluster, no Flink installation), so the tests can
# check that Paimon itself reads rowstream's `paimon`-profile topics into the right tables.
#
#   scripts/flink-ingest.sh run WAREHOUSE DATABASE BROKERS TOPICS [ACTION ARGS...]
#                                         ingest the topics TOPICS (`;`-separated) from the
#                                         brokers BROKERS (`host:port,...`) from their earliest
#                                         offsets into the Paimon database DATABASE of the
#                                         filesystem catalog at WAREHOUSE (a local path or
#                                         file:// URI), one primary-key table per source table,
#                                         in the foreground until killed. Parallelism 1; a
#                                         checkpoint, and so a Paimon commit, every
#                                         $FLINK_CHECKPOINT_MS ms (default 1000; Paimon's own
#                                         default is 3 minutes). Runs as
#                                           kafka_sync_database --warehouse WAREHOUSE
#                                             --database DATABASE --type_mapping to-string
#                                             --kafka_conf properties.bootstrap.servers=BROKERS
#                                             --kafka_conf topic=TOPICS
#                                             --kafka_conf value.format=aliyun-json
#                                             --kafka_conf properties.group.id=paimon-DATABASE
#                                             --kafka_conf scan.startup.mode=earliest-offset
#                                             --table_conf bucket=1
#                                             ACTION ARGS...
#                                         (ACTION ARGS: more of the action's options; a later
#                                         `--table_conf`/`--kafka_conf` key wins, e.g.
#                                         `--table_conf bucket=4`: the action's combined sink
#                                         takes fixed bucket counts only, and Paimon's default
#                                         bucket -1 fails the job). A job that fails is not
#                                         restarted: the JVM ends with exit code 1 and Flink's
#                                         exception on stderr. Stdout stays empty; log
#                                         lines at WARN and above go to stderr
#                                         ($FLINK_LOG_LEVEL, default warn), and Flink's
#                                         checkpoint coordinator's INFO lines ("Completed
#                                         checkpoint N for job ...": a Paimon commit follows).
#   scripts/flink-ingest.sh jars          resolve the jars and compile the launcher only;
#                                         prints the classpath
#
# Jars: Paimon's Flink 1.20 bundle org.apache.paimon:paimon-flink-1.20:$PAIMON_VERSION (default
# 1.3.1, the newest Maven Central serves here: 1.4.2 is refused), which carries the CDC actions
# (paimon-flink-cdc) and depends on paimon-bundle; Flink $FLINK_VERSION (default 1.20.3) as
# Paimon needs it without flink-dist (not served): flink-streaming-java, flink-clients (the
# MiniCluster), flink-connector-base, flink-table-api-java-bridge, flink-table-planner-loader
# and flink-table-runtime (the actions open a table environment); Flink's Kafka connector
# org.apache.flink:flink-connector-kafka:$FLINK_KAFKA_VERSION (default 3.3.0-1.20, what Paimon
# builds against) with its kafka-clients, relocated here with maven-shade-plugin exactly as
# Flink's flink-sql-connector-kafka jar relocates them (org.apache.kafka ->
# org.apache.flink.kafka.shaded.org.apache.kafka: Paimon's CDC classes link against that name,
# and flink-sql-connector-kafka 3.3.0-1.20 itself is not served); the Hadoop client classes
# Paimon's Parquet writer links against (hadoop-client-api/-runtime $HADOOP_VERSION, default
# 3.4.1); slf4j-simple as the log backend. Resolved with Maven once (cached in
# $ROWSTREAM_CACHE/flink-ingest-$PAIMON_VERSION-$FLINK_VERSION-$FLINK_KAFKA_VERSION/libs, about
# 300 MB, and the Maven repository $ROWSTREAM_CACHE/m2); the launcher class is compiled there too
# (needs javac), again whenever this script's Java source changes.
#
# The launcher: a Flink context environment factory makes every StreamExecutionEnvironment the
# action creates a local one with parallelism.default=1 and
# execution.checkpointing.interval=$FLINK_CHECKPOINT_MS, then Paimon's ActionFactory builds the
# action from the arguments and runs it. JVM heap $FLINK_HEAP (default 768m; the tests' jobs peak
# at about 350 MB RSS); the MiniCluster's managed and network memory are cut to 32m each; more JVM
# options in $FLINK_JAVA_OPTS (default -XX:TieredStopAtLevel=1, the client compiler only: the
# first checkpoint comes about 3 s sooner, 6 s after the start instead of 9 on 2 cores; set it
# to "" for a long run that wants the optimising compiler).
set -euo pipefail

CACHE="${ROWSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream}"
PAIMON_VERSION="${PAIMON_VERSION:-1.3.1}"
FLINK_VERSION="${FLINK_VERSION:-1.20.3}"
FLINK_KAFKA_VERSION="${FLINK_KAFKA_VERSION:-3.3.0-1.20}"
HADOOP_VERSION="${HADOOP_VERSION:-3.4.1}"
SLF4J_VERSION=1.7.36
HOME_DIR="$CACHE/flink-ingest-$PAIMON_VERSION-$FLINK_VERSION-$FLINK_KAFKA_VERSION"
LIBS="$HOME_DIR/libs"
CLASSES="$HOME_DIR/classes"
HEAP="${FLINK_HEAP:-768m}"
CHECKPOINT_MS="${FLINK_CHECKPOINT_MS:-1000}"
LOG_LEVEL="${FLINK_LOG_LEVEL:-warn}"
JAVA_OPTS="${FLINK_JAVA_OPTS--XX:TieredStopAtLevel=1}"

die() { echo "scripts/flink-ingest.sh: $*" >&2; exit 1; }

jars() {
  [ -f "$LIBS/.complete" ] && return 0
  command -v java >/dev/null || die "java is missing: install Java 17 (apt-get install openjdk-17-jdk-headless)"
  command -v mvn >/dev/null || die "mvn is missing: install Maven (apt-get install maven)"
  mkdir -p "$HOME_DIR"
  local flink="<groupId>org.apache.flink</groupId>"
  cat >"$HOME_DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rowstream</groupId><artifactId>flink-ingest</artifactId><version>1</version>
  <packaging>jar</packaging>
  <dependencies>
    <dependency><groupId>org.apache.paimon</groupId><artifactId>paimon-flink-1.20</artifactId><version>$PAIMON_VERSION</version></dependency>
    <dependency>$flink<artifactId>flink-streaming-java</artifactId><version>$FLINK_VERSION</version></dependency>
    <dependency>$flink<artifactId>flink-clients</artifactId><version>$FLINK_VERSION</version></dependency>
    <dependency>$flink<artifactId>flink-connector-base</artifactId><version>$FLINK_VERSION</version></dependency>
    <dependency>$flink<artifactId>flink-table-api-java-bridge</artifactId><version>$FLINK_VERSION</version></dependency>
    <dependency>$flink<artifactId>flink-table-planner-loader</artifactId><version>$FLINK_VERSION</version></dependency>
    <dependency>$flink<artifactId>flink-table-runtime</artifactId><version>$FLINK_VERSION</version></dependency>
    <dependency>$flink<artifactId>flink-connector-kafka</artifactId><version>$FLINK_KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-client-api</artifactId><version>$HADOOP_VERSION</version></dependency>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-client-runtime</artifactId><version>$HADOOP_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
  <build>
    <plugins>
      <!-- flink-sql-connector-kafka as Flink's build makes it (the shade settings of its pom) -->
      <plugin>
        <groupId>org.apache.maven.plugins</groupId><artifactId>maven-shade-plugin</artifactId><version>3.6.0</version>
        <configuration>
          <createDependencyReducedPom>false</createDependencyReducedPom>
          <artifactSet><includes>
            <include>org.apache.flink:flink-connector-kafka</include>
            <include>org.apache.kafka:*</include>
          </includes></artifactSet>
          <filters><filter><artifact>org.apache.kafka:*</artifact><excludes>
            <exclude>kafka/kafka-version.properties</exclude><exclude>LICENSE</exclude>
            <exclude>NOTICE</exclude><exclude>common/**</exclude>
          </excludes></filter></filters>
          <relocations><relocation>
            <pattern>org.apache.kafka</pattern>
            <shadedPattern>org.apache.flink.kafka.shaded.org.apache.kafka</shadedPattern>
          </relocation></relocations>
        </configuration>
      </plugin>
    </plugins>
  </build>
</project>
EOF
  rm -rf "$LIBS" "$HOME_DIR/target"
  echo "[flink-ingest] resolving Paimon $PAIMON_VERSION and Flink $FLINK_VERSION from Maven Central (first time only; cached in $HOME_DIR)" >&2
  # jar:jar + shade:shade build the relocated Kafka connector (the project's empty jar with the
  # connector and kafka-clients in it); every other runtime dependency is copied as it is
  mvn -q -B -f "$HOME_DIR/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    jar:jar shade:shade dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime \
    -DexcludeArtifactIds=flink-connector-kafka,kafka-clients >"$HOME_DIR/resolve.log" 2>&1 ||
    { tail -20 "$HOME_DIR/resolve.log" >&2; die "Maven could not resolve org.apache.paimon:paimon-flink-1.20:$PAIMON_VERSION with Flink $FLINK_VERSION and flink-connector-kafka $FLINK_KAFKA_VERSION (see $HOME_DIR/resolve.log)"; }
  mv "$HOME_DIR/target/flink-ingest-1.jar" "$LIBS/flink-sql-connector-kafka-$FLINK_KAFKA_VERSION-relocated.jar"
  rm -rf "$HOME_DIR/target"
  touch "$LIBS/.complete"
}

# The launcher: one class. It extends StreamExecutionEnvironment only to reach the protected
# initializeContextEnvironment, which makes every getExecutionEnvironment() of the action ours.
java_source() {
  cat <<'EOF'
import java.time.Duration;
import java.util.Optional;

import org.apache.flink.configuration.CheckpointingOptions;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.CoreOptions;
import org.apache.flink.configuration.DeploymentOptions;
import org.apache.flink.configuration.MemorySize;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.configuration.TaskManagerOptions;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.paimon.flink.action.Action;
import org.apache.paimon.flink.action.ActionFactory;

public class FlinkIngest extends StreamExecutionEnvironment {
    public static void main(String[] args) throws Exception {
        long interval = Long.parseLong(System.getProperty("flinkIngest.checkpointMs", "1000"));
        Configuration ours = new Configuration();
        ours.set(CheckpointingOptions.CHECKPOINTING_INTERVAL, Duration.ofMillis(interval));
        ours.set(CoreOptions.DEFAULT_PARALLELISM, 1);
        // a record Paimon cannot take fails the job every time: end, do not restart forever
        ours.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
        ours.set(TaskManagerOptions.MANAGED_MEMORY_SIZE, MemorySize.parse("32m"));
        ours.set(TaskManagerOptions.NETWORK_MEMORY_MIN, MemorySize.parse("32m"));
        ours.set(TaskManagerOptions.NETWORK_MEMORY_MAX, MemorySize.parse("32m"));
        initializeContextEnvironment(given -> {
            Configuration conf = new Configuration();
            conf.addAll(given);
            conf.addAll(ours);
            // what LocalStreamEnvironment sets (it may not be built under a context factory)
            conf.set(DeploymentOptions.TARGET, "local");
            conf.set(DeploymentOptions.ATTACHED, true);
            StreamExecutionEnvironment env = new StreamExecutionEnvironment(conf);
            env.setParallelism(1);
            return env;
        });
        Optional<Action> action = ActionFactory.createAction(args);
        if (!action.isPresent()) {
            System.exit(2);
        }
        action.get().run();
    }
}
EOF
}

compile() {
  jars
  local src="$HOME_DIR/src/FlinkIngest.java"
  mkdir -p "$HOME_DIR/src"
  if [ -f "$CLASSES/FlinkIngest.class" ] && java_source | cmp -s - "$src"; then return 0; fi
  command -v javac >/dev/null || die "javac is missing: install a JDK (apt-get install openjdk-17-jdk-headless)"
  java_source >"$src"
  rm -rf "$CLASSES"
  mkdir -p "$CLASSES.tmp.$$"
  javac -nowarn -encoding UTF-8 -cp "$LIBS/*" -d "$CLASSES.tmp.$$" "$src" >&2 ||
    { rm -rf "$CLASSES.tmp.$$"; die "javac failed on $src"; }
  mv "$CLASSES.tmp.$$" "$CLASSES"
}

# One resolver/compiler at a time (tests may start several jobs at once on a cold cache).
locked() {
  mkdir -p "$HOME_DIR"
  if command -v flock >/dev/null; then
    ( flock 9; compile ) 9>"$HOME_DIR/.lock"
  else
    compile
  fi
}

# What Flink's own scripts pass to a Java 17 JVM (env.java.opts.all of Flink 1.20's config.yaml).
JAVA17_OPENS=(
  --add-exports=java.base/sun.net.util=ALL-UNNAMED
  --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
  --add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED
  --add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
  --add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED
  --add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED
  --add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED
  --add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED
  --add-opens=java.base/java.lang=ALL-UNNAMED
  --add-opens=java.base/java.net=ALL-UNNAMED
  --add-opens=java.base/java.io=ALL-UNNAMED
  --add-opens=java.base/java.nio=ALL-UNNAMED
  --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens=java.base/java.text=ALL-UNNAMED
  --add-opens=java.base/java.time=ALL-UNNAMED
  --add-opens=java.base/java.util=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED
)

# Warnings every local run prints and that say nothing (no Hadoop configuration, no native
# Hadoop, no delegation tokens, no web log file, metric name collisions of Paimon's committer,
# the Kafka client's unused settings)
QUIET=()
for logger in org.apache.paimon.utils.HadoopUtils org.apache.flink.runtime.util.HadoopUtils \
  org.apache.hadoop.util.NativeCodeLoader org.apache.flink.runtime.security.token.DefaultDelegationTokenManager \
  org.apache.flink.runtime.webmonitor.WebMonitorUtils org.apache.flink.metrics.MetricGroup \
  org.apache.flink.kafka.shaded.org.apache.kafka.clients.admin.AdminClientConfig \
  org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerConfig \
  org.apache.flink.kafka.shaded.org.apache.kafka.common.utils.AppInfoParser; do
  QUIET+=("-Dorg.slf4j.simpleLogger.log.$logger=error")
done

case "${1:-}" in
  jars)
    locked
    echo "$CLASSES:$LIBS/*"
    ;;
  run)
    shift
    [ $# -ge 4 ] || die "usage: scripts/flink-ingest.sh run WAREHOUSE DATABASE BROKERS TOPICS [ACTION ARGS...]"
    warehouse=$1 database=$2 brokers=$3 topics=$4
    shift 4
    [[ "$CHECKPOINT_MS" =~ ^[0-9]+$ ]] || die "FLINK_CHECKPOINT_MS must be a number of milliseconds, not '$CHECKPOINT_MS'"
    locked
    # Flink unpacks its table planner (40 MB) and keeps I/O directories in java.io.tmpdir and
    # removes them only on a clean exit; a job ended by a signal leaves them. Each run gets its
    # own directory under the cache, and the directories of runs no longer alive are removed.
    tmp_root="$CACHE/flink-tmp"
    mkdir -p "$tmp_root"
    for dir in "$tmp_root"/*; do
      [ -d "$dir" ] || continue
      kill -0 "${dir##*/}" 2>/dev/null || rm -rf "$dir"
    done
    mkdir -p "$tmp_root/$$"
    # shellcheck disable=SC2086 # FLINK_JAVA_OPTS is a list of options
    exec java -Xmx"$HEAP" -Xms64m -XX:+UseSerialGC -Xshare:auto $JAVA_OPTS "${JAVA17_OPENS[@]}" \
      -Djava.io.tmpdir="$tmp_root/$$" \
      -Dorg.slf4j.simpleLogger.defaultLogLevel="$LOG_LEVEL" \
      -Dorg.slf4j.simpleLogger.logFile=System.err \
      -Dorg.slf4j.simpleLogger.showDateTime=true \
      "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSXXX" \
      -Dorg.slf4j.simpleLogger.log.org.apache.flink.runtime.checkpoint.CheckpointCoordinator=info \
      "${QUIET[@]}" \
      -DflinkIngest.checkpointMs="$CHECKPOINT_MS" \
      -cp "$CLASSES:$LIBS/*" FlinkIngest kafka_sync_database \
      --warehouse "$warehouse" \
      --database "$database" \
      --type_mapping to-string \
      --kafka_conf "properties.bootstrap.servers=$brokers" \
      --kafka_conf "topic=$topics" \
      --kafka_conf value.format=aliyun-json \
      --kafka_conf "properties.group.id=paimon-$database" \
      --kafka_conf scan.startup.mode=earliest-offset \
      --table_conf bucket=1 \
      "$@"
    ;;
  "" | -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
  *)
    die "unknown command '$1' (run, jars)"
    ;;
esac
