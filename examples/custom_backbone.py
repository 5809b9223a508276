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
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.preprocessing import StandardScaler
from torch import nn

from sk_deepmetric import MetricEmbedder, TripletEmbedder, retrieval_report
from sk_deepmetric.losses import ArcFaceLoss, TripletMarginLoss

FAST = os.environ.get("SK_DEEPMETRIC_EXAMPLES_FAST") == "1"  # the test suite's quick run
EPOCHS = 2 if FAST else 30
warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed epochs, on purpose


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
# Data: open-set digits, train on 0-4, evaluate on the unseen 5-9
# ----------------------------------------------------------------
X, y = load_digits(return_X_y=True)
seen = y < 5
scaler = StandardScaler().fit(X[seen])
X_train, y_train = scaler.transform(X[seen]), y[seen]
X_test, y_test = scaler.transform(X[~seen]), y[~seen]

# %%
# Your module's initial weights are yours: the estimator deep-copies the module at ``fit``
# (so the same instance can be given to several estimators, and ``clone`` works) but does
# not re-initialise it, which is what you want for a pre-trained backbone. ``random_state``
# still seeds the batches. Seed torch yourself for reproducible initial weights.
torch.manual_seed(0)
backbone = ResidualMLP(n_features=64, n_components=32)

# %%
# 1. The backbone with a built-in loss
# ------------------------------------
# ``n_components`` must equal the module's output width. With ``normalize=True`` (the
# triplet default) the estimator appends an L2 normalisation to your module.
triplet = TripletEmbedder(network=backbone, n_components=32, max_iter=EPOCHS, random_state=0)
triplet.fit(X_train, y_train)

# %%
# 2. The backbone with a loss module: MetricEmbedder(loss=...)
# ------------------------------------------------------------
# Any module of :mod:`sk_deepmetric.losses`, configured as you like. Tuple losses want
# class-balanced batches (``batching="balanced"``, the default).
metric_triplet = MetricEmbedder(
    network=backbone,
    loss=TripletMarginLoss(margin=0.1, miner="batch_hard", distance="cosine"),
    n_components=32,
    normalize=True,
    max_iter=EPOCHS,
    random_state=0,
)
metric_triplet.fit(X_train, y_train)

# %%
# Classifier-style losses own parameters (one weight vector per class) and want shuffled
# batches. They are trained together with the network, and labels reach the loss encoded
# as ``0 .. n_classes - 1``, so ``n_classes`` is the number of training classes.
metric_arcface = MetricEmbedder(
    network=backbone,
    loss=ArcFaceLoss(n_classes=5, n_components=32, margin=0.5, scale=16.0),
    batching="shuffled",
    n_components=32,
    normalize=True,
    max_iter=EPOCHS,
    random_state=0,
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
# Results on the unseen digits
# ----------------------------
print(f"{'model':<46} {'MAP@R':>6} {'P@1':>6}")
for name, model in [
    ("TripletEmbedder(network=ResidualMLP)", triplet),
    ("MetricEmbedder(TripletMarginLoss(batch_hard))", metric_triplet),
    ("MetricEmbedder(ArcFaceLoss)", metric_arcface),
]:
    report = retrieval_report(model.transform(X_test), y_test, distance="cosine")
    print(f"{name:<46} {report['map_at_r']:6.3f} {report['precision_at_1']:6.3f}")

# The trained network is a plain torch module (yours, followed by the L2 normalisation):
print(metric_arcface.module_)
