"""
A custom torch backbone and a loss module
=========================================

The embedders build an MLP (``network="mlp"``) or a small CNN (``network="cnn"``), but
``network`` also takes any ``torch.nn.Module`` that maps a batch of ``X`` to
``(batch_size, n_components)``: a residual MLP, a pre-trained ResNet, a transformer. And
:class:`~sk_deepmetric.MetricEmbedder` takes any loss module called as
``loss(embeddings, labels)``. Together they make the estimator a thin scikit-learn shell
around your own torch model and loss, which still works with ``Pipeline``, ``GridSearchCV``
and pickling.
"""

import os
import warnings

import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from torch import nn

from sk_deepmetric import MetricEmbedder, TripletEmbedder, retrieval_report
from sk_deepmetric.datasets import make_arcs
from sk_deepmetric.losses import ArcFaceLoss, TripletMarginLoss

FAST = os.environ.get("SK_DEEPMETRIC_EXAMPLES_FAST") == "1"  # the test suite's quick run
SEED = int(os.environ.get("SK_DEEPMETRIC_EXAMPLES_SEED", "0"))  # data, weights and batches
MAX_ITER = 2 if FAST else None  # None: early stopping decides (at most 500 epochs)
if FAST:  # two epochs are not meant to converge
    warnings.filterwarnings("ignore", category=ConvergenceWarning)


# %%
# The backbone: a small residual MLP
# ----------------------------------
# Any nn.Module will do. It receives float32 tensors of shape ``(batch, n_features)`` (or
# ``(batch, *input_shape)`` when ``input_shape`` is set) and must return
# ``(batch, n_components)``; the estimator checks the width before training.
class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResidualMLP(nn.Module):
    def __init__(self, n_features: int, n_components: int, width=128, depth=2) -> None:
        super().__init__()
        self.stem = nn.Linear(n_features, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(depth)])
        self.head = nn.Linear(width, n_components)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))


# %%
# Data: train on 50 classes, evaluate on 50 unseen ones
# -----------------------------------------------------
# :func:`~sk_deepmetric.datasets.make_arcs` draws 24 features in which each class is a
# radius in each of 8 hidden planes, at a random angle: a non-linear function of the input,
# the same for every class, that a network can learn on some classes and apply to others.
X, y = make_arcs(3000, 100, random_state=SEED)
seen = y < 50
scaler = StandardScaler().fit(X[seen])
X_train, y_train = scaler.transform(X[seen]), y[seen]
X_test, y_test = scaler.transform(X[~seen]), y[~seen]

# %%
# Your module's initial weights are yours: the estimator deep-copies the module at ``fit``
# (so the same instance can be given to several estimators, and ``clone`` works) but does
# not re-initialise it, which is what you want for a pre-trained backbone. ``random_state``
# still seeds the batches. Seed torch yourself for reproducible initial weights.
torch.manual_seed(SEED)
backbone = ResidualMLP(n_features=X.shape[1], n_components=32)

# %%
# 1. The backbone with a built-in loss
# ------------------------------------
# ``n_components`` must equal the module's output width. With ``normalize=True`` (the
# triplet default) the estimator appends an L2 normalisation to your module. A module you
# pass gets a gentle learning rate by default (1e-4, right for fine-tuning a pre-trained
# network); this one starts from random weights, so we give it 1e-3. Early stopping (on by
# default with 50 classes) holds out whole training classes and keeps the best epoch.
common = dict(
    network=backbone, n_components=32, learning_rate_init=1e-3, max_iter=MAX_ITER,
    random_state=SEED,
)  # fmt: skip
triplet = TripletEmbedder(**common)
triplet.fit(X_train, y_train)

# %%
# 2. The backbone with a loss module: MetricEmbedder(loss=...)
# ------------------------------------------------------------
# Any module of :mod:`sk_deepmetric.losses`, configured as you like. Tuple losses want
# class-balanced batches (``batching="balanced"``, the default).
metric_triplet = MetricEmbedder(
    loss=TripletMarginLoss(margin=0.1, miner="batch_hard", distance="cosine"),
    normalize=True,
    **common,
)
metric_triplet.fit(X_train, y_train)

# %%
# Classifier-style losses own parameters (one weight vector per class) and want shuffled
# batches. They are trained together with the network, and labels reach the loss encoded
# as ``0 .. n_classes - 1``, so ``n_classes`` is the number of training classes.
metric_arcface = MetricEmbedder(
    loss=ArcFaceLoss(n_classes=50, n_components=32, margin=0.5, scale=16.0),
    batching="shuffled",
    normalize=True,
    **common,
)
metric_arcface.fit(X_train, y_train)

# %%
# Losses from other libraries
# ---------------------------
# pytorch-metric-learning (Musgrave et al.) has the largest collection of metric-learning
# losses and miners, and its losses use the same ``loss(embeddings, labels)`` convention,
# so they plug in unchanged, e.g. (not run here, it is not a dependency)::
#
#     from pytorch_metric_learning import losses
#     MetricEmbedder(network=backbone, loss=losses.MultiSimilarityLoss(), n_components=32)

# %%
# Results on the unseen classes
# -----------------------------
# Against the features themselves, as given and standardised (what the models are fed).
rows = [
    ("raw features, as given", X[~seen]),
    ("raw features, standardised", X_test),
]
rows += [
    (name, model.transform(X_test))
    for name, model in [
        ("TripletEmbedder(network=ResidualMLP)", triplet),
        ("MetricEmbedder(TripletMarginLoss(batch_hard))", metric_triplet),
        ("MetricEmbedder(ArcFaceLoss)", metric_arcface),
    ]
]
print(f"{'model':<46} {'MAP@R':>6} {'P@1':>6}")
for name, Z in rows:
    report = retrieval_report(Z, y_test, distance="cosine")
    print(f"{name:<46} {report['map_at_r']:6.3f} {report['precision_at_1']:6.3f}")
print(
    "epochs (early stopping): "
    f"{triplet.n_iter_}, {metric_triplet.n_iter_}, {metric_arcface.n_iter_}"
)

# %%
# Reading the table
# -----------------
# Measured with seeds 0, 1 and 2 (set ``SK_DEEPMETRIC_EXAMPLES_SEED``): the features
# themselves retrieve almost nothing (MAP@R 0.009-0.011). ``TripletEmbedder`` with the
# residual backbone reaches 0.825-0.862 (Precision@1 0.98) and ``ArcFaceLoss`` 0.679-0.740,
# on classes never trained on. The batch-hard ``TripletMarginLoss`` (margin 0.1, learning
# rate 1e-3) is shown failing, not winning: it stopped after 42-59 epochs at MAP@R
# 0.027-0.029, barely above the features. Batch-hard mining trains on the most extreme
# triplets and can collapse at a high learning rate (see the triplet-mining example,
# where it works at the MLP's gentler default); plugging a loss in is easy, but check its
# result against the features and a default loss, as here.

# %%
# The trained network is a plain torch module (yours, followed by the L2 normalisation):
print(metric_arcface.module_)
