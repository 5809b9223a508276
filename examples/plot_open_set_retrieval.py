"""
Open-set retrieval: enrol a gallery of new classes, then search it
==================================================================

The point of a learned embedding is to recognise classes that did not exist at training
time: a new employee's face, a new product. Nothing is retrained for them. Instead:

1. train the embedder once, on the classes you have (here 50 classes);
2. *enrol* a gallery: embed a few labelled examples of the new classes (50 others) and
   index them;
3. *query*: embed new samples and look up their nearest gallery entries.

:class:`~sk_deepmetric.neighbors.EmbeddingKNeighborsClassifier` does steps 2 and 3 with
``kneighbors`` and ``predict``.

The data come from :func:`sk_deepmetric.datasets.make_arcs`: 24 features in which a class
is a radius in each of 8 hidden planes, at a random angle. That is the same non-linear
function of the input for every class, new ones included, so it can be learned on the
known classes; no distance between the raw features computes it.
"""

import os
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_deepmetric import EmbeddingKNeighborsClassifier, TripletEmbedder, retrieval_report
from sk_deepmetric.datasets import make_arcs
from sk_deepmetric.plotting import plot_score_distributions, show_or_save

FAST = os.environ.get("SK_DEEPMETRIC_EXAMPLES_FAST") == "1"  # the test suite's quick run
SEED = int(os.environ.get("SK_DEEPMETRIC_EXAMPLES_SEED", "0"))  # data, weights and batches
MAX_ITER = 2 if FAST else None  # None: early stopping decides (at most 500 epochs)

X, y = make_arcs(3000, 100, random_state=SEED)  # 30 samples of each of 100 classes
known = y < 50

# %%
# 1. Train on the known classes
# -----------------------------
# With 50 classes, early stopping (on by default) holds out whole known classes and keeps
# the epoch that retrieved them best: it selects for what matters here, new classes.
embedder = TripletEmbedder(n_components=32, max_iter=MAX_ITER, random_state=SEED)
with warnings.catch_warnings():
    if FAST:  # two epochs are not meant to converge
        warnings.simplefilter("ignore", ConvergenceWarning)
    embedder.fit(X[known], y[known])
print(f"trained on classes 0-49 for {embedder.n_iter_} epochs")

# %%
# 2. Enrol a gallery of new classes
# ---------------------------------
# The new classes 50-99 are split into a gallery (5 labelled examples of each) and queries
# (the other 25 of each). ``EmbeddingKNeighborsClassifier.fit`` normally trains a clone of
# its embedder; wrapping the trained one in scikit-learn's ``FrozenEstimator`` makes
# ``fit`` only embed and index the gallery, without retraining or cloning it.
X_new, y_new = X[~known], y[~known]
X_query, X_gallery, y_query, y_gallery = train_test_split(
    X_new, y_new, test_size=250, stratify=y_new, random_state=SEED
)
knn = EmbeddingKNeighborsClassifier(FrozenEstimator(embedder), n_neighbors=5)
knn.fit(X_gallery, y_gallery)
print(f"gallery: {knn.n_samples_fit_} samples of {len(np.unique(y_gallery))} new classes")
print(f"queries: {len(X_query)} samples")

# %%
# 3. Query
# --------
# ``kneighbors`` returns, for each query, the distances to and the indices of its nearest
# gallery entries, closest first; ``predict`` lets them vote.
distances, indices = knn.kneighbors(X_query[:3], n_neighbors=5)
for q in range(3):
    labels = y_gallery[indices[q]].tolist()
    print(
        f"query {q} (class {y_query[q]}): gallery labels {labels}, "
        f"distances {distances[q].round(2)}"
    )

# %%
# The baselines are what a scikit-learn user would try without a learned metric: a 5-NN
# classifier over the same gallery on the features as given, and standardised (scaler
# fitted on the known classes), both with cosine distance.
scaler = StandardScaler().fit(X[known])
identify = {
    "raw features": KNeighborsClassifier(5, metric="cosine"),
    "standardised": make_pipeline(
        FrozenEstimator(scaler), KNeighborsClassifier(5, metric="cosine")
    ),
    "learned (32-d)": knn,
}
accuracy = {
    name: (model.fit(X_gallery, y_gallery).predict(X_query) == y_query).mean()
    for name, model in identify.items()
}

# %%
# Retrieval metrics with separate query and reference sets
# --------------------------------------------------------
# ``retrieval_report`` takes the gallery as ``reference_embeddings``/``reference_labels``:
# each query is then ranked against the gallery only (no leave-one-out needed). R is the
# number of gallery samples of the query's class (5 here).
spaces = {
    "raw features": lambda Z: Z,
    "standardised": scaler.transform,
    "learned (32-d)": embedder.transform,
}
reports = {
    name: retrieval_report(
        f(X_query),
        y_query,
        reference_embeddings=f(X_gallery),
        reference_labels=y_gallery,
        distance="cosine",
    )
    for name, f in spaces.items()
}
print(f"\n{'query -> gallery':<16} {'5-NN acc':>8} {'P@1':>6} {'R-Prec':>7} {'MAP@R':>6}")
for name, r in reports.items():
    print(
        f"{name:<16} {accuracy[name]:8.3f} {r['precision_at_1']:6.3f} "
        f"{r['r_precision']:7.3f} {r['map_at_r']:6.3f}"
    )
best = max(reports["raw features"]["map_at_r"], reports["standardised"]["map_at_r"])
print(
    f"\nReading (seed {SEED}): learned MAP@R {reports['learned (32-d)']['map_at_r']:.3f} "
    f"against {best:.3f} for the best baseline; 5-NN identification "
    f"{accuracy['learned (32-d)']:.3f} against "
    f"{max(accuracy['raw features'], accuracy['standardised']):.3f}"
)

# %%
# Reading the table
# -----------------
# Measured with seeds 0, 1 and 2 (set ``SK_DEEPMETRIC_EXAMPLES_SEED``; 241-292 epochs of
# training): on the features themselves, as given or standardised, the search is close to
# chance (MAP@R 0.021-0.025, 5-NN identification 0.038-0.055 among 50 classes, where
# chance is 0.02). In the learned space the same search identifies 0.936-0.947 of the
# queries and reaches MAP@R 0.801-0.822, on classes the network never saw, from 5
# enrolled examples each. This is the case the embedding is for: what identifies a class
# is a function of the input that the known classes teach and the new ones share. On
# data where raw distances already work (scikit-learn's digits, say), a network trained
# on a handful of classes has little to add on new ones: compare with the features
# before trusting an embedding.

# %%
# Why it works: distances between a query and the gallery
# -------------------------------------------------------
# Cosine similarity of every query to every gallery entry, for pairs of the same class and
# of different classes. In the raw features the two distributions nearly coincide: little
# to search with. In the learned space same-class pairs are clearly more alike, and a
# threshold between the two is what an open-set system uses to reject a query that matches
# no enrolled class.
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
for ax, name in zip(axes, ["raw features", "learned (32-d)"]):
    Q, G = spaces[name](X_query), spaces[name](X_gallery)
    Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    G = G / np.linalg.norm(G, axis=1, keepdims=True)
    same = (y_query[:, None] == y_gallery[None, :]).ravel()
    plot_score_distributions(same, (Q @ G.T).ravel(), ax=ax)
    ax.set_title(f"{name}: MAP@R {reports[name]['map_at_r']:.3f}")
    ax.set_xlabel("cosine similarity, query to gallery")
fig.suptitle(f"Queries of 50 new classes against their gallery (make_arcs, seed {SEED})")
fig.tight_layout()
show_or_save(fig, "open_set_retrieval.png")
