"""faiss on the vector bench's data, for a side-by-side with OpenData's vector database.

Reads the files `cargo bench -p opendata-vector` (or `VECTOR_BENCH_ONLY=data`) writes
to its data directory: base.npy (f32 n x d), queries.npy (f32 q x d), gt.npy (i32 q x 100,
exact neighbours by brute force), buckets.npy (i32 n) and gt_bucket7.npy (i32 q x 100,
exact neighbours among bucket == 7, padded with -1).

What is measured (every figure on the same queries as the Rust bench):

- IndexFlatL2: its batch search of every query is checked against gt.npy (the Rust
  brute force), and timed (one call, all queries, `threads` OpenMP threads).
- IndexIVFFlat with nlist = round(4 * sqrt(n)) lists, trained (k-means, faiss defaults)
  on a deterministic sample of min(n, 64 * nlist) base vectors. For each nprobe:
  - recall@10 against gt.npy, averaged over queries (|found[:10] & truth[:10]| / 10);
  - "single": `threads` Python threads, each calling index.search on one query at a
    time in a loop (faiss releases the GIL; OpenMP set to 1 thread so each call runs on
    its caller's thread): queries/s over the whole run and per-call latency p50/p99.
    This is the analogue of the Rust bench's concurrent single searches;
  - "batch": one index.search call with every query, OpenMP on `threads` threads.
  - "filtered": the single-query loop with a faiss IDSelectorBatch of the bucket == 7
    ids (about 1%) in SearchParametersIVF, recall against gt_bucket7.npy.
Build time (train + add) is reported too. Timed loops repeat the queries until at
least --secs seconds have passed; recall is scored on the first pass.
"""

import argparse
import os
import platform
import sys
import threading
import time

import numpy as np
import faiss


def recall_at(found, truth, k=10):
    total = 0.0
    for f, t in zip(found, truth):
        t = [x for x in t[:k] if x >= 0]
        if not t:
            total += 1.0
            continue
        total += len(set(t) & set(int(x) for x in f[:k])) / len(t)
    return total / len(truth)


def single_loop(index, queries, k, threads, secs, params=None):
    """`threads` Python threads each searching one query per call; returns
    (found for the first pass, queries/s, p50 ms, p99 ms)."""
    faiss.omp_set_num_threads(1)
    nq = len(queries)
    found = [None] * nq
    lock = threading.Lock()
    counter = [0]
    latencies = [[] for _ in range(threads)]
    start = time.perf_counter()

    def worker(t):
        lat = latencies[t]
        while True:
            with lock:
                i = counter[0]
                counter[0] += 1
            if i >= nq and time.perf_counter() - start >= secs:
                return
            q = queries[i % nq : i % nq + 1]
            t0 = time.perf_counter()
            if params is None:
                _, ids = index.search(q, k)
            else:
                _, ids = index.search(q, k, params=params)
            lat.append(time.perf_counter() - t0)
            if i < nq:
                found[i] = ids[0]

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.perf_counter() - start
    all_lat = np.array([x for l in latencies for x in l]) * 1e3
    return found, len(all_lat) / took, np.percentile(all_lat, 50), np.percentile(all_lat, 99)


