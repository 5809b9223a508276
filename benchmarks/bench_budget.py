"""Few-class epoch budgets: the fixed default against one chosen without the evaluation classes.

With fewer than 8 training classes, ``early_stopping="auto"`` has too few classes to hold out
and the embedders train for a fixed 5 epochs (``max_iter=None``). That number was read off
the evaluation classes of the digit tasks. This script asks whether a budget chosen on the
*training* classes alone does better: class-disjoint cross-validation, each fold holding out
2 of the training classes (fold i holds out classes i and i+1, cyclically), a MAP@R curve on
the held-out classes over ``--epochs`` epochs, and the epoch count where the mean curve peaks
(0: the untrained network, which with the default skip connection is a rotation of the
input). It then reads the evaluation classes' MAP@R at that epoch off one run on all training
classes, next to the value at the default 5 epochs and at the best epoch in hindsight (the
oracle, for scale; no method can know it).

Tasks as in ``bench_quality.py``: ``digits`` (train 0-4, evaluate 5-9), ``digits-rev`` and
``noise`` (64 noise features). Cosine, leave-one-out, mean ± std over seeds.

    python benchmarks/bench_budget.py                 # the table in docs/benchmarks.md
    python benchmarks/bench_budget.py --quick         # CI smoke run
"""

from __future__ import annotations

import argparse
import datetime
import platform
import warnings

import numpy as np
import torch
from bench_quality import cell, make_task
from sklearn.preprocessing import StandardScaler

from sk_deepmetric import embedders as E
from sk_deepmetric.metrics import mean_average_precision_at_r

DEFAULT_EPOCHS = 5  # what max_iter=None means without validation (embedders' AUTO_MAX_ITER)
EMBEDDERS = (
    "TripletEmbedder",
    "NPairsEmbedder",
    "SoftmaxEmbedder",
    "CenterLossEmbedder",
    "LargeMarginSoftmaxEmbedder",
    "ArcFaceEmbedder",
)


def map_at_r(Z: np.ndarray, y: np.ndarray) -> float:
    return float(mean_average_precision_at_r(Z, y, distance="cosine", device="cpu"))


def curve(name: str, X, y, X_eval, y_eval, epochs: int, seed: int) -> np.ndarray:
    """MAP@R of ``X_eval`` before training and after each of ``epochs`` epochs on ``X``."""
    model = getattr(E, name)(early_stopping=False, random_state=seed)
    scores = [map_at_r(X_eval, y_eval)]  # epoch 0: the skip connection's rotation of X
    for _ in range(epochs):
        model.partial_fit(X, y)  # one epoch at the default, constant learning rate
        scores.append(map_at_r(model.transform(X_eval), y_eval))
    return np.array(scores)


def chosen_epochs(name: str, X, y, epochs: int, seed: int) -> int:
    """The epoch count where the mean held-out-classes MAP@R over the folds peaks."""
    classes = np.unique(y)
    curves = []
    for i in range(classes.size):
        held_out = np.isin(y, classes[[i, (i + 1) % classes.size]])
        curves.append(
            curve(name, X[~held_out], y[~held_out], X[held_out], y[held_out], epochs, seed)
        )
    return int(np.argmax(np.mean(curves, axis=0)))


def run(task: str, name: str, seeds: list[int], epochs: int) -> str:
    default, chosen, oracle, picks, best = [], [], [], [], []
    for seed in seeds:
        X, y, X_eval, y_eval, _ = make_task(task, seed)
        scaler = StandardScaler().fit(X)
        X, X_eval = scaler.transform(X), scaler.transform(X_eval)
        evaluation = curve(name, X, y, X_eval, y_eval, epochs, seed)
        pick = chosen_epochs(name, X, y, epochs, seed)
        default.append(evaluation[min(DEFAULT_EPOCHS, epochs)])
        chosen.append(evaluation[pick])
        oracle.append(evaluation.max())
        picks.append(pick)
        best.append(int(np.argmax(evaluation)))
    return (
        f"| {task} | {name} | {cell(default)} | {cell(chosen)} | {picks} | "
        f"{cell(oracle)} | {best} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 seed, 3 epochs, 1 row")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30, help="length of every curve")
    parser.add_argument("--tasks", default="digits,noise,digits-rev")
    parser.add_argument("--embedders", default=",".join(EMBEDDERS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", category=UserWarning)
    seeds = [0] if args.quick else list(range(args.seeds))
    epochs = 3 if args.quick else args.epochs
    tasks = ["digits"] if args.quick else args.tasks.split(",")
    names = ["TripletEmbedder"] if args.quick else args.embedders.split(",")
    print(
        f"# bench_budget: {datetime.date.today()}, torch {torch.__version__}, 1 thread, "
        f"{platform.processor() or platform.machine()}, seeds {seeds}, {epochs} epochs\n"
    )
    fixed = min(DEFAULT_EPOCHS, epochs)
    label = f"{fixed} epochs" + (" (the default)" if fixed == DEFAULT_EPOCHS else "")
    print(
        f"| task | embedder | {label} | CV-chosen | chosen epochs | best in hindsight "
        "| its epochs |"
    )
    print("|---|---|---|---|---|---|---|")
    for task in tasks:
        for name in names:
            print(run(task, name, seeds, epochs), flush=True)


if __name__ == "__main__":
    main()
