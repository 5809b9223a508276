"""sk_deepmetric: deep metric learning with a scikit-learn face.

Estimators (``*Embedder``) are scikit-learn transformers that train a torch network with a
metric-learning loss; :mod:`sk_deepmetric.losses`, :mod:`sk_deepmetric.miners` and
:mod:`sk_deepmetric.distances` are usable alone in a hand-written torch loop.
"""

from .embedders import (
    AngularEmbedder,
    ArcFaceEmbedder,
    CenterLossEmbedder,
    ContrastiveEmbedder,
    CosFaceEmbedder,
    LargeMarginSoftmaxEmbedder,
    MetricEmbedder,
    NPairsEmbedder,
    SoftmaxEmbedder,
    SphereFaceEmbedder,
    TripletEmbedder,
)
from .metrics import (
    make_retrieval_scorer,
    mean_average_precision_at_r,
    precision_at_k,
    r_precision,
    recall_at_k,
    retrieval_report,
)
from .neighbors import EmbeddingKNeighborsClassifier

__version__ = "0.1.0.dev0"

__all__ = [
    "AngularEmbedder",
    "ArcFaceEmbedder",
    "CenterLossEmbedder",
    "ContrastiveEmbedder",
    "CosFaceEmbedder",
    "EmbeddingKNeighborsClassifier",
    "LargeMarginSoftmaxEmbedder",
    "MetricEmbedder",
    "NPairsEmbedder",
    "SoftmaxEmbedder",
    "SphereFaceEmbedder",
    "TripletEmbedder",
    "__version__",
    "make_retrieval_scorer",
    "mean_average_precision_at_r",
    "precision_at_k",
    "r_precision",
    "recall_at_k",
    "retrieval_report",
]
