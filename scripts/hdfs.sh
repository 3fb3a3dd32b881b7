#!/usr/bin/env bash
# A real HDFS for the tests of `rowstream sink` on hdfs:// URLs: Hadoop's own MiniDFSCluster (one
# NameNode and, by default, one DataNode, in one JVM) from Maven Central's jars (no Hadoop
# distribution is needed, none is downloaded).
#
#   scripts/hdfs.sh jars         resolve the jars and compile the launcher only; prints the
#                                classpath
#   scripts/hdfs.sh up [PORT]    start the cluster in the background, NameNode RPC on
#                                127.0.0.1:PORT (default $ROWSTREAM_HDFS_PORT, else 9820), and
#                                return once it serves reads and writes; prints its URL,
#                                hdfs://127.0.0.1:PORT, on stdout. Idempotent: if it already runs
#                                on PORT it says so and exits 0 (fails if it runs on another port:
#                                `down` first). Safe to call from several tests at once (flock).
#   scripts/hdfs.sh down         stop it (SIGTERM: the JVM shuts the cluster down; SIGKILL after
#                                30 s)
#   scripts/hdfs.sh status       say whether it runs, and where; exit 1 if it does not
#
# Each `up` starts from an empty file system: $ROWSTREAM_CACHE/hdfs (the data, and the JVM's
# java.io.tmpdir, where Jetty unpacks the web UIs) is wiped first. Pid in
# $ROWSTREAM_CACHE/hdfs.pid, log (WARN and up) in $ROWSTREAM_CACHE/hdfs.log; the start takes
# 4-8 s on two cores, the JVM's RSS is ~300 MB.
#
# DataNodes: $ROWSTREAM_HDFS_DATANODES (default 1). With 1, closing a file often costs 0.5 s: the
# client's `complete` reaches the NameNode before the DataNode's block report, and hdfs-native
# asks again 500 ms later (a Paimon commit of a few rows takes ~2 s). With 2 (same memory, same
# start-up time) files are written to both (replication 2) and may close with their last block
# committed (dfs.namenode.file.close.num-committed-allowed=1): ~30 ms a file, ~0.2 s a commit.
#
# Settings: simple auth (the client's user name is taken as is), permissions off, replication =
# the number of DataNodes, every NameNode and DataNode socket on 127.0.0.1 (the DataNodes' ports
# are ephemeral ones), and each DataNode registers as 127.0.0.1 (dfs.datanode.hostname), so a
# client that connects to DataNodes directly (hdfs-native, under opendal's hdfs-native service
# and hdfs-native-object-store) reaches them whether it dials the address or the host name. Heap
# $ROWSTREAM_HDFS_HEAP (default 384m).
#
# Jars: org.apache.hadoop:hadoop-client-minicluster:$HADOOP_VERSION (default 3.5.0; 3.4.1 and
# 3.4.2 work too) with hadoop-client-api/-runtime, and slf4j-simple for the log. Resolved with
# Maven once (cached in $ROWSTREAM_CACHE/hdfs-$HADOOP_VERSION/libs); the launcher class is compiled
# there too (needs javac), again whenever this script's Java source changes.
set -euo pipefail

CACHE="${ROWSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream}"
HADOOP_VERSION="${HADOOP_VERSION:-3.5.0}"
SLF4J_VERSION=1.7.36
HOME_DIR="$CACHE/hdfs-$HADOOP_VERSION"
LIBS="$HOME_DIR/libs"
CLASSES="$HOME_DIR/classes"
WEB="$HOME_DIR/web"
HEAP="${ROWSTREAM_HDFS_HEAP:-384m}"
DATANODES="${ROWSTREAM_HDFS_DATANODES:-1}"
DATA="$CACHE/hdfs/data"
READY="$CACHE/hdfs/ready"
PID_FILE="$CACHE/hdfs.pid"
LOG="$CACHE/hdfs.log"
START_TIMEOUT=120

die() { echo "scripts/hdfs.sh: $*" >&2; exit 1; }
say() { echo "[hdfs] $*" >&2; }

jars() {
  [ -f "$LIBS/.complete" ] || resolve
  # The NameNode's and DataNode's web UIs, unpacked: first on the classpath, Jetty serves them
  # from this directory instead of unpacking them from the 56 MB jar at every start (~1-2 s)
  [ -d "$WEB/webapps/hdfs" ] && return 0
  command -v jar >/dev/null || die "jar is missing: install a JDK (apt-get install openjdk-17-jdk-headless)"
  rm -rf "$WEB" "$WEB.tmp.$$"
  mkdir -p "$WEB.tmp.$$"
  (cd "$WEB.tmp.$$" && jar xf "$LIBS/hadoop-client-minicluster-$HADOOP_VERSION.jar" webapps) &&
    [ -d "$WEB.tmp.$$/webapps/hdfs" ] ||
    { rm -rf "$WEB.tmp.$$"; die "cannot unpack webapps/ from $LIBS/hadoop-client-minicluster-$HADOOP_VERSION.jar"; }
  mv "$WEB.tmp.$$" "$WEB"
}

