"""Semi-hard and batch-all triplet losses with and without the sorted-row paths, side by side.

On a CPU with float32 embeddings, anchors with enough positives are answered from one sort of
each anchor's row of distances (64-bit value-and-column keys, numpy's vectorised sort); the
other paths search the sorted positives with torch operations. This script times
``loss(x, labels).backward()`` with the sorted paths off and on, alternately in one process
after one warm-up call of each, every call next to the floor (``x @ x.T`` forward and
backward, as in ``bench_losses.py``), and prints the median ratio to the floor of each.
Both paths give the same triplets, values and gradients (tested).

Usage::

    python benchmarks/bench_mining_paths.py --size 4096 --threads 1
    python benchmarks/bench_mining_paths.py --size 1024 --labels 10 p4 p8 p16 p64
    python benchmarks/bench_mining_paths.py --quick      # CI smoke run: B = 512, 1 repeat

Labels: ``10`` means 10 classes (B/10 per class), ``p8`` means 8 per class.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from sk_deepmetric import _mining
from sk_deepmetric.losses import TripletMarginLoss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="batch size B")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--labels", nargs="+", default=["10", "p4", "p8", "p16", "p64"])
    parser.add_argument("--quick", action="store_true", help="B = 512, 1 repeat (CI smoke run)")
    args = parser.parse_args()
    if args.quick:
        args.size, args.repeats = 512, 1
    torch.set_num_threads(args.threads)
    n = args.size
    x = torch.randn(n, 128, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    upstream = torch.ones(n, n)
    default = _mining.SORT_KEYS

    def floor() -> float:
        x.grad = None
        start = time.perf_counter()
        (x @ x.T).backward(upstream)
        return time.perf_counter() - start

    print(f"B = {n}, {args.threads} thread(s); numpy sorts with SIMD here: {default}")
    print("| loss | labels | positives per anchor | unsorted / floor | sorted / floor |")
    print("|---|---|---:|---:|---:|")
    for miner in ("semihard", "all"):
        loss = TripletMarginLoss(margin=0.2, miner=miner)
        for spec in args.labels:
            n_classes = n // int(spec[1:]) if spec.startswith("p") else int(spec)
            labels = torch.arange(n) % n_classes
            ratios = {False: [], True: []}
            for sort in (False, True):  # warm-up, not timed
                _mining.SORT_KEYS = sort
                loss(x, labels).backward()
                floor()
            for _ in range(args.repeats):
                for sort in (False, True):
                    _mining.SORT_KEYS = sort
                    x.grad = None
                    start = time.perf_counter()
                    loss(x, labels).backward()
                    ours = time.perf_counter() - start
                    ratios[sort].append(ours / floor())
            _mining.SORT_KEYS = default
            name = f"{spec[1:]} per class" if spec.startswith("p") else f"{spec} classes"
            unsorted, sorted_ = (statistics.median(ratios[s]) for s in (False, True))
            positives = n // n_classes - 1
            print(f"| {miner} | {name} | {positives} | {unsorted:.2f}x | {sorted_:.2f}x |")


if __name__ == "__main__":
    main()
