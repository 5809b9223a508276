"""Retrieval quality on offline tasks, side by side with the alternatives.

The evaluation protocol of the user guide (Musgrave et al., "A Metric Learning Reality
Check"): train on some classes, evaluate on classes never seen in training, leave-one-out,
cosine similarity; and one closed-set task, as scikit-learn users will also run. Columns:
Precision@1, R-Precision, MAP@R, 5-NN accuracy (closed set only) and fit seconds, mean ± std
over seeds.

Tasks (``--tasks``); digits are pixel intensities in [0, 1]:
  digits        load_digits, train on 0-4, evaluate on 5-9
  digits-rev    the second split: train on 5-9, evaluate on 0-4
  noise         digits 0-4 -> 5-9 with 64 extra Gaussian noise features
  shifted       digits on a 12x12 canvas shifted by up to 2 pixels, 0-4 -> 5-9
  moved         the same, also rotated by up to 20 degrees (datasets.load_moved_digits)
  synth         make_classification, 100 classes, train on 50, evaluate on the other 50
  arcs          datasets.make_arcs: 100 classes that only a non-linear metric tells apart,
                train on 50, evaluate on 50
  closed        all 10 digits, a stratified half to train on and the other half to evaluate
                (closed set, as a scikit-learn user's KNN pipeline: 5-NN accuracy too)

Rows (``--rows``: substrings of the names, or ``^``/``$`` to anchor them at the start/end, so
that ``^SoftmaxEmbedder`` leaves out LargeMarginSoftmaxEmbedder):
  raw, PCA, NCA        on the features as given and standardised (StandardScaler fitted on
                       the training data); the better raw row is the baseline to beat
  pml triplet          pytorch-metric-learning's TripletMarginLoss + semi-hard
                       TripletMarginMiner trained by MetricEmbedder with TripletEmbedder's
                       defaults (same MLP, optimiser, batches and early stopping)
  <Embedder>           each embedder with its defaults, after a StandardScaler, as the
                       README's pipelines; "(as given)" without the scaler
  <Embedder> (classes holdout) / (samples holdout)
                       early stopping on held-out classes (open-set tasks) or on held-out
                       samples (closed), where the default would do otherwise
  <Embedder> tuned     GridSearchCV over 3 values of the main loss parameter, class-disjoint
                       2-fold CV on the training classes (GroupKFold, groups=y), MAP@R
  <Embedder>, CNN      network="cnn" on the pixels as given (a per-pixel scaler gives each
                       position its own units), without and with augment=IMAGE_AUGMENT,
                       on the digit tasks of CNN_TASKS; on closed also with a samples holdout

Run: ``python benchmarks/bench_quality.py --no-tuned`` (hours on one CPU thread; the tuned
rows add as much again) or ``python benchmarks/bench_quality.py --quick`` (CI smoke run: 1
seed, 2 epochs, a few rows). ``--set NAME=VALUE`` (repeatable) passes a parameter to every
embedder row that has it, to measure a setting against the defaults:
``--rows ^SoftmaxEmbedder --set learning_rate_init=3e-5``.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import platform
import time
import warnings

import numpy as np
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits, make_classification
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, GroupKFold, train_test_split
from sklearn.neighbors import KNeighborsClassifier, NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from sk_deepmetric import embedders as E
from sk_deepmetric.datasets import load_moved_digits, make_arcs
from sk_deepmetric.metrics import make_retrieval_scorer, retrieval_report

EMBEDDERS = list(E.EMBEDDERS_BY_LOSS.values())

#: The main loss parameter of each embedder and the values GridSearchCV tries.
GRIDS = {
    "TripletEmbedder": {"margin": [0.05, 0.2, 0.5]},
    "ContrastiveEmbedder": {"neg_margin": [0.5, 1.0, 1.5]},
    "NPairsEmbedder": {"l2_reg": [0.0005, 0.002, 0.01]},
    "AngularEmbedder": {"alpha": [30.0, 40.0, 50.0]},
    "SoftmaxEmbedder": {"learning_rate_init": [1e-4, 3e-4, 1e-3]},
    "CenterLossEmbedder": {"center_weight": [0.003, 0.01, 0.03]},
    "LargeMarginSoftmaxEmbedder": {"margin": [3, 4, 5]},
    "SphereFaceEmbedder": {"margin": [2, 3, 4]},
    "CosFaceEmbedder": {"scale": [16.0, 30.0, 64.0]},
    "ArcFaceEmbedder": {"scale": [16.0, 30.0, 64.0]},
    "MultiSimilarityEmbedder": {"base": [0.3, 0.5, 0.7]},
    "SupConEmbedder": {"temperature": [0.05, 0.1, 0.2]},
    "ProxyAnchorEmbedder": {"margin": [0.05, 0.1, 0.2]},
    "SubCenterArcFaceEmbedder": {"scale": [16.0, 30.0, 64.0]},
}

TASKS = ("digits", "digits-rev", "noise", "shifted", "moved", "synth", "arcs", "closed")
#: Where the CNN rows run (on the other digit tasks, see the note in the benchmarks page).
CNN_TASKS = ("digits", "shifted", "moved", "closed")
SHIFTED_SHAPE = (1, 12, 12)
#: The augmentation of the CNN "+ augment" rows.
IMAGE_AUGMENT = ["shift", "rotate"]


def make_task(name: str, seed: int):
    """``(X_train, y_train, X_eval, y_eval, image_shape)`` of one task, features as given.

    Digits come as pixel intensities in [0, 1] (scikit-learn's 0-16 divided by 16).
    """
    if name in ("synth", "arcs"):  # 100 classes: train on 0-49, evaluate on 50-99
        if name == "arcs":
            X, y = make_arcs(3000, 100, random_state=seed)
        else:
            X, y = make_classification(
                n_samples=3000,
                n_features=64,
                n_informative=16,
                n_redundant=8,
                n_classes=100,
                n_clusters_per_class=1,
                class_sep=2.0,
                random_state=seed,
            )
        train = y < 50
        return X[train], y[train], X[~train], y[~train], None
    if name in ("shifted", "moved"):  # open set, like "digits"
        X, y = load_moved_digits(max_rotation=20.0 if name == "moved" else 0.0, random_state=seed)
        train = y < 5
        return X[train], y[train], X[~train], y[~train], SHIFTED_SHAPE
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    rng = np.random.default_rng(seed)
    shape = (1, 8, 8)
    if name == "closed":
        train, test = train_test_split(
            np.arange(len(y)), test_size=0.5, stratify=y, random_state=seed
        )
        return X[train], y[train], X[test], y[test], shape
    if name == "noise":
        X = np.hstack([X, rng.normal(scale=X.std(), size=X.shape)])
        shape = None
    train = y >= 5 if name == "digits-rev" else y < 5
    return X[train], y[train], X[~train], y[~train], shape


class PMLSemiHardTriplet(nn.Module):
    """pytorch-metric-learning's semi-hard ``TripletMarginMiner`` + ``TripletMarginLoss``.

    Called as ``loss(embeddings, labels)``, so that :class:`MetricEmbedder` trains it with
    exactly TripletEmbedder's network, initialisation, optimiser, batches and early stopping:
    only the loss and miner differ.
    """

    def __init__(self, margin: float = 0.2):
        from pytorch_metric_learning import losses, miners

        super().__init__()
        self.loss = losses.TripletMarginLoss(margin=margin)
        self.miner = miners.TripletMarginMiner(margin=margin, type_of_triplets="semihard")

    def forward(self, embeddings, labels):
        return self.loss(embeddings, labels, self.miner(embeddings, labels))


def pml_triplet(seed: int, **params) -> E.MetricEmbedder:
    """The pml row: TripletEmbedder's defaults, pml's loss and miner."""
    d = E.TripletEmbedder()
    defaults = {"normalize": d.normalize, "samples_per_class": d.samples_per_class}
    return E.MetricEmbedder(
        loss=PMLSemiHardTriplet(d.margin), **{"random_state": seed, **defaults, **params}
    )


def grid_for(cls) -> dict:
    """The grid of ``cls`` in :data:`GRIDS`; for an embedder not listed there, its first
    numeric loss parameter at half, once and twice its default."""
    if cls.__name__ in GRIDS:
        return GRIDS[cls.__name__]
    for name, default in cls._loss_params.items():
        if isinstance(default, (int, float)) and not isinstance(default, bool) and default > 0:
            return {name: [default / 2, default, default * 2]}
    return {"learning_rate_init": [1e-4, 3e-4, 1e-3]}


def rows(seed: int, shape, quick: bool, closed: bool = False, overrides=None) -> dict:
    """name -> unfitted model (``None`` where the row does not apply to the task).

    ``overrides`` (name -> value, from ``--set``) go to every embedder that has the parameter.
    Rows without "(as given)" standardise the features first (a StandardScaler fitted on the
    training data), as the pipelines of the README do; the CNN rows take the pixels as
    given, since a per-pixel scaler would give each position of the image its own units.
    """
    budget = {"max_iter": 2} if quick else {}

    def params(cls, **fixed) -> dict:
        accepted = cls._get_param_names()
        chosen = {k: v for k, v in (overrides or {}).items() if k in accepted}
        return {"random_state": seed, **budget, **chosen, **fixed}

    cv = GroupKFold(n_splits=2)
    scorer = make_retrieval_scorer("map_at_r", distance="cosine")
    out = {}
    for label, scaler in (("as given", []), ("standardised", [StandardScaler()])):
        out[f"raw ({label})"] = make_pipeline(*scaler, "passthrough")
        out[f"PCA ({label})"] = make_pipeline(*scaler, PCA(0.95, random_state=seed))
        out[f"NCA ({label})"] = make_pipeline(
            *scaler, NeighborhoodComponentsAnalysis(random_state=seed, max_iter=50)
        )
    out["pml triplet (same MLP)"] = make_pipeline(
        StandardScaler(), pml_triplet(seed, **params(E.MetricEmbedder))
    )
    for cls in EMBEDDERS:
        name = cls.__name__
        out[name] = make_pipeline(StandardScaler(), cls(**params(cls)))
        out[f"{name} (as given)"] = cls(**params(cls))
        grid = {f"{name.lower()}__{k}": v for k, v in grid_for(cls).items()}
        out[f"{name} tuned"] = ("tuned", GridSearchCV(out[name], grid, scoring=scorer, cv=cv))
        holdout = "samples" if closed else "classes"
        out[f"{name} ({holdout} holdout)"] = make_pipeline(
            StandardScaler(), cls(**params(cls, validation_holdout=holdout))
        )
    for cls in (E.TripletEmbedder, E.ArcFaceEmbedder):
        for suffix, augment in (("", None), (" + augment", IMAGE_AUGMENT)):
            variants = [("", {})] + ([(", samples holdout", {"validation_holdout": "samples"})]
                                     if closed else [])  # fmt: skip
            for holdout_name, holdout in variants:
                cnn = None
                if shape is not None:
                    cnn = cls(**params(cls, network="cnn", input_shape=shape, augment=augment,
                                       **holdout))  # fmt: skip
                out[f"{cls.__name__}, CNN{suffix}{holdout_name}"] = cnn
    return out


def evaluate(model, task) -> dict:
    X_train, y_train, X_eval, y_eval, _ = task
    tuned = isinstance(model, tuple)
    model = clone(model[1] if tuned else model)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if tuned:
            model.fit(X_train, y_train, groups=y_train)
        else:
            model.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    Z_eval = model.transform(X_eval)
    report = retrieval_report(Z_eval, y_eval, distance="cosine", recall_k=(1,), device="cpu")
    accuracy = None
    if np.isin(y_eval, y_train).all():  # closed set: classify by the training neighbours
        knn = KNeighborsClassifier(n_neighbors=5, metric="cosine")
        accuracy = knn.fit(model.transform(X_train), y_train).score(Z_eval, y_eval)
    return {
        "P@1": report["precision_at_1"],
        "R-Prec": report["r_precision"],
        "MAP@R": report["map_at_r"],
        "kNN acc": accuracy,
        "fit s": seconds,
    }


def parse_setting(text: str) -> tuple[str, object]:
    """``"name=value"`` -> ``(name, value)``, the value read as a Python literal if it is one."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"--set wants NAME=VALUE, got {text!r}")
    try:
        return name, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return name, value  # a plain string, e.g. --set miner=batch_hard


def row_matches(name: str, pattern: str) -> bool:
    """``--rows`` matching: a substring of the row name, anchored like a regular expression.

    ``SoftmaxEmbedder`` also matches ``LargeMarginSoftmaxEmbedder``; ``^SoftmaxEmbedder``
    matches only the rows that start with it (defaults, tuned, holdouts, CNN), ``(as given)$``
    the rows that end with it, and ``^SoftmaxEmbedder$`` that one row.
    """
    start, end = pattern.startswith("^"), pattern.endswith("$")
    core = pattern[1 if start else 0 : -1 if end else None]
    if start and end:
        return name == core
    if start:
        return name.startswith(core)
    if end:
        return name.endswith(core)
    return core in name


def cell(values, digits=3) -> str:
    """``mean ± std`` of the values that are not None ("-" when none are)."""
    values = np.asarray([v for v in values if v is not None], dtype=float)
    if values.size == 0:
        return "-"
    if values.size == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std():.{digits}f}"


