"""Retrieval and verification on five generated tasks: faces, speakers, images, records, few-shot.

Every task is class-disjoint: the test classes are never seen in training. Each seed draws
new data as well as new network weights.

Tasks (``--tasks``):
  faces      face-like identities, 240 identities x 8 samples, 128 features: a 10-d identity
             code sets the albedo and surface normals of 128 "patches"; every sample is
             rendered under a random yaw and pitch (pose), light direction, ambient level and
             exposure (nuisances every identity shares), with Lambertian shading,
             self-occlusion and sensor noise. Train on 120 identities, test on the 120 others.
  speakers   speaker-like series of 1 x 256 points: the identity is a pitch f0 and a
             3-formant spectral envelope; the nuisances are a random phase for each harmonic
             (so a time shift), a pitch drift of +-4%, a gain of 0.3-3x, a slow syllable-like
             amplitude envelope and noise. 120 speakers x 12, train on 60, test on 60. The
             CNN rows take ``input_shape=(1, 256)``.
  digitinst  instance retrieval on small images: scikit-learn's digits upscaled to 16 x 16,
             a class is ONE source image, rendered 6 times with a rotation of +-10 degrees, a
             shift of +-2 pixels, an elastic distortion, a contrast change and noise. Train
             on 200 source images of digits 0-4, test on 200 of digits 5-9 (class-disjoint
             for the instances and for the digits; MAP@R with the digit labels is printed
             too). The CNN rows take ``input_shape=(1, 16, 16)``.
  records    tabular records, 300 classes x 12, 66 columns: 10 informative numeric columns
             on scales from 0.01 to 1000, 2 heavy-tailed (log-normal) informative columns, 6
             categorical columns one-hot (a class has a preferred level with probability
             0.7), 20 Gaussian and 4 heavy-tailed noise columns of large scale. Train on 150
             classes, test on the 150 others.
  fewshot    many classes, few test shots: a 12-d class code and a large 6-d nuisance that
             every class shares, through a fixed random 2-layer tanh network to 96 features,
             plus noise. Train on 250 classes x 10 samples, test on 250 classes x 2 or 3
             samples (R = 1 or 2 relevant samples for each query).

Columns, on the test classes only: leave-one-out MAP@R and Precision@1 with cosine
distance; TAR at FAR = 1e-2 and the equal error rate over ALL unordered test pairs
(``make_pairs(y_test)``, ``pair_scores(..., distance="cosine")``, ``verification_report``);
fit seconds; epochs run; and "kept start": in how many of the fits early stopping found no
epoch better than the untrained network and kept it (the embedder's warning).

Rows (``--rows``: comma-separated substrings of the names, ``^``/``$`` anchor them at the
start/end, so that ``Embedder$`` leaves out the CNN rows and ``^ArcFaceEmbedder, CNN`` is
one row: a comma followed by a space is part of a name), on the tasks of ``BASELINES`` and
``CNN_TASKS``:
  raw (as given), raw (standardised)   the features compared as they are / after a
                                       StandardScaler fitted on the training classes
  PCA, NCA (as given / standardised)   PCA(0.95); NeighborhoodComponentsAnalysis(max_iter=50)
  |FFT| (domain baseline)              speakers: the magnitude spectrum of each series
  <Embedder>                           TripletEmbedder, ArcFaceEmbedder, ProxyAnchorEmbedder
                                       and MultiSimilarityEmbedder with their defaults (the
                                       MLP) after a StandardScaler, as the README's pipelines
  <Embedder>, CNN                      TripletEmbedder and ArcFaceEmbedder with
                                       network="cnn1d" (speakers, the series standardised
                                       with one mean and one std) or "cnn" (digitinst, the
                                       pixels as given) and ``input_shape``

Every estimator has its default parameters except ``random_state``. torch runs on
``--threads`` threads (default 1; printed in the first line).

Run: ``python benchmarks/bench_tasks.py`` (3 seeds; about 20 minutes on one CPU thread
without the CNN rows, which take 1-3 minutes a fit, 12 fits) or ``--quick`` (CI smoke run:
one seed, 2 epochs, faces and speakers without NCA). ``--set NAME=VALUE`` passes a
parameter to every embedder row that has it.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import re
import time
import warnings

import numpy as np
import torch
from bench_quality import cell, parse_setting, row_matches
from scipy import ndimage
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.neighbors import NeighborhoodComponentsAnalysis
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sk_deepmetric import (
    ArcFaceEmbedder,
    MultiSimilarityEmbedder,
    ProxyAnchorEmbedder,
    TripletEmbedder,
)
from sk_deepmetric.metrics import (
    make_pairs,
    pair_scores,
    retrieval_report,
    verification_report,
)

TASKS = ("faces", "speakers", "digitinst", "records", "fewshot")
EMBEDDERS = (TripletEmbedder, ArcFaceEmbedder, ProxyAnchorEmbedder, MultiSimilarityEmbedder)
#: The baseline rows of each task (the embedder rows run on every task).
BASELINES = {
    "faces": ("raw (as given)", "raw (standardised)", "PCA (as given)", "PCA (standardised)",
              "NCA (as given)", "NCA (standardised)"),
    "speakers": ("raw (as given)", "raw (standardised)", "PCA (as given)", "NCA (as given)",
                 "|FFT| (domain baseline)"),
    "digitinst": ("raw (as given)", "raw (standardised)", "PCA (as given)", "NCA (as given)"),
    "records": ("raw (as given)", "raw (standardised)", "PCA (as given)", "PCA (standardised)",
                "NCA (standardised)"),
    "fewshot": ("raw (as given)", "raw (standardised)", "PCA (as given)", "PCA (standardised)",
                "NCA (standardised)"),
}  # fmt: skip
#: Where the CNN rows run, and the input shape they are given.
INPUT_SHAPES = {"speakers": (1, 256), "digitinst": (1, 16, 16)}
CNN_TASKS = tuple(INPUT_SHAPES)
#: The embedder's warning when early stopping keeps the untrained network.
KEPT_START = "improved the validation score of its starting weights"


def _split(X, y, train_classes, info):
    train = np.isin(y, train_classes)
    return X[train], y[train], X[~train], y[~train], info


def make_faces(seed: int, n_ids=240, per_id=8, n_features=128, code_dim=10):
    world = np.random.default_rng(12345)  # the "face model" is the same for every seed
    rng = np.random.default_rng(seed)
    normals0 = world.normal(size=(n_features, 3))
    normals0[:, 2] = np.abs(normals0[:, 2]) + 0.5  # the patches mostly face the camera (+z)
    normals0 /= np.linalg.norm(normals0, axis=1, keepdims=True)
    albedo0 = world.uniform(0.4, 1.0, size=n_features)
    U = world.normal(size=(n_features, code_dim)) / np.sqrt(code_dim)
    V = world.normal(size=(n_features, 3, code_dim)) / np.sqrt(code_dim)
    codes = rng.normal(size=(n_ids, code_dim))
    X, y = [], []
    for i in range(n_ids):
        albedo = albedo0 * np.exp(0.35 * U @ codes[i])
        normals = normals0 + 0.35 * (V @ codes[i])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        for _ in range(per_id):
            yaw = np.deg2rad(rng.uniform(-50, 50))
            pitch = np.deg2rad(rng.uniform(-15, 15))
            cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
            Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
            Rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
            turned = normals @ (Rx @ Ry).T
            light = rng.normal(size=3)
            light[2] = abs(light[2]) + 0.3
            light /= np.linalg.norm(light)
            ambient = rng.uniform(0.05, 0.4)
            exposure = rng.uniform(0.5, 1.6)
            visible = np.clip(turned[:, 2] * 3, 0, 1)  # patches turned away fade out
            shade = ambient + np.maximum(0.0, turned @ light)
            X.append(exposure * albedo * shade * visible + 0.02 * rng.normal(size=n_features))
            y.append(i)
    X, y = np.asarray(X), np.asarray(y)
    return _split(X, y, rng.permutation(n_ids)[: n_ids // 2], {})


def make_speakers(seed: int, n_speakers=120, per_speaker=12, length=256, n_train=60):
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    X, y = [], []
    for k in range(n_speakers):
        f0 = rng.uniform(0.012, 0.035)  # cycles per sample: about 3 to 9 in 256 points
        formants = np.sort(rng.uniform(0.03, 0.35, size=3))
        widths = rng.uniform(0.015, 0.05, size=3)
        gains = rng.uniform(0.5, 1.0, size=3)
        for _ in range(per_speaker):
            f = f0 * rng.uniform(0.96, 1.04)  # the utterance's pitch drift
            series = np.zeros(length)
            h = 1
            while h * f < 0.45:
                harmonic = h * f
                amp = 0.15 + sum(
                    g * np.exp(-0.5 * ((harmonic - c) / w) ** 2)
                    for c, g, w in zip(formants, gains, widths)
                )
                series += amp * np.cos(2 * np.pi * harmonic * t + rng.uniform(0, 2 * np.pi))
                h += 1
            # a slow syllable-like amplitude envelope, a gain, noise
            rate, phase = rng.uniform(0.002, 0.01), rng.uniform(0, 2 * np.pi)
            series = series * (1 + 0.5 * np.sin(2 * np.pi * rate * t + phase))
            series = series * rng.uniform(0.3, 3.0)
            series = series / series.std() + 0.4 * rng.normal(size=length)
            X.append(series)
            y.append(k)
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    train = rng.permutation(n_speakers)[:n_train]
    return _split(X, y, train, {"input_shape": (1, length)})


def _elastic(image, rng, alpha=0.8, sigma=2.0):
    """A smooth random displacement field of about ``alpha`` pixels."""
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, image.shape), sigma) * alpha / 0.1
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, image.shape), sigma) * alpha / 0.1
    scale = np.sqrt((dx**2 + dy**2).mean()) + 1e-9
    dx, dy = dx / scale * alpha, dy / scale * alpha
    rows, cols = np.meshgrid(*map(np.arange, image.shape), indexing="ij")
    return ndimage.map_coordinates(image, [rows + dy, cols + dx], order=1, mode="constant")


def make_digitinst(seed: int, n_sources=200, per_source=6, size=16):
    rng = np.random.default_rng(seed)
    Xd, yd = load_digits(return_X_y=True)
    Xd = Xd.reshape(-1, 8, 8) / 16.0
    low = rng.permutation(np.flatnonzero(yd < 5))[:n_sources]
    high = rng.permutation(np.flatnonzero(yd >= 5))[:n_sources]
    X, y, digit = [], [], []
    for k, index in enumerate(np.concatenate([low, high])):
        base = np.pad(ndimage.zoom(Xd[index], size / 8, order=1), 2)  # room to move
        for _ in range(per_source):
            image = ndimage.rotate(base, rng.uniform(-10, 10), reshape=False, order=1)
            image = _elastic(image, rng)
            shift = tuple(rng.integers(-2, 3, size=2))
            image = np.roll(image, shift, axis=(0, 1))[2 : 2 + size, 2 : 2 + size]
            image = image * rng.uniform(0.7, 1.3) + 0.05 * rng.normal(size=image.shape)
            X.append(np.clip(image, 0, 1.5).ravel())
            y.append(k)
            digit.append(yd[index])
    X, y, digit = np.asarray(X), np.asarray(y), np.asarray(digit)
    train = y < n_sources
    info = {"input_shape": (1, size, size), "test_digit": digit[~train]}
    return X[train], y[train], X[~train], y[~train], info


def make_records(seed: int, n_classes=300, per_class=12):
    rng = np.random.default_rng(seed)
    n = n_classes * per_class
    y = np.repeat(np.arange(n_classes), per_class)
    # 10 informative numeric columns, each on its own scale
    scales = 10.0 ** rng.uniform(-2, 3, size=10)
    centres = rng.normal(size=(n_classes, 10))
    numeric = (centres[y] + 0.6 * rng.normal(size=(n, 10))) * scales
    columns = [numeric + rng.uniform(-5, 5, 10) * scales]
    # 2 heavy-tailed informative columns (amounts): log-normal around a class level
    levels = rng.normal(size=(n_classes, 2))
    columns.append(np.exp(2 + levels[y] + 0.5 * rng.normal(size=(n, 2))) * 100)
    # 6 categorical columns of 5 levels, one-hot; a class has a preferred level w.p. 0.7
    for _ in range(6):
        preferred = rng.integers(0, 5, size=n_classes)
        level = np.where(rng.random(n) < 0.7, preferred[y], rng.integers(0, 5, size=n))
        columns.append(np.eye(5)[level])
    # 20 Gaussian noise columns of various scales, 4 heavy-tailed noise columns
    columns.append(rng.normal(size=(n, 20)) * 10.0 ** rng.uniform(-1, 2, size=20))
    columns.append(rng.standard_t(2, size=(n, 4)) * 50)
    X = np.hstack(columns)
    return _split(X, y, rng.permutation(n_classes)[: n_classes // 2], {})


def make_fewshot(seed: int, n_classes=500, n_train=250, per_train=10, code_dim=12, nuisance_dim=6,
                 n_features=96):  # fmt: skip
    world = np.random.default_rng(777)  # the network is the same for every seed
    rng = np.random.default_rng(seed)
    W1 = world.normal(size=(code_dim + nuisance_dim, 64)) / np.sqrt(code_dim + nuisance_dim)
    b1 = world.normal(size=64) * 0.3
    W2 = world.normal(size=(64, n_features)) / 8.0
    N = world.normal(size=(nuisance_dim, code_dim + nuisance_dim))  # mixes into the code too
    N[:, :code_dim] *= 0.3
    N[:, code_dim:] = np.eye(nuisance_dim) + N[:, code_dim:] * 0.2
    codes = rng.normal(size=(n_classes, code_dim)) * 1.2
    counts = np.where(
        np.arange(n_classes) < n_train, per_train, rng.integers(2, 4, size=n_classes)
    )
    order = rng.permutation(n_classes)  # which class ids train
    y = np.repeat(order, counts)
    code = codes[y] + 0.25 * rng.normal(size=(len(y), code_dim))
    nuisance = rng.normal(size=(len(y), nuisance_dim)) * 1.5
    z = np.hstack([code, np.zeros((len(y), nuisance_dim))]) + nuisance @ N
    X = np.tanh(1.5 * z @ W1 + b1) @ W2 + 0.05 * rng.normal(size=(len(y), n_features))
    return _split(X, y, order[:n_train], {})


def make_task(name: str, seed: int):
    """``(X_train, y_train, X_test, y_test, info)``; ``info`` may hold ``input_shape`` and
    ``test_digit`` (digitinst: the digit of each test image)."""
    return {
        "faces": make_faces,
        "speakers": make_speakers,
        "digitinst": make_digitinst,
        "records": make_records,
        "fewshot": make_fewshot,
    }[name](seed)


class SeriesScaler(TransformerMixin, BaseEstimator):
    """One mean and one standard deviation for all the values (a single-channel series)."""

    def fit(self, X, y=None):
        self.mean_, self.scale_ = float(np.mean(X)), float(np.std(X))
        return self

    def transform(self, X):
        return (np.asarray(X) - self.mean_) / self.scale_


def _magnitude_spectrum(X):
    return np.abs(np.fft.rfft(X, axis=1))


def make_embedder(cls, seed: int, quick: bool, overrides=None, **fixed):
    """``cls(random_state=seed)`` with 2 epochs if ``quick``, those of the ``--set`` values
    (``overrides``) that it has, and ``fixed``."""
    accepted = cls._get_param_names()
    chosen = {k: v for k, v in (overrides or {}).items() if k in accepted}
    budget = {"max_iter": 2} if quick else {}
    return cls(**{"random_state": seed, **budget, **chosen, **fixed})


def rows(task: str, seed: int, quick: bool, overrides=None) -> dict:
    """name -> unfitted model, for the rows that run on ``task``."""

    def embedder(cls, **fixed):
        return make_embedder(cls, seed, quick, overrides, **fixed)

    def nca():
        return NeighborhoodComponentsAnalysis(random_state=seed, max_iter=50)

    candidates = {
        "raw (as given)": make_pipeline("passthrough"),
        "raw (standardised)": make_pipeline(StandardScaler()),
        "PCA (as given)": make_pipeline(PCA(0.95, random_state=seed)),
        "PCA (standardised)": make_pipeline(StandardScaler(), PCA(0.95, random_state=seed)),
        "NCA (as given)": make_pipeline(nca()),
        "NCA (standardised)": make_pipeline(StandardScaler(), nca()),
        "|FFT| (domain baseline)": make_pipeline(FunctionTransformer(_magnitude_spectrum)),
    }
    out = {name: candidates[name] for name in BASELINES[task]}
    for cls in EMBEDDERS:
        out[cls.__name__] = make_pipeline(StandardScaler(), embedder(cls))
    if task in CNN_TASKS:
        shape = INPUT_SHAPES[task]
        network = "cnn1d" if len(shape) == 2 else "cnn"
        scaler = [SeriesScaler()] if network == "cnn1d" else []  # images: pixels as given
        for cls in (TripletEmbedder, ArcFaceEmbedder):
            cnn = embedder(cls, network=network, input_shape=shape)
            out[f"{cls.__name__}, CNN"] = make_pipeline(*scaler, cnn)
    return out


def fit_recording(model, X, y) -> tuple[float, list]:
    """Fit ``model``: the seconds it took and the warnings it gave (ConvergenceWarning aside)."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return time.perf_counter() - start, caught