resolve() {
  command -v java >/dev/null || die "java is missing: install Java 17 (apt-get install openjdk-17-jdk-headless)"
  command -v mvn >/dev/null || die "mvn is missing: install Maven (apt-get install maven)"
  mkdir -p "$HOME_DIR"
  cat >"$HOME_DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rowstream</groupId><artifactId>hdfs-mini</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-client-minicluster</artifactId><version>$HADOOP_VERSION</version></dependency>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-client-api</artifactId><version>$HADOOP_VERSION</version></dependency>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-client-runtime</artifactId><version>$HADOOP_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$LIBS"
  say "resolving Hadoop $HADOOP_VERSION's minicluster from Maven Central (first time only; cached in $HOME_DIR)"
  mvn -q -B -f "$HOME_DIR/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$HOME_DIR/resolve.log" 2>&1 ||
    { tail -20 "$HOME_DIR/resolve.log" >&2; die "Maven could not resolve org.apache.hadoop:hadoop-client-minicluster:$HADOOP_VERSION (see $HOME_DIR/resolve.log)"; }
  touch "$LIBS/.complete"
}

# The launcher: builds the cluster, writes READY (its URL) once it is up, then waits for SIGTERM.
java_source() {
  cat <<'EOF'
import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

public class HdfsMini {
    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: HdfsMini PORT BASEDIR READYFILE DATANODES");
            System.exit(2);
        }
        int port = Integer.parseInt(args[0]);
        File base = new File(args[1]);
        Path ready = Paths.get(args[2]);
        int dataNodes = Integer.parseInt(args[3]);
        long t0 = System.nanoTime();

        Configuration conf = new HdfsConfiguration();
        conf.set("hadoop.security.authentication", "simple");
        conf.set("hadoop.tmp.dir", new File(base, "tmp").getAbsolutePath());
        conf.setBoolean("dfs.permissions.enabled", false);
        conf.setInt("dfs.replication", 1);
        // every socket on the loopback; the DataNode registers as 127.0.0.1, whatever this
        // machine's host name resolves to, and the NameNode takes it as is
        conf.set("dfs.namenode.http-address", "127.0.0.1:0");
        conf.set("dfs.datanode.address", "127.0.0.1:0");
        conf.set("dfs.datanode.http.address", "127.0.0.1:0");
        conf.set("dfs.datanode.ipc.address", "127.0.0.1:0");
        conf.set("dfs.datanode.hostname", "127.0.0.1");
        conf.setBoolean("dfs.namenode.datanode.registration.ip-hostname-check", false);
        // with two DataNodes or more: replication = their number, and a file closes as soon as
        // its last block is committed, without waiting for the DataNodes' block reports (with
        // one, a client's close often finds the block not yet reported and hdfs-native polls
        // `complete` again after 500 ms: +0.5 s on most files)
        if (dataNodes > 1) {
            conf.setInt("dfs.replication", dataNodes);
            conf.setInt("dfs.namenode.file.close.num-committed-allowed", 1);
        }

        MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf, base)
                .nameNodePort(port)
                .nameNodeHttpPort(0)
                .numDataNodes(dataNodes)
                .format(true)
                .checkDataNodeAddrConfig(true)
                .build();
        Runtime.getRuntime().addShutdownHook(new Thread(cluster::shutdown));
        cluster.waitActive();

        // one round trip through the NameNode and the DataNode before saying it is up
        FileSystem fs = cluster.getFileSystem();
        org.apache.hadoop.fs.Path probe = new org.apache.hadoop.fs.Path("/.hdfs-mini-probe");
        try (org.apache.hadoop.fs.FSDataOutputStream out = fs.create(probe, true)) {
            out.write(1);
        }
        fs.delete(probe, false);

        String url = "hdfs://127.0.0.1:" + cluster.getNameNodePort();
        Path tmp = Paths.get(args[2] + ".tmp");
        Files.write(tmp, (url + "\n").getBytes(StandardCharsets.UTF_8));
        Files.move(tmp, ready, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        StringBuilder dns = new StringBuilder();
        for (org.apache.hadoop.hdfs.server.datanode.DataNode dn : cluster.getDataNodes()) {
            dns.append(' ').append(dn.getXferAddress());
        }
        System.err.printf("HdfsMini: %s up in %d ms (DataNodes:%s)%n", url,
                (System.nanoTime() - t0) / 1_000_000, dns);
        Thread.currentThread().join();
    }
}
EOF
}

