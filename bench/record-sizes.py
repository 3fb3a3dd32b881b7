#!/usr/bin/env python3
"""Average key and value size of the row records in a Kafka topic, read from the broker over the
Kafka protocol (Metadata, Fetch v4-v6, record batches v2), Python standard library only: no
consumer group, no JVM. What scripts/bench.sh (BENCH_ONLY=ratios) gives Kafka's
ProducerPerformance as its record size, so that the producer ceiling moves records as large as
rowstream's.

  bench/record-sizes.py BROKERS TOPIC
      reads the topic from its start to its end offsets (at the time of the call) and prints
      "records=N key_bytes=K value_bytes=V header_bytes=H avg_key=K/N avg_value=V/N avg_headers=H/N
       avg_record=(K+V+H)/N skipped=S"
      (H: the bytes of the headers' names and values; rowstream gives each record one,
      `rowstream.order`, of about 40 bytes)

Records whose value is no row record (heartbeats `MHEARTBEAT`, DDL records: every value without
"op":"INSERT" / "UPDATE_..." / "DELETE") are counted in `skipped` and left out of the averages;
control batches (transaction markers) are skipped. Batches compressed with gzip are read;
snappy, lz4 and zstd are not (rowstream does not compress unless `kafka.properties` says so).
"""
import gzip
import importlib.util
import os
import struct
import sys

_spec = importlib.util.spec_from_file_location(
    "topic_end_offsets", os.path.join(os.path.dirname(os.path.abspath(__file__)), "topic-end-offsets.py"))
teo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(teo)

API_FETCH = 1


def _read(self, n):
    """topic-end-offsets' Conn._read, without its quadratic `buf += chunk` (fetches are MBs)"""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        r = self.sock.recv_into(view[got:], n - got)
        if not r:
            raise IOError("connection closed by the broker")
        got += r
    return bytes(buf)


teo.Conn._read = _read
ROW_OPS = (b"IN", b"UP", b"DE")  # INSERT, UPDATE_BEFORE / UPDATE_AFTER, DELETE (DINDEX is a DDL op)


def varint(buf, i):
    """zigzag varint at buf[i]: (value, next index)"""
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return (result >> 1) ^ -(result & 1), i
        shift += 7


class Sizes:
    def __init__(self):
        self.records = self.key_bytes = self.value_bytes = self.header_bytes = self.skipped = 0

    def records_of(self, data, first_offset):
        """walk the record batches in `data`; returns the offset after the last whole batch (or
        None when `data` holds no whole batch)"""
        i, nxt = 0, None
        while i + 12 <= len(data):
            base, length = struct.unpack_from(">qi", data, i)
            end = i + 12 + length
            if end > len(data):
                break  # a batch cut by the fetch size: asked for again next time
            magic = data[i + 16]
            if magic != 2:
                raise SystemExit(f"record-sizes: record batch magic {magic}, only v2 is read")
            attributes, last_delta = struct.unpack_from(">hi", data, i + 21)
            count = struct.unpack_from(">i", data, i + 57)[0]
            nxt = base + last_delta + 1
            if not attributes & 0x20:  # not a control batch
                codec = attributes & 0x07
                body = data[i + 61:end]
                if codec == 1:
                    body = gzip.decompress(body)
                elif codec:
                    raise SystemExit(f"record-sizes: compression codec {codec} (snappy/lz4/zstd) is not read")
                self.batch(body, count, base, first_offset)
            i = end
        return nxt

    def batch(self, body, count, base, first_offset):
        # varints inlined where they fit one byte (nearly all of them): a million records take
        # seconds, not tens of seconds
        j = 0
        for _ in range(count):
            b, c = body[j], body[j + 1]  # record length: two bytes for records of 64 B to 8 KB
            if b >= 0x80 and c < 0x80:
                u = (b & 0x7F) | (c << 7)
                length, j = (u >> 1) ^ -(u & 1), j + 2
            else:
                length, j = varint(body, j)
            end = j + length
            k = j + 1  # attributes
            if body[k] < 0x80:  # timestamp delta
                k += 1
            else:
                _, k = varint(body, k)
            b = body[k]  # offset delta
            if b < 0x80:
                delta = (b >> 1) ^ -(b & 1)
                k += 1
            else:
                delta, k = varint(body, k)
            b = body[k]  # key length
            if b < 0x80:
                klen = (b >> 1) ^ -(b & 1)
                k += 1
            else:
                klen, k = varint(body, k)
            if klen > 0:
                k += klen
            b, c = body[k], body[k + 1]  # value length
            if b >= 0x80 and c < 0x80:
                u = (b & 0x7F) | (c << 7)
                vlen, k = (u >> 1) ^ -(u & 1), k + 2
            else:
                vlen, k = varint(body, k)
            if base + delta >= first_offset:
                # a row record's op is in its last ~40 bytes (`"op":...,"ddl":null},"version":"0.0.1"}`)
                at = body.rfind(b'"op":"', max(k, k + vlen - 200), k + vlen) if vlen > 0 else -1
                if at >= 0 and body[at + 6:at + 8] in ROW_OPS:
                    self.records += 1
                    if klen > 0:
                        self.key_bytes += klen
                    self.value_bytes += vlen
                    k += vlen
                    if body[k]:  # headers: the bytes of their names and values
                        n, k = varint(body, k)
                        for _ in range(n):
                            hk, k = varint(body, k)
                            k += hk
                            hv, k = varint(body, k)
                            k += max(hv, 0)
                            self.header_bytes += hk + max(hv, 0)
                else:
                    self.skipped += 1
            j = end