def run_task(task_name: str, seeds: list[int], quick: bool, wanted, overrides) -> None:
    data = {seed: make_task(task_name, seed) for seed in seeds}
    closed = task_name == "closed"
    cnn_shape = (lambda seed: data[seed][4]) if task_name in CNN_TASKS else (lambda seed: None)
    names = [n for n in rows(0, cnn_shape(0), quick, closed, overrides) if wanted(n)]
    print(f"\n### {task_name}\n")
    print("| model | Precision@1 | R-Precision | MAP@R | 5-NN accuracy | fit seconds |")
    print("|---|---|---|---|---|---|")
    for name in names:
        results = []
        for seed in seeds:
            model = rows(seed, cnn_shape(seed), quick, closed, overrides)[name]
            if model is None:
                break
            results.append(evaluate(model, data[seed]))
        if not results:
            continue
        cols = [cell([r[k] for r in results]) for k in ("P@1", "R-Prec", "MAP@R")]
        accuracy = [r["kNN acc"] for r in results]
        cols.append("-" if None in accuracy else cell(accuracy))
        seconds = cell([r["fit s"] for r in results], 1)
        print(f"| {name} | " + " | ".join(cols) + f" | {seconds} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, few rows")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument(
        "--rows",
        default=None,
        help="comma-separated substrings of the row names to run (^NAME: names starting with it)",
    )
    parser.add_argument(
        "--no-tuned", action="store_true", help="skip the GridSearchCV rows (the slow ones)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter for every embedder row, e.g. --set learning_rate_init=3e-5",
    )
    args = parser.parse_args()
    overrides = dict(parse_setting(s) for s in args.set)
    known = {name for cls in (*EMBEDDERS, E.MetricEmbedder) for name in cls._get_param_names()}
    if set(overrides) - known:
        raise SystemExit(
            f"--set: no embedder has the parameter(s) {sorted(set(overrides) - known)}"
        )
    torch.set_num_threads(1)
    tasks = args.tasks.split(",")
    seeds = list(range(1 if args.quick else args.seeds))
    patterns = args.rows.split(",") if args.rows else None
    if args.quick and patterns is None:
        patterns = ["raw", "NCA", "pml", "^TripletEmbedder", "^ArcFaceEmbedder"]
        tasks = ["digits"] if args.tasks == ",".join(TASKS) else tasks

    def wanted(name: str) -> bool:
        if (args.no_tuned or args.quick) and name.endswith("tuned"):
            return False
        return patterns is None or any(row_matches(name, p) for p in patterns)

    print(
        f"# bench_quality: {datetime.date.today()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}, "
        f"seeds {seeds}{', quick (2 epochs)' if args.quick else ''}"
        + (f", embedders with {overrides}" if overrides else "")
    )
    print("Open-set retrieval, cosine, leave-one-out on the evaluation classes; mean ± std.")
    for task in tasks:
        if task not in TASKS:
            raise SystemExit(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
        run_task(task, seeds, args.quick, wanted, overrides)


if __name__ == "__main__":
    main()
