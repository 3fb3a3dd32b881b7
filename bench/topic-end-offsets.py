#!/usr/bin/env python3
"""Sum of a Kafka topic's end offsets (high watermarks) over its partitions, without a consumer,
a consumer group or a JVM: the Kafka wire protocol over plain sockets (ApiVersions, Metadata,
ListOffsets; non-flexible versions, chosen from what the broker announces). Standard library only.

  bench/topic-end-offsets.py BROKERS TOPIC
      print the sum once (0 while the topic does not exist) and exit
  bench/topic-end-offsets.py BROKERS TOPIC --wait-for N [--interval SECS] [--timeout SECS]
      poll every SECS (default 0.05) until the sum is >= N, then print
      "REACHED records=SUM at=UNIX_TIME" (UNIX_TIME: the wall clock when the poll that saw it was
      answered) and exit 0; exit 2 after --timeout seconds (default: none) with
      "TIMEOUT records=SUM"

  bench/topic-end-offsets.py BROKERS --delete TOPIC [TOPIC...]
      delete the topics (DeleteTopics; one that does not exist is no error), print
      "deleted N" (the number that existed)

BROKERS: host:port[,host:port...] (the first that answers is used to find the partition leaders).
The sum of end offsets is the number of records written to a topic that is neither compacted,
transactional nor trimmed by retention: true of a topic a source connector has just filled.
"""
import socket
import struct
import sys
import time

API_LIST_OFFSETS, API_METADATA, API_DELETE_TOPICS, API_VERSIONS = 2, 3, 20, 18
CLIENT_ID = b"rowstream-bench"


class Reader:
    def __init__(self, data):
        self.d, self.i = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.i)
        self.i += struct.calcsize(fmt)
        return v[0] if len(v) == 1 else v

    def i8(self): return self.take(">b")
    def i16(self): return self.take(">h")
    def i32(self): return self.take(">i")
    def i64(self): return self.take(">q")

    def string(self):
        n = self.i16()
        if n < 0:
            return None
        s = self.d[self.i:self.i + n].decode()
        self.i += n
        return s

    def array(self, item):
        n = self.i32()
        return [item() for _ in range(max(n, 0))]


def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.corr = 0

    def call(self, api, version, body):
        self.corr += 1
        header = struct.pack(">hhi", api, version, self.corr) + struct.pack(">h", len(CLIENT_ID)) + CLIENT_ID
        msg = header + body
        self.sock.sendall(struct.pack(">i", len(msg)) + msg)
        size = struct.unpack(">i", self._read(4))[0]
        r = Reader(self._read(size))
        if r.i32() != self.corr:
            raise IOError("correlation id mismatch")
        return r

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise IOError("connection closed by the broker")
            buf += chunk
        return buf

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def pick(versions, api, lo, hi):
    """highest version of `api` in [lo, hi] that the broker supports"""
    if api not in versions:
        raise SystemExit(f"topic-end-offsets: the broker does not announce api {api}")
    bmin, bmax = versions[api]
    v = min(bmax, hi)
    if v < max(bmin, lo):
        raise SystemExit(f"topic-end-offsets: api {api}: the broker supports v{bmin}-v{bmax}, this script v{lo}-v{hi}")
    return v


