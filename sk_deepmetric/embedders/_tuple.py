"""Embedders trained with tuple and pair losses on class-balanced ``P x K`` batches.

Triplet (with its miners), contrastive, N-pairs, angular, multi-similarity and supervised
contrastive: each loss compares embeddings of the same batch, so every batch holds
``samples_per_class`` samples of several classes.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

from .._validation import Interval, StrOptions
from ..distances import DISTANCES
from ..losses._multi_similarity import MultiSimilarityLoss
from ..losses._pair import (
    NPAIRS_DISTANCES,
    TRIPLET_MINERS,
    AngularLoss,
    ContrastiveLoss,
    NPairsLoss,
    TripletMarginLoss,
)
from ..losses._supcon import SupConLoss
from ._base import _BaseEmbedder
from ._params import doctest_example, document, loss_params

__all__ = [
    "AngularEmbedder",
    "ContrastiveEmbedder",
    "MultiSimilarityEmbedder",
    "NPairsEmbedder",
    "SupConEmbedder",
    "TripletEmbedder",
]


class TripletEmbedder(_BaseEmbedder):
    _loss_class = TripletMarginLoss
    _loss_params: ClassVar[dict] = loss_params(
        TripletMarginLoss, ("margin", "miner", "distance"), samples_per_class=4
    )
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, None, closed="left")],
        "miner": [StrOptions({m for m in TRIPLET_MINERS if m}), None, callable],
        "distance": [StrOptions(set(DISTANCES))],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }


document(
    TripletEmbedder,
    """Embedding trained with the triplet margin loss.

    For mined triplets (anchor, positive of its class, negative of another class) the loss is
    ``relu(d(a, p) - d(a, n) + margin)``; see :class:`~sk_deepmetric.losses.TripletMarginLoss`.
    The defaults are FaceNet's: semi-hard mining, margin 0.2 on L2-normalised embeddings.""",
    """    margin : float, default=0.2
        Margin between positive and negative distances, in units of ``distance`` (Euclidean
        distances between unit vectors lie in ``[0, 2]``).
    miner : {"semihard", "batch_hard", "all", "hard", "easy"}, callable or None, \
default="semihard"
        Which triplets of a batch the loss uses; ``None`` or "all": every valid triplet.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        Distance between embeddings in the loss and the miner; ``margin`` is in its units.
""",
    """    .. [1] F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet: A Unified Embedding for Face
       Recognition and Clustering", CVPR 2015.
    .. [2] A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
       Re-Identification", arXiv:1703.07737, 2017.
""",
    doctest_example("TripletEmbedder"),
    "The margin is then on a fixed scale.",
)


class ContrastiveEmbedder(_BaseEmbedder):
    _loss_class = ContrastiveLoss
    _loss_params: ClassVar[dict] = loss_params(
        ContrastiveLoss, ("pos_margin", "neg_margin", "distance"), samples_per_class=4
    )
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "pos_margin": [Interval(Real, 0, None, closed="left")],
        "neg_margin": [Interval(Real, 0, None, closed="left")],
        "distance": [StrOptions(set(DISTANCES))],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }


document(
    ContrastiveEmbedder,
    """Embedding trained with the contrastive (pair) loss.

    Pulls pairs of one class closer than ``pos_margin`` and pushes pairs of different classes
    beyond ``neg_margin``; see :class:`~sk_deepmetric.losses.ContrastiveLoss`.""",
    """    pos_margin : float, default=0.0
        Distance below which a positive pair costs nothing.
    neg_margin : float, default=1.0
        Distance beyond which a negative pair costs nothing (unit vectors: at most 2).
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        Distance between the embeddings of a pair; both margins are in its units.
""",
    """    .. [1] R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality Reduction by Learning an
       Invariant Mapping", CVPR 2006.
""",
    doctest_example("ContrastiveEmbedder"),
    "The margins are then on a fixed scale.",
)


class NPairsEmbedder(_BaseEmbedder):
    _loss_class = NPairsLoss
    _tuned_defaults: ClassVar[dict] = {"distance": "euclidean"}
    _loss_params: ClassVar[dict] = loss_params(
        NPairsLoss, ("l2_reg", "distance"), tuned=_tuned_defaults, samples_per_class=2
    )
    _default_overrides: ClassVar[dict] = {"normalize": False}
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "l2_reg": [Interval(Real, 0, None, closed="left")],
        "distance": [StrOptions(set(NPAIRS_DISTANCES))],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }


