"""Embedders trained as the penultimate layer of a classifier: the softmax family, centre
loss, Proxy-Anchor.

The loss owns one weight vector per class (and the centre loss one centre, sub-centre ArcFace
several sub-centres, Proxy-Anchor one proxy), trained with the network on shuffled batches and
discarded at ``transform``. The class weights start at the centred class-mean directions of the
initial embedding ("imprinting").
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from .._devices import place_data
from .._training import embed
from .._validation import Interval
from ..losses._center import CenterLoss
from ..losses._margin_softmax import (
    ArcFaceLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    SoftmaxLoss,
    SphereFaceLoss,
)
from ..losses._proxy_anchor import ProxyAnchorLoss
from ..losses._sub_center import SubCenterArcFaceLoss
from ._base import _BaseEmbedder
from ._params import doctest_example, document, loss_params

__all__ = [
    "ArcFaceEmbedder",
    "CenterLossEmbedder",
    "CosFaceEmbedder",
    "LargeMarginSoftmaxEmbedder",
    "ProxyAnchorEmbedder",
    "SoftmaxEmbedder",
    "SphereFaceEmbedder",
    "SubCenterArcFaceEmbedder",
]


#: Norm of the imprinted class weights, hence the initial logit scale, of a loss that keeps
#: the weights' norm on normalised embeddings (see ``SoftmaxEmbedder``'s ``normalize``).
IMPRINT_LOGIT_SCALE = 4.0


class _ClassifierEmbedder(_BaseEmbedder):
    """Losses with one learnable weight vector per class: shuffled batches, labels 0..C-1."""

    _batching = "shuffled"
    _default_overrides: ClassVar[dict] = {"normalize": False}
    _loss_class = SoftmaxLoss

    @property
    def _unit_class_weights(self) -> bool:
        """Whether the loss scores classes by the weights' directions only (SphereFace,
        CosFace, ArcFace); otherwise their norm scales the logits (CenterLoss wraps a
        softmax, and has no such flag)."""
        return getattr(self._loss_class, "_normalize_weights", False)

    def _build_loss(self, n_classes, n_components):
        return self._loss_class(n_classes, n_components, **self._loss_kwargs())

    def _init_loss_from_data(self, X, y, device):
        with torch.no_grad():
            self._imprint(*self._initial_class_means(X, y, device))

    def _imprint(self, means: torch.Tensor, overall: torch.Tensor) -> None:
        """Start class ``c``'s weight at the direction of its mean initial embedding, less the
        mean of all (a ReLU network's raw class means are nearly collinear), with the norm of
        :meth:`_imprint_norm` ("imprinting": random weights barely move in a short budget).

        A class without samples yet (announced by ``partial_fit(classes=...)``) keeps its
        random direction, at the same norm. ``docs/benchmarks.md`` has the measurements.
        """
        weight = self._class_weight()
        norm = self._imprint_norm(weight)
        present = torch.isfinite(means).all(dim=1)
        direction = nn.functional.normalize(weight.detach().clone(), dim=1)
        direction[present] = nn.functional.normalize(means[present] - overall, dim=1).to(weight)
        weight.copy_(direction * norm)

    def _imprint_norm(self, weight: nn.Parameter) -> float | torch.Tensor:
        """Norm of the imprinted class weights.

        On unit-norm embeddings, a loss that keeps the weights' norm (softmax, center loss,
        L-Softmax) takes it as its logit scale: the random initialisation's norm (about 0.6,
        nn.Linear's) leaves the softmax nearly uniform and its gradients weak, and with
        Adam the norm grows by about ``learning_rate_init`` per step. It starts at
        :data:`IMPRINT_LOGIT_SCALE` instead. Otherwise (the norm is irrelevant, or the
        embedding's own norm scales the logits) the random initialisation's norm is kept.
        """
        if self.normalize and not self._unit_class_weights:
            return IMPRINT_LOGIT_SCALE
        return weight.norm(dim=1, keepdim=True).mean()

    def _class_weight(self) -> nn.Parameter:
        return self.loss_.weight

    def _initial_class_means(self, X, y, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean initial embedding of each class, (n_classes, d), and of all samples, (d,)."""
        Z = torch.from_numpy(
            embed(self.module_, place_data(self._as_network_input(X), device), device)
        )
        labels = torch.from_numpy(y).long()
        sums = torch.zeros(len(self.classes_), Z.shape[1]).index_add_(0, labels, Z)
        counts = torch.bincount(labels, minlength=len(self.classes_))[:, None]
        return sums / counts, Z.mean(dim=0)


_CLASSIFIER_REFS = {
    "softmax": """    .. [1] K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020 (the softmax baseline is competitive with tuple losses).
""",
}
_NORMALIZE_OFF = (
    "Off: the classifier's logits need the features' norm; ``transform`` output is usually "
    "compared by cosine similarity (as ``score`` does)."
)
_NORMALIZE_ON = "On: the loss compares directions only (cosine of the angle to each class)."


class SoftmaxEmbedder(_ClassifierEmbedder):
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _loss_class = SoftmaxLoss


document(
    SoftmaxEmbedder,
    """Embedding trained as the penultimate layer of a softmax classifier.

    A linear classifier (one weight vector and bias per class) on the embedding, trained with
    cross-entropy and discarded at ``transform``; see
    :class:`~sk_deepmetric.losses.SoftmaxLoss`. The class weights start at the centred
    class-mean directions of the initial embedding ("imprinting"), as in every
    classifier-based embedder; on normalised embeddings (the default) their norm, the logit
    scale, starts at 4 and is learnt.""",
    "",
    _CLASSIFIER_REFS["softmax"],
    doctest_example("SoftmaxEmbedder"),
    """On: the logits are ``W_j x / ||x|| + b_j``, so the class weights' norm is
        the logit scale, which imprinting starts at 4 and training learns (the benchmarks
        page compares it with the unnormalised softmax).""",
)


class CenterLossEmbedder(_ClassifierEmbedder):
    _loss_class = CenterLoss
    _tuned_defaults: ClassVar[dict] = {"center_weight": 0.01}
    _loss_params: ClassVar[dict] = loss_params(
        CenterLoss, ("center_weight",), tuned=_tuned_defaults
    )
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "center_weight": [Interval(Real, 0, None, closed="left")],
    }

    def _class_weight(self):
        return self.loss_.softmax.weight

    def _imprint(self, means, overall):
        super()._imprint(means, overall)
        present = torch.isfinite(means).all(dim=1)  # a class without samples keeps its own
        self.loss_.centers[present] = means[present].to(self.loss_.centers)


