"""Kafka clients for server/tests/kafka.rs, on confluent-kafka (librdkafka).

Every command prints one JSON object per line on stdout (flushed as it goes), so the
Rust test can read what was acknowledged or consumed even if this process is killed.

  produce BOOTSTRAP TOPIC PARTITIONS COUNT    idempotent acks=all producer
  produce-for BOOTSTRAP TOPIC SECONDS         produce until SECONDS pass, then flush
  group BOOTSTRAP TOPIC GROUP COUNT           two consumers; one leaves mid-way
  consume-rest BOOTSTRAP TOPIC GROUP          one consumer until nothing new for 5 s
  kafka-python BOOTSTRAP TOPIC                the same protocol from a second client
                                              library (kafka-python, pure Python)
"""

import json
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

LOCK = threading.RLock()


def emit(**fields):
    with LOCK:
        sys.stdout.write(json.dumps(fields) + "\n")
        sys.stdout.flush()


def ensure_topic(bootstrap, topic, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for _, f in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).items():
        try:
            f.result(30)
        except KafkaException as e:
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise


def producer(bootstrap):
    return Producer({
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 120000,
        "retry.backoff.ms": 200,
        "reconnect.backoff.max.ms": 1000,
    })


def on_delivery(err, msg):
    if err is None:
        emit(kind="acked", partition=msg.partition(), offset=msg.offset(), value=msg.value().decode())
    else:
        emit(kind="failed", error=str(err), value=msg.value().decode())


def produce(bootstrap, topic, partitions, count):
    ensure_topic(bootstrap, topic, int(partitions))
    p = producer(bootstrap)
    for i in range(int(count)):
        while True:
            try:
                p.produce(topic, key=str(i).encode(), value=f"v{i}".encode(), on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    left = p.flush(60)
    emit(kind="done", unflushed=left)


def produce_for(bootstrap, topic, seconds):
    ensure_topic(bootstrap, topic, 1)
    p = producer(bootstrap)
    end = time.time() + float(seconds)
    i = 0
    while time.time() < end:
        try:
            p.produce(topic, value=f"r{i}".encode(), on_delivery=on_delivery)
            i += 1
        except BufferError:
            p.poll(0.05)
        p.poll(0)
        if i % 200 == 0:
            time.sleep(0.005)
    left = p.flush(120)
    emit(kind="done", unflushed=left, produced=i)


def consumer(bootstrap, group):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 300,
        "partition.assignment.strategy": "range",
    })


def group(bootstrap, topic, group_id, count):
    """c1 and c2 share the topic; once both hold partitions and the group has read a
    quarter, c1 leaves and c2 takes over until half is read. Every message is
    committed before the next is polled, so nothing is read twice."""
    count = int(count)
    consumed = [0]
    both_assigned = threading.Event()
    c1_gone = threading.Event()
    assignments = {}

    def run(name):
        c = consumer(bootstrap, group_id)
        c.subscribe([topic])
        deadline = time.time() + 60
        while time.time() < deadline:
            m = c.poll(0.2)
            parts = sorted(tp.partition for tp in c.assignment())
            with LOCK:
                assignments[name] = parts
                a1, a2 = assignments.get("c1"), assignments.get("c2")
                if a1 and a2 and not set(a1) & set(a2):
                    if not both_assigned.is_set():
                        emit(kind="assigned", c1=assignments["c1"], c2=assignments["c2"])
                    both_assigned.set()
            if m is None:
                if name == "c2" and consumed[0] >= count // 2:
                    break
                continue
            if m.error():
                continue
            try:
                c.commit(message=m, asynchronous=False)
            except KafkaException as e:
                # Not committed (a rebalance moved the partition): not counted, so
                # whoever owns it next reads it again.
                emit(kind="commit-failed", by=name, error=str(e))
                continue
            with LOCK:
                consumed[0] += 1
            emit(kind="consumed", by=name, partition=m.partition(), offset=m.offset(), value=m.value().decode())
            if name == "c1" and both_assigned.is_set() and consumed[0] >= count // 4:
                break
            if name == "c2" and consumed[0] >= count // 2:
                break
            if not both_assigned.is_set():
                # Hold back until both members share the topic.
                time.sleep(0.05)
        emit(kind="left", by=name, assignment=sorted(tp.partition for tp in c.assignment()))
        c.close()
        if name == "c1":
            c1_gone.set()

    t1 = threading.Thread(target=run, args=("c1",))
    t2 = threading.Thread(target=run, args=("c2",))
    t1.start()
    time.sleep(0.5)
    t2.start()
    t1.join()
    t2.join()


def consume_rest(bootstrap, topic, group_id):
    c = consumer(bootstrap, group_id)
    c.subscribe([topic])
    last = time.time()
    while time.time() - last < 5:
        m = c.poll(0.2)
        if m is None or m.error():
            continue
        last = time.time()
        try:
            c.commit(message=m, asynchronous=False)
        except KafkaException as e:
            emit(kind="commit-failed", by="c3", error=str(e))
            continue
        emit(kind="consumed", by="c3", partition=m.partition(), offset=m.offset(), value=m.value().decode())
    c.close()


def kafka_python(bootstrap, topic):
    """Admin, gzip produce with keys and headers, a group consumer, commits and group
    listing through kafka-python, whose protocol code is independent of librdkafka."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    emit(kind="topics", topics=sorted(admin.list_topics()))
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip")
    for i in range(20):
        p.send(topic, key=f"k{i % 3}".encode(), value=f"v{i}".encode(), headers=[("h", b"x")])
    p.flush()
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="kp-" + topic,
                      auto_offset_reset="earliest", consumer_timeout_ms=8000)
    for m in c:
        emit(kind="consumed", partition=m.partition, offset=m.offset, value=m.value.decode(),
             key=m.key.decode(), headers=[[k, v.decode()] for k, v in m.headers])
    c.commit()
    emit(kind="committed", offsets={str(tp.partition): c.committed(tp) for tp in c.assignment()})
    c.close()
    groups = admin.describe_groups(["kp-" + topic])
    emit(kind="group", described=str(groups))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {
        "produce": produce,
        "produce-for": produce_for,
        "group": group,
        "consume-rest": consume_rest,
        "kafka-python": kafka_python,
    }[cmd](*args)
