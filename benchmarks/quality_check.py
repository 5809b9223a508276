"""Open-set retrieval quality of every embedder on scikit-learn's digits (PROTOCOL.md).

Train on digits 0-4, evaluate on 5-9 (classes never seen in training): MAP@R, leave-one-out,
cosine similarity (= L2-normalised embeddings). Three tasks: the digits, the digits with 64
extra Gaussian noise features, and the digits shifted by up to 2 pixels (where a CNN should
beat an MLP). Every estimator uses its defaults except ``random_state``, after a
StandardScaler. Run: ``python benchmarks/quality_check.py [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_deepmetric import embedders as E
from sk_deepmetric.metrics import mean_average_precision_at_r

EMBEDDERS = [
    E.TripletEmbedder,
    E.ContrastiveEmbedder,
    E.NPairsEmbedder,
    E.AngularEmbedder,
    E.SoftmaxEmbedder,
    E.CenterLossEmbedder,
    E.LargeMarginSoftmaxEmbedder,
    E.SphereFaceEmbedder,
    E.CosFaceEmbedder,
    E.ArcFaceEmbedder,
]


def tasks(seed: int = 0) -> dict:
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    noisy = np.hstack([X, rng.normal(scale=X.std(), size=X.shape)])
    images = X.reshape(-1, 8, 8)
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    dx, dy = rng.integers(-2, 3, size=(2, len(X)))
    shifted = np.stack(
        [np.roll(np.roll(p, a, axis=0), b, axis=1) for p, a, b in zip(padded, dx, dy)]
    ).reshape(len(X), -1)
    return {"digits": (X, y), "digits+noise": (noisy, y), "shifted": (shifted, y)}


def open_set_map_at_r(model, X, y) -> tuple[float, float]:
    train = y < 5
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[train], y[train])
    seconds = time.perf_counter() - start
    emb = X[~train] if model is None else model.transform(X[~train])
    return mean_average_precision_at_r(emb, y[~train], distance="cosine"), seconds


def models(seed: int, shape: tuple[int, ...]) -> dict:
    out = {
        "StandardScaler (raw)": make_pipeline(StandardScaler()),
        "StandardScaler + NCA": make_pipeline(
            StandardScaler(), NeighborhoodComponentsAnalysis(random_state=seed)
        ),
    }
    for cls in EMBEDDERS:
        out[cls.__name__] = make_pipeline(StandardScaler(), cls(random_state=seed))
    out["TripletEmbedder (cnn)"] = make_pipeline(
        StandardScaler(), E.TripletEmbedder(network="cnn", input_shape=shape, random_state=seed)
    )
    out["ArcFaceEmbedder (cnn)"] = make_pipeline(
        StandardScaler(), E.ArcFaceEmbedder(network="cnn", input_shape=shape, random_state=seed)
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--only", default=None, help="substring of the model names to run")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads by default; "
        "MAP@R on classes 5-9 (mean over seeds), fit seconds in brackets"
    )
    data = tasks()
    shapes = {"digits": None, "digits+noise": None, "shifted": (1, 12, 12)}
    names = list(models(0, (1, 8, 8)))
    if args.only:
        names = [n for n in names if args.only in n or "NCA" in n or "raw" in n]
    print(f"{'model':28s}" + "".join(f"{t:>22s}" for t in data))
    for name in names:
        cells = []
        for task, (X, y) in data.items():
            shape = shapes[task]
            if "cnn" in name and shape is None:
                if task != "digits":
                    cells.append(f"{'-':>22s}")
                    continue
                shape = (1, 8, 8)
            scores, times = [], []
            for seed in range(args.seeds):
                model = models(seed, shape or (1, 8, 8))[name]
                s, t = open_set_map_at_r(model, X, y)
                scores.append(s)
                times.append(t)
            cells.append(f"{np.mean(scores):>14.3f} [{np.mean(times):4.1f}s]")
        print(f"{name:28s}" + "".join(cells), flush=True)


if __name__ == "__main__":
    main()