class Counter:
    def __init__(self, brokers, topic):
        self.bootstrap = [(h, int(p)) for h, p in (b.rsplit(":", 1) for b in brokers.split(","))]
        self.topic = topic
        self.conns = {}      # (host, port) -> Conn
        self.versions = None
        self.leaders = None  # partition -> (host, port)
        self.meta_at = 0.0

    def conn(self, addr):
        c = self.conns.get(addr)
        if c is None:
            c = self.conns[addr] = Conn(*addr)
            if self.versions is None:
                r = c.call(API_VERSIONS, 0, b"")
                err = r.i16()
                if err:
                    raise IOError(f"ApiVersions error {err}")
                self.versions = {k: (lo, hi) for k, lo, hi in r.array(lambda: r.take(">hhh"))}
        return c

    def drop(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()
        self.leaders = None

    def metadata(self):
        last = None
        for addr in self.bootstrap:
            try:
                c = self.conn(addr)
                break
            except OSError as e:
                last = e
        else:
            raise IOError(f"no broker of {self.bootstrap} answers: {last}")
        v = pick(self.versions, API_METADATA, 1, 8)
        body = struct.pack(">i", 1) + kstr(self.topic)
        if v >= 4:
            body += b"\x00"  # allow_auto_topic_creation = false
        if v >= 8:
            body += b"\x00\x00"
        r = c.call(API_METADATA, v, body)
        if v >= 3:
            r.i32()  # throttle_time_ms

        def broker():
            node, host, port = r.i32(), r.string(), r.i32()
            r.string()  # rack
            return node, (host, port)
        brokers = dict(r.array(broker))
        if v >= 2:
            r.string()  # cluster_id
        r.i32()  # controller_id
        leaders = {}
        ok = True

        def topic():
            nonlocal ok
            err, name = r.i16(), r.string()
            r.i8()  # is_internal

            def partition():
                nonlocal ok
                perr, idx, leader = r.i16(), r.i32(), r.i32()
                if v >= 7:
                    r.i32()  # leader_epoch
                r.array(r.i32)  # replicas
                r.array(r.i32)  # isr
                if v >= 5:
                    r.array(r.i32)  # offline replicas
                if perr or leader < 0 or leader not in brokers:
                    ok = False
                else:
                    leaders[idx] = brokers[leader]
            parts = r.array(partition)
            if v >= 8:
                r.i32()
            if name == self.topic and (err or not parts):
                ok = False
        r.array(topic)
        self.leaders = leaders if ok and leaders else None
        self.meta_at = time.monotonic()

    def count(self):
        """sum of end offsets; 0 while the topic does not exist or has a partition without leader"""
        if self.leaders is None or time.monotonic() - self.meta_at > 2.0:
            self.metadata()
            if self.leaders is None:
                return 0
        by_leader = {}
        for p, addr in self.leaders.items():
            by_leader.setdefault(addr, []).append(p)
        total = 0
        for addr, parts in by_leader.items():
            c = self.conn(addr)
            v = pick(self.versions, API_LIST_OFFSETS, 1, 5)
            body = struct.pack(">i", -1)  # replica_id
            if v >= 2:
                body += b"\x00"  # isolation_level = read_uncommitted: the high watermark
            body += struct.pack(">i", 1) + kstr(self.topic) + struct.pack(">i", len(parts))
            for p in parts:
                body += struct.pack(">i", p)
                if v >= 4:
                    body += struct.pack(">i", -1)  # current_leader_epoch
                body += struct.pack(">q", -1)  # latest
            r = c.call(API_LIST_OFFSETS, v, body)
            if v >= 2:
                r.i32()
            failed = False

            def topic():
                r.string()

                def partition():
                    nonlocal failed, total
                    r.i32()
                    err = r.i16()
                    r.i64()  # timestamp
                    off = r.i64()
                    if v >= 4:
                        r.i32()
                    if err:
                        failed = True
                    else:
                        total += off
                r.array(partition)
            r.array(topic)
            if failed:
                self.leaders = None  # leadership moved: look again next time
                return 0
        return total


def delete_topics(brokers, topics):
    counter = Counter(brokers, topics[0])
    counter.metadata()  # connects, learns the api versions
    c = next(iter(counter.conns.values()))
    v = pick(counter.versions, API_DELETE_TOPICS, 1, 3)
    body = struct.pack(">i", len(topics)) + b"".join(kstr(t) for t in topics) + struct.pack(">i", 30000)
    r = c.call(API_DELETE_TOPICS, v, body)
    r.i32()  # throttle_time_ms
    deleted, failed = 0, []

    def result():
        nonlocal deleted
        name, err = r.string(), r.i16()
        if err == 0:
            deleted += 1
        elif err != 3:  # 3: UNKNOWN_TOPIC_OR_PARTITION, already gone
            failed.append(f"{name}: error {err}")
    r.array(result)
    counter.drop()
    print(f"deleted {deleted}")
    if failed:
        print("topic-end-offsets: could not delete " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


def main(argv):
    args = argv[1:]
    opts = {"--wait-for": None, "--interval": "0.05", "--timeout": None}
    pos = []
    while args:
        a = args.pop(0)
        if a in opts:
            if not args:
                raise SystemExit(f"topic-end-offsets: {a} needs a value")
            opts[a] = args.pop(0)
        else:
            pos.append(a)
    if "--delete" in pos:
        i = pos.index("--delete")
        if i != 1 or len(pos) < 3:
            raise SystemExit(__doc__)
        return delete_topics(pos[0], pos[2:])
    if len(pos) != 2:
        raise SystemExit(__doc__)
    counter = Counter(pos[0], pos[1])
    if opts["--wait-for"] is None:
        print(counter.count())
        return 0
    target, interval = int(opts["--wait-for"]), float(opts["--interval"])
    deadline = time.monotonic() + float(opts["--timeout"]) if opts["--timeout"] else None
    n = 0
    while True:
        try:
            n = counter.count()
        except (OSError, struct.error) as e:  # broker restarted, connection lost: try again
            print(f"topic-end-offsets: {e}; retrying", file=sys.stderr)
            counter.drop()
            n = 0
        if n >= target:
            print(f"REACHED records={n} at={time.time():.6f}", flush=True)
            return 0
        if deadline is not None and time.monotonic() > deadline:
            print(f"TIMEOUT records={n}", flush=True)
            return 2
        time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
