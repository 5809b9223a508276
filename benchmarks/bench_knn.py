"""k-nearest-neighbour search: scikit-learn brute force against sk_deepmetric's backends.

Prints a markdown table: build and query time (median of ``--repeats`` runs), recall@k against
the exact neighbours, and the total time as a ratio of scikit-learn's
``NearestNeighbors(algorithm="brute")`` (higher is faster). The setting of the benchmarks
page: 100k x 128 reference vectors, 10k queries, k=10, threads fixed and printed.

The data are clustered like embeddings of identities (``--n-clusters`` Gaussian blobs), not
uniform noise, on which an IVF index has nothing to exploit.

    python benchmarks/bench_knn.py                       # the protocol's sizes
    python benchmarks/bench_knn.py --quick               # CI smoke run, seconds
    python benchmarks/bench_knn.py --n-reference 100000 1000000   # adds the 1M IVF path
    python benchmarks/bench_knn.py --crossover           # where faiss overtakes torch brute
    python benchmarks/bench_knn.py --auto --k 5 10 30 100 300   # auto's pick per k vs the truth
    python benchmarks/bench_knn.py --selection --k 10 100 300   # numpy keys vs torch.topk
    python benchmarks/bench_knn.py --compare --k 10 100 300 --threads 1  # whole tiles vs blocks
    python benchmarks/bench_knn.py --tiles --k 10 100 300       # 32 MiB vs 16 MiB CPU tiles
    python benchmarks/bench_knn.py --bfloat16 --k 5 10 20 30 --threads 1  # bfloat16 pre-filter
    python benchmarks/bench_knn.py --certify --k 10 100 300 --threads 1  # certified neighbours
    python benchmarks/bench_knn.py --device cuda --n-reference 100000 1000000  # GPU brute force
"""

from __future__ import annotations

import argparse
import math
import pathlib
import platform
import statistics
import time
from functools import partial

import numpy as np
import sklearn
import torch
from threadpoolctl import threadpool_limits

from sk_deepmetric._search import (
    AUTO_FAISS_MIN_SPEEDUP,
    _BruteSearch,
    _FaissFlatSearch,
    _FaissIVFSearch,
    _import_faiss,
    faiss_flat_speedup,
    faster_exact_backend,
)
from sk_deepmetric.neighbors import AUTO_FAISS_MIN_SAMPLES

# above this many reference vectors the exact CPU baselines take minutes per repeat: only
# faiss flat runs (and torch brute force when it runs on a GPU), once, as the ground truth
# for IVF recall
EXACT_BASELINES_MAX = 200_000
# spread of each cluster: overlapping clusters, so that IVF has boundaries to get wrong
NOISE = 1.0


