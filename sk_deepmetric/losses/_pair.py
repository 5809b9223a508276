"""Tuple-based losses: contrastive, triplet, N-pairs and angular.

Each is an ``nn.Module`` called as ``loss(embeddings, labels) -> scalar tensor``. The
contrastive and triplet losses reduce the distance matrix block by block of anchors (rows):
each block is mined and turned into its share of the value and of the gradient, which is
passed on as weights on the block's distances and accumulated at once as a matrix product
(:class:`BlockwiseLoss`). Neither the ``(n, n)`` matrix nor any triplet list is held, and the
backward pass only scales the gradient computed alongside the value. Where a loss sums over
every (anchor, positive, negative) triplet or every (positive pair, negative) of a batch, the
value is counted with sorted distances (hinge) or accumulated (smooth), never listed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from .._blocks import PairwiseBlocks, PairwiseGradient, rows_per_chunk
from .._devices import without_autocast
from .._mining import (
    active_triplet_weights,
    batch_classes,
    batch_hard_block,
    fill_own_class,
    positive_columns,
    semihard_block,
)
from .._validation import (
    check_embeddings_and_labels,
    check_option,
    check_real,
    did_you_mean,
)
from ..distances import DISTANCES, pairwise_distances
from ..miners import label_masks, triplet_type_mask
from ._blockwise import (
    blocks_of,
    blockwise_loss,
    check_references,
    mean_nonzero,
    nan_loss,
    no_loss,
    zero_like_loss,
)

__all__ = ["AngularLoss", "ContrastiveLoss", "NPairsLoss", "TripletMarginLoss"]

#: Names accepted by ``TripletMarginLoss(miner=...)`` (a callable is accepted too).
TRIPLET_MINERS = ("batch_hard", "semihard", "all", "hard", "easy", None)

#: Names accepted by ``NPairsLoss(distance=...)``.
NPAIRS_DISTANCES = ("dot", *DISTANCES)


class _LinearizedValue(torch.autograd.Function):
    """``value`` (computed without autograd), whose gradient wrt ``matrix`` is ``weights``.

    First-order gradients are exact; the weights are constants, so there is no double backward.
    """

    @staticmethod
    def forward(ctx, matrix: Tensor, value: Tensor, weights: Tensor) -> Tensor:
        ctx.save_for_backward(weights)
        return value.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (weights,) = ctx.saved_tensors
        return grad_output * weights, None, None


def _check_margin(value: object, name: str) -> float:
    return check_real(value, name, min_value=0.0)


class ContrastiveLoss(nn.Module):
    """Contrastive loss over every pair of the batch (Hadsell, Chopra, LeCun, 2006).

    With ``d`` the pair's distance::

        loss = mean_{positive pairs, > 0} relu(d - pos_margin)
             + mean_{negative pairs, > 0} relu(neg_margin - d)

    Each mean runs over the ordered pairs ``(i, j)``, ``i != j``, with a non-zero term (zero
    when there is none), as pytorch-metric-learning's ``ContrastiveLoss`` with its default
    ``AvgNonZeroReducer``. The paper's form halves and squares the terms
    (``d^2 / 2`` and ``max(0, m - d)^2 / 2``) and averages over all pairs; this one is the
    hinge on distances that the library and pml use.

    Parameters
    ----------
    pos_margin : float, default=0.0
        Positive pairs closer than this cost nothing, in distance units, ``>= 0``.
    neg_margin : float, default=1.0
        Negative pairs farther than this cost nothing (the paper's ``m``), ``>= 0``.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        ``"cosine"`` is ``1 - cos``: the margins are on the cosine distance, i.e. pml's
        ``CosineSimilarity`` with ``pos_margin = 1 - pos_margin``, ``neg_margin = 1 - neg_margin``.

    References
    ----------
    .. [1] R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality Reduction by Learning an Invariant
       Mapping", CVPR 2006.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import ContrastiveLoss
    >>> x = torch.tensor([[0.0, 0.0], [0.0, 0.5], [0.6, 0.0]])
    >>> ContrastiveLoss()(x, torch.tensor([0, 0, 1]))
    tensor(0.8095)
    """

    def __init__(
        self, pos_margin: float = 0.0, neg_margin: float = 1.0, distance: str = "euclidean"
    ) -> None:
        super().__init__()
        self.pos_margin = _check_margin(pos_margin, "pos_margin")
        self.neg_margin = _check_margin(neg_margin, "neg_margin")
        self.distance = check_option(distance, DISTANCES, "distance")

    @without_autocast
    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        """Loss of a batch, its anchors meeting the batch and, if given, the references.

        Parameters
        ----------
        embeddings : Tensor of shape (n_samples, n_components)
        labels : Tensor of shape (n_samples,)
            Integer class labels.
        ref_embeddings : Tensor of shape (n_references, n_components), default=None
            Extra samples that every anchor of the batch also meets as a positive or a
            negative, e.g. a :class:`CrossBatchMemory`'s queue. They are never anchors and
            get no gradient. None: the batch alone.
        ref_labels : Tensor of shape (n_references,), default=None
            Their labels; given with ``ref_embeddings``.

        Returns
        -------
        Tensor of shape ()
        """
        embeddings, labels = check_embeddings_and_labels(embeddings, labels)
        reference, labels = check_references(embeddings, labels, ref_embeddings, ref_labels)
        reduce = partial(
            _contrastive, labels=labels, pos_margin=self.pos_margin, neg_margin=self.neg_margin
        )
        return blockwise_loss(embeddings, self.distance, reduce, reference)

    def extra_repr(self) -> str:
        return (
            f"pos_margin={self.pos_margin}, neg_margin={self.neg_margin}, "
            f"distance={self.distance!r}"
        )


def _contrastive(
    blocks: PairwiseBlocks, need_grad: bool, labels: Tensor, pos_margin: float, neg_margin: float
) -> tuple[Tensor, Tensor | None]:
    """:class:`ContrastiveLoss`, block by block: the two means have their own gradients."""
    classes = batch_classes(labels)
    pos_losses, neg_total, n_neg = [], 0.0, 0
    if need_grad:
        pos_grad, neg_grad = PairwiseGradient(blocks), PairwiseGradient(blocks)
    for start, stop in blocks_of(blocks):
        d = blocks.rows(start, stop)
        cols, valid = positive_columns(classes, start, stop)
        pos_d = d.gather(1, cols)
        pos_loss = F.relu(pos_d - pos_margin).masked_fill_(~valid, 0.0)
        pos_losses.append(pos_loss[valid])
        # the anchor's own class at inf: no negative term
        neg_loss = F.relu(neg_margin - fill_own_class(d, start, cols, torch.inf))
        active = neg_loss > 0
        n_neg += int(active.sum())
        neg_total += float(neg_loss.sum(dtype=torch.float64))
        if need_grad:
            pos_grad.add_columns(start, cols, (pos_loss > 0).to(d.dtype), pos_d)
            neg_grad.add_block(start, active.to(d.dtype).neg_(), d)
    pos_loss = torch.cat(pos_losses)
    n_pos = int((pos_loss > 0).sum())
    pos_value = pos_loss.sum() / n_pos if n_pos else pos_loss.new_zeros(())
    value = pos_value + (neg_total / n_neg if n_neg else 0.0)
    if not need_grad:
        return value, None
    return value, pos_grad.result(1.0 / max(n_pos, 1)) + neg_grad.result(1.0 / max(n_neg, 1))


def _mined_triplets(
    blocks: PairwiseBlocks,
    need_grad: bool,
    labels: Tensor,
    mine: Callable,
    margin: float,
    smooth: bool,
) -> tuple[Tensor, Tensor | None]:
    """Mean over the triplets that ``mine`` picks, block by block, with a positive loss.

    ``mine(block, start, classes)`` is a miner's block function
    (:func:`~sk_deepmetric.miners.semihard_block`, ...): a
    :class:`~sk_deepmetric.miners.MinedBlock` of its anchors' triplets and their distances.
    """
    classes = batch_classes(labels)
    grad = PairwiseGradient(blocks) if need_grad else None
    losses = []
    for start, stop in blocks_of(blocks):
        mined = mine(blocks.rows(start, stop), start, classes)
        violation = mined.d_ap - mined.d_an + margin
        loss = F.softplus(violation) if smooth else F.relu(violation)
        losses.append(loss[mined.valid])
        if need_grad:
            w = torch.sigmoid(violation) if smooth else torch.ones_like(violation)
            w = w.masked_fill_(~mined.valid | (loss <= 0), 0.0)
            cols = torch.cat([mined.positive, mined.negative], dim=1)
            distances = torch.cat([mined.d_ap, mined.d_an], dim=1)
            grad.add_columns(start, cols, torch.cat([w, -w], dim=1), distances)
    loss = torch.cat(losses)
    active = loss > 0
    n_active = int(active.sum())
    value = torch.where(active, loss, 0.0).sum() / max(n_active, 1)
    return value, grad.result(1.0 / max(n_active, 1)) if need_grad else None


def _batch_all_hinge(
    blocks: PairwiseBlocks, need_grad: bool, labels: Tensor, margin: float, shift: float | None
) -> tuple[Tensor, Tensor | None]:
    """Mean of ``d_ap - d_an + margin`` over all triplets with ``d_an < d_ap + shift``
    (``shift=None``: ``d_an <= d_ap``, the hard triplets).

    No triplet is listed: per block of anchors, ``_mining.active_triplet_weights`` counts each
    distance's active triplets (a positive's with a plus sign, a negative's with a
    minus sign). These counts are the gradient weights of the distances, and the value is
    ``sum(weights * dist) / count + margin``. ``O(n^2 log n)`` time.
    """
    classes = batch_classes(labels)
    grad = PairwiseGradient(blocks) if need_grad else None
    total, count = 0.0, 0
    for start, stop in blocks_of(blocks):
        d = blocks.rows(start, stop)
        cols, valid = positive_columns(classes, start, stop)
        w = active_triplet_weights(d, start, cols, valid, shift)
        count += int(w.gather(1, cols).sum(dtype=torch.float64))
        total += float((w * d).sum(dtype=torch.float64))
        if need_grad:
            grad.add_block(start, w, d)
    value = torch.tensor(total / count + margin if count else 0.0, dtype=blocks.u.dtype)
    return value.to(blocks.u.device), grad.result(1.0 / max(count, 1)) if need_grad else None


def _batch_all_smooth(
    blocks: PairwiseBlocks, need_grad: bool, labels: Tensor, margin: float, rule: str | None
) -> tuple[Tensor, Tensor | None]:
    """Mean of ``softplus(d_ap - d_an + margin)`` over the triplets selected by ``rule``.

    Each block of anchors takes its positives one at a time against all its negatives, adding
    the value, the count and the gradient weights (``sigmoid`` of the violation).
    """
    classes = batch_classes(labels)
    grad = PairwiseGradient(blocks) if need_grad else None
    total = torch.zeros((), dtype=torch.float64, device=blocks.u.device)
    count = 0
    for start, stop in blocks_of(blocks):
        d = blocks.rows(start, stop)
        cols, valid = positive_columns(classes, start, stop)
        negative = classes.klass[start:stop, None] != classes.klass
        pos_d = d.gather(1, cols)
        weights = torch.zeros_like(d)
        for j in range(cols.shape[1]):
            ap = pos_d[:, j : j + 1]
            violation = ap - d + margin
            selected = negative & valid[:, j : j + 1]
            if rule is not None:
                selected &= triplet_type_mask(ap, d, margin, rule)
            losses = F.softplus(violation)
            active = selected & (losses > 0)
            total += torch.where(active, losses, 0.0).sum(dtype=torch.float64)
            count += int(active.sum())
            w = torch.where(active, torch.sigmoid(violation), 0.0)
            weights -= w
            weights.scatter_add_(1, cols[:, j : j + 1], w.sum(dim=1, keepdim=True))
        if need_grad:
            grad.add_block(start, weights, d)
    value = (total / max(count, 1)).to(blocks.u.dtype)
    return value, grad.result(1.0 / max(count, 1)) if need_grad else None


class TripletMarginLoss(nn.Module):
    """Triplet margin loss with online mining (Schroff et al., 2015; Hermans et al., 2017).

    For a triplet ``(a, p, n)`` the loss is ``relu(d(a, p) - d(a, n) + margin)`` (``softplus``
    of the same with ``smooth=True``), averaged over the mined triplets whose loss is positive,
    as pytorch-metric-learning's ``TripletMarginLoss`` with its ``AvgNonZeroReducer``. A batch
    without such a triplet gives a zero loss with zero gradients.

    Mining (``miner``):

    - ``"semihard"``: FaceNet's rule, every positive pair with its nearest negative farther than
      the positive (fallback: the farthest negative), see
      :class:`~sk_deepmetric.miners.SemiHardMiner`.
      This is one negative per pair, not pml's ``TripletMarginMiner("semihard")``, which keeps
      every negative inside the margin.
    - ``"batch_hard"``: per anchor the farthest positive and the nearest negative.
    - ``"all"``: every triplet with a positive loss (``d_ap - d_an + margin > 0``);
      ``"hard"``: ``d_an <= d_ap``; ``"easy"``: ``d_an - d_ap > margin`` (zero hinge loss); as
      pml's ``TripletMarginMiner``.
    - ``None``: every triplet (the same as ``"all"`` unless ``smooth``).
    - a callable ``miner(embeddings, labels) -> (anchor, positive, negative)``.

    ``"all"``, ``"hard"``, ``"easy"`` and ``None`` never list triplets (a batch of 4096 in 10
    classes has 6.2e9): without ``smooth`` the loss is counted with sorted distances in
    ``O(n^2 log n)`` time; with ``smooth`` the (positive pair, negative)
    grid is swept in chunks of ~32 MiB, ``O(n^3)`` time but ``O(n^2)`` memory.

    Parameters
    ----------
    margin : float, default=0.2
        FaceNet's alpha, in distance units, ``>= 0``.
    miner : str, callable or None, default="semihard"
        One of ``"semihard"``, ``"batch_hard"``, ``"all"``, ``"hard"``, ``"easy"``, ``None`` or
        a callable, see above.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        ``"cosine"`` is ``1 - cos``; a margin on it is a margin on the cosine similarity, as
        pml's ``CosineSimilarity``.
    smooth : bool, default=False
        Use ``softplus`` instead of the hinge; with ``margin=0`` this is Hermans et al.'s soft
        margin.

    References
    ----------
    .. [1] F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet: A Unified Embedding for Face
       Recognition and Clustering", CVPR 2015.
    .. [2] A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
       Re-Identification", arXiv:1703.07737, 2017.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import TripletMarginLoss
    >>> x = torch.tensor([[0.0], [1.0], [1.1], [3.0]])
    >>> TripletMarginLoss(margin=0.2, miner="batch_hard")(x, torch.tensor([0, 0, 1, 1]))
    tensor(0.8250)
    """

    def __init__(
        self,
        margin: float = 0.2,
        miner: str | Callable | None = "semihard",
        distance: str = "euclidean",
        smooth: bool = False,
    ) -> None:
        super().__init__()
        self.margin = _check_margin(margin, "margin")
        if not callable(miner) and miner not in TRIPLET_MINERS:
            names = [m for m in TRIPLET_MINERS if m is not None]
            raise ValueError(
                f"`miner` must be one of {list(TRIPLET_MINERS)} or a callable "
                f"miner(embeddings, labels) -> (anchor, positive, negative), got {miner!r}."
                f"{did_you_mean(miner, names)}"
            )
        self.miner = miner
        self.distance = check_option(distance, DISTANCES, "distance")
        if not isinstance(smooth, bool):
            raise ValueError(f"`smooth` must be a bool, got {smooth!r}.")
        self.smooth = smooth

    @without_autocast
    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        """Loss of a batch, its anchors meeting the batch and, if given, the references.

        Parameters
        ----------
        embeddings : Tensor of shape (n_samples, n_components)
        labels : Tensor of shape (n_samples,)
            Integer class labels.
        ref_embeddings : Tensor of shape (n_references, n_components), default=None
            Extra samples that every anchor of the batch also meets as a positive or a
            negative, e.g. a :class:`CrossBatchMemory`'s queue (not with a callable miner,
            which mines the batch alone). They are never anchors and
            get no gradient. None: the batch alone.
        ref_labels : Tensor of shape (n_references,), default=None
            Their labels; given with ``ref_embeddings``.

        Returns
        -------
        Tensor of shape ()
        """
        embeddings, labels = check_embeddings_and_labels(embeddings, labels)
        reference, labels = check_references(embeddings, labels, ref_embeddings, ref_labels)
        if callable(self.miner):
            if reference is not None:
                raise ValueError(
                    "`ref_embeddings` need one of the built-in miners "
                    f"{[m for m in TRIPLET_MINERS if m]} or None: a callable `miner` mines "
                    "within the batch."
                )
            return self._loss_of_given_triplets(embeddings, labels)
        margin, miner = self.margin, self.miner
        if miner in ("semihard", "batch_hard"):
            mine = semihard_block if miner == "semihard" else batch_hard_block
            reduce = partial(
                _mined_triplets, labels=labels, mine=mine, margin=margin, smooth=self.smooth
            )
        elif self.smooth:
            reduce = partial(_batch_all_smooth, labels=labels, margin=margin, rule=miner)
        elif miner == "easy":  # the hinge is zero on easy triplets
            reduce = no_loss
        else:
            shift = None if miner == "hard" else margin
            reduce = partial(_batch_all_hinge, labels=labels, margin=margin, shift=shift)
        return blockwise_loss(embeddings, self.distance, reduce, reference)

    def _loss_of_given_triplets(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The loss over the triplets of a callable miner, on the whole distance matrix."""
        if not torch.isfinite(embeddings).all():
            return nan_loss(embeddings)
        anchor, positive, negative = _checked_triplets(self.miner(embeddings, labels), len(labels))
        dist = pairwise_distances(embeddings, distance=self.distance)
        violation = dist[anchor, positive] - dist[anchor, negative] + self.margin
        losses = F.softplus(violation) if self.smooth else F.relu(violation)
        return mean_nonzero(losses, torch.ones_like(losses, dtype=torch.bool))

    def extra_repr(self) -> str:
        return (
            f"margin={self.margin}, miner={self.miner!r}, distance={self.distance!r}, "
            f"smooth={self.smooth}"
        )


