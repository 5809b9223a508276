"""The main job: ``python -m sk_deepmetric demo`` (also the ``sk-deepmetric`` console script).

Fits an embedder on two tasks, offline, and prints its retrieval and nearest-neighbour scores
next to the baselines a scikit-learn user would try (raw features as given and standardised,
scikit-learn's NCA), with a one-line reading of each table:

- a closed set (new samples of the training classes, as a KNN classifier meets them);
- an open set (classes never seen in training, as new identities or products are).

``--network`` picks the data: "mlp" (scikit-learn's digits, then a tabular task whose classes
need a non-linear metric), "cnn" (digits as images, then digits under random shifts and
rotations) or "cnn1d" (generated signals).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass

import numpy as np

from . import embedders
from ._devices import resolve_device
from .metrics import retrieval_report

#: ``--loss`` name -> estimator class name in :mod:`sk_deepmetric.embedders`.
LOSSES = {name: cls.__name__ for name, cls in embedders.EMBEDDERS_BY_LOSS.items()}
NETWORKS = ("mlp", "cnn", "cnn1d")
#: The largest ``--seed``: numpy's and scikit-learn's seeds are 32-bit.
MAX_SEED = 2**32 - 1


@dataclass
class Task:
    """One table of the demo: training and test data and what they are."""

    title: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple | None = None

    @property
    def closed(self) -> bool:
        return bool(np.isin(self.y_test, self.y_train).all())


def tasks(network: str, seed: int) -> list[Task]:
    """The closed-set and the open-set task for ``network``."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from .datasets import load_moved_digits, make_arcs, make_signals

    if network == "cnn1d":
        X, y = make_signals(600, 6, random_state=seed, shuffle=False)
        # another seed for the open set, within the 32-bit range however large --seed is
        Xo, yo = make_signals(1200, 40, random_state=(seed + 1) % (MAX_SEED + 1), shuffle=False)
        closed = np.arange(len(y)) // 6 < 50  # 50 series of each class to train on
        return [
            Task("Closed set: 6 classes of signals (length 128), 50 series of each to train "
                 "on, 50 to test", X[closed], y[closed], X[~closed], y[~closed]),
            Task("Open set: 20 classes of signals to train on, 20 others to test",
                 Xo[yo < 20], yo[yo < 20], Xo[yo >= 20], yo[yo >= 20]),
        ]  # fmt: skip
    X, y = load_digits(return_X_y=True)
    X = X / 16.0  # pixel intensities in [0, 1]
    train, test = train_test_split(np.arange(len(y)), test_size=0.5, stratify=y, random_state=seed)
    closed = Task(
        "Closed set: all ten digits, half of the images to train on, the other half to test",
        X[train], y[train], X[test], y[test], (1, 8, 8),
    )  # fmt: skip
    if network == "cnn":
        Xo, yo = load_moved_digits(random_state=seed)
        return [closed, Task(
            "Open set: digits shifted by up to 2 pixels and rotated by up to 20 degrees; "
            "train on 0-4, test on the unseen 5-9",
            Xo[yo < 5], yo[yo < 5], Xo[yo >= 5], yo[yo >= 5], (1, 12, 12),
        )]  # fmt: skip
    Xo, yo = make_arcs(3000, 100, random_state=seed)
    return [closed, Task(
        "Open set: 100 tabular classes that only a non-linear metric tells apart "
        "(datasets.make_arcs); train on 50, test on the 50 others",
        Xo[yo < 50], yo[yo < 50], Xo[yo >= 50], yo[yo >= 50],
    )]  # fmt: skip


def baselines(task: Task, seed: int) -> dict:
    """name -> (fitted transformer or None for the features themselves, seconds)."""
    from sklearn.neighbors import NeighborhoodComponentsAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    flat_train = task.X_train.reshape(len(task.X_train), -1)
    out = {"raw features, as given": (None, None)}
    out["raw features, standardised"] = (StandardScaler().fit(flat_train), None)
    start = time.perf_counter()
    nca = make_pipeline(
        StandardScaler(), NeighborhoodComponentsAnalysis(max_iter=50, random_state=seed)
    ).fit(flat_train, task.y_train)
    out["NCA (scikit-learn)"] = (nca, time.perf_counter() - start)
    return out


