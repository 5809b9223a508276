"""KNN classification on small and odd tabular data: the default embedders against baselines.

A scikit-learn user's closed-set pipeline: an embedding, then ``KNeighborsClassifier()`` (5
neighbours, Euclidean distance), scored on a stratified 70/30 split. Each seed draws a new
split, new data where the task is generated, and new network weights.

Tasks (``--tasks``):
  iris           load_iris: 150 x 4, 3 classes
  breast_cancer  load_breast_cancer: 569 x 30, 2 classes
  imbalanced     make_classification, 1050 x 20 (5 informative, 5 redundant), 2 classes in
                 the ratio 1:20
  tiny           make_classification, 60 x 10 (5 informative), 6 classes: 42 training and 18
                 test samples
  manyclasses    make_classification, 300 x 20 (12 informative), 100 classes of 3: 2
                 training samples and 1 test sample per class (100 test samples; a 30% split
                 cannot hold every class)
  highdim        make_classification, 600 x 2000, 20 informative, 4 classes of 2 clusters
  labelnoise     make_classification, 1000 x 20 (8 informative), 4 classes of 2 clusters;
                 20% of the training labels flipped to another class (the test labels are
                 clean)
  countshard     Poisson counts, 800 x 30, 4 classes: a column's rate is its scale (log-uniform
                 from 1 to 500) times a class profile that differs between classes by about 8%
                 times a depth per sample (log-normal, sigma 0.3); the counts as given
  constdup       make_classification, 600 x 20 (8 informative), 4 classes of 2 clusters, plus
                 a constant column and 20 duplicated columns (the first 10, twice): 600 x 41

Rows (``--rows``: comma-separated substrings of the names, ``^``/``$`` anchor them at the
start/end, so that ``^TripletEmbedder`` is the three TripletEmbedder rows and
``Embedder$`` the five defaults); every row ends with ``KNeighborsClassifier()``:
  raw (as given), raw (standardised)   the features as given / after a StandardScaler
  PCA (standardised)                   StandardScaler, PCA(0.95)
  NCA (standardised)                   StandardScaler, NeighborhoodComponentsAnalysis(
                                       max_iter=50, n_components at most 64)
  <Embedder>                           TripletEmbedder, ArcFaceEmbedder, ProxyAnchorEmbedder,
                                       SupConEmbedder and MultiSimilarityEmbedder with their
                                       defaults after a StandardScaler, as the README's
                                       pipelines
  <Embedder> (as given)                the same embedder without the StandardScaler
  TripletEmbedder (normalize=False)    after a StandardScaler, with normalize=False

Columns, on the test part: accuracy and balanced accuracy; fit seconds (the whole pipeline);
epochs run; and "kept start": in how many of the fits early stopping found no epoch better
than the starting weights and kept them (the embedder's warning). Every estimator has its
default parameters except ``random_state`` (and the few named above). torch runs on
``--threads`` threads (default 1; printed in the first line).

Run: ``python benchmarks/bench_small.py`` (3 seeds; about 11 minutes on one CPU thread of
a shared 2-core machine) or ``--quick`` (CI smoke run: one seed, 2 epochs, iris and tiny, a
few rows; seconds). ``--set NAME=VALUE`` passes a parameter to every embedder row that has
it.
"""

from __future__ import annotations

import numpy as np
import torch
from bench_quality import cell, parse_setting, row_matches
from bench_tasks import (
    KEPT_START,
    first_line,
    fit_recording,
    make_embedder,
    make_parser,
    task_list,
    training_cells,
)
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris, make_classification
from sklearn.decomposition import PCA
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_deepmetric import (
    ArcFaceEmbedder,
    MultiSimilarityEmbedder,
    ProxyAnchorEmbedder,
    SupConEmbedder,
    TripletEmbedder,
)

TASKS = ("iris", "breast_cancer", "imbalanced", "tiny", "manyclasses", "highdim", "labelnoise",
         "countshard", "constdup")  # fmt: skip
EMBEDDERS = (TripletEmbedder, ArcFaceEmbedder, ProxyAnchorEmbedder, SupConEmbedder,
             MultiSimilarityEmbedder)  # fmt: skip