def batch_search(index, queries, k, threads, secs, params=None):
    faiss.omp_set_num_threads(threads)
    runs = 0
    start = time.perf_counter()
    found = None
    while True:
        if params is None:
            _, ids = index.search(queries, k)
        else:
            _, ids = index.search(queries, k, params=params)
        runs += 1
        if found is None:
            found = ids
        if time.perf_counter() - start >= secs:
            break
    return found, runs * len(queries) / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir", help="the bench's data directory")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nprobes", default="1,2,4,8,16,32,64,128")
    ap.add_argument("--filtered-nprobes", default="16,64,256,1024")
    ap.add_argument("--secs", type=float, default=3.0)
    ap.add_argument("--nlist", type=int, default=0, help="default: round(4*sqrt(n))")
    args = ap.parse_args()

    base = np.load(os.path.join(args.dir, "base.npy"), mmap_mode="r")
    base = np.ascontiguousarray(base, dtype="float32")
    queries = np.ascontiguousarray(np.load(os.path.join(args.dir, "queries.npy")), dtype="float32")
    gt = np.load(os.path.join(args.dir, "gt.npy"))
    n, d = base.shape
    k = 10
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(
        f"faiss {faiss.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores ({cpu}); {n} x {d} base, {len(queries)} queries, "
        f"{args.threads} threads; load average {load()}",
        flush=True,
    )

    # Exact search: checks the Rust ground truth and times brute force.
    faiss.omp_set_num_threads(args.threads)
    flat = faiss.IndexFlatL2(d)
    flat.add(base)
    t0 = time.perf_counter()
    _, flat_ids = flat.search(queries, k)
    flat_secs = time.perf_counter() - t0
    flat_agree = recall_at(flat_ids, gt, k)
    print(
        f"IndexFlatL2: batch {len(queries) / flat_secs:.1f} queries/s; "
        f"agreement of its top {k} with gt.npy: {flat_agree:.4f}",
        flush=True,
    )
    del flat

    nlist = args.nlist or int(round(4 * np.sqrt(n)))
    train_n = min(n, 64 * nlist)
    rng = np.random.default_rng(1234)
    sample = base[np.sort(rng.choice(n, size=train_n, replace=False))]
    quantizer = faiss.IndexFlatL2(d)
    ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_L2)
    t0 = time.perf_counter()
    ivf.train(sample)
    train_secs = time.perf_counter() - t0
    t0 = time.perf_counter()
    ivf.add(base)
    add_secs = time.perf_counter() - t0
    sizes = np.array([ivf.invlists.list_size(i) for i in range(nlist)])
    print(
        f"IndexIVFFlat nlist={nlist}: trained on {train_n} vectors in {train_s(train_secs)}, "
        f"added {n} in {add_secs:.1f} s; list sizes min {sizes.min()} median "
        f"{int(np.median(sizes))} max {sizes.max()}",
        flush=True,
    )

    rows = []
    for nprobe in [int(x) for x in args.nprobes.split(",") if x]:
        ivf.nprobe = nprobe
        found, qps_single, p50, p99 = single_loop(ivf, queries, k, args.threads, args.secs)
        rec = recall_at(found, gt, k)
        bfound, qps_batch = batch_search(ivf, queries, k, args.threads, args.secs)
        rec_b = recall_at(bfound, gt, k)
        assert abs(rec - rec_b) < 1e-9, (rec, rec_b)
        rows.append((nprobe, rec, qps_single, p50, p99, qps_batch))
        print(
            f"nprobe {nprobe}: recall@10 {rec:.4f}, single {qps_single:.0f} q/s "
            f"(p50 {p50:.3f} ms, p99 {p99:.3f} ms), batch {qps_batch:.0f} q/s",
            flush=True,
        )

    frows = []
    bucket_gt_path = os.path.join(args.dir, "gt_bucket7.npy")
    if os.path.exists(bucket_gt_path) and args.filtered_nprobes:
        buckets = np.load(os.path.join(args.dir, "buckets.npy"))
        gt7 = np.load(bucket_gt_path)
        ids7 = np.nonzero(buckets == 7)[0].astype("int64")
        sel = faiss.IDSelectorBatch(ids7)
        for nprobe in [int(x) for x in args.filtered_nprobes.split(",") if x]:
            params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
            found, qps, p50, p99 = single_loop(ivf, queries, k, args.threads, args.secs, params)
            rec = recall_at(found, gt7, k)
            frows.append((nprobe, rec, qps, p50, p99))
            print(
                f"filtered bucket==7 ({len(ids7)} ids) nprobe {nprobe}: recall@10 {rec:.4f}, "
                f"single {qps:.0f} q/s (p50 {p50:.3f} ms, p99 {p99:.3f} ms)",
                flush=True,
            )

    print()
    print(f"faiss IndexIVFFlat, nlist {nlist}, {n} x {d}, {len(queries)} queries, {args.threads} threads")
    print()
    print("| nprobe | recall@10 | single-query q/s | p50 ms | p99 ms | batch q/s |")
    print("|---|---|---|---|---|---|")
    for nprobe, rec, qs, p50, p99, qb in rows:
        print(f"| {nprobe} | {rec:.4f} | {qs:,.0f} | {p50:.3f} | {p99:.3f} | {qb:,.0f} |")
    print(f"| IndexFlatL2 (exact) | {flat_agree:.4f} | | | | {len(queries) / flat_secs:,.1f} |")
    if frows:
        print()
        print("| filter bucket == 7 (1%), IDSelectorBatch | recall@10 | single-query q/s | p50 ms | p99 ms |")
        print("|---|---|---|---|---|")
        for nprobe, rec, qs, p50, p99 in frows:
            print(f"| nprobe {nprobe} | {rec:.4f} | {qs:,.0f} | {p50:.3f} | {p99:.3f} |")
    print(f"\nload average at the end: {load()}")
    return 0


def load():
    """The 1, 5 and 15 minute load averages: other work on the machine skews timings."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def train_s(secs):
    return f"{secs:.1f} s"


if __name__ == "__main__":
    sys.exit(main())
