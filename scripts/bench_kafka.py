"""The Kafka bench's client side (docs/benchmarks.md, "Kafka"), on confluent-kafka
(librdkafka), against a running `opendata serve --kafka-listen`.

  python3 scripts/bench_kafka.py BOOTSTRAP [RECORDS]

Prints one JSON object per measurement:
  produce  RECORDS records of 256 B, acks=all, linger.ms=5 (librdkafka's other batching
           defaults), one producer, 4 partitions: records/s from the first send to the
           last acknowledgement;
  consume  the same records from storage by one consumer (batched `consume`), the clock
           running from the assignment to the last record;
  latency  2,000 records sent one per millisecond, each carrying its send time, read by a
           consumer in the same process: produce-to-consume p50/p99/max.
"""

import json
import sys
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def emit(**kw):
    print(json.dumps(kw), flush=True)


def topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for _, f in admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)]).items():
        f.result(30)


def produce(bootstrap, n):
    topic(bootstrap, "bench", 4)
    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    })
    value = bytes(range(256))
    failed = [0]
    acked = [0]

    def cb(err, _msg):
        if err is None:
            acked[0] += 1
        else:
            failed[0] += 1

    start = time.perf_counter()
    for i in range(n):
        while True:
            try:
                p.produce("bench", value, partition=i % 4, on_delivery=cb)
                break
            except BufferError:
                p.poll(0.001)
        if i % 1000 == 0:
            p.poll(0)
    p.flush(120)
    secs = time.perf_counter() - start
    emit(bench="produce", records=acked[0], failed=failed[0], seconds=round(secs, 3),
         records_per_s=round(acked[0] / secs))


def consume(bootstrap, n):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "bench-consume",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        # librdkafka's fetch sizes (1 MiB per partition): much larger fetches overfill
        # its queue and it backs off for fetch.queue.backoff.ms (1 s) between them.
    })
    c.assign([TopicPartition("bench", p, 0) for p in range(4)])
    got = 0
    nbytes = 0
    start = time.perf_counter()
    idle_since = None
    while got < n:
        # A short timeout: librdkafka waits for a full batch until it expires.
        msgs = c.consume(num_messages=10_000, timeout=0.05)
        if not msgs:
            idle_since = idle_since or time.perf_counter()
            if time.perf_counter() - idle_since > 5:
                break
            continue
        idle_since = None
        for m in msgs:
            if m.error() is None:
                got += 1
                nbytes += len(m.value())
    secs = time.perf_counter() - start
    c.close()
    emit(bench="consume", records=got, bytes=nbytes, seconds=round(secs, 3),
         records_per_s=round(got / secs))


def latency(bootstrap, count=2000):
    topic(bootstrap, "latency", 1)
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "bench-latency",
        "auto.offset.reset": "latest",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": 500,
        "fetch.min.bytes": 1,
    })
    c.assign([TopicPartition("latency", 0, -1)])
    lat = []
    ready = threading.Event()

    def reader():
        ready.set()
        while len(lat) < count:
            m = c.poll(2)
            if m is None:
                if len(lat) > 0:
                    break
                continue
            if m.error():
                continue
            sent = int(m.value().decode())
            lat.append((time.time_ns() - sent) / 1e6)

    t = threading.Thread(target=reader)
    t.start()
    ready.wait()
    time.sleep(1.0)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for _ in range(count):
        p.produce("latency", str(time.time_ns()).encode())
        p.poll(0)
        time.sleep(0.001)
    p.flush(30)
    t.join(30)
    c.close()
    lat.sort()
    q = lambda f: round(lat[min(len(lat) - 1, int(f * len(lat)))], 2)
    emit(bench="latency", records=len(lat), p50_ms=q(0.5), p99_ms=q(0.99), max_ms=round(lat[-1], 2))


if __name__ == "__main__":
    bootstrap = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2_000_000
    produce(bootstrap, n)
    consume(bootstrap, n)
    latency(bootstrap)