document(
    CenterLossEmbedder,
    """Embedding trained with softmax cross-entropy plus the center loss.

    Adds ``center_weight`` times the mean squared distance of each sample to its class's
    learnable centre, making classes compact; see :class:`~sk_deepmetric.losses.CenterLoss`.
    The centres start at the class means of the initial embedding, the classifier's weights at
    their centred directions.""",
    """    center_weight : float, default=0.01
        Weight of the centre term (the paper's lambda; its face experiments use 0.003).
        The larger default makes the training classes more compact, which carried over to
        unseen classes in the benchmarks; much larger values pull noise dimensions in too.
""",
    """    .. [1] Y. Wen, K. Zhang, Z. Li, Y. Qiao, "A Discriminative Feature Learning Approach
       for Deep Face Recognition", ECCV 2016.
""",
    doctest_example("CenterLossEmbedder"),
    _NORMALIZE_OFF,
)


class LargeMarginSoftmaxEmbedder(_ClassifierEmbedder):
    _loss_class = LargeMarginSoftmaxLoss
    _tuned_defaults: ClassVar[dict] = {"margin": 4, "softmax_weight": 1.0}
    _loss_params: ClassVar[dict] = loss_params(
        LargeMarginSoftmaxLoss, ("margin", "softmax_weight"), tuned=_tuned_defaults
    )
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "margin": [Interval(Integral, 1, None, closed="left")],
        "softmax_weight": [Interval(Real, 0, None, closed="left")],
    }


_MULTIPLICATIVE_DOC = """    margin : int, default={m}
        Integer angle multiplier ``m``: the target class's angle counts ``m`` times (1: no
        margin). A float such as {m}.0 is an error, not silently truncated.{margin_why}
    softmax_weight : float, default={lam}
        ``lambda`` blending in the plain logit, ``(lambda cos + psi) / (1 + lambda)``; a
        large value early in training eases optimisation, and 0 is the loss as the papers
        define it. {lam_why}
"""

_LSOFTMAX_WHY = """
        4 (the paper's default is 2): with ``softmax_weight=1`` a larger, less diluted
        margin makes the training classes compact, which carried over to unseen classes in
        the benchmarks."""