def scores(task: Task, model, flat: bool = True) -> dict:
    """MAP@R and Precision@1 on the test set (leave-one-out), and (closed set) 5-NN accuracy
    with the training set as reference. ``model`` None scores the features themselves;
    ``flat`` gives it rows of features (a scikit-learn transformer) rather than X's shape."""
    from sklearn.neighbors import KNeighborsClassifier

    def embed(X):
        X = X.reshape(len(X), -1) if flat else X
        return X if model is None else np.asarray(model.transform(X))

    Z_test = embed(task.X_test)
    report = retrieval_report(Z_test, task.y_test, distance="cosine", device="cpu")
    out = {"MAP@R": report["map_at_r"], "P@1": report["precision_at_1"]}
    if task.closed:
        knn = KNeighborsClassifier(n_neighbors=5, metric="cosine")
        out["5-NN acc"] = knn.fit(embed(task.X_train), task.y_train).score(Z_test, task.y_test)
    return out


def print_table(task: Task, rows: dict) -> None:
    columns = list(next(iter(rows.values()))[0])
    width = max(len(name) for name in rows)
    print(f"\n{task.title}:\n")
    header = " | ".join(f"{c:>8}" for c in columns)
    print(f"| {'embedding':<{width}} | {header} | fit (s) |")
    print(f"|{'-' * (width + 2)}|" + "|".join("-" * 10 for _ in columns) + "|---------|")
    for name, (values, seconds) in rows.items():
        cells = " | ".join(f"{values[c]:>8.3f}" for c in columns)
        fit = "-" if seconds is None else f"{seconds:.1f}"
        print(f"| {name:<{width}} | {cells} | {fit:>7} |")
    print("\n" + reading(rows))


def reading(rows: dict) -> str:
    """One line: where the learned embedding stands against the best baseline, per column."""
    *baseline_rows, (learned_name, (learned, _)) = rows.items()
    parts = []
    for column, value in learned.items():
        name, best = max(((n, v[column]) for n, (v, _) in baseline_rows), key=lambda t: t[1])
        verdict = "ahead of" if value > best + 0.005 else (
            "behind" if value < best - 0.005 else "level with"
        )  # fmt: skip
        parts.append(f"{column} {value:.3f}, {verdict} the best baseline ({name}, {best:.3f})")
    return f"Reading: {learned_name}: " + "; ".join(parts) + "."


def make_embedder(args: argparse.Namespace, task: Task):
    estimator_class = getattr(embedders, LOSSES[args.loss])
    params = {"random_state": args.seed, "verbose": 0 if args.quiet else 1, "device": args.device}
    if args.epochs is not None:
        params["max_iter"] = args.epochs
    if args.network != "mlp":
        params.update(network=args.network, input_shape=task.input_shape)
    return estimator_class(**params)


def demo(args: argparse.Namespace) -> int:
    for task in tasks(args.network, args.seed):
        rows = {}
        for name, (model, seconds) in baselines(task, args.seed).items():
            rows[name] = (scores(task, model), seconds)
        embedder = make_embedder(args, task)
        start = time.perf_counter()
        if not _fit_to_the_end(embedder, task):
            print("\nInterrupted: no scores for a fit that did not finish.", file=sys.stderr)
            return INTERRUPTED
        seconds = time.perf_counter() - start
        label = f"{type(embedder).__name__} ({args.network})"
        rows[label] = (scores(task, embedder, flat=False), seconds)
        print_table(task, rows)
    if args.plot:
        _save_plot(args.plot, task, embedder, args.seed)
        print(f"\nSaved the before/after picture of the open-set test data to {args.plot}")
    return 0