def _pairs_per_class(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Each class's samples paired in batch order, 1st with 2nd, 3rd with 4th, ...

    Returns the anchor (first) and positive (second) index of every pair; a class's odd
    sample out, and a class with one sample, are in none.
    """
    order = torch.argsort(labels, stable=True)
    sorted_labels = labels[order]
    start = torch.searchsorted(sorted_labels, sorted_labels)  # where each one's class starts
    end = torch.searchsorted(sorted_labels, sorted_labels, right=True)
    rank = torch.arange(labels.numel(), device=labels.device) - start
    at = torch.nonzero((rank % 2 == 0) & (start + rank + 1 < end)).squeeze(1)
    return order[at], order[at + 1]


class NPairsLoss(nn.Module):
    """Multi-class N-pair loss (Sohn, 2016).

    From the ``N`` pairs ``(f_i, f_i+)`` of a batch::

        loss = (1/N) sum_i log(1 + sum_{j: y_j != y_i} exp(s(f_i, f_j+) - s(f_i, f_i+)))
             + l2_reg * (mean_i |f_i|^2 + mean_i |f_i+|^2) / 4

    where ``s`` is the inner product (``distance="dot"``, Sohn's form) or minus a distance
    (``"euclidean"``, ``"squared_euclidean"``, ``"cosine"``): the source articles' form
    ``log(1 + sum_j exp(Dp_i - Dn_ij))``. The regulariser is the one of TensorFlow's
    ``npairs_loss``. Each class's samples are paired in batch order (1st with 2nd, 3rd with
    4th, ...; an odd one out is left over), and the negatives of a pair are the positives of
    the other classes' pairs. With two samples of each class, as in the paper's batches, that
    is Sohn's loss over ``N`` classes, and with ``distance="cosine"`` and ``l2_reg=0``
    pytorch-metric-learning's default ``NPairsLoss`` (with ``"dot"``, pml's with
    ``DotProductSimilarity(normalize_embeddings=False)``). With more samples of a class, pml
    keeps the first two and ignores the rest; here every pair counts. That matters when a
    batch holds few classes: with 5 classes in a batch of 128, the first two of each class
    are 10 of the 128 samples.
    A batch with pairs of fewer than two classes gives a zero loss.

    Parameters
    ----------
    l2_reg : float, default=0.002
        Weight of the penalty on squared embedding norms (``>= 0``); the inner-product form is
        unbounded without it.
    distance : {"dot", "euclidean", "squared_euclidean", "cosine"}, default="dot"

    References
    ----------
    .. [1] K. Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss Objective",
       NeurIPS 2016.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import NPairsLoss
    >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    >>> NPairsLoss(l2_reg=0.0)(x, torch.tensor([0, 0, 1, 1]))
    tensor(0.4032)
    """

    def __init__(self, l2_reg: float = 0.002, distance: str = "dot") -> None:
        super().__init__()
        self.l2_reg = check_real(l2_reg, "l2_reg", min_value=0.0)
        self.distance = check_option(distance, NPAIRS_DISTANCES, "distance")

    @without_autocast
    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Loss of a batch: ``embeddings`` (n_samples, n_components), ``labels`` (n_samples,)."""
        embeddings, labels = check_embeddings_and_labels(embeddings, labels)
        if not torch.isfinite(embeddings).all():  # also rows that are in no pair
            return nan_loss(embeddings)
        anchor_idx, positive_idx = _pairs_per_class(labels)
        pair_labels = labels[anchor_idx]
        if pair_labels.unique().numel() < 2:  # no negative: nothing to learn, not the penalty
            return zero_like_loss(embeddings)
        anchors, positives = embeddings[anchor_idx], embeddings[positive_idx]
        if self.distance == "dot":
            logits = anchors @ positives.T
        else:
            logits = -pairwise_distances(anchors, positives, self.distance)
        # the other pairs of one's own class are neither positive nor negative
        own = torch.eye(pair_labels.numel(), dtype=torch.bool, device=labels.device)
        other_class = pair_labels[:, None] != pair_labels[None, :]
        logits = logits.masked_fill(~(own | other_class), -math.inf)
        target = torch.arange(anchors.shape[0], device=embeddings.device)
        loss = F.cross_entropy(logits, target)
        if self.l2_reg:
            norms = (anchors**2).sum(dim=1).mean() + (positives**2).sum(dim=1).mean()
            loss = loss + 0.25 * self.l2_reg * norms
        return loss

    def extra_repr(self) -> str:
        return f"l2_reg={self.l2_reg}, distance={self.distance!r}"


