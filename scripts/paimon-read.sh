#!/usr/bin/env bash
# Read Apache Paimon tables with Paimon's own Java API and print their rows as one JSON object, so
# the tests can check what the Rust writer produced against what Java Paimon reads.
#
#   scripts/paimon-read.sh WAREHOUSE DB.TABLE...
#                                         open the filesystem catalog at WAREHOUSE (a local path
#                                         or file:// URI), read each table's latest snapshot
#                                         (merge-on-read for primary-key tables: deleted keys are
#                                         gone, one row per key) and print on stdout
#                                           {"db.table": [{"col": value, ...}, ...], ...}
#                                         rows in the order the reader returns them (sort them
#                                         yourself), columns in schema order
#   scripts/paimon-read.sh jars           resolve the jars and compile the reader only; prints
#                                         the classpath
#
# Values: null -> null; TINYINT/SMALLINT/INT/BIGINT -> JSON number; BOOLEAN -> true/false;
# CHAR/VARCHAR/STRING -> JSON string; DECIMAL -> string (BigDecimal.toPlainString, e.g. "4.50");
# TIMESTAMP/TIMESTAMP_LTZ -> string of microseconds since the epoch; DATE -> number of days since
# the epoch; TIME -> number of milliseconds of the day; BINARY/VARBINARY/BYTES -> base64 string;
# FLOAT/DOUBLE -> string (Float/Double.toString); ARRAY -> JSON array; ROW -> JSON object;
# MAP -> JSON array of [key, value] pairs.
#
# Jars: org.apache.paimon:paimon-bundle:$PAIMON_VERSION (default 1.4.2) plus the Hadoop classes
# its Parquet/ORC readers link against (org.apache.hadoop:hadoop-client-api and
# hadoop-client-runtime $HADOOP_VERSION, default 3.4.1), and slf4j-nop so that no log line
# reaches stdout. Resolved with Maven once (cached in
# $ROWSTREAM_CACHE/paimon-java-$PAIMON_VERSION/libs); the reader class is compiled there too (needs
# javac), again whenever this script's Java source changes. Heap $PAIMON_READ_HEAP (default 256m).
#
# Versions: paimon-rust writes primary-key data files in "thin mode" (no _KEY_ columns). Paimon
# 1.0.1, 1.2.0, 1.3.1 and 1.4.2 read them (same rows as pypaimon); 0.9.0 fails with
# "java.io.IOException: Required column is missing in data file. Col: [_KEY_id]".
set -euo pipefail

CACHE="${ROWSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rowstream}"
PAIMON_VERSION="${PAIMON_VERSION:-1.4.2}"
HADOOP_VERSION="${HADOOP_VERSION:-3.4.1}"
SLF4J_VERSION=1.7.36
HOME_DIR="$CACHE/paimon-java-$PAIMON_VERSION"
LIBS="$HOME_DIR/libs"
CLASSES="$HOME_DIR/classes"
HEAP="${PAIMON_READ_HEAP:-256m}"

die() { echo "scripts/paimon-read.sh: $*" >&2; exit 1; }

jars() {
  [ -f "$LIBS/.complete" ] && return 0
  command -v java >/dev/null || die "java is missing: install Java 17 (apt-get install openjdk-17-jdk-headless)"
  command -v mvn >/dev/null || die "mvn is missing: install Maven (apt-get install maven)"
  mkdir -p "$HOME_DIR"
  cat >"$HOME_DIR/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>rowstream</groupId><artifactId>paimon-read</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.paimon</groupId><artifactId>paimon-bundle</artifactId><version>$PAIMON_VERSION</version></dependency>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-client-api</artifactId><version>$HADOOP_VERSION</version></dependency>
    <dependency><groupId>org.apache.hadoop</groupId><artifactId>hadoop-client-runtime</artifactId><version>$HADOOP_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-nop</artifactId><version>$SLF4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
  rm -rf "$LIBS"
  echo "[paimon-read] resolving Paimon $PAIMON_VERSION from Maven Central (first time only; cached in $HOME_DIR)" >&2
  mvn -q -B -f "$HOME_DIR/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
    dependency:copy-dependencies -DoutputDirectory="$LIBS" -DincludeScope=runtime >"$HOME_DIR/resolve.log" 2>&1 ||
    { tail -20 "$HOME_DIR/resolve.log" >&2; die "Maven could not resolve org.apache.paimon:paimon-bundle:$PAIMON_VERSION (see $HOME_DIR/resolve.log)"; }
  touch "$LIBS/.complete"
}

