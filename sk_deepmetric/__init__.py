"""sk_deepmetric: deep metric learning with a scikit-learn face.

Estimators (``*Embedder``) are scikit-learn transformers that train a torch network with a
metric-learning loss; :mod:`sk_deepmetric.losses`, :mod:`sk_deepmetric.miners` and
:mod:`sk_deepmetric.distances` are usable alone in a hand-written torch loop.
"""

from . import embedders
from .embedders import *  # noqa: F403 (the estimators: embedders.__all__)
from .metrics import (
    equal_error_rate,
    make_pairs,
    make_retrieval_scorer,
    make_verification_scorer,
    mean_average_precision_at_r,
    min_dcf,
    pair_scores,
    precision_at_k,
    r_precision,
    recall_at_k,
    reidentification_report,
    retrieval_report,
    select_threshold,
    tar_at_far,
    verification_accuracy,
    verification_report,
)
from .neighbors import EmbeddingKNeighborsClassifier

__version__ = "0.1.0.dev0"

__all__ = [
    *embedders.__all__,
    "EmbeddingKNeighborsClassifier",
    "__version__",
    "equal_error_rate",
    "make_pairs",
    "make_retrieval_scorer",
    "make_verification_scorer",
    "mean_average_precision_at_r",
    "min_dcf",
    "pair_scores",
    "precision_at_k",
    "r_precision",
    "recall_at_k",
    "reidentification_report",
    "retrieval_report",
    "select_threshold",
    "tar_at_far",
    "verification_accuracy",
    "verification_report",
]