document(
    LargeMarginSoftmaxEmbedder,
    """Embedding trained with the large-margin softmax (L-Softmax) loss.

    Softmax whose target logit uses ``cos(m * theta)`` instead of ``cos(theta)``; see
    :class:`~sk_deepmetric.losses.LargeMarginSoftmaxLoss`.""",
    _MULTIPLICATIVE_DOC.format(
        m=4,
        margin_why=_LSOFTMAX_WHY,
        lam=1.0,
        lam_why="""With 0 the margin barely trained on the benchmarks' 100-class task;
        1 rather than SphereFace's 5: see ``margin``.""",
    ),
    """    .. [1] W. Liu, Y. Wen, Z. Yu, M. Yang, "Large-Margin Softmax Loss for Convolutional
       Neural Networks", ICML 2016.
""",
    doctest_example("LargeMarginSoftmaxEmbedder"),
    _NORMALIZE_OFF,
)


class SphereFaceEmbedder(_ClassifierEmbedder):
    _loss_class = SphereFaceLoss
    _tuned_defaults: ClassVar[dict] = {"softmax_weight": 5.0}
    _loss_params: ClassVar[dict] = loss_params(
        SphereFaceLoss, ("margin", "softmax_weight"), tuned=_tuned_defaults
    )
    _parameter_constraints: ClassVar[dict] = LargeMarginSoftmaxEmbedder._parameter_constraints


document(
    SphereFaceEmbedder,
    """Embedding trained with SphereFace's angular softmax (A-Softmax).

    L-Softmax with unit-norm class weights and no bias: the margin is purely angular; see
    :class:`~sk_deepmetric.losses.SphereFaceLoss`.""",
    _MULTIPLICATIVE_DOC.format(
        m=4,
        margin_why="",
        lam=5.0,
        lam_why="""5, the floor SphereFace's authors anneal it
        to: with 0 the margin barely trained on the benchmarks' 100-class task.""",
    ),
    """    .. [1] W. Liu, Y. Wen, Z. Yu, M. Li, B. Raj, L. Song, "SphereFace: Deep Hypersphere
       Embedding for Face Recognition", CVPR 2017.
""",
    doctest_example("SphereFaceEmbedder"),
    _NORMALIZE_OFF,
)


class CosFaceEmbedder(_ClassifierEmbedder):
    _loss_class = CosFaceLoss
    _loss_params: ClassVar[dict] = loss_params(CosFaceLoss, ("margin", "scale"))
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, 1, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
    }


document(
    CosFaceEmbedder,
    """Embedding trained with CosFace (large-margin cosine loss).

    Softmax over ``scale * cos(theta_j)`` with ``margin`` subtracted from the target class's
    cosine; see :class:`~sk_deepmetric.losses.CosFaceLoss`. Class weights start at the
    centred class-mean directions of the initial embedding, as in every classifier-based
    embedder.""",
    """    margin : float, default=0.35
        Additive margin on the cosine, in [0, 1).
    scale : float, default=64.0
        Radius of the hypersphere the logits live on.
""",
    """    .. [1] H. Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition",
       CVPR 2018.
""",
    doctest_example("CosFaceEmbedder"),
    _NORMALIZE_ON,
)


class ArcFaceEmbedder(_ClassifierEmbedder):
    _loss_class = ArcFaceLoss
    _loss_params: ClassVar[dict] = loss_params(ArcFaceLoss, ("margin", "scale"))
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, np.pi / 2, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
    }


document(
    ArcFaceEmbedder,
    """Embedding trained with ArcFace (additive angular margin loss).

    Softmax over ``scale * cos(theta_j)`` with ``margin`` radians added to the target class's
    angle; see :class:`~sk_deepmetric.losses.ArcFaceLoss`. Each class's weight starts at the
    direction of the class's mean embedding under the initial network, centred on the mean of
    all ("imprinting"), not at random, as in every classifier-based embedder.""",
    """    margin : float, default=0.5
        Additive angular margin in radians (0.5 is about 28.6 degrees), in [0, pi/2).
    scale : float, default=64.0
        Radius of the hypersphere the logits live on.
""",
    """    .. [1] J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive Angular Margin Loss
       for Deep Face Recognition", CVPR 2019.
""",
    doctest_example("ArcFaceEmbedder"),
    _NORMALIZE_ON,
)


