"""
Triplet mining strategies compared
==================================

A triplet loss only learns from the triplets it is given, and which triplets of a batch it
is given (the *mining* strategy) matters as much as the loss itself. This example trains the
same network three times, once per strategy, on 50 classes, and measures retrieval on 50
other classes that it never saw (the open-set protocol of deep metric learning):

* ``miner="batch_hard"``: for each anchor, only its farthest positive and its closest
  negative (Hermans et al., 2017);
* ``miner="semihard"``: negatives farther than the positive but within the margin
  (FaceNet, Schroff et al., 2015), the default;
* ``miner="all"``: every valid triplet of the batch.

The data come from :func:`sk_deepmetric.datasets.make_arcs`: what tells its classes apart
is a non-linear function of the features (a radius in each of 8 hidden planes, at a random
angle), the same function for every class, so a network can learn it on some classes and
use it on others, and no distance between the raw features can.
"""

import os
import time
import warnings

import matplotlib.pyplot as plt
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler

from sk_deepmetric import TripletEmbedder, retrieval_report
from sk_deepmetric.datasets import make_arcs
from sk_deepmetric.plotting import plot_history, show_or_save

FAST = os.environ.get("SK_DEEPMETRIC_EXAMPLES_FAST") == "1"  # the test suite's quick run
SEED = int(os.environ.get("SK_DEEPMETRIC_EXAMPLES_SEED", "0"))  # data, weights and batches
MAX_ITER = 2 if FAST else None  # None: early stopping decides (at most 500 epochs)

# %%
# Open set: train on 50 classes, evaluate on the 50 others
# --------------------------------------------------------
X, y = make_arcs(3000, 100, random_state=SEED)
seen = y < 50
X_train, y_train = X[seen], y[seen]
X_test, y_test = X[~seen], y[~seen]
print(f"training: {X_train.shape} (classes 0-49), test: {X_test.shape} (classes 50-99)")

# %%
# One embedder per mining strategy, everything else equal
# -------------------------------------------------------
# Everything but ``miner`` is equal, including ``random_state``: the three networks start
# from the same weights. With 50 classes, early stopping (on by default) holds out whole
# training classes and keeps the epoch whose embedding retrieved them best, so each miner
# trains for as long as it keeps improving on classes it does not train on.
embedders, rows = {}, []
for miner in ["batch_hard", "semihard", "all"]:
    embedder = TripletEmbedder(miner=miner, margin=0.2, max_iter=MAX_ITER, random_state=SEED)
    start = time.perf_counter()
    with warnings.catch_warnings():
        if FAST:  # two epochs are not meant to converge
            warnings.simplefilter("ignore", ConvergenceWarning)
        embedder.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    report = retrieval_report(embedder.transform(X_test), y_test, distance="cosine")
    embedders[miner] = embedder
    rows.append((f"miner={miner!r}", report, embedder.n_iter_, seconds))

# %%
# Retrieval on the unseen classes
# -------------------------------
# Leave-one-out: each test sample queries all the others. MAP@R rewards a well-ordered
# neighbourhood; Precision@1 only asks whether the nearest neighbour is of the same class.
# The baselines are the features as given and standardised (scaler fitted on the training
# classes).
scaler = StandardScaler().fit(X_train)
baselines = [
    ("raw features", retrieval_report(X_test, y_test, distance="cosine")),
    ("standardised", retrieval_report(scaler.transform(X_test), y_test, distance="cosine")),
]
print(f"\n{'embedding':<22} {'MAP@R':>6} {'P@1':>6} {'epochs':>7} {'fit (s)':>8}")
for name, report in baselines:
    print(f"{name:<22} {report['map_at_r']:6.3f} {report['precision_at_1']:6.3f}")
for name, report, epochs, seconds in rows:
    print(
        f"{name:<22} {report['map_at_r']:6.3f} {report['precision_at_1']:6.3f} "
        f"{epochs:7d} {seconds:8.1f}"
    )
best_baseline = max(report["map_at_r"] for _, report in baselines)
ranked = sorted(rows, key=lambda row: -row[1]["map_at_r"])
print(
    f"\nReading (seed {SEED}): best baseline MAP@R {best_baseline:.3f}; "
    + ", ".join(f"{name} {report['map_at_r']:.3f}" for name, report, _, _ in ranked)
)

# %%
# Reading the table
# -----------------
# Measured with seeds 0, 1 and 2 (set ``SK_DEEPMETRIC_EXAMPLES_SEED``), the features
# themselves are useless for retrieval here (MAP@R 0.009-0.011, as given or standardised),
# and every miner's embedding scores 68 to 79 times the better of the two (0.726-0.803,
# Precision@1 0.937-0.969). Among the miners, ``"batch_hard"`` came first in all three seeds
# (0.789-0.803), 0.038 to 0.051 ahead of the next; ``"semihard"`` (0.748-0.765) came second
# in all three, 0.008 to 0.022 ahead of ``"all"`` (0.726-0.757). ``"batch_hard"`` also
# trained longest before validation stopped improving (336-416 epochs against 218-261), so
# its fit usually took longest too (the fit times are wall-clock seconds and vary from run
# to run). With seed 0 its training loss sat near the margin (0.2) for a
# couple of hundred epochs before dropping, while its validation score climbed throughout.

# %%
# Practical advice
# ----------------
# * ``"batch_hard"`` gives the strongest gradient per triplet, which paid off on this clean
#   data, but it trains on the most extreme (often mislabelled or atypical) samples. With a
#   high learning rate or noisy labels it can *collapse*: every embedding goes to the same
#   point, the loss sticks at ``margin`` and all distances are zero. If the loss plateaus
#   exactly at the margin, lower ``learning_rate_init`` or switch to semi-hard.
# * ``"semihard"`` (the default) skips the hardest negatives at first and is the stable
#   choice to start from; try ``"batch_hard"`` when labels are clean.
# * ``"all"`` averages over every triplet with a non-zero loss; it is robust, and close to
#   semi-hard here.
#
# The loss values are not comparable between miners (each averages over different
# triplets); compare them with a retrieval metric, as in the table.

# %%
# Training curves and the scores side by side
# -------------------------------------------
# Each curve shows the training loss and the validation MAP@R on the held-out training
# classes, per epoch; the bars are the test MAP@R on the 50 unseen classes.
fig, axes = plt.subplots(1, 4, figsize=(17, 3.8))
for ax, (miner, embedder) in zip(axes, embedders.items()):
    plot_history(embedder, ax=ax)
    ax.set_title(f"miner={miner!r}")
names = [name for name, _ in baselines] + [name.split("=")[1] for name, *_ in rows]
scores = [report["map_at_r"] for _, report in baselines] + [row[1]["map_at_r"] for row in rows]
axes[3].bar(names, scores, color=["grey", "grey", "C0", "C1", "C2"])
for i, score in enumerate(scores):
    axes[3].text(i, score, f"{score:.3f}", ha="center", va="bottom")
axes[3].set_ylabel("MAP@R, unseen classes")
axes[3].set_ylim(0, 1)
axes[3].tick_params(axis="x", labelrotation=20)
axes[3].set_title(f"test on classes 50-99 (seed {SEED})")
fig.suptitle("Triplet loss with three mining strategies (make_arcs, trained on 50 classes)")
fig.tight_layout()
show_or_save(fig, "triplet_mining.png")
