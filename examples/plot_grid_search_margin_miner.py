"""
Tuning margin and miner with GridSearchCV
=========================================

Every embedder is a scikit-learn estimator with plain hyperparameters, so
:class:`~sklearn.model_selection.GridSearchCV` tunes them. Two things differ from tuning a
classifier:

* the **score** is a retrieval metric of the embedding (MAP@R, from
  ``make_retrieval_scorer("map_at_r")``), not an accuracy;
* the **cross-validation is class-disjoint**: each validation fold holds classes that the
  fold's model never saw (``GroupKFold`` with ``groups=y``). An embedding is used on new
  classes (new faces, new products), and that is what such a fold measures; a fold that
  holds out samples of the training classes measures how well the *known* classes are
  separated, which is another question.

The data come from :func:`sk_deepmetric.datasets.make_arcs`, 100 classes told apart by a
non-linear function of the features, where the miner and the margin matter.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_deepmetric import TripletEmbedder, make_retrieval_scorer, mean_average_precision_at_r
from sk_deepmetric.datasets import make_arcs
from sk_deepmetric.plotting import show_or_save

FAST = os.environ.get("SK_DEEPMETRIC_EXAMPLES_FAST") == "1"  # the test suite's quick run
SEED = int(os.environ.get("SK_DEEPMETRIC_EXAMPLES_SEED", "0"))  # data, weights and batches
EPOCHS = 1 if FAST else 30

# A fixed budget of epochs per fit, on purpose: silence "still improving" in the 31 fits.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

# %%
# Two sets of classes
# -------------------
# Classes 0-59 are for tuning (3 folds of 40 training + 20 validation classes); classes
# 60-99 are kept for the final evaluation and never touched by the search.
X, y = make_arcs(3000, 100, random_state=SEED)
tune = y < 60
X_tune, y_tune, X_test, y_test = X[tune], y[tune], X[~tune], y[~tune]

# %%
# The search
# ----------
# The scaler sits in the pipeline, so each fold standardises with its own training classes.
# Each fit is a fixed 30 epochs at a learning rate of 1e-3, without early stopping (which
# would hold out classes of its own inside each fold), to keep the 27 fits quick.
pipeline = make_pipeline(
    StandardScaler(),
    TripletEmbedder(
        n_components=32,
        learning_rate_init=1e-3,
        max_iter=EPOCHS,
        early_stopping=False,
        random_state=SEED,
    ),
)
param_grid = {
    "tripletembedder__margin": [0.05, 0.2, 0.5],
    "tripletembedder__miner": ["semihard", "batch_hard", "all"],
}
scorer = make_retrieval_scorer("map_at_r", distance="cosine")
search = GridSearchCV(pipeline, param_grid, scoring=scorer, cv=GroupKFold(n_splits=3))
search.fit(X_tune, y_tune, groups=y_tune)  # groups=y: a class never straddles two folds

print("Validation MAP@R on held-out classes (mean and std over 3 folds):")
results = search.cv_results_
print(f"{'margin':>7} {'miner':>11} {'MAP@R':>7} {'+/-':>6}")
for params, mean, std in zip(
    results["params"], results["mean_test_score"], results["std_test_score"]
):
    margin, miner = params["tripletembedder__margin"], params["tripletembedder__miner"]
    print(f"{margin:7.2f} {miner:>11} {mean:7.3f} {std:6.3f}")
best_margin = search.best_params_["tripletembedder__margin"]
best_miner = search.best_params_["tripletembedder__miner"]
best_std = results["std_test_score"][search.best_index_]
print(
    f"\nbest: margin={best_margin}, miner={best_miner!r}, "
    f"MAP@R {search.best_score_:.3f} +/- {best_std:.3f}"
)
# the other cells whose mean is within one fold std of the best
close = [
    f"{p['tripletembedder__margin']}/{p['tripletembedder__miner']}"
    for p, mean in zip(results["params"], results["mean_test_score"])
    if search.best_score_ - mean <= best_std and p != search.best_params_
]
print(f"within one std of the best: {', '.join(close) if close else 'none'}")

# %%
# Reading the grid
# ----------------
# Measured with seeds 0, 1 and 2 (set ``SK_DEEPMETRIC_EXAMPLES_SEED``): ``"semihard"``
# and ``"all"`` score 0.80-0.90, and rise with the margin in every seed; margin 0.5 was
# best each time (with ``"all"`` in seed 0, ``"semihard"`` in seeds 1 and 2), and the two
# miners at margin 0.5 were within one fold std of each other: the search picks the
# margin, not the miner. ``"batch_hard"`` fails at this learning rate and budget
# (0.326-0.417, the same for every margin to within 0.001), the collapse the
# triplet-mining example warns about. The fold std is 0.002-0.031: differences smaller
# than that are not evidence.

# %%
# Class-disjoint against stratified folds
# ---------------------------------------
# The same best pipeline scored with ordinary stratified folds: each validation fold holds
# a third of the samples of all 60 tuning classes, which the fold's model trained on.
best = search.best_estimator_
stratified = StratifiedKFold(n_splits=3, shuffle=True, random_state=SEED)
seen = cross_val_score(best, X_tune, y_tune, scoring=scorer, cv=stratified)
print(
    f"same model, stratified folds (classes seen in training): "
    f"MAP@R {seen.mean():.3f} +/- {seen.std():.3f}"
)
print(
    f"same model, class-disjoint folds (classes not seen): "
    f"MAP@R {search.best_score_:.3f} +/- {best_std:.3f}"
)

# %%
# The final check, on classes 60-99
# ---------------------------------
# ``refit=True`` (the default) has retrained the best pipeline on all of classes 0-59.
test_map = mean_average_precision_at_r(best.transform(X_test), y_test, distance="cosine")
scaled = StandardScaler().fit(X_tune).transform(X_test)
raw = max(
    mean_average_precision_at_r(X_test, y_test, distance="cosine"),
    mean_average_precision_at_r(scaled, y_test, distance="cosine"),
)
print(f"refitted best model on the never-seen classes 60-99: MAP@R {test_map:.3f}")
print(f"features themselves (best of as given and standardised): MAP@R {raw:.3f}")

# %%
# Reading the checks
# ------------------
# In seeds 0, 1 and 2 the class-disjoint estimate of the chosen model (0.877, 0.904,
# 0.859) was within 0.02 of its score on the never-seen classes 60-99 (0.893, 0.910,
# 0.873), against 0.013 for the features themselves. The stratified folds gave a *lower*
# number (0.775, 0.819, 0.778), not a higher one: their validation folds hold 60 classes
# against 20 in a class-disjoint fold, and ranking among more classes is harder. So the
# two protocols' numbers do not compare with each other; what matters is that the
# class-disjoint one measures the use the embedding is for (new classes), and here it
# predicted the final test well.

# %%
# The grid as a picture, with its spread
# --------------------------------------
# Left: each cell's mean over the folds and, below it, the fold-to-fold standard deviation.
# Right: the same means with error bars of one standard deviation: cells whose bars overlap
# are not told apart by this search.
margins = param_grid["tripletembedder__margin"]
miners = param_grid["tripletembedder__miner"]
grid = np.empty((len(miners), len(margins)))
spread = np.empty_like(grid)
for params, mean, std in zip(
    results["params"], results["mean_test_score"], results["std_test_score"]
):
    i = miners.index(params["tripletembedder__miner"])
    j = margins.index(params["tripletembedder__margin"])
    grid[i, j], spread[i, j] = mean, std
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
image = left.imshow(grid, cmap="viridis", vmin=0, vmax=1)
for i in range(len(miners)):
    for j in range(len(margins)):
        colour = "black" if grid[i, j] > 0.5 else "white"  # readable on the colormap
        text = f"{grid[i, j]:.3f}\n± {spread[i, j]:.3f}"
        left.text(j, i, text, ha="center", va="center", color=colour)
left.set_xticks(range(len(margins)), [str(m) for m in margins])
left.set_yticks(range(len(miners)), miners)
left.set_xlabel("margin")
left.set_ylabel("miner")
left.set_title("class-disjoint validation MAP@R (mean ± std)")
fig.colorbar(image, ax=left)
for i, miner in enumerate(miners):
    offset = (i - 1) * 0.04  # side by side, not on top of one another
    right.errorbar(
        np.arange(len(margins)) + offset, grid[i], yerr=spread[i], marker="o", capsize=4,
        label=miner,
    )  # fmt: skip
right.set_xticks(range(len(margins)), [str(m) for m in margins])
right.set_xlabel("margin")
right.set_ylabel("validation MAP@R")
right.set_ylim(0, 1)
right.legend(title="miner")
right.set_title(f"mean ± std over 3 class-disjoint folds (seed {SEED})")
fig.tight_layout()
show_or_save(fig, "grid_search_margin_miner.png")