def fetch(conn, version, topic, partition, offset, max_bytes):
    body = struct.pack(">iiiib", -1, 500, 1, max_bytes, 0)  # replica, max_wait, min_bytes, max_bytes, isolation
    body += struct.pack(">i", 1) + teo.kstr(topic) + struct.pack(">ii", 1, partition) + struct.pack(">q", offset)
    if version >= 5:
        body += struct.pack(">q", -1)  # log_start_offset
    body += struct.pack(">i", max_bytes)
    r = conn.call(API_FETCH, version, body)
    r.i32()  # throttle_time_ms
    out = None

    def topic_():
        nonlocal out
        r.string()

        def part():
            nonlocal out
            idx, err, hw = r.i32(), r.i16(), r.i64()
            r.i64()  # last_stable_offset
            if version >= 5:
                r.i64()  # log_start_offset
            r.array(lambda: r.take(">qq"))  # aborted transactions
            n = r.i32()
            data = b"" if n < 0 else r.d[r.i:r.i + n]
            r.i += max(n, 0)
            if idx == partition:
                out = (err, hw, data)
        r.array(part)
    r.array(topic_)
    if out is None:
        raise IOError(f"no answer for partition {partition}")
    return out


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    brokers, topic = argv[1], argv[2]
    counter = teo.Counter(brokers, topic)
    counter.metadata()
    if not counter.leaders:
        raise SystemExit(f"record-sizes: topic {topic} not found (or a partition has no leader)")
    sizes = Sizes()
    max_bytes = 32 << 20
    for partition, addr in sorted(counter.leaders.items()):
        conn = counter.conn(addr)
        version = teo.pick(counter.versions, API_FETCH, 4, 6)
        offset, end = 0, None
        while end is None or offset < end:
            err, hw, data = fetch(conn, version, topic, partition, offset, max_bytes)
            if err:
                raise SystemExit(f"record-sizes: fetch {topic}/{partition} at {offset}: error {err}")
            if end is None:
                end = hw
                if offset >= end:
                    break
            nxt = sizes.records_of(data, offset)
            if nxt is None:
                if len(data) >= max_bytes:
                    max_bytes *= 2  # one batch larger than the fetch size
                    continue
                raise SystemExit(f"record-sizes: no records at {topic}/{partition} offset {offset} (end {end})")
            offset = nxt
    counter.drop()
    n = sizes.records
    avg = (lambda b: f"{b / n:.1f}") if n else (lambda b: "0")
    total = sizes.key_bytes + sizes.value_bytes + sizes.header_bytes
    print(f"records={n} key_bytes={sizes.key_bytes} value_bytes={sizes.value_bytes} header_bytes={sizes.header_bytes} "
          f"avg_key={avg(sizes.key_bytes)} avg_value={avg(sizes.value_bytes)} avg_headers={avg(sizes.header_bytes)} "
          f"avg_record={avg(total)} skipped={sizes.skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