# The reader: one class, no dependency beyond paimon-bundle (JSON written by hand).
java_source() {
  cat <<'EOF'
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

import org.apache.paimon.catalog.Catalog;
import org.apache.paimon.catalog.CatalogContext;
import org.apache.paimon.catalog.CatalogFactory;
import org.apache.paimon.catalog.Identifier;
import org.apache.paimon.data.DataGetters;
import org.apache.paimon.data.InternalArray;
import org.apache.paimon.data.InternalMap;
import org.apache.paimon.data.InternalRow;
import org.apache.paimon.fs.Path;
import org.apache.paimon.reader.RecordReader;
import org.apache.paimon.table.Table;
import org.apache.paimon.table.source.ReadBuilder;
import org.apache.paimon.table.source.Split;
import org.apache.paimon.types.ArrayType;
import org.apache.paimon.types.DataField;
import org.apache.paimon.types.DataType;
import org.apache.paimon.types.DataTypeChecks;
import org.apache.paimon.types.MapType;
import org.apache.paimon.types.RowType;

public class PaimonRead {
    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: PaimonRead WAREHOUSE DB.TABLE...");
            System.exit(2);
        }
        StringBuilder out = new StringBuilder("{");
        try (Catalog catalog =
                CatalogFactory.createCatalog(CatalogContext.create(new Path(args[0])))) {
            for (int t = 1; t < args.length; t++) {
                Table table = catalog.getTable(Identifier.fromString(args[t]));
                RowType rowType = table.rowType();
                ReadBuilder rb = table.newReadBuilder();
                List<Split> splits = rb.newScan().plan().splits();
                if (t > 1) out.append(',');
                str(out, args[t]);
                out.append(":[");
                boolean[] first = {true};
                try (RecordReader<InternalRow> reader = rb.newRead().createReader(splits)) {
                    reader.forEachRemaining(row -> {
                        if (!first[0]) out.append(',');
                        first[0] = false;
                        row(out, row, rowType);
                    });
                }
                out.append(']');
            }
        }
        out.append("}\n");
        System.out.write(out.toString().getBytes(StandardCharsets.UTF_8));
        System.out.flush();
    }

    static void row(StringBuilder out, DataGetters row, RowType type) {
        List<DataField> fields = type.getFields();
        out.append('{');
        for (int i = 0; i < fields.size(); i++) {
            if (i > 0) out.append(',');
            str(out, fields.get(i).name());
            out.append(':');
            value(out, row, i, fields.get(i).type());
        }
        out.append('}');
    }

    static void value(StringBuilder out, DataGetters g, int i, DataType type) {
        if (g.isNullAt(i)) {
            out.append("null");
            return;
        }
        switch (type.getTypeRoot()) {
            case BOOLEAN: out.append(g.getBoolean(i)); break;
            case TINYINT: out.append(g.getByte(i)); break;
            case SMALLINT: out.append(g.getShort(i)); break;
            case INTEGER: case DATE: case TIME_WITHOUT_TIME_ZONE: out.append(g.getInt(i)); break;
            case BIGINT: out.append(g.getLong(i)); break;
            case FLOAT: str(out, Float.toString(g.getFloat(i))); break;
            case DOUBLE: str(out, Double.toString(g.getDouble(i))); break;
            case CHAR: case VARCHAR: str(out, g.getString(i).toString()); break;
            case BINARY: case VARBINARY:
                str(out, Base64.getEncoder().encodeToString(g.getBinary(i))); break;
            case DECIMAL: {
                BigDecimal d = g.getDecimal(i, DataTypeChecks.getPrecision(type),
                        DataTypeChecks.getScale(type)).toBigDecimal();
                str(out, d.toPlainString());
                break;
            }
            case TIMESTAMP_WITHOUT_TIME_ZONE: case TIMESTAMP_WITH_LOCAL_TIME_ZONE:
                str(out, Long.toString(
                        g.getTimestamp(i, DataTypeChecks.getPrecision(type)).toMicros()));
                break;
            case ARRAY: {
                InternalArray a = g.getArray(i);
                DataType et = ((ArrayType) type).getElementType();
                out.append('[');
                for (int j = 0; j < a.size(); j++) {
                    if (j > 0) out.append(',');
                    value(out, a, j, et);
                }
                out.append(']');
                break;
            }
            case MAP: case MULTISET: {
                InternalMap m = g.getMap(i);
                DataType kt = type instanceof MapType ? ((MapType) type).getKeyType()
                        : ((org.apache.paimon.types.MultisetType) type).getElementType();
                DataType vt = type instanceof MapType ? ((MapType) type).getValueType()
                        : new org.apache.paimon.types.IntType(false);
                InternalArray ks = m.keyArray(), vs = m.valueArray();
                out.append('[');
                for (int j = 0; j < m.size(); j++) {
                    if (j > 0) out.append(',');
                    out.append('[');
                    value(out, ks, j, kt);
                    out.append(',');
                    value(out, vs, j, vt);
                    out.append(']');
                }
                out.append(']');
                break;
            }
            case ROW: {
                RowType rt = (RowType) type;
                row(out, g.getRow(i, rt.getFieldCount()), rt);
                break;
            }
            default:
                throw new UnsupportedOperationException("type not supported: " + type);
        }
    }

    static void str(StringBuilder out, String s) {
        out.append('"');
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                case '\b': out.append("\\b"); break;
                case '\f': out.append("\\f"); break;
                default:
                    if (c < 0x20) out.append(String.format("\\u%04x", (int) c));
                    else out.append(c);
            }
        }
        out.append('"');
    }
}
EOF
}

