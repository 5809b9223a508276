"""Data larger than memory: one epoch read from disk against the same data in memory.

Prints two markdown tables. First, one training epoch of :class:`~sk_deepmetric.TripletEmbedder`
(the default MLP, 1 thread) over a float32 ``numpy.memmap`` of ``--gib`` GiB, and over the
same data loaded into memory; the memmap also at a quarter of the size, to show that its
memory does not grow with the data. Second, a torch ``Dataset`` of PNG image files read
with PIL, against the same images as an array in memory, with the CNN. Each case runs in a
child process under ``/usr/bin/time -v``; columns:

- samples/s: training samples over the epoch's seconds (``history_[0]["time"]``), and its
  ratio to the in-memory case of the table;
- peak anon: the largest anonymous resident memory (``RssAnon`` of ``/proc/self/status``,
  sampled every 10 ms): the process's own allocations, what data in memory cost;
- max RSS: ``/usr/bin/time``'s maximum resident set size, which also counts the file's
  pages mapped from the page cache (memory the kernel can take back).

The file is read once before the runs, so that it sits in the page cache (the issue's
"file in the page cache" case); a cold disk is slower by its read speed.

    python benchmarks/bench_memory.py                   # 4 GiB memmap (1M x 1024), 8,000 images
    python benchmarks/bench_memory.py --gib 1 --images 2000
    python benchmarks/bench_memory.py --quick           # CI smoke run, < 60 s
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
from torch.utils.data import Dataset

N_FEATURES = 1024
SAMPLES_PER_CLASS_IN_DATA = 100
IMAGE_SIDE = 32


# ------------------------------------------------------------------ the data
def write_memmap(path: pathlib.Path, n: int, seed: int = 0) -> np.ndarray:
    """``n`` x 1024 float32 rows (class centres plus noise) written to ``path``; the labels."""
    rng = np.random.default_rng(seed)
    n_classes = max(2, n // SAMPLES_PER_CLASS_IN_DATA)
    y = np.arange(n) % n_classes
    centres = rng.standard_normal((n_classes, N_FEATURES), dtype=np.float32)
    X = np.memmap(path, dtype=np.float32, mode="w+", shape=(n, N_FEATURES))
    for start in range(0, n, 65536):
        stop = min(n, start + 65536)
        noise = rng.standard_normal((stop - start, N_FEATURES), dtype=np.float32)
        X[start:stop] = centres[y[start:stop]] + noise
    X.flush()
    del X
    return y


def write_images(folder: pathlib.Path, n: int, seed: int = 0) -> np.ndarray:
    """``n`` 32 x 32 grey PNG files (upscaled digits with noise) in ``folder``; the labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits, labels = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    pick = rng.integers(len(digits), size=n)
    big = np.kron(digits[pick].reshape(n, 8, 8) / 16, np.ones((4, 4)))
    pixels = np.clip(big + rng.normal(scale=0.1, size=big.shape), 0, 1)
    for i, image in enumerate(pixels):
        Image.fromarray((image * 255).astype(np.uint8), mode="L").save(folder / f"{i}.png")
    return labels[pick]


class PNGFiles(Dataset):
    """A torch Dataset of ``(image, label)`` read lazily from the PNG files of a folder."""

    def __init__(self, folder: str, labels: np.ndarray) -> None:
        self.folder, self.targets = folder, labels.tolist()

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        from PIL import Image

        with Image.open(os.path.join(self.folder, f"{i}.png")) as image:
            pixels = np.asarray(image, dtype=np.float32)[None] / 255
        return pixels, self.targets[i]


# ------------------------------------------------------------------ one case, in a child
def _peak_anon(stop: threading.Event, peak: list) -> None:
    while not stop.is_set():
        status = pathlib.Path("/proc/self/status").read_text()
        peak[0] = max(peak[0], int(re.search(r"RssAnon:\s+(\d+)", status).group(1)))
        time.sleep(0.01)