def make_data(n_reference, n_queries, dim, n_clusters, seed=0):
    """Reference and query vectors drawn from the same clustered distribution, float32."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_clusters, dim), dtype=np.float32)

    def draw(n):
        labels = rng.integers(n_clusters, size=n)
        return centers[labels] + NOISE * rng.standard_normal((n, dim), dtype=np.float32)

    return draw(n_reference), draw(n_queries)


def timed(build, query, repeats):
    """Median build and query seconds over ``repeats`` runs, and the last result."""
    builds, queries = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        index = build()
        mid = time.perf_counter()
        result = query(index)
        builds.append(mid - start)
        queries.append(time.perf_counter() - mid)
    return statistics.median(builds), statistics.median(queries), result


# (queries, reference vectors) per product of the floor: the floor is the fastest of them
FLOOR_TILES = ((1024, 2048), (1024, 4096), (1024, 8192), (2048, 8192))


def matmul_floor(reference, queries, device, repeats):
    """Median seconds of the products ``q @ r.T`` alone, in torch on ``device``, for the
    fastest of the tilings ``FLOOR_TILES``, and that tiling: what any exact search over these
    vectors must at least spend.

    Each tiling's products are written into one buffer: a fresh output per product (1,024 x
    100,000 floats is 400 MiB) would time the page faults of mapping new memory, not the
    arithmetic. The tiling matters: on one thread of an Intel Xeon the same products took
    1.2x-1.3x as long written into 1,024 x 8,192 tiles (32 MiB) as into 1,024 x 4,096.
    """
    r = torch.as_tensor(reference, device=device)
    q = torch.as_tensor(queries, device=device)

    def products(_, rows, cols, out):
        for start in range(0, q.shape[0], rows):
            qb = q[start : start + rows]
            for col in range(0, r.shape[0], cols):
                rb = r[col : col + cols]
                if rb.shape[0] == cols and qb.shape[0] == rows:
                    torch.mm(qb, rb.T, out=out)
                else:
                    qb @ rb.T
        if r.device.type == "cuda":
            torch.cuda.synchronize(r.device)

    times = {}
    for rows, cols in FLOOR_TILES:
        out = torch.empty((rows, cols), device=device)
        run = partial(products, rows=rows, cols=cols, out=out)
        times[rows, cols] = timed(lambda: None, run, repeats)[1]
        del out, run
    tiles = min(times, key=times.get)
    return times[tiles], tiles


def blas_kernels():
    """One line per BLAS / OpenMP library loaded: its API, version and the CPU kernels it
    picked (OpenBLAS's "architecture"; "Prescott" is its generic SSE3 fallback)."""
    from threadpoolctl import threadpool_info

    lines = []
    for lib in threadpool_info():
        arch = lib.get("architecture")
        lines.append(
            f"{lib['internal_api']} {lib.get('version') or ''}"
            f"{f' ({arch} kernels)' if arch else ''} from {pathlib.Path(lib['filepath']).name}"
        )
    return "; ".join(lines)


def recall_at_k(found, exact):
    """Mean over queries of the share of the exact k nearest that were found."""
    hits = [len(np.intersect1d(f, e, assume_unique=True)) for f, e in zip(found, exact)]
    return float(np.mean(hits)) / exact.shape[1]


def search(index, q, k):
    """The neighbour indices of an sk_deepmetric backend's search."""
    return index.search(q, k)[1]


def methods(reference, k, device, n_lists, exact_baselines):
    """(name, build() -> index, query(index, q) -> indices) for each contender."""
    from sklearn.neighbors import NearestNeighbors

    def build(make_backend, *args):
        return make_backend(*args).build(reference)

    ours = partial(search, k=k)
    out = []
    if exact_baselines:
        out.append(
            (
                "scikit-learn NearestNeighbors(brute)",
                partial(NearestNeighbors(n_neighbors=k, algorithm="brute").fit, reference),
                lambda nn, q: nn.kneighbors(q, return_distance=False),
            )
        )
    if exact_baselines or torch.device(device).type != "cpu":  # fast at any size on a GPU
        out.append(
            (
                f"sk_deepmetric brute (torch, {device})",
                partial(build, _BruteSearch, "euclidean", device),
                ours,
            )
        )
    out.append(
        ("sk_deepmetric faiss (flat, exact)", partial(build, _FaissFlatSearch, "euclidean"), ours)
    )
    for n_probe in (8, 32):
        name = f"sk_deepmetric faiss_ivf (n_lists={n_lists}, n_probe={n_probe})"
        out.append((name, partial(build, _FaissIVFSearch, "euclidean", n_lists, n_probe), ours))
    return out


def run_size(args, n_reference, threads):
    reference, queries = make_data(n_reference, args.n_queries, args.dim, args.n_clusters)
    n_lists = max(1, round(np.sqrt(n_reference)))
    exact_baselines = n_reference <= EXACT_BASELINES_MAX
    repeats = args.repeats if exact_baselines else 1
    rows, exact = [], None
    with threadpool_limits(limits=threads):
        for name, build, query in methods(
            reference, args.k, args.device, n_lists, exact_baselines
        ):
            t_build, t_query, found = timed(build, partial(query, q=queries), repeats)
            if exact is None:  # the first method is exact: the ground truth for recall
                exact = found
            rows.append((name, t_build, t_query, recall_at_k(found, exact)))
        floor, tiles = matmul_floor(reference, queries, args.device, repeats)
        speedup = faiss_flat_speedup(args.dim, "euclidean", args.k, n_reference)
    baseline = rows[0]
    print(
        f"\n### {n_reference:,} x {args.dim} reference, {args.n_queries:,} queries, "
        f"k={args.k} ({args.n_clusters} clusters; median of {repeats}; ratio = "
        f"{baseline[0]} total time / this total time; vs floor = this total time / the "
        f"products q @ r.T alone in torch, {floor:.3f} s in tiles of {tiles[0]:,} x {tiles[1]:,}, "
        f"the fastest of {len(FLOOR_TILES)} tilings)\n"
    )
    print("| method | build (s) | query (s) | total (s) | recall@k | ratio | vs floor |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base_total = baseline[1] + baseline[2]
    for name, t_build, t_query, recall in rows:
        total = t_build + t_query
        print(
            f"| {name} | {t_build:.3f} | {t_query:.3f} | {total:.3f} | {recall:.3f} "
            f"| {base_total / total:.2f}x | {total / floor:.2f}x |"
        )
    print(
        f"\nalgorithm='auto' picks {faster_exact_backend(speedup)!r} here from "
        f"{AUTO_FAISS_MIN_SAMPLES:,} samples (its calibration: faiss flat {speedup:.2f}x as fast "
        f"as torch brute; faiss from {AUTO_FAISS_MIN_SPEEDUP}x)"
    )


def crossover(args, threads):
    """Exact search, torch brute against faiss flat, over reference sizes."""
    sizes = (10_000, 50_000, 100_000, 200_000, 400_000)
    print(
        f"\n### Exact search crossover: d={args.dim}, {args.n_queries:,} queries, k={args.k}, "
        f"median of {args.repeats} (auto considers faiss from {AUTO_FAISS_MIN_SAMPLES:,} and "
        f"picks it where its calibration finds it {AUTO_FAISS_MIN_SPEEDUP}x as fast)\n"
    )
    print("| n_reference | torch brute (s) | faiss flat (s) | brute / faiss |")
    print("|---:|---:|---:|---:|")
    for n in sizes:
        reference, queries = make_data(n, args.n_queries, args.dim, args.n_clusters)
        times = []
        for backend in (_BruteSearch("euclidean", args.device), _FaissFlatSearch("euclidean")):
            with threadpool_limits(limits=threads):
                t_build, t_query, _ = timed(
                    partial(backend.build, reference),
                    partial(search, q=queries, k=args.k),
                    args.repeats,
                )
            times.append(t_build + t_query)
        print(f"| {n:,} | {times[0]:.4f} | {times[1]:.4f} | {times[0] / times[1]:.2f} |")


def auto_picks(args, threads):
    """``algorithm="auto"``'s calibration at each k against the real search at that k."""
    from sk_deepmetric import _search
    from sk_deepmetric._search import calibration_k

    n = args.n_reference[0]
    print(
        f"\n### algorithm='auto' per k: {n:,} x {args.dim} reference, {args.n_queries:,} "
        f"queries, best of {args.repeats}, alternately (faiss = torch brute time / faiss flat "
        f"time; auto picks faiss from {AUTO_FAISS_MIN_SPEEDUP}x in its calibration)\n"
    )
    print(
        "| n_neighbors | calibrated at | calibration (s) | 20,000 vectors: faiss | at the "
        f"pre-filter's size: faiss | auto picks | {n:,} search: faiss |"
    )
    print("|---:|---:|---:|---:|---:|---|---:|")
    reference, queries = make_data(n, args.n_queries, args.dim, args.n_clusters)
    with threadpool_limits(limits=threads):
        backends = [
            _BruteSearch("euclidean", args.device).build(reference),
            _FaissFlatSearch("euclidean").build(reference),
        ]
        for k in args.k:
            start = time.perf_counter()
            speedup = faiss_flat_speedup(args.dim, "euclidean", k, n)
            seconds = time.perf_counter() - start
            best = [np.inf, np.inf]
            for _ in range(args.repeats):  # interleaved: a slower spell hits both
                for i, backend in enumerate(backends):
                    start = time.perf_counter()
                    backend.search(queries, k)
                    best[i] = min(best[i], time.perf_counter() - start)
            # the calibrations that ran (the second only where faiss won the first and
            # torch brute force would filter in bfloat16)
            keys = (_search.calibration_key(args.dim, "euclidean", k, p) for p in (False, True))
            ran = [_search._speedups.get(key) for key in keys]
            first, second = (f"{r:.2f}x" if r is not None else "-" for r in ran)
            print(
                f"| {k} | {calibration_k(k)} | {seconds:.2f} | {first} | {second} "
                f"| {faster_exact_backend(speedup)} | {best[0] / best[1]:.2f}x |"
            )


def selections(args):
    """Torch brute force with each tile's candidates selected as 64-bit (value, index) keys by
    numpy's partition (where numpy has SIMD kernels: the default there) against ``torch.topk``
    and its tie check, alternately, each search next to the floor of its own products."""
    from sk_deepmetric import _mining

    title = (
        f"Selection of the k nearest, numpy has SIMD kernels here: "
        f"{_mining.numpy_sorts_with_simd()}"
    )
    toggled(args, title, ("torch.topk", "numpy keys"), _mining, "SORT_KEYS")


def comparisons(args):
    """Torch brute force on one thread with its tiles after the first compared whole with the
    k-th value kept (the default on one thread from k = 150) against cut into blocks whose
    minima are compared (as on more threads), alternately, each next to the floor of its own
    products."""
    from sk_deepmetric import distances

    title = (
        "Tiles after the first: block minima against the whole tile compared (at every k "
        f"here; by default from k = {distances._COMPARE_FROM_K})"
    )
    default = distances._COMPARE_FROM_K
    distances._COMPARE_FROM_K = 1
    try:
        toggled(args, title, ("block minima", "whole tile"), distances, "_COMPARE_TILES")
    finally:
        distances._COMPARE_FROM_K = default


def tile_sizes(args):
    """Torch brute force on a CPU with tiles of 1,024 queries x 8,192 reference vectors
    (32 MiB, the memory bound; the default from two threads) against 1,024 x 4,096 (16 MiB,
    the default on one thread), alternately, whatever the thread count."""
    from sk_deepmetric import distances

    title = "Tiles of the search on a CPU: 32 MiB against 16 MiB (the default on one thread)"
    toggled(args, title, ("32 MiB", "16 MiB"), distances, "_HALF_TILE_THREADS", (0, 1 << 30))


def certifications(args):
    """Torch brute force with each query's neighbours certified by a rounding bound (one
    more candidate kept, and the queries the bound cannot vouch for searched again in
    float64: the default) against the float32 search alone, alternately; and the share of
    queries searched again, on the clustered data and on the same data with each reference
    vector duplicated 1e-4 away (near-duplicates, which float32 scores cannot order)."""
    from sk_deepmetric import distances

    counted = {"queries": 0, "missed": 0}
    certified = distances._certified

    def counting(vals, inds, k, *rest):
        # first with the (k + 1)-th candidate, for every query; then, for those left, with
        # all of them: what that leaves is searched again in float64
        held = certified(vals, inds, k, *rest)
        if vals.shape[1] == k + 1:
            counted["queries"] += held.numel()
        else:
            counted["missed"] += int((~held).sum())
        return held

    title = "Certified neighbours (float64 where float32 cannot tell) against float32 alone"
    distances._certified = counting
    try:
        toggled(args, title, ("float32 alone", "certified"), distances, "_CERTIFY")
        share = counted["missed"] / max(1, counted["queries"])
        print(f"\nQueries searched again in float64: {share:.2%} of those certified.")
        n = args.n_reference[0]
        reference, queries = make_data(n // 2, args.n_queries, args.dim, args.n_clusters)
        step = np.random.default_rng(1).standard_normal(reference.shape).astype(np.float32)
        step *= 1e-4 / np.linalg.norm(step, axis=1, keepdims=True)
        doubled = torch.from_numpy(np.concatenate([reference, reference + step]))
        q = torch.from_numpy(queries)
        for k in args.k:
            counted.update(queries=0, missed=0)
            distances.topk_neighbors(q, doubled, k)
            share = counted["missed"] / max(1, counted["queries"])
            print(f"Near-duplicates, k = {k}: {share:.2%} of the queries searched again.")
        # the worst case: every query among more vectors within float32's rounding than
        # the candidates kept, all searched again in float64
        rng = np.random.default_rng(2)
        crowds = reference[: n // 64]
        crowded = np.repeat(crowds, 64, axis=0)
        crowded += 1e-4 * rng.standard_normal(crowded.shape).astype(np.float32)
        crowded_q = crowds[rng.integers(0, len(crowds), args.n_queries)]
        crowded_q = crowded_q + 1e-4 * rng.standard_normal(crowded_q.shape).astype(np.float32)
        crowded, crowded_q = torch.from_numpy(crowded), torch.from_numpy(crowded_q)
        print(
            f"\nCrowds of 64 vectors within ~1e-3 ({len(crowded):,} reference vectors), "
            f"median of {args.repeats}, alternately:\n"
        )
        print("| k | queries searched again | float32 alone / certified |")
        print("|---:|---:|---:|")
        for k in args.k:
            seconds = {False: [], True: []}
            for _ in range(args.repeats):
                for value in (False, True):
                    distances._CERTIFY = value
                    counted.update(queries=0, missed=0)
                    start = time.perf_counter()
                    distances.topk_neighbors(crowded_q, crowded, k)
                    seconds[value].append(time.perf_counter() - start)
            share = counted["missed"] / max(1, counted["queries"])
            ratio = statistics.median(seconds[False]) / statistics.median(seconds[True])
            print(f"| {k} | {share:.0%} | {ratio:.2f}x |")
    finally:
        distances._certified = certified
        distances._CERTIFY = True


def bfloat16_filters(args):
    """Torch brute force on a CPU with each query's candidates found from bfloat16 products
    first (then measured in float32, the exact neighbours either way) against the float32
    search, alternately, at every k given and every size (by default only for small k per
    thread count and from a least number of queries and reference vectors, where this CPU's
    bfloat16 products measure fast enough): the filter building the reference's bfloat16
    factors in each search (a direct ``topk_neighbors`` call) and keeping them between
    searches (``reference_cache``, as the classifier's index does)."""
    from sk_deepmetric import distances

    threads = torch.get_num_threads()
    limits = {
        kept: (
            distances._BFLOAT16_MAX_K[kept].get(threads, 0),
            distances._BFLOAT16_MIN_QUERIES[kept],
            distances._BFLOAT16_MIN_REFERENCE[kept],
        )
        for kept in (False, True)
    }
    print(
        f"\n### bfloat16 pre-filter (bfloat16 products {distances.bfloat16_speedup():.2f}x as "
        f"fast as float32 here; forced on at every k; by default where that speed-up is >= "
        f"{distances._BFLOAT16_MIN_SPEEDUP}, on {threads} thread(s): factors built per search "
        "up to k = {0} from {1:,} queries and {2:,} reference vectors, factors kept up to "
        "k = {3} from {4:,} and {5:,})".format(*limits[False], *limits[True])
    )
    names = "_BFLOAT16_MAX_K", "_BFLOAT16_MIN_QUERIES", "_BFLOAT16_MIN_REFERENCE"
    defaults = [getattr(distances, name) for name in names]
    every = {threads: max(args.k)}
    forced = {False: every, True: every}, {False: 0, True: 0}, {False: 0, True: 0}
    for name, value in zip(names, forced):
        setattr(distances, name, value)
    distances._BFLOAT16_SPEEDUPS[threads] = math.inf
    n = args.n_reference[0]
    reference, queries = make_data(n, args.n_queries, args.dim, args.n_clusters)
    r, q = torch.as_tensor(reference), torch.as_tensor(queries)
    print(
        f"\n{n:,} x {args.dim} reference, {args.n_queries:,} queries, {args.n_clusters:,} "
        f"clusters, median of {args.repeats} ratios to the floor, alternately\n"
    )
    print(
        "| k | float32 / floor | filter, factors per search / floor | filter, factors kept / "
        "floor | float32 / per search | float32 / kept |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    variants = "float32", "per search", "kept"
    try:
        for k in args.k:
            cache = {}
            distances.topk_neighbors(q, r, k, reference_cache=cache)  # builds the kept ones
            ratios = {name: [] for name in variants}
            for _ in range(args.repeats):
                for name in variants:
                    distances._BFLOAT16_FILTER = name != "float32"
                    floor = matmul_floor(reference, queries, "cpu", 1)[0]
                    kept = cache if name == "kept" else None
                    start = time.perf_counter()
                    distances.topk_neighbors(q, r, k, reference_cache=kept)
                    ratios[name].append((time.perf_counter() - start) / floor)
            f32, per, kept = (statistics.median(ratios[name]) for name in variants)
            print(
                f"| {k} | {f32:.2f}x | {per:.2f}x | {kept:.2f}x | {f32 / per:.2f}x | "
                f"{f32 / kept:.2f}x |"
            )
    finally:
        distances._BFLOAT16_FILTER = True
        for name, value in zip(names, defaults):
            setattr(distances, name, value)
        distances._BFLOAT16_SPEEDUPS.clear()


def product_widths(args):
    """Nanoseconds per entry of one tile's product ``q @ r.T`` in float32 and bfloat16, for
    1,024 queries (``--dim`` + 4 factors, as the pre-filter's) and several tile widths: whole
    multiples of 1,024 columns and the widths the float32 tiling gives other query counts."""
    rows, inner = 1024, args.dim + 4
    widths = (1024, 1088) if args.quick else (8192, 8384, 8388, 8704, 9216, 10240, 10922)
    print(
        f"\n### One tile's product, {rows:,} queries x width reference vectors, {inner} "
        f"factors: ns per entry, best of {args.repeats}\n"
    )
    print("| width | multiple of 1,024 | float32 | bfloat16 | float32 / bfloat16 |")
    print("|---:|---|---:|---:|---:|")
    generator = torch.Generator().manual_seed(0)
    for width in widths:
        ns = {}
        for dtype in (torch.float32, torch.bfloat16):
            a = torch.randn((rows, inner), generator=generator).to(dtype)
            b = torch.randn((width, inner), generator=generator).to(dtype)
            out = torch.empty((rows, width), dtype=dtype)
            torch.mm(a, b.T, out=out)  # warm-up
            best = np.inf
            for _ in range(args.repeats):
                start = time.perf_counter()
                torch.mm(a, b.T, out=out)
                best = min(best, time.perf_counter() - start)
            ns[dtype] = best * 1e9 / (rows * width)
        f32, b16 = ns[torch.float32], ns[torch.bfloat16]
        whole = "yes" if width % 1024 == 0 else "no"
        print(f"| {width:,} | {whole} | {f32:.3f} | {b16:.3f} | {f32 / b16:.2f}x |")


def toggled(args, title, names, module, switch, values=(False, True)):
    """Torch brute force with ``module.switch`` set to each of ``values`` (off, on),
    alternately, as ratios to the floor (median of ``--repeats``), one row per k."""
    n = args.n_reference[0]
    reference, queries = make_data(n, args.n_queries, args.dim, args.n_clusters)
    print(
        f"\n### {title}: {n:,} x {args.dim} reference, {args.n_queries:,} queries, median of "
        f"{args.repeats} ratios to the floor, alternately\n"
    )
    print(f"| k | {names[0]} / floor | {names[1]} / floor | {names[0]} / {names[1]} |")
    print("|---:|---:|---:|---:|")
    default = getattr(module, switch)
    backend = _BruteSearch("euclidean", args.device).build(reference)
    try:
        for k in args.k:
            ratios = {value: [] for value in values}
            for _ in range(args.repeats):
                for value in values:
                    setattr(module, switch, value)
                    floor = matmul_floor(reference, queries, args.device, 1)[0]
                    start = time.perf_counter()
                    backend.search(queries, k)
                    ratios[value].append((time.perf_counter() - start) / floor)
            off, on = (statistics.median(ratios[value]) for value in values)
            print(f"| {k} | {off:.2f}x | {on:.2f}x | {off / on:.2f}x |")
    finally:
        setattr(module, switch, default)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a CI smoke run")
    parser.add_argument("--n-reference", type=int, nargs="+", default=None)
    parser.add_argument("--n-queries", type=int, default=None)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument(
        "--k",
        type=int,
        nargs="+",
        default=[10],
        help="several with --auto, --selection, --compare, --tiles, --bfloat16 or --certify",
    )
    parser.add_argument("--n-clusters", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="default: torch's count")
    parser.add_argument("--device", default="cpu", help="torch device of the brute backend")
    parser.add_argument("--crossover", action="store_true", help="torch brute vs faiss flat")
    parser.add_argument("--auto", action="store_true", help="auto's pick per k vs the truth")
    parser.add_argument(
        "--selection", action="store_true", help="numpy keys vs torch.topk in torch brute force"
    )
    parser.add_argument(
        "--compare", action="store_true", help="whole tiles vs block minima, one thread"
    )
    parser.add_argument("--tiles", action="store_true", help="32 MiB vs 16 MiB tiles on a CPU")
    parser.add_argument(
        "--bfloat16", action="store_true", help="bfloat16 pre-filter vs float32 on a CPU"
    )
    parser.add_argument(
        "--certify", action="store_true", help="certified neighbours vs float32 alone"
    )
    parser.add_argument(
        "--widths", action="store_true", help="a tile's product per width, float32 and bfloat16"
    )
    args = parser.parse_args(argv)
    toggles = args.auto or args.selection or args.compare or args.tiles or args.bfloat16
    toggles = toggles or args.certify
    if len(args.k) > 1 and not toggles:
        parser.error(
            "several --k values need --auto, --selection, --compare, --tiles, --bfloat16 or "
            "--certify"
        )
    if not toggles:
        args.k = args.k[0]
    if args.n_reference is None:
        args.n_reference = [5_000] if args.quick else [100_000]
    if args.n_queries is None:
        full = 1_000 if args.crossover else (2_048 if toggles else 10_000)
        args.n_queries = 500 if args.quick else full
    if args.repeats is None:
        args.repeats = 1 if args.quick else 3

    faiss = _import_faiss("faiss")
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(threads)
    print(
        f"threads={threads} (torch, faiss, BLAS/OpenMP via threadpoolctl); torch "
        f"{torch.__version__}; faiss {faiss.__version__}; scikit-learn {sklearn.__version__}; "
        f"{platform.processor() or platform.machine()}; device={args.device}"
    )
    print(f"BLAS: {blas_kernels()}")
    if args.crossover:
        crossover(args, threads)
        return
    if args.auto:
        auto_picks(args, threads)
        return
    if args.widths:
        product_widths(args)
        return
    if args.selection or args.compare or args.tiles or args.bfloat16 or args.certify:
        toggle = (
            selections
            if args.selection
            else comparisons
            if args.compare
            else tile_sizes
            if args.tiles
            else certifications
            if args.certify
            else bfloat16_filters
        )
        with threadpool_limits(limits=threads):
            toggle(args)
        return
    for n_reference in args.n_reference:
        run_size(args, n_reference, threads)


if __name__ == "__main__":
    main()
