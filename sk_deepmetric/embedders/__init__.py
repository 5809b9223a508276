"""The ``*Embedder`` estimators: scikit-learn transformers that learn a deep metric embedding.

Each estimator trains a torch network (an MLP, a small CNN or the user's module) with one
metric-learning loss and maps ``X`` to embeddings of shape ``(n_samples, n_components)``,
ready for :class:`~sklearn.neighbors.KNeighborsClassifier` or retrieval.

The package is laid out as one private base class that holds everything the estimators share
(``_base``: network, batching, training, transform; ``_inputs``: checking and encoding ``X``
and ``y``; ``_holdout``: what early stopping holds out), the shared parameter table and
docstring (``_params``), and the estimators by family: tuple losses (``_tuple``), classifier
losses (``_classifier``), any loss module (``_custom``), and pairs labelled similar or not
instead of class labels (``_pairs``). Each public class adds its loss's
parameters, their constraints, its docstring and the loss it builds.
"""

from ._classifier import (
    ArcFaceEmbedder,
    CenterLossEmbedder,
    CosFaceEmbedder,
    LargeMarginSoftmaxEmbedder,
    ProxyAnchorEmbedder,
    SoftmaxEmbedder,
    SphereFaceEmbedder,
    SubCenterArcFaceEmbedder,
)
from ._custom import MetricEmbedder
from ._pairs import ContrastivePairsEmbedder
from ._tuple import (
    AngularEmbedder,
    ContrastiveEmbedder,
    MultiSimilarityEmbedder,
    NPairsEmbedder,
    SupConEmbedder,
    TripletEmbedder,
)

#: The embedder of each built-in loss, by the loss's short name (the command line's
#: ``--loss``). The one list of losses: the command line, the benchmarks and the tests read it
#: from here, so a new loss is registered by one line.
EMBEDDERS_BY_LOSS = {
    "triplet": TripletEmbedder,
    "contrastive": ContrastiveEmbedder,
    "npairs": NPairsEmbedder,
    "angular": AngularEmbedder,
    "softmax": SoftmaxEmbedder,
    "center": CenterLossEmbedder,
    "lsoftmax": LargeMarginSoftmaxEmbedder,
    "sphereface": SphereFaceEmbedder,
    "cosface": CosFaceEmbedder,
    "arcface": ArcFaceEmbedder,
    "multisimilarity": MultiSimilarityEmbedder,
    "supcon": SupConEmbedder,
    "proxyanchor": ProxyAnchorEmbedder,
    "subcenterarcface": SubCenterArcFaceEmbedder,
}

__all__ = [  # the estimators (EMBEDDERS_BY_LOSS is public too, but not an estimator)
    "AngularEmbedder",
    "ArcFaceEmbedder",
    "CenterLossEmbedder",
    "ContrastiveEmbedder",
    "ContrastivePairsEmbedder",
    "CosFaceEmbedder",
    "LargeMarginSoftmaxEmbedder",
    "MetricEmbedder",
    "MultiSimilarityEmbedder",
    "NPairsEmbedder",
    "ProxyAnchorEmbedder",
    "SoftmaxEmbedder",
    "SphereFaceEmbedder",
    "SubCenterArcFaceEmbedder",
    "SupConEmbedder",
    "TripletEmbedder",
]