def evaluate(model, task) -> dict:
    X_train, y_train, X_test, y_test, info = task
    model = clone(model)
    seconds, caught = fit_recording(model, X_train, y_train)
    Z = np.asarray(model.transform(X_test), dtype=np.float64)
    report = retrieval_report(Z, y_test, distance="cosine", recall_k=(1,), device="cpu")
    pairs, same = make_pairs(y_test)
    verification = verification_report(same, pair_scores(Z, pairs, distance="cosine"))
    embedder = model[-1]
    trained = hasattr(embedder, "history_")
    out = {
        "MAP@R": report["map_at_r"],
        "P@1": report["precision_at_1"],
        "TAR": verification["tar_at_far_0.01"],
        "EER": verification["equal_error_rate"],
        "digit MAP@R": None,
        "fit s": seconds,
        "epochs": len(embedder.history_) if trained else None,
        "kept start": any(KEPT_START in str(w.message) for w in caught) if trained else None,
    }
    if "test_digit" in info:
        digits = retrieval_report(Z, info["test_digit"], distance="cosine", recall_k=(1,),
                                  device="cpu")  # fmt: skip
        out["digit MAP@R"] = digits["map_at_r"]
    return out


def training_cells(results) -> list[str]:
    """The "epochs" and "kept start" cells of a row ("-" for a row without an embedder)."""
    kept = [r["kept start"] for r in results if r["kept start"] is not None]
    return [cell([r["epochs"] for r in results], 0), f"{sum(kept)}/{len(kept)}" if kept else "-"]


