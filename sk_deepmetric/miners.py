"""Label-aware mining: ``miner(embeddings, labels) -> index tensors`` into the batch.

A triplet miner looks at the pairwise distances of a batch, under ``torch.no_grad()``, and
returns three int64 index tensors of equal length, ``(anchor, positive, negative)``; a pair
miner (:class:`MultiSimilarityMiner`) returns four, ``(anchor, positive)`` of the positive
pairs and ``(anchor, negative)`` of the negative pairs, as pytorch-metric-learning's. Each
triplet miner also exists as a function of a precomputed distance matrix
(:func:`batch_hard_triplets`, :func:`semihard_triplets`, :func:`margin_triplets`), so that a
loss that already holds the distance matrix mines on it without computing it twice.

Labels may be any integers (negative, non-contiguous). A batch without a valid triplet (pair)
gives three (four) empty int64 tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._blocks import PairwiseBlocks, block_input, rows_per_block, rows_per_chunk
from ._mining import (
    Classes,
    batch_classes,
    batch_hard_block,
    block_label_masks,
    multi_similarity_pairs,
    positive_columns,
    semihard_block,
)
from ._validation import check_embeddings_and_labels, check_option, check_real
from .distances import DISTANCES

__all__ = [
    "TRIPLET_TYPES",
    "BatchHardMiner",
    "MultiSimilarityMiner",
    "SemiHardMiner",
    "TripletMarginMiner",
    "batch_hard_triplets",
    "label_masks",
    "margin_triplets",
    "semihard_triplets",
    "triplet_type_mask",
]

#: Names accepted by ``TripletMarginMiner(type_of_triplets=...)``.
TRIPLET_TYPES = ("all", "hard", "semihard", "easy")


def label_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Boolean ``(n, n)`` masks of positive pairs (same label, ``i != j``) and negative pairs."""
    same = labels.unsqueeze(1) == labels.unsqueeze(0)
    negative = ~same
    same.fill_diagonal_(False)
    return same, negative


def _empty_triplets(device: torch.device, n_indices: int = 3) -> tuple[Tensor, ...]:
    empty = torch.zeros(0, dtype=torch.long, device=device)
    return (empty, *(empty.clone() for _ in range(n_indices - 1)))


def _listed(mine):
    """A miner's block function, returning index tensors (anchor, positive, negative)."""

    def listed(d: Tensor, start: int, classes: Classes) -> tuple[Tensor, Tensor, Tensor]:
        mined = mine(d, start, classes)
        a, j = torch.nonzero(mined.valid, as_tuple=True)
        return a + start, mined.positive[a, j], mined.negative[a, j]

    return listed


def _mine_blocks(mine, rows, n: int, rows_per_block: int, labels: Tensor, *args) -> list:
    """Concatenate ``mine(block, start, classes, *args)`` over blocks of anchors.

    ``rows(start, stop)`` gives rows ``start:stop`` of the distance matrix, which ``mine`` may
    overwrite. Each output is a tuple of equal-length tensors; they are concatenated in order.
    """
    classes = batch_classes(labels)
    out = [
        mine(rows(start, min(n, start + rows_per_block)), start, classes, *args)
        for start in range(0, n, rows_per_block)
    ]
    return [torch.cat(parts) for parts in zip(*out, strict=True)]


def _check_dist_and_labels(dist: object, labels: object) -> None:
    """Raise unless ``dist`` is a square matrix of distances and ``labels`` one per row."""
    if not isinstance(dist, Tensor) or dist.ndim != 2 or dist.shape[0] != dist.shape[1]:
        shape = tuple(dist.shape) if isinstance(dist, Tensor) else type(dist).__name__
        raise ValueError(f"`dist` must be a square (n, n) torch.Tensor, got {shape}.")
    if not isinstance(labels, Tensor) or labels.shape != dist.shape[:1]:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(
            f"`labels` must be a torch.Tensor of shape ({dist.shape[0]},), one label per row "
            f"of `dist`, got {shape}."
        )


