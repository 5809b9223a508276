"""What early stopping should hold out with a dozen or so training classes: classes or samples.

``validation_holdout="auto"`` holds out whole classes only when at least 4 can be held out (20
classes at ``validation_fraction=0.2``), and samples of every class otherwise. This script
measures what that costs on open-set tasks with fewer classes, where holding out classes was
possible (2 or 3 of them) but the samples holdout is now used: train on ``K`` classes, evaluate
MAP@R (cosine, leave-one-out) on 50 classes never seen in training, with each holdout.

Tasks (``K`` from ``--classes``, 30 samples per class):
  arcs-K   datasets.make_arcs with K + 50 classes (classes told apart by a non-linear function)
  synth-K  make_classification, 40 features (20 informative), K + 50 classes, class_sep 1.5

Rows: the standardised features, and TripletEmbedder and ArcFaceEmbedder at their defaults
after a StandardScaler, with ``validation_holdout`` "classes" and "samples". The closed-set
side of the trade-off is the ``closed`` task of ``bench_quality.py``.

Run: ``python benchmarks/bench_holdout.py`` (3 seeds, about 20 minutes on one CPU thread) or
``--quick`` (CI smoke run: 1 seed, 2 epochs, 12 classes).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import warnings

import torch
from bench_quality import cell
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_deepmetric import ArcFaceEmbedder, TripletEmbedder
from sk_deepmetric.datasets import make_arcs
from sk_deepmetric.metrics import retrieval_report

N_EVAL_CLASSES = 50
PER_CLASS = 30


def make_task(family: str, n_train: int, seed: int):
    """``(X_train, y_train, X_eval, y_eval)``: ``n_train`` classes to train on, 50 others."""
    n_classes = n_train + N_EVAL_CLASSES
    if family == "arcs":
        X, y = make_arcs(n_classes * PER_CLASS, n_classes, random_state=seed)
    else:
        X, y = make_classification(
            n_classes * PER_CLASS,
            n_features=40,
            n_informative=20,
            n_classes=n_classes,
            n_clusters_per_class=1,
            class_sep=1.5,
            random_state=seed,
        )
    train = y < n_train
    return X[train], y[train], X[~train], y[~train]


def map_at_r(Z, y) -> float:
    return retrieval_report(Z, y, distance="cosine", device="cpu")["map_at_r"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, 12 classes")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--classes", default="12,16", help="training class counts K")
    args = parser.parse_args(argv)
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    sizes = [12] if args.quick else [int(k) for k in args.classes.split(",")]
    budget = {"max_iter": 2} if args.quick else {}
    torch.set_num_threads(1)
    warnings.simplefilter("ignore", ConvergenceWarning)
    print(
        f"# bench_holdout: {datetime.date.today()}, torch {torch.__version__}, 1 thread, "
        f"{platform.machine()}, seeds {seeds}{', quick (2 epochs)' if args.quick else ''}"
    )
    rows = ["raw (standardised)"] + [
        f"{cls.__name__}, {h} holdout"
        for cls in (TripletEmbedder, ArcFaceEmbedder)
        for h in ("classes", "samples")
    ]
    tasks = [f"{family}-{k}" for k in sizes for family in ("arcs", "synth")]
    results = {(t, r): [] for t in tasks for r in rows}
    for task in tasks:
        family, k = task.split("-")
        for seed in seeds:
            X_train, y_train, X_eval, y_eval = make_task(family, int(k), seed)
            scaler = StandardScaler().fit(X_train)
            results[task, rows[0]].append(map_at_r(scaler.transform(X_eval), y_eval))
            for cls in (TripletEmbedder, ArcFaceEmbedder):
                for holdout in ("classes", "samples"):
                    embedder = cls(validation_holdout=holdout, random_state=seed, **budget)
                    model = make_pipeline(StandardScaler(), embedder).fit(X_train, y_train)
                    score = map_at_r(model.transform(X_eval), y_eval)
                    results[task, f"{cls.__name__}, {holdout} holdout"].append(score)
    print("\nMAP@R on the 50 evaluation classes, mean ± std over seeds\n")
    print("| model | " + " | ".join(tasks) + " |")
    print("|---" * (len(tasks) + 1) + "|")
    for row in rows:
        print(f"| {row} | " + " | ".join(cell(results[t, row]) for t in tasks) + " |")


if __name__ == "__main__":
    main()