def child(args: argparse.Namespace) -> None:
    import torch

    from sk_deepmetric import TripletEmbedder

    y = np.load(args.labels)
    stop, peak = threading.Event(), [0]
    threading.Thread(target=_peak_anon, args=(stop, peak), daemon=True).start()
    params = {"max_iter": 1, "early_stopping": False, "random_state": 0, "n_threads": 1}
    if args.child.startswith("images"):
        params["network"] = "cnn"
        if args.child == "images-memory":
            X = np.stack([PNGFiles(args.path, y)[i][0] for i in range(len(y))])
        else:
            X, y = PNGFiles(args.path, y), None
    else:
        n = len(y)
        if args.child == "memory":
            X = np.fromfile(args.path, dtype=np.float32).reshape(n, N_FEATURES)
        else:
            X = np.memmap(args.path, dtype=np.float32, mode="r", shape=(n, N_FEATURES))
    if args.child.endswith("workers"):
        params["num_workers"] = 1
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TripletEmbedder(**params).fit(X, y)
    stop.set()
    seconds = model.history_[0]["time"]
    n_samples = len(X)
    print(json.dumps({"samples_per_s": n_samples / seconds, "peak_anon_kib": peak[0]}))


def run_case(case: str, path: pathlib.Path, labels: pathlib.Path) -> dict:
    command = [
        "/usr/bin/time", "-v", sys.executable, __file__,
        "--child", case, "--path", str(path), "--labels", str(labels),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{case} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    max_rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    result["max_rss_kib"] = int(max_rss.group(1))
    return result


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def table(title: str, rows: list[tuple[str, str, dict]], reference: str) -> None:
    print(f"\n### {title}\n")
    print("| case | data | samples/s | vs in memory | peak anon (MiB) | max RSS (MiB) |")
    print("|---|---|---:|---:|---:|---:|")
    base = next(r for name, _, r in rows if name == reference)["samples_per_s"]
    for name, data, r in rows:
        ratio = r["samples_per_s"] / base
        print(
            f"| {name} | {data} | {r['samples_per_s']:,.0f} | {ratio:.2f}x | "
            f"{_mib(r['peak_anon_kib'])} | {_mib(r['max_rss_kib'])} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=4.0, help="size of the memmap")
    parser.add_argument("--images", type=int, default=8000, help="number of PNG files")
    parser.add_argument("--dir", default=None, help="where to write the data (default: tmp)")
    parser.add_argument("--quick", action="store_true", help="64 MiB and 300 images")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quick:
        args.gib, args.images = 1 / 16, 300
    import torch

    print(
        f"# bench_memory: {time.strftime('%Y-%m-%d')}, torch {torch.__version__}, 1 thread, "
        f"{platform.machine()}, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = pathlib.Path(tmp)
        rows = []
        n_big = int(args.gib * 2**30) // (4 * N_FEATURES)
        for n, cases in (
            (n_big, ("memory", "memmap", "memmap-workers")),
            (n_big // 4, ("memmap",)),
        ):
            path, labels = tmp / f"x{n}.f32", tmp / f"y{n}.npy"
            np.save(labels, write_memmap(path, n))
            with open(path, "rb") as f:  # into the page cache
                while f.read(2**26):
                    pass
            size = f"{n:,} x {N_FEATURES} ({path.stat().st_size / 2**30:.2f} GiB)"
            rows += [(case, size, run_case(case, path, labels)) for case in cases]
            path.unlink()
        table("An epoch over a memmap (TripletEmbedder, MLP)", rows, "memory")

        folder = tmp / "images"
        folder.mkdir()
        labels = tmp / "images.npy"
        np.save(labels, write_images(folder, args.images))
        data = f"{args.images:,} PNG files, {IMAGE_SIDE} x {IMAGE_SIDE}"
        rows = [
            (case, data, run_case(case, folder, labels))
            for case in ("images-memory", "images-dataset", "images-dataset-workers")
        ]
        table("An epoch over image files (TripletEmbedder, CNN)", rows, "images-memory")


if __name__ == "__main__":
    main()