compile() {
  jars
  local src="$HOME_DIR/src/HdfsMini.java"
  mkdir -p "$HOME_DIR/src"
  if [ -f "$CLASSES/HdfsMini.class" ] && java_source | cmp -s - "$src"; then return 0; fi
  command -v javac >/dev/null || die "javac is missing: install a JDK (apt-get install openjdk-17-jdk-headless)"
  java_source >"$src"
  rm -rf "$CLASSES"
  mkdir -p "$CLASSES.tmp.$$"
  javac -nowarn -encoding UTF-8 -cp "$LIBS/*" -d "$CLASSES.tmp.$$" "$src" >&2 ||
    { rm -rf "$CLASSES.tmp.$$"; die "javac failed on $src"; }
  mv "$CLASSES.tmp.$$" "$CLASSES"
}

# The pid of the running launcher, or nothing.
running_pid() {
  local pid
  [ -f "$PID_FILE" ] || return 0
  pid="$(cat "$PID_FILE" 2>/dev/null || true)"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qa HdfsMini "/proc/$pid/cmdline" 2>/dev/null &&
    echo "$pid"
  return 0
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

up() {
  local port="$1" pid url
  compile
  pid="$(running_pid)"
  if [ -n "$pid" ]; then
    url="$(cat "$READY" 2>/dev/null || true)"
    [ -n "$url" ] || die "HDFS (pid $pid) is running but never became ready (log: $LOG): scripts/hdfs.sh down, then up"
    [ "$url" = "hdfs://127.0.0.1:$port" ] || die "HDFS already runs at $url, not on port $port: scripts/hdfs.sh down first"
    say "already up at $url (pid $pid)"
    echo "$url"
    return 0
  fi
  port_open "$port" && die "127.0.0.1:$port is already taken by another process (not this script's HDFS)"
  rm -rf "$CACHE/hdfs"
  mkdir -p "$DATA"
  say "starting MiniDFSCluster (Hadoop $HADOOP_VERSION, $DATANODES DataNode(s)) on 127.0.0.1:$port (log: $LOG)"
  local start=$SECONDS
  # setsid + nohup: the JVM outlives the caller (a test); no inherited descriptor (a test
  # harness's pipes, the lock's fd 9) stays open in it
  mkdir -p "$CACHE/hdfs/tmp"
  setsid nohup java -Xmx"$HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Djava.io.tmpdir="$CACHE/hdfs/tmp" \
    -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -Dorg.slf4j.simpleLogger.showDateTime=true \
    -cp "$WEB:$CLASSES:$LIBS/*" HdfsMini "$port" "$DATA" "$READY" "$DATANODES" \
    </dev/null >"$LOG" 2>&1 9>&- &
  pid=$!
  echo "$pid" >"$PID_FILE"
  until [ -f "$READY" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PID_FILE"
      tail -30 "$LOG" >&2
      die "MiniDFSCluster exited before it was up (log: $LOG)"
    fi
    if [ $((SECONDS - start)) -ge "$START_TIMEOUT" ]; then
      kill "$pid" 2>/dev/null || true
      rm -f "$PID_FILE"
      tail -30 "$LOG" >&2
      die "MiniDFSCluster was not up after ${START_TIMEOUT}s (log: $LOG)"
    fi
    sleep 0.2
  done
  url="$(cat "$READY")"
  say "up at $url (pid $pid, $((SECONDS - start))s)"
  echo "$url"
}

down() {
  local pid
  pid="$(running_pid)"
  if [ -z "$pid" ]; then
    rm -f "$PID_FILE" "$READY"
    say "not running"
    return 0
  fi
  kill "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      kill -9 "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  rm -f "$PID_FILE" "$READY"
  say "stopped (pid $pid)"
}

# One resolver/compiler/starter at a time (tests may call `up` at once on a cold cache). The
# lock's descriptor is closed for the JVM (9>&- above), so it is released when this script ends.
locked() {
  mkdir -p "$CACHE"
  if command -v flock >/dev/null; then
    ( flock 9; "$@" ) 9>"$CACHE/hdfs.lock"
  else
    "$@"
  fi
}

case "${1:-}" in
  jars)
    locked compile
    echo "$WEB:$CLASSES:$LIBS/*"
    ;;
  up)
    [ $# -le 2 ] || die "usage: scripts/hdfs.sh up [PORT]"
    port="${2:-${ROWSTREAM_HDFS_PORT:-9820}}"
    case "$port" in '' | *[!0-9]*) die "PORT must be a number, not '$port'" ;; esac
    case "$DATANODES" in [1-9]) ;; *) die "ROWSTREAM_HDFS_DATANODES must be 1 to 9, not '$DATANODES'" ;; esac
    locked up "$port"
    ;;
  down)
    locked down
    ;;
  status)
    pid="$(running_pid)"
    if [ -n "$pid" ] && [ -f "$READY" ]; then
      echo "up at $(cat "$READY") (pid $pid)"
    elif [ -n "$pid" ]; then
      echo "starting (pid $pid)"
    else
      echo "not running"
      exit 1
    fi
    ;;
  "" | -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
  *)
    die "unknown command '$1' (jars, up [PORT], down, status)"
    ;;
esac
