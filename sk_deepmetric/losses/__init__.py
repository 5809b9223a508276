"""Metric-learning losses: torch ``nn.Module``s called as ``loss(embeddings, labels)``.

Tuple and pair losses (:class:`ContrastiveLoss`, :class:`TripletMarginLoss`,
:class:`NPairsLoss`, :class:`AngularLoss`, :class:`MultiSimilarityLoss`, :class:`SupConLoss`)
take any integer labels and have no parameters. Classifier-style losses
(:class:`SoftmaxLoss`, :class:`CenterLoss`, :class:`LargeMarginSoftmaxLoss`,
:class:`SphereFaceLoss`, :class:`CosFaceLoss`, :class:`ArcFaceLoss`,
:class:`SubCenterArcFaceLoss`) and the proxy loss
(:class:`ProxyAnchorLoss`) own their class weights (proxies),
take labels ``0 .. n_classes - 1`` and must be given to the optimiser with the network.

Every loss computes in float32 or float64: float16 and bfloat16 embeddings are promoted to
float32 (the loss is float32, the gradient comes back in their dtype). A NaN or an infinity
in the embeddings gives a NaN (or infinite) loss, never a finite one with NaN gradients.
Sparse tensors are an error.
"""

from ._center import CenterLoss
from ._cross_batch_memory import CrossBatchMemory
from ._margin_softmax import (
    ArcFaceLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    SoftmaxLoss,
    SphereFaceLoss,
)
from ._multi_similarity import MultiSimilarityLoss
from ._pair import AngularLoss, ContrastiveLoss, NPairsLoss, TripletMarginLoss
from ._proxy_anchor import ProxyAnchorLoss
from ._sub_center import SubCenterArcFaceLoss
from ._supcon import SupConLoss

__all__ = [
    "AngularLoss",
    "ArcFaceLoss",
    "CenterLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "CrossBatchMemory",
    "LargeMarginSoftmaxLoss",
    "MultiSimilarityLoss",
    "NPairsLoss",
    "ProxyAnchorLoss",
    "SoftmaxLoss",
    "SphereFaceLoss",
    "SubCenterArcFaceLoss",
    "SupConLoss",
    "TripletMarginLoss",
]