document(
    NPairsEmbedder,
    """Embedding trained with the multi-class N-pair loss.

    Each class in a batch contributes one (anchor, positive) pair; every anchor is classified
    against the positives of all classes by a softmax over (negated) Euclidean distances, the
    source articles' form ``log(1 + sum_j exp(D_ap - D_an))``, or over inner products as in
    the paper (``distance="dot"``); see :class:`~sk_deepmetric.losses.NPairsLoss`. Hence
    ``samples_per_class=2`` by default.""",
    """    l2_reg : float, default=0.002
        Penalty on squared embedding norms (the inner product is unbounded without it).
    distance : {"dot", "euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        The score compared across classes: the source articles' Euclidean form by
        default, which learned more than the paper's inner product ("dot") on the
        benchmarks' harder tasks.
""",
    """    .. [1] K. Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss
       Objective", NeurIPS 2016.
""",
    doctest_example("NPairsEmbedder"),
    "Off as in the paper, which regularises the norms with ``l2_reg`` instead.",
)


class AngularEmbedder(_BaseEmbedder):
    _loss_class = AngularLoss
    _loss_params: ClassVar[dict] = loss_params(AngularLoss, ("alpha",), samples_per_class=4)
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "alpha": [Interval(Real, 0, 90, closed="neither")],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }


document(
    AngularEmbedder,
    """Embedding trained with the angular loss.

    Bounds the angle at the negative of each (anchor, positive, negative) triangle by
    ``alpha``, a scale-invariant third-order constraint; see
    :class:`~sk_deepmetric.losses.AngularLoss`.""",
    """    alpha : float, default=40.0
        Angle bound at the negative, in degrees, in (0, 90); the paper's best values are
        36 to 55.
""",
    """    .. [1] J. Wang, F. Zhou, S. Wen, X. Liu, Y. Lin, "Deep Metric Learning with Angular
       Loss", ICCV 2017.
""",
    doctest_example("AngularEmbedder"),
    "The loss works on unit vectors, as in the paper.",
)


_COSINE_LOSS = (
    "The loss compares cosine similarities, which the norm does not change; on, "
    "``transform``'s output lies on the unit sphere, as the loss sees it."
)


class MultiSimilarityEmbedder(_BaseEmbedder):
    _loss_class = MultiSimilarityLoss
    _loss_params: ClassVar[dict] = loss_params(
        MultiSimilarityLoss, ("alpha", "beta", "base", "epsilon"), samples_per_class=4
    )
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "beta": [Interval(Real, 0, None, closed="neither")],
        "base": [Interval(Real, -1, 1, closed="both")],
        "epsilon": [Interval(Real, 0, None, closed="left"), None],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }


document(
    MultiSimilarityEmbedder,
    """Embedding trained with the multi-similarity loss and its pair mining.

    Every anchor keeps the positive and negative pairs that break, or come within
    ``epsilon`` of breaking, "every positive more similar than every negative", and weighs
    them by a soft maximum of their cosine similarities: a pair counts by its own similarity
    and relative to the anchor's other pairs; see
    :class:`~sk_deepmetric.losses.MultiSimilarityLoss`. The defaults are the paper's.""",
    """    alpha : float, default=2.0
        Sharpness (> 0) of the soft maximum over an anchor's positive pairs.
    beta : float, default=50.0
        Sharpness (> 0) of the soft maximum over its negative pairs; large values push the
        most similar negatives hardest.
    base : float, default=0.5
        Cosine similarity in [-1, 1] that the weights are measured from: positives less
        similar and negatives more similar than it weigh most.
    epsilon : float or None, default=0.1
        Mining slack in cosine-similarity units (>= 0); None trains on every pair.
""",
    """    .. [1] X. Wang, X. Han, W. Huang, D. Dong, M. R. Scott, "Multi-Similarity Loss with
       General Pair Weighting for Deep Metric Learning", CVPR 2019.
""",
    doctest_example("MultiSimilarityEmbedder"),
    _COSINE_LOSS,
)


class SupConEmbedder(_BaseEmbedder):
    _loss_class = SupConLoss
    _loss_params: ClassVar[dict] = loss_params(SupConLoss, ("temperature",), samples_per_class=4)
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }


document(
    SupConEmbedder,
    """Embedding trained with the supervised contrastive (SupCon) loss.

    Each sample is classified among all the others of its batch by a softmax over cosine
    similarities divided by ``temperature``, with every sample of its class as a correct
    answer; see :class:`~sk_deepmetric.losses.SupConLoss`. Without mining, the softmax
    weighs hard negatives most. The paper trains on two augmented views of each image; here
    the positives are the batch's other samples of the class (give ``augment`` for views).""",
    """    temperature : float, default=0.1
        Divides the cosine similarities (> 0); lower values concentrate the gradient on the
        hardest pairs.
""",
    """    .. [1] P. Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020.
""",
    doctest_example("SupConEmbedder"),
    _COSINE_LOSS,
)
