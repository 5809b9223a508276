"""``transform`` on a CPU: rows per forward pass for signals and images.

``transform`` pads every forward pass to a fixed number of rows, so that a sample's embedding
does not depend on the rows it came with (bit-identical across batchings). With 256 rows per
pass, one query image costs a whole 256-row pass. On a CPU, signals and images now take
passes of about ``CPU_INFERENCE_VALUES`` input values (16 rows of 3 x 64 x 64 images, 128 of
28 x 28), rows of features keep 256 (``_training.inference_rows``).

Both settings run side by side in this process, alternately, on the same fitted model (the
default CNN of each input, one epoch of training: the weights do not change the cost): the
median time of ``transform`` of 1 sample (a query) and of ``--n`` samples (a batch), and the
ratio old / new (above 1: the new setting is faster).

Run: ``python benchmarks/bench_transform.py`` (about 2 minutes on 2 cores) or ``--quick``
(CI smoke run: smaller batches, fewer repeats).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time
import warnings

import numpy as np
import torch

from sk_deepmetric import TripletEmbedder, _training

SHAPES = {
    "image 3x64x64": (3, 64, 64),
    "image 3x32x32": (3, 32, 32),
    "image 1x28x28": (1, 28, 28),
    "signal 12x1000": (12, 1000),
    "signal 1x128": (1, 128),
}
NETWORKS = {3: "cnn", 2: "cnn1d"}


def fitted(shape: tuple[int, ...]) -> tuple[TripletEmbedder, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, *shape)).astype(np.float32)
    model = TripletEmbedder(
        network=NETWORKS[len(shape)], max_iter=1, early_stopping=False, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, np.arange(64) % 4)
    return model, rng


def timed(model: TripletEmbedder, X: np.ndarray) -> float:
    start = time.perf_counter()
    model.transform(X)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="samples in the batch (512)")
    parser.add_argument("--repeats", type=int, default=5, help="alternate runs of each (5)")
    parser.add_argument("--quick", action="store_true", help="CI smoke run")
    args = parser.parse_args()
    n, repeats = (64, 2) if args.quick else (args.n, args.repeats)
    print(
        f"# {datetime.date.today()}, {platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; median of {repeats}"
    )
    print(
        "| input | rows / pass (old, new) | 1 sample old | new | ratio "
        f"| {n} samples old | new | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    default = _training.CPU_INFERENCE_VALUES
    settings = {"old": 2**62, "new": default}  # 2**62 values: always 256 rows (the old way)
    for name, shape in SHAPES.items():
        model, rng = fitted(shape)
        batch = rng.normal(size=(n, *shape)).astype(np.float32)
        times = {(s, size): [] for s in settings for size in (1, n)}
        for _ in range(repeats):
            for setting, values in settings.items():  # alternately: a slow spell hits both
                _training.CPU_INFERENCE_VALUES = values
                try:
                    times[setting, 1].append(timed(model, batch[:1]))
                    times[setting, n].append(timed(model, batch))
                finally:
                    _training.CPU_INFERENCE_VALUES = default
        med = {key: statistics.median(value) for key, value in times.items()}
        rows = _training.inference_rows(shape, torch.device("cpu"))
        cells = []
        for size in (1, n):
            old, new = med["old", size], med["new", size]
            cells += [f"{old * 1e3:.1f} ms", f"{new * 1e3:.1f} ms", f"{old / new:.2f}"]
        print(f"| {name} | 256, {rows} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