class AngularLoss(nn.Module):
    """Angular loss, N-pair form (Wang et al., 2017).

    On L2-normalised embeddings ``x`` (anchors, positives *and* negatives), with
    ``t = tan(alpha)``::

        f(a, p, n) = 4 t^2 (x_a + x_p).x_n - 2 (1 + t^2) x_a.x_p
        loss = mean_{(a, p)} log(1 + sum_{n: y_n != y_a} exp(f(a, p, n)))

    over every ordered positive pair ``(a, p)``, every sample of another class as a negative.
    ``f`` is symmetric in ``a`` and ``p``, so with two samples per class this is the paper's
    N-pair angular loss. pytorch-metric-learning's ``AngularLoss`` normalises anchors and
    positives but not the negatives; with unit-norm inputs the two agree.

    The ``(pairs, negatives)`` grid is swept in chunks of ~32 MiB and the gradient is passed on
    through the ``(n, n)`` matrix of cosines, so memory is ``O(n^2)``.

    Parameters
    ----------
    alpha : float, default=40.0
        The angle bound at the negative, in degrees, in ``(0, 90)``; the paper's best values
        are 36 to 55.

    References
    ----------
    .. [1] J. Wang, F. Zhou, S. Wen, X. Liu, Y. Lin, "Deep Metric Learning with Angular Loss",
       ICCV 2017.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import AngularLoss
    >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    >>> AngularLoss(alpha=45.0)(x, torch.tensor([0, 0, 1, 1]))
    tensor(0.1872)
    """

    def __init__(self, alpha: float = 40.0) -> None:
        super().__init__()
        self.alpha = check_real(alpha, "alpha", min_value=0.0, max_value=90.0, closed="neither")

    @without_autocast
    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Loss of a batch: ``embeddings`` (n_samples, n_components), ``labels`` (n_samples,)."""
        embeddings, labels = check_embeddings_and_labels(embeddings, labels)
        if not torch.isfinite(embeddings).all():
            return nan_loss(embeddings)
        positive, negative = label_masks(labels)
        if not positive.any() or not negative.any():
            return zero_like_loss(embeddings)
        normed = F.normalize(embeddings, dim=1)
        cosines = normed @ normed.T
        value, weights = self._value_and_weights(cosines.detach(), positive, negative)
        return _LinearizedValue.apply(cosines, value, weights)

    def _value_and_weights(
        self, cosines: Tensor, positive: Tensor, negative: Tensor
    ) -> tuple[Tensor, Tensor]:
        tan_sq = math.tan(math.radians(self.alpha)) ** 2
        a_idx, p_idx = torch.nonzero(positive, as_tuple=True)
        weights = torch.zeros_like(cosines)
        total = torch.zeros((), dtype=torch.float64, device=cosines.device)
        rows = rows_per_chunk(cosines.shape[0], 8, 6)
        for start in range(0, a_idx.shape[0], rows):
            a, p = a_idx[start : start + rows], p_idx[start : start + rows]
            f = 4 * tan_sq * (cosines[a] + cosines[p])
            f = f - 2 * (1 + tan_sq) * cosines[a, p].unsqueeze(1)
            f = f.masked_fill(~negative[a], -torch.inf)
            # log(1 + sum exp f): a zero logit stands for the "1"
            lse = torch.logsumexp(F.pad(f, (0, 1)), dim=1)
            total += lse.sum(dtype=torch.float64)
            w = torch.exp(f - lse.unsqueeze(1)) * (4 * tan_sq)
            weights.index_add_(0, a, w)
            weights.index_add_(0, p, w)
            pair_weight = w.sum(dim=1) * (-2 * (1 + tan_sq) / (4 * tan_sq))
            weights.index_put_((a, p), pair_weight, accumulate=True)
        n_pairs = a_idx.shape[0]
        return (total / n_pairs).to(cosines.dtype), weights / n_pairs

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


def _checked_triplets(mined: object, n: int) -> tuple[Tensor, Tensor, Tensor]:
    """A callable miner's ``(anchor, positive, negative)``: three 1-D integer tensors of one
    length, indices of the ``n`` samples of the batch; else a ValueError that says so."""
    if (
        isinstance(mined, (tuple, list))
        and len(mined) == 3
        and all(isinstance(t, Tensor) and t.ndim == 1 and not t.is_floating_point() for t in mined)
        and len({t.shape[0] for t in mined}) == 1
    ):
        if mined[0].numel() == 0:
            return tuple(t.long() for t in mined)
        low, high = torch.aminmax(torch.stack(mined))  # one reduction: one sync on a GPU
        if int(low) >= 0 and int(high) < n:
            return tuple(t.long() for t in mined)
        raise ValueError(f"The `miner` callable returned indices outside the batch of {n}.")
    given = type(mined).__name__
    if isinstance(mined, (tuple, list)):
        given += " of " + ", ".join(
            f"Tensor{tuple(t.shape)} {t.dtype}" if isinstance(t, Tensor) else type(t).__name__
            for t in mined
        )
    raise ValueError(
        "The `miner` callable must return (anchor, positive, negative): three 1-D integer "
        f"tensors of one length, indices into the batch; got {given}."
    )