def _rows_of(dist: Tensor):
    """Copies of row blocks of a precomputed distance matrix (mining overwrites its block)."""
    return lambda start, stop: dist[start:stop].clone()


@torch.no_grad()
def batch_hard_triplets(dist: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per anchor, its farthest positive and its nearest negative (Hermans et al., 2017).

    Parameters
    ----------
    dist : Tensor of shape (n_samples, n_samples)
        Pairwise distances (smaller is closer).
    labels : Tensor of shape (n_samples,)

    Returns
    -------
    anchor, positive, negative : Tensor of shape (n_triplets,), int64
        One triplet per anchor that has at least one positive and one negative. Equal
        distances go to the lowest index.
    """
    _check_dist_and_labels(dist, labels)
    n = dist.shape[0]
    if n == 0:
        return _empty_triplets(dist.device)
    rows = rows_per_block(n, dist.element_size(), dist.device)
    return tuple(_mine_blocks(_listed(batch_hard_block), _rows_of(dist), n, rows, labels))


@torch.no_grad()
def semihard_triplets(dist: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Every anchor-positive pair with its nearest negative farther than the positive.

    FaceNet's rule (Schroff et al., 2015): for the pair ``(a, p)`` the negative is the nearest
    ``n`` with ``d(a, n) > d(a, p)``; when the margin has any negative in it, this one is in it.
    When no negative is farther than the positive, the farthest negative is taken instead, as
    TensorFlow's ``triplet_semihard_loss`` does.

    With ``k`` positives per anchor, each positive is compared with the anchor's row when ``k``
    is small. Otherwise, on a CPU in float32, each anchor's row is sorted once and each
    positive finds its negative by binary search; elsewhere the positives are sorted and each
    negative placed among them, which splits the negatives into ``k`` bins, and a per-bin
    minimum followed by a suffix minimum gives every positive its negative. ``O(n^2 log n)``
    time at most, no ``n^3`` tensor. Anchors are taken in blocks of rows.

    Parameters
    ----------
    dist : Tensor of shape (n_samples, n_samples)
        Pairwise distances (smaller is closer).
    labels : Tensor of shape (n_samples,)

    Returns
    -------
    anchor, positive, negative : Tensor of shape (n_triplets,), int64
        One triplet per ordered positive pair whose anchor has a negative, ordered by
        ``(anchor, positive)``. Equal distances go to the lowest index.
    """
    _check_dist_and_labels(dist, labels)
    n = dist.shape[0]
    if n == 0:
        return _empty_triplets(dist.device)
    rows = rows_per_block(n, dist.element_size(), dist.device)
    return tuple(_mine_blocks(_listed(semihard_block), _rows_of(dist), n, rows, labels))


def triplet_type_mask(d_ap: Tensor, d_an: Tensor, margin: float, type_of_triplets: str) -> Tensor:
    """Which triplets belong to ``type_of_triplets``, from broadcastable distances.

    ``"all"``: non-zero loss, ``d_ap - d_an + margin > 0``; ``"hard"``: ``d_an <= d_ap`` (a
    negative as near as the positive, a duplicate with another label, has the loss
    ``margin``: it is hard, as in pml); ``"semihard"``: ``d_ap < d_an < d_ap + margin``;
    ``"easy"``: ``d_an - d_ap > margin``.
    """
    check_option(type_of_triplets, TRIPLET_TYPES, "type_of_triplets")
    if type_of_triplets == "all":
        return d_ap - d_an + margin > 0
    if type_of_triplets == "hard":
        return d_an <= d_ap
    if type_of_triplets == "semihard":
        return (d_an > d_ap) & (d_ap - d_an + margin > 0)
    return d_an - d_ap > margin


@torch.no_grad()
def margin_triplets(
    dist: Tensor, labels: Tensor, margin: float = 0.2, type_of_triplets: str = "all"
) -> tuple[Tensor, Tensor, Tensor]:
    """Enumerate every triplet of the given type (see :func:`triplet_type_mask`).

    Anchors are taken in blocks whose (anchor, positive, negative) masks stay under ~32 MiB;
    the output itself holds ``3 x n_triplets`` int64 values and can be large (a batch of 4096
    in 10 classes has 6.2e9 triplets: 150 GB).

    Returns
    -------
    anchor, positive, negative : Tensor of shape (n_triplets,), int64
        Ordered by ``(anchor, positive, negative)``, as pytorch-metric-learning's.
    """
    _check_dist_and_labels(dist, labels)
    margin = check_real(margin, "margin", min_value=0.0)
    check_option(type_of_triplets, TRIPLET_TYPES, "type_of_triplets")
    n = dist.shape[0]
    if n == 0:
        return _empty_triplets(dist.device)
    return tuple(_mine_margin(_rows_of(dist), n, labels, margin, type_of_triplets))


def _mine_margin(rows, n: int, labels: Tensor, margin: float, type_of_triplets: str) -> list:
    width = max(1, int(torch.unique(labels, return_counts=True)[1].max()) - 1)
    block = rows_per_chunk(n * width, 1, 4)  # boolean (rows, positives, n) masks
    return _mine_blocks(_margin_block, rows, n, block, labels, margin, type_of_triplets)


def _margin_block(
    d: Tensor, start: int, classes: Classes, margin: float, type_of_triplets: str
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`margin_triplets` for the anchors of block ``d`` (rows ``start:``)."""
    stop = start + d.shape[0]
    cols, valid = positive_columns(classes, start, stop)
    negative = classes.klass[start:stop, None] != classes.klass
    pos_d = d.gather(1, cols)
    mask = triplet_type_mask(pos_d[:, :, None], d[:, None, :], margin, type_of_triplets)
    mask &= valid[:, :, None] & negative[:, None, :]
    a, j, neg = torch.nonzero(mask, as_tuple=True)
    return a + start, cols[a, j], neg


def _check_computable(blocks: PairwiseBlocks, embeddings: Tensor) -> None:
    """A miner cannot rank NaN or overflowing distances: a clear error instead."""
    if blocks.computable():
        return
    bad = torch.nonzero(~(blocks.sq_norms <= torch.finfo(blocks.u.dtype).max / 4)).squeeze(1)
    row = int(bad[0])
    if torch.isfinite(embeddings[row]).all():
        got = f"a squared norm of {float(blocks.sq_norms[row]):.3g} (overflowing distances)"
    else:
        got = "NaN or infinite values"
    others = f" and {bad.numel() - 1} other rows" if bad.numel() > 1 else ""
    raise ValueError(
        f"`embeddings` must be finite and of moderate norm for the distances to be computed "
        f"in {blocks.u.dtype}; got {got} in row {row}{others}."
    )


class _Miner:
    """Shared ``__call__``: check inputs, mine blocks of distances under no_grad."""

    _n_indices = 3  # index tensors returned: a triplet's three, or a pair miner's four

    def __call__(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, ...]:
        embeddings, labels = check_embeddings_and_labels(embeddings, labels)
        with torch.no_grad():
            u = block_input(embeddings.detach(), self.distance)
            blocks = PairwiseBlocks(u, self.distance)
            _check_computable(blocks, embeddings)
            if embeddings.shape[0] == 0:
                return _empty_triplets(embeddings.device, self._n_indices)
            return tuple(self._mine(blocks, labels))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"


class BatchHardMiner(_Miner):
    """Batch-hard mining: per anchor, the farthest positive and the nearest negative.

    Anchors without a positive or without a negative in the batch are skipped.

    Parameters
    ----------
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        ``"cosine"`` is the cosine distance ``1 - cos``.

    References
    ----------
    .. [1] A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
       Re-Identification", arXiv:1703.07737, 2017.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.miners import BatchHardMiner
    >>> x = torch.tensor([[0.0], [1.0], [3.0], [2.5]])
    >>> a, p, n = BatchHardMiner()(x, torch.tensor([0, 0, 1, 1]))
    >>> a.tolist(), p.tolist(), n.tolist()
    ([0, 1, 2, 3], [1, 0, 3, 2], [3, 3, 1, 1])
    """

    def __init__(self, distance: str = "euclidean") -> None:
        self.distance = check_option(distance, DISTANCES, "distance")

    def _mine(self, blocks: PairwiseBlocks, labels: Tensor) -> list[Tensor]:
        rows = blocks.rows_per_block()
        return _mine_blocks(_listed(batch_hard_block), blocks.rows, blocks.n, rows, labels)


class SemiHardMiner(_Miner):
    """FaceNet's semi-hard mining: every positive pair with its nearest farther negative.

    For each ordered anchor-positive pair ``(a, p)`` the negative is the nearest ``n`` with
    ``d(a, p) < d(a, n)``, which lies inside the margin (``d(a, n) < d(a, p) + margin``)
    whenever any negative does. When no negative is farther than the positive, the farthest
    negative is used, as TensorFlow's ``triplet_semihard_loss`` does. Anchors without a negative
    are skipped. Runs in ``O(n^2 log n)`` time and ``O(n^2)`` memory (one sort per anchor, one
    binary search per positive).

    Parameters
    ----------
    margin : float, default=0.2
        FaceNet's margin alpha, in distance units, ``>= 0``. The selection rule above does not
        depend on it (the nearest farther negative is the semi-hard one when there is one); it is
        stored for the loss that uses the triplets and for symmetry with
        :class:`TripletMarginMiner`.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"

    References
    ----------
    .. [1] F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet: A Unified Embedding for Face
       Recognition and Clustering", CVPR 2015.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.miners import SemiHardMiner
    >>> x = torch.tensor([[0.0], [1.0], [1.5], [3.0]])
    >>> a, p, n = SemiHardMiner()(x, torch.tensor([0, 0, 1, 1]))
    >>> a.tolist(), p.tolist(), n.tolist()
    ([0, 1, 2, 3], [1, 0, 3, 2], [2, 3, 0, 1])
    """

    def __init__(self, margin: float = 0.2, distance: str = "euclidean") -> None:
        self.margin = check_real(margin, "margin", min_value=0.0)
        self.distance = check_option(distance, DISTANCES, "distance")

    def _mine(self, blocks: PairwiseBlocks, labels: Tensor) -> list[Tensor]:
        rows = blocks.rows_per_block()
        return _mine_blocks(_listed(semihard_block), blocks.rows, blocks.n, rows, labels)


class TripletMarginMiner(_Miner):
    """Every triplet of a type defined by the margin (pytorch-metric-learning's miner).

    With ``v = d(a, p) - d(a, n) + margin``:

    - ``"all"``: every triplet with a non-zero loss, ``v > 0``;
    - ``"hard"``: the negative is no farther than the positive, ``d(a, n) <= d(a, p)``;
    - ``"semihard"``: ``d(a, p) < d(a, n) < d(a, p) + margin`` (*all* such negatives, unlike
      :class:`SemiHardMiner`'s one per pair);
    - ``"easy"``: ``d(a, n) - d(a, p) > margin`` (zero loss).

    Temporaries stay under ~32 MiB, but the result lists every triplet: ``3 x n_triplets``
    int64 values, which at large batches with few classes is huge. The triplet losses process
    ``"all"`` without listing triplets.

    Parameters
    ----------
    margin : float, default=0.2
        In distance units, ``>= 0``.
    type_of_triplets : {"all", "hard", "semihard", "easy"}, default="all"
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"

    References
    ----------
    .. [1] F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet: A Unified Embedding for Face
       Recognition and Clustering", CVPR 2015.
    .. [2] K. Musgrave, S. Belongie, S.-N. Lim, "PyTorch Metric Learning", arXiv:2008.09164, 2020.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.miners import TripletMarginMiner
    >>> x = torch.tensor([[0.0], [1.0], [1.1], [3.0]])
    >>> a, p, n = TripletMarginMiner(margin=0.2, type_of_triplets="hard")(
    ...     x, torch.tensor([0, 0, 1, 1]))
    >>> a.tolist(), p.tolist(), n.tolist()
    ([1, 2, 2], [0, 3, 3], [2, 0, 1])
    """

    def __init__(
        self, margin: float = 0.2, type_of_triplets: str = "all", distance: str = "euclidean"
    ) -> None:
        self.margin = check_real(margin, "margin", min_value=0.0)
        self.type_of_triplets = check_option(type_of_triplets, TRIPLET_TYPES, "type_of_triplets")
        self.distance = check_option(distance, DISTANCES, "distance")

    def _mine(self, blocks: PairwiseBlocks, labels: Tensor) -> list[Tensor]:
        return _mine_margin(blocks.rows, blocks.n, labels, self.margin, self.type_of_triplets)


class MultiSimilarityMiner(_Miner):
    """Multi-similarity pair mining (Wang et al., 2019) on cosine similarities.

    With ``S_ij`` the cosine similarity of samples ``i`` and ``j``, anchor ``i`` keeps

    - a negative pair ``(i, j)`` when ``S_ij > min_{k positive} S_ik - epsilon``;
    - a positive pair ``(i, j)`` when ``S_ij < max_{k negative} S_ik + epsilon``;

    the pairs that break, or come within ``epsilon`` of breaking, the ranking "every positive
    more similar than every negative" (the paper's eqs. 7 and 8). An anchor without a positive,
    or without a negative, keeps no pair. Memory is ``O(n)`` per block of anchor rows.
    :class:`~sk_deepmetric.losses.MultiSimilarityLoss` mines the same pairs itself (its own
    ``epsilon``); this miner is for losses or analyses of one's own.

    Parameters
    ----------
    epsilon : float, default=0.1
        The slack of both rules, in cosine-similarity units, ``>= 0`` (the paper's 0.1).

    Returns
    -------
    anchor_positive, positive, anchor_negative, negative : Tensor, int64
        The kept positive pairs ``(anchor_positive[k], positive[k])`` and negative pairs
        ``(anchor_negative[k], negative[k])``, each ordered by ``(anchor, other)``, as
        pytorch-metric-learning's ``MultiSimilarityMiner`` returns them (up to order).

    References
    ----------
    .. [1] X. Wang, X. Han, W. Huang, D. Dong, M. R. Scott, "Multi-Similarity Loss with General
       Pair Weighting for Deep Metric Learning", CVPR 2019. https://arxiv.org/abs/1904.06627

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.miners import MultiSimilarityMiner
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, 0.6], [1.0, 0.1]])
    >>> a1, p, a2, n = MultiSimilarityMiner(epsilon=0.1)(x, torch.tensor([0, 0, 1, 1]))
    >>> list(zip(a1.tolist(), p.tolist())), list(zip(a2.tolist(), n.tolist()))
    ([(0, 1), (1, 0), (2, 3), (3, 2)], [(0, 2), (0, 3), (1, 2), (1, 3), (2, 0), (3, 0)])
    """

    distance = "cosine"
    _n_indices = 4

    def __init__(self, epsilon: float = 0.1) -> None:
        self.epsilon = check_real(epsilon, "epsilon", min_value=0.0)

    def _mine(self, blocks: PairwiseBlocks, labels: Tensor) -> list[Tensor]:
        rows = rows_per_chunk(blocks.n, blocks.u.element_size(), 4)
        found = []
        for start in range(0, blocks.n, rows):
            stop = min(blocks.n, start + rows)
            s = blocks.u[start:stop] @ blocks.u.T
            positive, negative = block_label_masks(labels, start, stop)
            positive, negative = multi_similarity_pairs(s, positive, negative, self.epsilon)
            a1, p = torch.nonzero(positive, as_tuple=True)
            a2, n = torch.nonzero(negative, as_tuple=True)
            found.append((a1 + start, p, a2 + start, n))
        return [torch.cat(parts) for parts in zip(*found, strict=True)]