#: The exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def _fit_to_the_end(embedder, task: Task) -> bool:
    """Fit ``embedder`` on the task's training data; False if Ctrl-C stopped the fit.

    ``fit`` keeps the weights of the epochs it finished when interrupted and returns, as in
    a notebook, with a RuntimeWarning; a command must stop instead of scoring that model as
    the demo's result. The fit's warnings are shown as they would be without the check.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        embedder.fit(task.X_train, task.y_train)
    interrupted = False
    for w in caught:
        if issubclass(w.category, RuntimeWarning) and str(w.message).startswith(
            "Training interrupted"
        ):
            interrupted = True
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return not interrupted


def _save_plot(path: str, task: Task, embedder, seed: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .plotting import plot_embedding

    raw = task.X_test.reshape(len(task.X_test), -1)
    learned = embedder.transform(task.X_test)
    fig, (before, after) = plt.subplots(1, 2, figsize=(10, 5))
    for ax, Z, name in ((before, raw, "raw features"), (after, learned, "learned embedding")):
        score = retrieval_report(Z, task.y_test, distance="cosine", device="cpu")["map_at_r"]
        # both panels alike: unit rows (the cosine geometry the scores use), then PCA
        Z = Z / np.maximum(np.linalg.norm(Z, axis=1, keepdims=True), 1e-12)
        plot_embedding(Z, y=task.y_test, ax=ax, random_state=seed,
                       title=f"{name} (PCA of unit rows), MAP@R {score:.3f}")  # fmt: skip
    fig.suptitle(task.title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# The options' types: argparse calls them while parsing, so that a bad value stops the demo with
# a usage error (exit status 2) naming the option before any data are loaded or fitted.
def positive_int(text: str) -> int:
    """``--epochs``: an integer of at least 1."""
    return _int_in_range(text, 1, None, "a positive integer")


def seed_int(text: str) -> int:
    """``--seed``: an integer that numpy and scikit-learn take as a seed."""
    return _int_in_range(text, 0, MAX_SEED, f"an integer from 0 to {MAX_SEED}")


def _int_in_range(text: str, low: int, high: int | None, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def device_name(text: str) -> str:
    """``--device``: a device this machine has, checked as the estimators check ``device``."""
    try:
        resolve_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def plot_file(text: str) -> str:
    """``--plot``: a file name whose extension matplotlib saves to, in a folder that exists."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise argparse.ArgumentTypeError(
            "needs matplotlib, which is not installed; install it with: "
            'pip install "sk_deepmetric[plot]"'
        ) from None
    formats = sorted(FigureCanvasBase.get_supported_filetypes())
    extension = os.path.splitext(text)[1][1:].lower()
    if extension not in formats:
        raise argparse.ArgumentTypeError(
            f"expected a file name ending in one of the extensions matplotlib saves to "
            f"({', '.join('.' + f for f in formats)}), got {text!r}"
        )
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"expected a file name, got {text!r}: it is a folder")
    if os.path.exists(text) and not os.access(text, os.W_OK):
        raise argparse.ArgumentTypeError(
            f"expected a file you can write to, got {text!r}: it exists and is not writable"
        )
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(
            f"expected a file in an existing folder, got {text!r}: there is no folder {folder!r}"
        )
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(
            f"expected a file in a folder you can write to, got {text!r}: {folder!r} is not "
            "writable"
        )
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sk-deepmetric",
        description="sk_deepmetric: deep metric learning with a scikit-learn face.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo_parser = commands.add_parser(
        "demo",
        help="fit an embedder on a closed-set and an open-set task and compare it with "
        "raw features and NCA",
        description=(
            "Fit an embedder on two offline tasks, a closed set (new samples of the training "
            "classes) and an open set (classes never seen in training), and print MAP@R, "
            "Precision@1 and (closed set) 5-NN accuracy of the learned embedding next to raw "
            "features, as given and standardised, and scikit-learn's NCA. --network picks the "
            "data: mlp (digits, then a tabular task), cnn (digit images, then shifted and "
            "rotated digits) or cnn1d (generated signals)."
        ),
    )
    demo_parser.add_argument(
        "--loss", choices=sorted(LOSSES), default="triplet",
        help="loss to train with (default: triplet)",
    )  # fmt: skip
    demo_parser.add_argument(
        "--network", choices=NETWORKS, default="mlp",
        help="network, and the data that suit it (default: mlp)",
    )  # fmt: skip
    demo_parser.add_argument(
        "--epochs", type=positive_int, default=None,
        help="maximum epochs (default: the estimator's max_iter)",
    )  # fmt: skip
    demo_parser.add_argument(
        "--device", type=device_name, default="auto",
        help='"auto" (CUDA when available), "cpu", "cuda", "cuda:1" (default: auto)',
    )  # fmt: skip
    demo_parser.add_argument(
        "--seed", type=seed_int, default=0, help=f"random_state, 0 to {MAX_SEED} (default: 0)"
    )
    demo_parser.add_argument(
        "--plot", type=plot_file, metavar="FILE.png",
        help="save a 2-D view of the open-set test data, raw and embedded",
    )  # fmt: skip
    demo_parser.add_argument("--quiet", action="store_true", help="no progress bar")
    demo_parser.set_defaults(run=demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:  # Ctrl-C outside a fit (a baseline, scoring): no traceback
        print("\nInterrupted.", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