compile() {
  jars
  local src="$HOME_DIR/src/PaimonRead.java"
  mkdir -p "$HOME_DIR/src"
  if [ -f "$CLASSES/PaimonRead.class" ] && java_source | cmp -s - "$src"; then return 0; fi
  command -v javac >/dev/null || die "javac is missing: install a JDK (apt-get install openjdk-17-jdk-headless)"
  java_source >"$src"
  rm -rf "$CLASSES"
  mkdir -p "$CLASSES.tmp.$$"
  javac -nowarn -encoding UTF-8 -cp "$LIBS/*" -d "$CLASSES.tmp.$$" "$src" >&2 ||
    { rm -rf "$CLASSES.tmp.$$"; die "javac failed on $src"; }
  mv "$CLASSES.tmp.$$" "$CLASSES"
}

# One resolver/compiler at a time (tests may start several readers at once on a cold cache).
locked() {
  mkdir -p "$HOME_DIR"
  if command -v flock >/dev/null; then
    ( flock 9; compile ) 9>"$HOME_DIR/.lock"
  else
    compile
  fi
}

case "${1:-}" in
  jars)
    locked
    echo "$CLASSES:$LIBS/*"
    ;;
  "" | -h | --help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
  *)
    [ $# -ge 2 ] || die "usage: scripts/paimon-read.sh WAREHOUSE DB.TABLE..."
    locked
    exec java -Xmx"$HEAP" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
      -Dlog4j2.level=OFF -cp "$CLASSES:$LIBS/*" PaimonRead "$@"
    ;;
esac
