"""Retrieval and 1-NN accuracy on generated signals: raw series, NCA, the MLP and the 1-D CNN.

The series come from :func:`sk_deepmetric.datasets.make_signals`: each class is a few short
waveforms (motifs) at random positions, under a random time warp, random amplitudes and
noise. Every model sees the series standardised per channel (mean and standard deviation
fitted on the training split); "raw" rows compare the series point by point, as given and
standardised, and the better of the two is the baseline to beat.

Tasks (``--tasks``):
  uni-closed     1 channel, length 128, 6 classes; 50 series of each to train, 50 to test
  multi-closed   3 channels, length 128, 6 classes; 50 / 50 of each
  long-small     1 channel, length 512, 4 classes; 15 series of each to train, 50 to test
  uni-open-few   1 channel, length 128, 10 classes: train on 5 (50 each), test on the 5 others
  uni-open-many  1 channel, length 128, 40 classes: train on 20 (40 each), test on the 20 others
  multi-open     3 channels, length 128, 40 classes: train on 20 (40 each), test on 20 others

Closed-set tasks test on new series of the training classes; 1-NN accuracy takes the
training series as the reference. Open-set tasks test on classes never seen in training;
1-NN accuracy is then leave-one-out among the test series (Precision@1). MAP@R is always
leave-one-out among the test series, cosine distance.

Rows (``--rows``, substrings of the names): raw (as given), raw (standardised), NCA, the
MLP (``TripletEmbedder`` and ``ArcFaceEmbedder`` defaults on the flattened series), the 1-D
CNN (``network="cnn1d"``) with both losses, with their defaults and with ``augment=AUGMENT``,
and, on the closed sets, the same CNN trained as a softmax classifier, scored by its own
predictions (what deep time-series classifiers report) in the 1-NN column.

Run: ``python benchmarks/bench_signals.py`` (3 seeds, about an hour on one CPU thread) or
``--quick`` (CI smoke run: one seed, two epochs, two tasks). ``--set NAME=VALUE`` passes a
parameter to every embedder row that has it.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
import warnings

import numpy as np
import torch
from bench_quality import cell, parse_setting
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import KNeighborsClassifier, NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sk_deepmetric import ArcFaceEmbedder, SoftmaxEmbedder, TripletEmbedder
from sk_deepmetric.datasets import make_signals
from sk_deepmetric.metrics import retrieval_report

#: name -> (make_signals arguments, samples per class, training classes or None (closed),
#: training series per class)
TASKS = {
    "uni-closed": (dict(n_classes=6), 100, None, 50),
    "multi-closed": (dict(n_classes=6, n_channels=3), 100, None, 50),
    "long-small": (dict(n_classes=4, length=512), 65, None, 15),
    "uni-open-few": (dict(n_classes=10), 100, 5, None),
    "uni-open-many": (dict(n_classes=40), 80, 20, None),
    "multi-open": (dict(n_classes=40, n_channels=3), 80, 20, None),
}

#: The augmentation of the "+ augment" rows.
AUGMENT = ["shift", "time_warp", "scale", "jitter"]
#: The closed-set reference: the same 1-D CNN trained as a softmax classifier (with the
#: augmentation), whose own prediction (the argmax of its logits) is scored, as deep
#: time-series classifiers are.
CLASSIFIER = "CNN softmax classifier + augment (its predictions)"


def make_task(name: str, seed: int):
    """``(X_train, y_train, X_test, y_test)``, standardised per channel on the training split,
    and the series as given, ``(X_train_raw, X_test_raw)``."""
    kwargs, per_class, n_train_classes, n_train = TASKS[name]
    n_classes = kwargs["n_classes"]
    X, y = make_signals(n_classes * per_class, random_state=seed, shuffle=False, **kwargs)
    if n_train_classes is None:  # closed set: the first n_train series of each class
        position = np.arange(len(y)) // n_classes  # index of the series within its class
        train = position < n_train
    else:
        train = y < n_train_classes
    mean = X[train].mean(axis=(0, 2), keepdims=True)
    std = X[train].std(axis=(0, 2), keepdims=True)
    Z = (X - mean) / std
    return (Z[train], y[train], Z[~train], y[~train]), (X[train], X[~train])


def flat():
    return FunctionTransformer(lambda X: X.reshape(len(X), -1))


def rows(seed: int, quick: bool, overrides) -> dict:
    """name -> unfitted model on the standardised ``(n, channels, length)`` series."""
    budget = {"max_iter": 2} if quick else {}

    def embedder(cls, **params):
        accepted = cls._get_param_names()
        chosen = {k: v for k, v in (overrides or {}).items() if k in accepted}
        return cls(random_state=seed, **{**budget, **params, **chosen})

    out = {
        "raw (standardised)": make_pipeline(flat()),
        "NCA": make_pipeline(
            flat(),
            StandardScaler(),
            NeighborhoodComponentsAnalysis(random_state=seed, max_iter=50),
        ),
        "TripletEmbedder, MLP": make_pipeline(flat(), embedder(TripletEmbedder)),
        "ArcFaceEmbedder, MLP": make_pipeline(flat(), embedder(ArcFaceEmbedder)),
        CLASSIFIER: embedder(SoftmaxEmbedder, network="cnn1d", augment=AUGMENT),
    }
    for cls in (TripletEmbedder, ArcFaceEmbedder):
        name = cls.__name__
        out[f"{name}, CNN"] = embedder(cls, network="cnn1d")
        out[f"{name}, CNN + augment"] = embedder(cls, network="cnn1d", augment=AUGMENT)
    return out


def evaluate(model, data, classifier=False) -> dict:
    X_train, y_train, X_test, y_test = data
    if classifier and not np.isin(y_test, y_train).all():
        return None  # a classifier predicts only its training classes
    model = clone(model)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    out = scores(model.transform(X_train), y_train, model.transform(X_test), y_test, seconds)
    if classifier:  # the softmax layer's own prediction in place of the 1-NN's
        with torch.no_grad():
            logits = model.loss_.logits(torch.from_numpy(model.transform(X_test)))
        out["1-NN"] = float(np.mean(model.classes_[logits.argmax(1).numpy()] == y_test))
    return out


def scores(Z_train, y_train, Z_test, y_test, seconds=None) -> dict:
    Z_train, Z_test = Z_train.reshape(len(Z_train), -1), Z_test.reshape(len(Z_test), -1)
    report = retrieval_report(Z_test, y_test, distance="cosine", recall_k=(1,), device="cpu")
    if np.isin(y_test, y_train).all():  # closed set: the training series are the reference
        knn = KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(Z_train, y_train)
        accuracy = knn.score(Z_test, y_test)
    else:
        accuracy = report["precision_at_1"]
    return {"MAP@R": report["map_at_r"], "1-NN": accuracy, "fit s": seconds}


def run_task(name: str, seeds: list[int], quick: bool, wanted, overrides) -> None:
    data = {seed: make_task(name, seed) for seed in seeds}
    print(f"\n### {name}\n")
    print("| model | MAP@R | 1-NN accuracy | fit seconds |")
    print("|---|---|---|---|")
    results = {}
    if wanted("raw (as given)"):
        results["raw (as given)"] = [
            scores(raw[0], d[1], raw[1], d[3]) for d, raw in data.values()
        ]
    for row in rows(0, quick, overrides):
        if not wanted(row):
            continue
        results[row] = []
        for seed in seeds:
            model = rows(seed, quick, overrides)[row]
            result = evaluate(model, data[seed][0], classifier=row == CLASSIFIER)
            if result is None:
                break
            results[row].append(result)
        if not results[row]:
            continue
        if row == "raw (standardised)" and "raw (as given)" in results:
            _print_row("raw (as given)", results["raw (as given)"])
        _print_row(row, results[row])


def _print_row(name, results) -> None:
    cols = [cell([r[k] for r in results]) for k in ("MAP@R", "1-NN")]
    cols.append(cell([r["fit s"] for r in results], 1))
    print(f"| {name} | " + " | ".join(cols) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, 2 tasks")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument("--rows", default=None, help="comma-separated substrings of row names")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="a parameter for every embedder row, e.g. --set learning_rate_init=1e-3",
    )  # fmt: skip
    args = parser.parse_args()
    overrides = dict(parse_setting(s) for s in args.set)
    torch.set_num_threads(1)
    tasks = args.tasks.split(",")
    if args.quick and args.tasks == ",".join(TASKS):
        tasks = ["uni-closed", "uni-open-few"]
    seeds = list(range(1 if args.quick else args.seeds))
    patterns = args.rows.split(",") if args.rows else None

    def wanted(name: str) -> bool:
        return patterns is None or any(p in name for p in patterns)

    print(
        f"# bench_signals: {datetime.date.today()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}, "
        f"seeds {seeds}{', quick (2 epochs)' if args.quick else ''}"
        + (f", embedders with {overrides}" if overrides else "")
    )
    for task in tasks:
        if task not in TASKS:
            raise SystemExit(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
        run_task(task, seeds, args.quick, wanted, overrides)


if __name__ == "__main__":
    main()
