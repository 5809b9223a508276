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
  classes (new faces, new products); a fold that holds out samples of the training classes
  measures something easier, and rewards hyperparameters that memorise those classes.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_deepmetric import TripletEmbedder, make_retrieval_scorer, mean_average_precision_at_r

FAST = os.environ.get("SK_DEEPMETRIC_EXAMPLES_FAST") == "1"  # the test suite's quick run
EPOCHS = 1 if FAST else 10

# A fixed budget of epochs per fit, on purpose: silence "still improving" in the 27 fits.
warnings.filterwarnings("ignore", category=ConvergenceWarning)

# %%
# Three sets of classes
# ---------------------
# Digits 0-5 are for tuning (3 folds of 4 training + 2 validation classes); digits 6-9 are
# kept for the final evaluation and never touched by the search.
X, y = load_digits(return_X_y=True)
tune = y < 6
X_tune, y_tune, X_test, y_test = X[tune], y[tune], X[~tune], y[~tune]

# %%
# The search
# ----------
# The scaler sits in the pipeline, so each fold standardises with its own training classes.
pipeline = make_pipeline(
    StandardScaler(), TripletEmbedder(n_components=32, max_iter=EPOCHS, random_state=0)
)
param_grid = {
    "tripletembedder__margin": [0.05, 0.2, 0.5],
    "tripletembedder__miner": ["semihard", "batch_hard", "all"],
}
class_disjoint = GroupKFold(n_splits=3)
search = GridSearchCV(
    pipeline,
    param_grid,
    scoring=make_retrieval_scorer("map_at_r", distance="cosine"),
    cv=class_disjoint,
)
search.fit(X_tune, y_tune, groups=y_tune)  # groups=y: a class never straddles two folds

print("Validation MAP@R on held-out classes (mean over 3 folds):")
results = search.cv_results_
print(f"{'margin':>7} {'miner':>11} {'MAP@R':>7} {'+/-':>6}")
for params, mean, std in zip(
    results["params"], results["mean_test_score"], results["std_test_score"]
):
    margin, miner = params["tripletembedder__margin"], params["tripletembedder__miner"]
    print(f"{margin:7.2f} {miner:>11} {mean:7.3f} {std:6.3f}")
best_margin = search.best_params_["tripletembedder__margin"]
best_miner = search.best_params_["tripletembedder__miner"]
print(f"\nbest: margin={best_margin}, miner={best_miner!r}, MAP@R {search.best_score_:.3f}")

# %%
# Differences of a few hundredths are within the fold-to-fold spread (+/-): on data this
# small, the grid says more about what to avoid than about a single winner. Retrieval among
# 2 validation classes is easier than among the 4 test classes below, so compare numbers
# within one table, not across.

# %%
# Why class-disjoint folds
# ------------------------
# The same model scored with ordinary stratified folds (validation samples of the training
# classes) looks much better. That number does not say how the embedding does on new
# classes, and picking hyperparameters by it favours the ones that separate the known
# classes best.
best = search.best_estimator_
scorer = make_retrieval_scorer("map_at_r", distance="cosine")
stratified = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
seen_classes = cross_val_score(best, X_tune, y_tune, scoring=scorer, cv=stratified).mean()
print(f"same model, stratified folds (classes seen in training): MAP@R {seen_classes:.3f}")

# %%
# The final check, on digits 6-9
# ------------------------------
# ``refit=True`` (the default) has retrained the best pipeline on all of digits 0-5.
test_map = mean_average_precision_at_r(best.transform(X_test), y_test, distance="cosine")
print(f"refitted best model on the never-seen digits 6-9: MAP@R {test_map:.3f}")

# %%
# The grid as a picture
# ---------------------
margins = param_grid["tripletembedder__margin"]
miners = param_grid["tripletembedder__miner"]
grid = np.empty((len(miners), len(margins)))
for params, mean in zip(results["params"], results["mean_test_score"]):
    i = miners.index(params["tripletembedder__miner"])
    grid[i, margins.index(params["tripletembedder__margin"])] = mean
fig, ax = plt.subplots(figsize=(5.5, 3.8))
image = ax.imshow(grid, cmap="viridis")
for i in range(len(miners)):
    for j in range(len(margins)):
        colour = "black" if grid[i, j] > grid.mean() else "white"  # readable on the colormap
        ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", color=colour)
ax.set_xticks(range(len(margins)), [str(m) for m in margins])
ax.set_yticks(range(len(miners)), miners)
ax.set_xlabel("margin")
ax.set_ylabel("miner")
ax.set_title("class-disjoint validation MAP@R")
fig.colorbar(image, ax=ax)
fig.tight_layout()
plt.show()