class SubCenterArcFaceEmbedder(_ClassifierEmbedder):
    _loss_class = SubCenterArcFaceLoss
    _loss_params: ClassVar[dict] = loss_params(
        SubCenterArcFaceLoss, ("margin", "scale", "sub_centers")
    )
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _parameter_constraints: ClassVar[dict] = {
        **ArcFaceEmbedder._parameter_constraints,
        "sub_centers": [Interval(Integral, 1, None, closed="left")],
    }

    def _imprint(self, means, overall):
        """Imprint each class's first sub-centre; the others keep their random directions
        (at the same norm), so that the samples the first one fits badly can gather there."""
        weight = self.loss_.weight
        sub_centers = weight.view(len(self.classes_), self.sub_centers, -1)
        norm = self._imprint_norm(weight)
        present = torch.isfinite(means).all(dim=1)
        direction = nn.functional.normalize(sub_centers.detach().clone(), dim=2)
        first = nn.functional.normalize(means[present] - overall, dim=1)
        direction[present, 0] = first.to(weight)
        weight.copy_((direction * norm).view_as(weight))


document(
    SubCenterArcFaceEmbedder,
    """Embedding trained with sub-centre ArcFace.

    ArcFace with ``sub_centers`` weight vectors per class, of which the one nearest to a
    sample counts: a class's atypical or mislabelled samples can gather around a sub-centre
    of their own instead of pulling the dominant one; see
    :class:`~sk_deepmetric.losses.SubCenterArcFaceLoss`. The first sub-centre of each class
    starts at the direction of the class's mean embedding under the initial network
    (centred, as in every classifier-based embedder), the others at random directions. The
    paper's second stage (drop the samples far from their dominant sub-centre, retrain) is
    not done.""",
    """    margin : float, default=0.5
        Additive angular margin in radians (0.5 is about 28.6 degrees), in [0, pi/2).
    scale : float, default=64.0
        Radius of the hypersphere the logits live on.
    sub_centers : int, default=3
        Sub-centres per class (>= 1; 1 is ArcFace), the paper's 3.
""",
    """    .. [1] J. Deng, J. Guo, T. Liu, M. Gong, S. Zafeiriou, "Sub-center ArcFace: Boosting
       Face Recognition by Large-Scale Noisy Web Faces", ECCV 2020.
""",
    doctest_example("SubCenterArcFaceEmbedder"),
    _NORMALIZE_ON,
)


class ProxyAnchorEmbedder(_ClassifierEmbedder):
    _loss_class = ProxyAnchorLoss
    _loss_params: ClassVar[dict] = loss_params(
        ProxyAnchorLoss, ("margin", "alpha"), proxy_lr_multiplier=100.0
    )
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _unit_class_weights = True  # the loss normalises its proxies
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, 1, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "proxy_lr_multiplier": [Interval(Real, 0, None, closed="neither")],
    }

    def _class_weight(self):
        return self.loss_.proxies

    def _parameter_groups(self, learning_rate):
        return [
            {"params": list(self.module_.parameters()), "lr": learning_rate},
            {
                "params": list(self.loss_.parameters()),
                "lr": learning_rate * self.proxy_lr_multiplier,
            },
        ]


document(
    ProxyAnchorEmbedder,
    """Embedding trained with the Proxy-Anchor loss.

    One learnable proxy per class serves as an anchor: it pulls its class's embeddings of
    the batch and pushes the others, each weighted by its hardness through a soft maximum of
    cosine similarities; see :class:`~sk_deepmetric.losses.ProxyAnchorLoss`. The proxies
    train at ``proxy_lr_multiplier`` times the network's learning rate, as in the paper, and
    start at the centred class-mean directions of the initial embedding ("imprinting"), as
    every classifier-based embedder's class weights do (the paper starts them at random).""",
    """    margin : float, default=0.1
        Margin in cosine units, in [0, 1): positives are pulled above it, negatives pushed
        below its negative.
    alpha : float, default=32.0
        Scale (> 0) of the soft maximum: larger values weigh each proxy's hardest
        embeddings more.
    proxy_lr_multiplier : float, default=100.0
        The proxies' learning rate over the network's (> 0), the paper's 100; with
        ``lr_schedule`` both decay together. Weight decay applies to both.
""",
    """    .. [1] S. Kim, D. Kim, M. Cho, S. Kwak, "Proxy Anchor Loss for Deep Metric Learning",
       CVPR 2020.
""",
    doctest_example("ProxyAnchorEmbedder"),
    _NORMALIZE_ON,
)
