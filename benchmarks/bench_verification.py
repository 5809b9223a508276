"""Verification and open-set identification on the open-set tasks of bench_quality.

The verification protocol of the user guide (Evaluation: "Verification, open-set and
re-identification"), on the tasks
of ``bench_quality.py`` (``make_task``: train on some classes, evaluate on classes never seen
in training):

  digits  load_digits, train on 0-4, evaluate on 5-9
  noise   the same with 64 extra Gaussian noise features
  synth   make_classification, 100 classes, train on 50, evaluate on the other 50

**Verification** (``--part verification``): every pair of evaluation samples (digits 5-9:
401k pairs, 20% of them same-digit; synth: 1.1M pairs, 2% same-class), scored by the cosine
similarity of the embeddings. Columns: EER, TAR at FAR 1e-2 and 1e-3, minDCF (P_target 0.01,
C_miss = C_fa = 1), LFW-style accuracy (on 6,000 balanced pairs, as LFW's View 2: the best
threshold on 9 of 10 stratified folds, tested on the 10th) and fit seconds, mean ± std over
seeds. Rows: raw features as given and
standardised, NCA, TripletEmbedder and ArcFaceEmbedder at their defaults, and
ContrastivePairsEmbedder trained on 20,000 balanced pairs of the training classes (their
same/different flags only, no class labels). Every learned model starts with a
StandardScaler fitted on the training data.

**Open set** (``--part open-set``): the training classes' samples are split in half,
stratified: one half fits ``EmbeddingKNeighborsClassifier(target_far=...)`` with its default
embedder (after a StandardScaler), the other half are queries of known classes; every
evaluation sample is a query of an unknown class. One fit per calibration and seed, at
``target_far=0.01``; ``set_target_far`` reads the thresholds for 0.05 and 0.1 from the same
calibration (what a fit at that target would give: the tests check it). Columns: realised
false-accept rate (unknown queries given a known class), known-class accuracy (a rejection
counts as an error), known queries rejected, the closed-set accuracy of the same classifier
(no rejection), AUROC of known against unknown queries by ``score_samples``.

Run: ``python benchmarks/bench_verification.py`` (about an hour on one CPU thread) or
``--quick`` (CI smoke run: digits, 1 seed, 2 epochs, 20,000 balanced evaluation pairs, 2
calibration folds; under a minute).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time
import warnings

import numpy as np
import torch
from bench_quality import cell, make_task
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sk_deepmetric import embedders as E
from sk_deepmetric.metrics import (
    make_pairs,
    pair_scores,
    verification_accuracy,
    verification_report,
)
from sk_deepmetric.neighbors import EmbeddingKNeighborsClassifier

TASKS = ("digits", "noise", "synth")
TARGETS = (0.01, 0.05, 0.1)
#: Balanced pairs of the training classes that ContrastivePairsEmbedder learns from.
N_TRAINING_PAIRS = 20_000


def verification_models(seed: int, quick: bool) -> dict:
    budget = {"max_iter": 2} if quick else {}
    return {
        "raw (as given)": FunctionTransformer(),
        "raw (StandardScaler)": StandardScaler(),
        "NCA": make_pipeline(
            StandardScaler(), NeighborhoodComponentsAnalysis(random_state=seed, max_iter=50)
        ),
        "TripletEmbedder": make_pipeline(
            StandardScaler(), E.TripletEmbedder(random_state=seed, **budget)
        ),
        "ArcFaceEmbedder": make_pipeline(
            StandardScaler(), E.ArcFaceEmbedder(random_state=seed, **budget)
        ),
        "ContrastivePairsEmbedder (pairs only)": ("pairs", seed, budget),
    }


def fit_pairs_model(X, y, seed: int, budget: dict):
    """A scaler and a ContrastivePairsEmbedder trained on pairs of the training classes."""
    scaler = StandardScaler().fit(X)
    index, same = make_pairs(y, n_pairs=N_TRAINING_PAIRS, random_state=seed)
    model = E.ContrastivePairsEmbedder(random_state=seed, **budget)
    model.fit(scaler.transform(X)[index], same)
    return make_pipeline(scaler, model)


def verification_row(model, task, seed: int, quick: bool) -> dict:
    X_train, y_train, X_eval, y_eval, _ = task
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if isinstance(model, tuple):
            model = fit_pairs_model(X_train, y_train, *model[1:])
        else:
            model = clone(model).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    # all pairs; a balanced sample of them in the smoke run
    index, same = make_pairs(y_eval, n_pairs=20_000 if quick else None, random_state=seed)
    scores = pair_scores(model.transform(X_eval), index, distance="cosine")
    report = verification_report(same, scores, far=(1e-2, 1e-3), p_target=0.01)
    # LFW's View 2: 3,000 same and 3,000 different pairs in 10 folds (on all pairs, mostly
    # different-class, the most accurate threshold would reject everything)
    index, same = make_pairs(y_eval, n_pairs=6000, random_state=seed)
    scores = pair_scores(model.transform(X_eval), index, distance="cosine")
    accuracy, _ = verification_accuracy(same, scores, random_state=seed)
    return {
        "EER": report["equal_error_rate"],
        "TAR@1e-2": report["tar_at_far_0.01"],
        "TAR@1e-3": report["tar_at_far_0.001"],
        "minDCF": report["min_dcf"],
        "LFW acc": accuracy,
        "fit s": seconds,
        "pairs": (report["n_same"], report["n_different"]),
    }


def run_verification(task_name: str, seeds: list[int], quick: bool, wanted) -> None:
    data = {seed: make_task(task_name, seed) for seed in seeds}
    print(f"\n### verification: {task_name}\n")
    rows = {}
    for seed in seeds:
        for name, model in verification_models(seed, quick).items():
            if wanted(name):
                rows.setdefault(name, []).append(verification_row(model, data[seed], seed, quick))
    n_same, n_different = next(iter(rows.values()))[0]["pairs"]
    print(f"{n_same:,} same-class and {n_different:,} different-class pairs per seed.\n")
    columns = ("EER", "TAR@1e-2", "TAR@1e-3", "minDCF", "LFW acc")
    print("| model | EER | TAR @ FAR 1e-2 | TAR @ FAR 1e-3 | minDCF (0.01) | LFW-style acc "
          "| fit seconds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, results in rows.items():
        cols = [cell([r[c] for r in results]) for c in columns]
        seconds = cell([r["fit s"] for r in results], 1)
        print(f"| {name} | " + " | ".join(cols) + f" | {seconds} |", flush=True)


def open_set_split(task, seed: int):
    """(reference X, y; known-class queries X, y; unknown-class queries X)."""
    X_train, y_train, X_eval, _, _ = task
    fit, known = train_test_split(
        np.arange(len(y_train)), test_size=0.5, stratify=y_train, random_state=seed
    )
    return X_train[fit], y_train[fit], X_train[known], y_train[known], X_eval


def open_set_rows(task, seed: int, calibration: str, quick: bool) -> list[dict]:
    X_fit, y_fit, X_known, y_known, X_unknown = open_set_split(task, seed)
    # the default for numeric labels, given so that rejections can be counted here
    options = dict(calibration=calibration, random_state=seed, unknown_label=-1)
    if quick:  # an explicit embedder with a 2-epoch budget, 2 class folds
        embedder = E.TripletEmbedder(validation_holdout="samples", max_iter=2, random_state=seed)
        options |= dict(embedder=embedder, calibration_folds=2)
    clf = EmbeddingKNeighborsClassifier(target_far=TARGETS[0], **options)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = make_pipeline(StandardScaler(), clf).fit(X_fit, y_fit)
    seconds = time.perf_counter() - start
    knn = model[-1]
    known_scores, unknown_scores = model.score_samples(X_known), model.score_samples(X_unknown)
    auroc = roc_auc_score(
        np.r_[np.ones(len(known_scores)), np.zeros(len(unknown_scores))],
        np.r_[known_scores, unknown_scores],
    )
    closed = np.mean(knn.classes_[model.predict_proba(X_known).argmax(axis=1)] == y_known)
    out = []
    for target in TARGETS:
        knn.set_target_far(target)
        on_unknown, on_known = model.predict(X_unknown), model.predict(X_known)
        out.append({
            "far": np.mean(on_unknown != knn.unknown_label),
            "acc": np.mean(on_known == y_known),
            "rejected": np.mean(on_known == knn.unknown_label),
            "closed": closed,
            "auroc": auroc,
            "fit s": seconds,
        })  # fmt: skip
    return out


def run_open_set(task_name: str, seeds: list[int], quick: bool, calibrations) -> None:
    data = {seed: make_task(task_name, seed) for seed in seeds}
    X_fit, _, X_known, _, X_unknown = open_set_split(data[seeds[0]], seeds[0])
    print(f"\n### open set: {task_name}\n")
    print(f"{len(X_fit)} reference samples, {len(X_known)} known-class and {len(X_unknown)} "
          "unknown-class queries per seed.\n")  # fmt: skip
    print("| calibration | target FAR | realised FAR | known-class accuracy | known rejected "
          "| closed-set accuracy | AUROC known/unknown | fit seconds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for calibration in calibrations:
        results = [open_set_rows(data[seed], seed, calibration, quick) for seed in seeds]
        for i, target in enumerate(TARGETS):
            rows = [r[i] for r in results]
            cols = [cell([r[c] for r in rows]) for c in ("far", "acc", "rejected", "closed")]
            cols.append(cell([r["auroc"] for r in rows]))
            seconds = cell([r["fit s"] for r in rows], 1)
            print(f"| {calibration} | {target} | " + " | ".join(cols) + f" | {seconds} |",
                  flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="digits, 1 seed, 2 epochs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated task names")
    parser.add_argument(
        "--part", choices=("all", "verification", "open-set"), default="all", help="which table"
    )
    parser.add_argument(
        "--rows", default=None, help="comma-separated substrings of the verification rows to run"
    )
    parser.add_argument(
        "--calibration",
        default="cross_fit,leave_class_out",
        help="comma-separated calibrations of the open-set table",
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks = args.tasks.split(",")
    if args.quick and args.tasks == ",".join(TASKS):
        tasks = ["digits"]
    for task in tasks:
        if task not in TASKS:
            raise SystemExit(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    seeds = list(range(1 if args.quick else args.seeds))
    patterns = args.rows.split(",") if args.rows else None

    def wanted(name: str) -> bool:
        return patterns is None or any(p in name for p in patterns)

    print(
        f"# bench_verification: {datetime.date.today()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}, "
        f"seeds {seeds}{', quick (2 epochs)' if args.quick else ''}"
    )
    for task in tasks:
        if args.part in ("all", "verification"):
            run_verification(task, seeds, args.quick, wanted)
        if args.part in ("all", "open-set"):
            run_open_set(task, seeds, args.quick, args.calibration.split(","))


if __name__ == "__main__":
    main()
