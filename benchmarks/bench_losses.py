"""Triplet loss + mining, forward and backward: sk_deepmetric against pytorch-metric-learning.

Prints a markdown table of the median time of ``loss(embeddings, labels).backward()`` over
several repeats (after one warm-up), for semi-hard, batch-hard and batch-all triplet losses,
batches of 256, 1024 and 4096 embeddings of dimension 128, labels "4 per class" and
"10 classes", with pytorch-metric-learning's equivalent measured in the same run:
``TripletMarginLoss`` with ``TripletMarginMiner("semihard")``, ``BatchHardMiner`` or
``TripletMarginMiner("all")`` (all on non-normalised Euclidean distances, margin 0.2).

The "floor" is the arithmetic every one of these losses needs: the product ``x @ x.T``
forward and backward (``(x @ x.T).backward(g)``, ``g`` a fixed ``(B, B)`` gradient), at the same
size, timed in the same process alternately with our loss; "ours / floor" is the median of the
ratios of each timed call of ours to the floor's call next to it, which cancels most of the
drift of a shared machine.

The two semi-hard losses are not the same function: pml's miner keeps every negative inside
the margin, ours FaceNet's one nearest farther negative per positive pair. Batch-hard and
batch-all compute the same value.

Memory: each case runs in its own subprocess. On CPU the figure is the growth of the
process's peak resident set size (``ru_maxrss``) during the warm-up and the first timed call of
the loss (before the floor runs), above its level after the imports and the input data were
set up: what the loss and its backward needed at most, allocator overheads included. On CUDA
it is ``torch.cuda.max_memory_allocated`` above the same baseline.

Usage::

    python benchmarks/bench_losses.py            # full table (minutes)
    python benchmarks/bench_losses.py --quick    # B=256 only, a CI smoke run
    python benchmarks/bench_losses.py --device cuda --sizes 1024 4096
    python benchmarks/bench_losses.py --sizes 4096 --no-pml   # ours and the floor only
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

MAX_PML_TRIPLETS = 1e9
METHODS = {"semi-hard": "semihard", "batch-hard": "batch_hard", "batch-all": "all"}
#: The losses beyond the triplet loss, each against pml's with the same definition and the
#: paper's defaults (pml's sub-centre ArcFace takes its margin in degrees: 0.5 rad).
OTHER_LOSSES = ("multi-similarity", "supcon", "proxy-anchor", "sub-center-arcface")
LAYOUTS = ("4 per class", "10 classes")


def make_labels(torch, n: int, layout: str, device: str):
    if layout == "4 per class":
        labels = torch.arange(n // 4).repeat_interleave(4)
    else:
        labels = torch.arange(n) % 10
    gen = torch.Generator().manual_seed(0)
    return labels[torch.randperm(n, generator=gen)].to(device)


def n_triplets(n: int, layout: str) -> int:
    size = 4 if layout == "4 per class" else n // 10
    return n * (size - 1) * (n - size)


def build_loss(impl: str, method: str, n_classes: int, device: str):
    if method in OTHER_LOSSES:
        return build_other_loss(impl, method, n_classes, device)
    if impl == "ours":
        from sk_deepmetric.losses import TripletMarginLoss

        loss = TripletMarginLoss(margin=0.2, miner=METHODS[method])
        return lambda x, y: loss(x, y)
    from pytorch_metric_learning import distances, losses, miners

    dist = distances.LpDistance(normalize_embeddings=False)
    if method == "batch-hard":
        miner = miners.BatchHardMiner(distance=dist)
    else:
        miner = miners.TripletMarginMiner(0.2, METHODS[method], distance=dist)
    loss = losses.TripletMarginLoss(margin=0.2, distance=dist)
    return lambda x, y: loss(x, y, miner(x, y))


def build_other_loss(impl: str, method: str, n_classes: int, device: str):
    if impl == "ours":
        from sk_deepmetric import losses

        loss = {
            "multi-similarity": lambda: losses.MultiSimilarityLoss(epsilon=0.1),
            "supcon": lambda: losses.SupConLoss(temperature=0.1),
            "proxy-anchor": lambda: losses.ProxyAnchorLoss(n_classes, 128),
            "sub-center-arcface": lambda: losses.SubCenterArcFaceLoss(n_classes, 128),
        }[method]().to(device)
        return lambda x, y: loss(x, y)
    from pytorch_metric_learning import losses, miners

    if method == "multi-similarity":
        loss, miner = losses.MultiSimilarityLoss(2, 50, 0.5), miners.MultiSimilarityMiner(0.1)
        return lambda x, y: loss(x, y, miner(x, y))
    loss = {
        "supcon": lambda: losses.SupConLoss(temperature=0.1),
        "proxy-anchor": lambda: losses.ProxyAnchorLoss(n_classes, 128, margin=0.1, alpha=32),
        "sub-center-arcface": lambda: losses.SubCenterArcFaceLoss(
            num_classes=n_classes, embedding_size=128, margin=28.6, scale=64, sub_centers=3
        ),
    }[method]().to(device)
    return lambda x, y: loss(x, y)


def peak_bytes(torch, device: str) -> int:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def worker(spec: dict) -> dict:
    """Time one case in this process: its median, its ratio to the floor, its extra peak."""
    import torch

    torch.set_num_threads(spec["threads"])
    device = spec["device"]
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(spec["n"], 128, generator=gen).to(device).requires_grad_(True)
    labels = make_labels(torch, spec["n"], spec["layout"], device)
    loss = build_loss(spec["impl"], spec["method"], int(labels.max()) + 1, device)

    def timed(step) -> float:
        x.grad = None
        sync()
        start = time.perf_counter()
        step()
        sync()
        return time.perf_counter() - start

    def step() -> None:
        loss(x, labels).backward()

    baseline = peak_bytes(torch, device)
    times = [timed(step) for _ in range(2)]  # a warm-up, then the first timed call
    peak = peak_bytes(torch, device) - baseline
    floor_grad = torch.ones(spec["n"], spec["n"], device=device)

    def floor() -> None:
        (x @ x.T).backward(floor_grad)

    floors = [timed(floor), timed(floor)]  # a warm-up, then the floor next to times[1]
    times, floors = times[1:], floors[1:]
    while len(times) < spec["repeats"] and sum(times) + sum(floors) < spec["budget_s"]:
        times.append(timed(step))
        floors.append(timed(floor))
    return {
        "median_s": statistics.median(times),
        "floor_s": statistics.median(floors),
        "to_floor": statistics.median(t / f for t, f in zip(times, floors, strict=True)),
        "spread": (min(times) / statistics.median(times), max(times) / statistics.median(times)),
        "peak_mib": peak / 2**20,
    }


def run_case(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def fmt_ms(result: dict) -> str:
    return f"{1000 * result['median_s']:.1f}" if "median_s" in result else result["error"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="B=256 only (CI smoke run)")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="batch sizes (default 256 1024 4096)"
    )
    parser.add_argument("--device", default="cpu")
    # one thread by default: on a shared machine, OpenMP threads waiting on each other make
    # multi-threaded timings swing by 10x
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of repeats per case")
    parser.add_argument("--no-pml", action="store_true", help="ours and the floor only")
    parser.add_argument(
        "--losses",
        nargs="+",
        choices=[*METHODS, *OTHER_LOSSES],
        default=[*METHODS, *OTHER_LOSSES],
        help="rows to run (default: all)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    import pytorch_metric_learning
    import torch

    sizes = args.sizes or ((256,) if args.quick else (256, 1024, 4096))
    print(
        f"torch {torch.__version__}, "
        f"pytorch-metric-learning {pytorch_metric_learning.__version__}, device {args.device}, "
        f"torch.set_num_threads({args.threads}), embedding 128, margin 0.2, "
        f"median of up to {args.repeats} repeats after a warm-up\n"
    )
    print(
        "| loss | labels | B | ours (ms) | floor (ms) | ours / floor | pml (ms) | pml / ours "
        "| ours peak (MiB) | pml peak (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    spreads = []
    for method in args.losses:
        for layout in LAYOUTS:
            for n in sizes:
                spec = {
                    "method": method,
                    "layout": layout,
                    "n": n,
                    "device": args.device,
                    "threads": args.threads,
                    "repeats": args.repeats,
                    "budget_s": args.budget,
                }
                ours = run_case({**spec, "impl": "ours"})
                triplets = n_triplets(n, layout)
                if args.no_pml:
                    pml = {"error": "not run"}
                elif method in ("semi-hard", "batch-all") and triplets > MAX_PML_TRIPLETS:
                    pml = {"error": f"n/a (enumerates {triplets:.1e} triplets)"}
                else:
                    pml = run_case({**spec, "impl": "pml"})
                ratio = (
                    f"{pml['median_s'] / ours['median_s']:.1f}x"
                    if "median_s" in pml and "median_s" in ours
                    else ""
                )
                floor = f"{1000 * ours['floor_s']:.1f}" if "floor_s" in ours else ""
                to_floor = f"{ours['to_floor']:.2f}x" if "to_floor" in ours else ""
                spreads += [ours["spread"]] if "spread" in ours else []
                mem = [f"{r['peak_mib']:.0f}" if "peak_mib" in r else "" for r in (ours, pml)]
                print(
                    f"| {method} | {layout} | {n} | {fmt_ms(ours)} | {floor} | {to_floor} "
                    f"| {fmt_ms(pml)} | {ratio} | {mem[0]} | {mem[1]} |",
                    flush=True,
                )
    if spreads:
        low, high = min(s[0] for s in spreads), max(s[1] for s in spreads)
        print(f"\nours: fastest and slowest call of a case, over its median: {low:.2f}-{high:.2f}")


if __name__ == "__main__":
    main()