def _counts(seed: int, n=800, n_features=30, n_classes=4):
    """Poisson counts on column scales from 1 to 500, classes 8% apart on every column."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    scales = np.exp(rng.uniform(np.log(1), np.log(500), n_features))
    profile = rng.lognormal(0, 0.08, (n_classes, n_features))
    depth = rng.lognormal(0, 0.3, (n, 1))
    return rng.poisson(scales * profile[y] * depth).astype(float), y


def make_data(name: str, seed: int):
    """``(X, y)`` of one task, before the split."""
    if name == "iris":
        return load_iris(return_X_y=True)
    if name == "breast_cancer":
        return load_breast_cancer(return_X_y=True)
    if name == "countshard":
        return _counts(seed)
    shapes = {  # make_classification's arguments
        "imbalanced": dict(n_samples=1050, n_features=20, n_informative=5, n_redundant=5,
                           n_classes=2, weights=[20 / 21], class_sep=1.0),
        "tiny": dict(n_samples=60, n_features=10, n_informative=5, n_redundant=2, n_classes=6,
                     n_clusters_per_class=1),
        "manyclasses": dict(n_samples=300, n_features=20, n_informative=12, n_redundant=4,
                            n_classes=100, n_clusters_per_class=1, class_sep=1.5),
        "highdim": dict(n_samples=600, n_features=2000, n_informative=20, n_redundant=0,
                        n_classes=4, n_clusters_per_class=2),
        "labelnoise": dict(n_samples=1000, n_features=20, n_informative=8, n_redundant=4,
                           n_classes=4, n_clusters_per_class=2),
        "constdup": dict(n_samples=600, n_features=20, n_informative=8, n_redundant=4,
                         n_classes=4, n_clusters_per_class=2),
    }  # fmt: skip
    X, y = make_classification(**shapes[name], flip_y=0, random_state=seed)
    if name == "constdup":
        X = np.hstack([X, np.full((len(X), 1), 3.0), X[:, :10], X[:, :10]])
    return X, y


def make_task(name: str, seed: int):
    """``(X_train, y_train, X_test, y_test)``: a stratified split of the task's data."""
    X, y = make_data(name, seed)
    test_size = 100 if name == "manyclasses" else 0.3  # one test sample per class
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, stratify=y, random_state=seed
    )
    if name == "labelnoise":  # 20% of the training labels move to another class
        rng = np.random.default_rng(100 + seed)
        n_classes = len(np.unique(y))
        flip = rng.random(len(y_train)) < 0.2
        y_train = y_train.copy()
        y_train[flip] = (y_train[flip] + rng.integers(1, n_classes, flip.sum())) % n_classes
    return X_train, y_train, X_test, y_test


def rows(seed: int, n_features: int, quick: bool, overrides=None) -> dict:
    """name -> unfitted pipeline (each ends with ``KNeighborsClassifier()``)."""

    def embedder(cls, **fixed):
        return make_embedder(cls, seed, quick, overrides, **fixed)

    nca = NeighborhoodComponentsAnalysis(
        n_components=min(n_features, 64), max_iter=50, random_state=seed
    )
    out = {
        "raw (as given)": ["passthrough"],
        "raw (standardised)": [StandardScaler()],
        "PCA (standardised)": [StandardScaler(), PCA(0.95, random_state=seed)],
        "NCA (standardised)": [StandardScaler(), nca],
    }
    for cls in EMBEDDERS:
        out[cls.__name__] = [StandardScaler(), embedder(cls)]
    for cls in EMBEDDERS:
        out[f"{cls.__name__} (as given)"] = [embedder(cls)]
    out["TripletEmbedder (normalize=False)"] = [
        StandardScaler(),
        embedder(TripletEmbedder, normalize=False),
    ]
    return {name: make_pipeline(*steps, KNeighborsClassifier()) for name, steps in out.items()}


def evaluate(model, task) -> dict:
    X_train, y_train, X_test, y_test = task
    model = clone(model)
    seconds, caught = fit_recording(model, X_train, y_train)
    predicted = model.predict(X_test)
    embedder = model[-2]
    trained = hasattr(embedder, "history_")
    return {
        "accuracy": accuracy_score(y_test, predicted),
        "balanced": balanced_accuracy_score(y_test, predicted),
        "fit s": seconds,
        "epochs": len(embedder.history_) if trained else None,
        "kept start": any(KEPT_START in str(w.message) for w in caught) if trained else None,
    }


def run_task(name: str, seeds: list[int], quick: bool, wanted, overrides) -> None:
    data = {seed: make_task(name, seed) for seed in seeds}
    X_train, y_train, X_test, _ = data[seeds[0]]
    n_features = X_train.shape[1]
    print(
        f"\n### {name}\n\n{len(y_train)} training and {len(X_test)} test samples, "
        f"{n_features} features, {len(np.unique(y_train))} classes\n"
    )
    print("| model | accuracy | balanced accuracy | fit seconds | epochs | kept start |")
    print("|---|---|---|---|---|---|")
    for row in rows(0, n_features, quick, overrides):
        if not wanted(row):
            continue
        results = [
            evaluate(rows(seed, n_features, quick, overrides)[row], data[seed]) for seed in seeds
        ]
        cols = [cell([r[k] for r in results]) for k in ("accuracy", "balanced")]
        cols.append(cell([r["fit s"] for r in results], 1))
        cols += training_cells(results)
        print(f"| {row} | " + " | ".join(cols) + " |", flush=True)


def main() -> None:
    parser = make_parser(__doc__, TASKS, "1 seed, 2 epochs, iris and tiny", "normalize=False")
    args = parser.parse_args()
    overrides = dict(parse_setting(s) for s in args.set)
    torch.set_num_threads(args.threads)
    tasks = task_list(args, TASKS, ["iris", "tiny"])
    patterns = args.rows.split(",") if args.rows else None
    if args.quick and patterns is None:
        patterns = ["raw", "NCA", "^TripletEmbedder", "^ArcFaceEmbedder$"]
    seeds = list(range(1 if args.quick else args.seeds))

    def wanted(name: str) -> bool:
        return patterns is None or any(row_matches(name, p) for p in patterns)

    print(first_line("bench_small", seeds, args.quick, overrides))
    print("Closed set: KNeighborsClassifier() on each row's output, stratified 70/30 split; "
          "mean ± std.")  # fmt: skip
    for task in tasks:
        run_task(task, seeds, args.quick, wanted, overrides)


if __name__ == "__main__":
    main()