def run_task(name: str, seeds: list[int], quick: bool, wanted, overrides) -> None:
    data = {seed: make_task(name, seed) for seed in seeds}
    digits = "test_digit" in data[seeds[0]][4]
    header = ["model", "MAP@R", "Precision@1", "TAR@FAR=1e-2", "EER"]
    header += ["MAP@R (digit labels)"] if digits else []
    header += ["fit seconds", "epochs", "kept start"]
    print(f"\n### {name}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows(name, 0, quick, overrides):
        if not wanted(row):
            continue
        results = [evaluate(rows(name, seed, quick, overrides)[row], data[seed]) for seed in seeds]
        cols = [cell([r[k] for r in results]) for k in ("MAP@R", "P@1", "TAR", "EER")]
        if digits:
            cols.append(cell([r["digit MAP@R"] for r in results]))
        fitted = "Embedder" in row or "NCA" in row
        cols.append(cell([r["fit s"] for r in results], 1) if fitted else "-")
        cols += training_cells(results)
        label = row.replace("|", "\\|")  # a literal "|" in a Markdown table
        print(f"| {label} | " + " | ".join(cols) + " |", flush=True)


def make_parser(doc: str, tasks, quick_help: str, set_example: str) -> argparse.ArgumentParser:
    """The command line of this script and bench_small.py: ``--quick``, ``--seeds``,
    ``--tasks``, ``--rows``, ``--threads`` and ``--set``."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", default=",".join(tasks), help="comma-separated task names")
    parser.add_argument(
        "--rows",
        default=None,
        help="comma-separated substrings of row names (^NAME, NAME$: anchored at start, end)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help=f"a parameter for every embedder row, e.g. --set {set_example}",
    )  # fmt: skip
    return parser


def first_line(script: str, seeds: list[int], quick: bool, overrides: dict) -> str:
    """The first line of the output: date, torch, threads, machine, seeds, ``--set`` values."""
    return (
        f"# {script}: {datetime.date.today()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}, "
        f"seeds {seeds}{', quick (2 epochs)' if quick else ''}"
        + (f", embedders with {overrides}" if overrides else "")
    )


def task_list(args, known, quick_tasks) -> list[str]:
    """The tasks of ``--tasks``, or ``quick_tasks`` for ``--quick`` without ``--tasks``."""
    if args.quick and args.tasks == ",".join(known):
        return list(quick_tasks)
    for task in args.tasks.split(","):
        if task not in known:
            raise SystemExit(f"unknown task {task!r}; choose from {', '.join(known)}")
    return args.tasks.split(",")


def main() -> None:
    parser = make_parser(
        __doc__, TASKS, "1 seed, 2 epochs, 2 small tasks", "learning_rate_init=1e-3"
    )
    args = parser.parse_args()
    overrides = dict(parse_setting(s) for s in args.set)
    torch.set_num_threads(args.threads)
    tasks = task_list(args, TASKS, ["faces", "speakers"])
    # a comma followed by a space is part of a row name ("TripletEmbedder, CNN")
    patterns = re.split(r",(?! )", args.rows) if args.rows else None
    if args.quick and patterns is None:
        patterns = ["raw", "PCA", "FFT", "TripletEmbedder"]  # no NCA: the slow baseline
    seeds = list(range(1 if args.quick else args.seeds))

    def wanted(name: str) -> bool:
        return patterns is None or any(row_matches(name, p) for p in patterns)

    print(first_line("bench_tasks", seeds, args.quick, overrides))
    print("Class-disjoint: cosine, leave-one-out on the test classes, all test pairs; mean ± std.")
    for task in tasks:
        run_task(task, seeds, args.quick, wanted, overrides)


if __name__ == "__main__":
    main()
