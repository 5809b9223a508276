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

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import check_embeddings_and_labels, check_option, check_real
from .distances import DISTANCES, _block_input, _PairwiseBlocks, _rows_per_block, _rows_per_chunk

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


def _block_label_masks(labels: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """Rows ``start:stop`` of :func:`label_masks`: ``(stop - start, n)`` positive and negative."""
    same = labels[start:stop, None] == labels[None, :]
    negative = ~same
    same.diagonal(start).fill_(False)
    return same, negative


def _multi_similarity_pairs(
    s: Tensor, positive: Tensor, negative: Tensor, epsilon: float
) -> tuple[Tensor, Tensor]:
    """The pairs of a block of anchors that multi-similarity mining keeps (Wang et al., 2019).

    ``s``: the anchors' similarities (rows) to the batch; ``positive``, ``negative``: their
    pair masks. A negative is kept when it is more similar than the anchor's least similar
    positive less ``epsilon``, a positive when it is less similar than the most similar
    negative plus ``epsilon``; an anchor without a positive (or a negative) keeps nothing.
    """
    least_positive = torch.where(positive, s, torch.inf).amin(dim=1, keepdim=True)
    most_negative = torch.where(negative, s, -torch.inf).amax(dim=1, keepdim=True)
    return positive & (s < most_negative + epsilon), negative & (s > least_positive - epsilon)


class _Classes(NamedTuple):
    """The classes of a batch, from which each block of anchors finds its positives.

    ``members`` (n_classes, max_class_size): each class's sample indices in increasing order,
    padded with -1; ``klass``: each sample's class number; ``rank``: its place in its class's
    row of ``members``; ``has_negative``: whether the batch has a sample of another class.
    """

    members: Tensor
    klass: Tensor
    rank: Tensor
    has_negative: Tensor


def _batch_classes(labels: Tensor) -> _Classes:
    n = labels.shape[0]
    _, klass, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    order = torch.argsort(klass, stable=True)
    starts = counts.cumsum(0) - counts
    rank = torch.empty_like(klass)
    rank[order] = torch.arange(n, device=labels.device) - starts[klass[order]]
    members = torch.full(
        (counts.shape[0], int(counts.max())), -1, dtype=torch.long, device=labels.device
    )
    members[klass, rank] = torch.arange(n, device=labels.device)
    return _Classes(members, klass, rank, counts[klass] < n)


def _positive_columns(classes: _Classes, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """The positives of anchors ``start:stop``, ``(rows, max_class_size - 1)`` columns.

    Each row lists the other members of the anchor's class in increasing order; rows of
    smaller classes are padded with the anchor itself, and ``valid`` says which are real.
    """
    rows = torch.arange(start, stop, device=classes.klass.device)
    slot = torch.arange(classes.members.shape[1] - 1, device=rows.device)
    slot = slot + (slot >= classes.rank[start:stop, None])  # skip the anchor's own slot
    cols = classes.members[classes.klass[start:stop, None], slot]
    valid = cols >= 0
    return torch.where(valid, cols, rows[:, None]), valid


def _fill_own_class(d: Tensor, start: int, cols: Tensor, value: float) -> Tensor:
    """Set, in place, each anchor's entries of its own class (``cols`` and itself)."""
    d.scatter_(1, cols, value)
    d.diagonal(start).fill_(value)
    return d


class _MinedBlock(NamedTuple):
    """The triplets that a miner picks for a block of anchors, one per (row, slot).

    ``positive``, ``negative``: columns, ``(rows, slots)``; ``d_ap``, ``d_an``: their
    distances; ``valid``: which slots hold a triplet (the others hold anything).
    """

    positive: Tensor
    negative: Tensor
    d_ap: Tensor
    d_an: Tensor
    valid: Tensor


def _listed(mine):
    """A miner's block function, returning index tensors (anchor, positive, negative)."""

    def listed(d: Tensor, start: int, classes: _Classes) -> tuple[Tensor, Tensor, Tensor]:
        mined = mine(d, start, classes)
        a, j = torch.nonzero(mined.valid, as_tuple=True)
        return a + start, mined.positive[a, j], mined.negative[a, j]

    return listed


def _mine_blocks(mine, rows, n: int, rows_per_block: int, labels: Tensor, *args) -> list:
    """Concatenate ``mine(block, start, classes, *args)`` over blocks of anchors.

    ``rows(start, stop)`` gives rows ``start:stop`` of the distance matrix, which ``mine`` may
    overwrite. Each output is a tuple of equal-length tensors; they are concatenated in order.
    """
    classes = _batch_classes(labels)
    out = [
        mine(rows(start, min(n, start + rows_per_block)), start, classes, *args)
        for start in range(0, n, rows_per_block)
    ]
    return [torch.cat(parts) for parts in zip(*out, strict=True)]


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
    n = dist.shape[0]
    if n == 0:
        return _empty_triplets(dist.device)
    rows = _rows_per_block(n, dist.element_size(), dist.device)
    return tuple(_mine_blocks(_listed(_batch_hard_block), _rows_of(dist), n, rows, labels))


def _batch_hard_block(d: Tensor, start: int, classes: _Classes) -> _MinedBlock:
    """:func:`batch_hard_triplets` for the anchors of block ``d`` (rows ``start:``), one slot.

    Overwrites ``d``.
    """
    cols, valid = _positive_columns(classes, start, start + d.shape[0])
    if cols.shape[1] == 0:  # every class a single sample
        cols, valid = cols.new_zeros((d.shape[0], 1)), valid.new_zeros((d.shape[0], 1))
    d_ap, far = d.gather(1, cols).masked_fill_(~valid, -torch.inf).max(dim=1, keepdim=True)
    d_an, near = _fill_own_class(d, start, cols, torch.inf).min(dim=1, keepdim=True)
    keep = valid[:, :1] & classes.has_negative[start : start + d.shape[0], None]
    return _MinedBlock(cols.gather(1, far), near, d_ap, d_an, keep)


# below this many positives per anchor, counting by comparisons beats searching
_MAX_COMPARED = 32
# _nearest_above: up to this many positives per anchor, a masked minimum per positive beats bins
_MAX_MASKED = 6
# _count_below's grid: cells per sorted value (a few values per cell at most, mostly one or none)
_CELLS_PER_VALUE = 4
# _count_below_by_grid searches blocks of about this many queries at a time
_SEARCH_ROWS = 2**16


def _count_below(sorted_values: Tensor, queries: Tensor, strict: bool) -> Tensor:
    """Per row, how many ``sorted_values`` are ``<`` (``strict``) or ``<=`` each query.

    ``sorted_values`` may hold ``-inf`` and ``inf``; ``queries`` may hold ``inf`` but not
    ``-inf``. With few sorted values each is compared with the queries; with many, see
    :func:`_count_below_by_grid`.
    """
    if sorted_values.shape[1] > _MAX_COMPARED:
        return _count_below_by_grid(sorted_values, queries, strict)
    count = torch.zeros(queries.shape, dtype=torch.long, device=queries.device)
    compare = torch.lt if strict else torch.le
    hit = torch.empty_like(count)
    for j in range(sorted_values.shape[1]):
        count += compare(sorted_values[:, j : j + 1], queries, out=hit)
    return count


def _count_below_by_grid(sorted_values: Tensor, queries: Tensor, strict: bool) -> Tensor:
    """:func:`_count_below` through a grid of equal cells over each row's finite range.

    A query's cell, computed by the same monotone arithmetic as the sorted values' cells, says
    how many sorted values lie in earlier cells (all below the query); a binary search among
    the few values of its own cell does the rest. The search is as deep as the fullest cell
    (a plain binary search over the row when cells do not help), and every step is one gather
    and one comparison over all queries: several times faster than ``torch.searchsorted``,
    which searches each query alone, with the same answers.
    """
    rows, k = sorted_values.shape
    finite = torch.isfinite(sorted_values)
    lo = torch.where(finite, sorted_values, torch.inf).amin(dim=1, keepdim=True)
    hi = torch.where(finite, sorted_values, -torch.inf).amax(dim=1, keepdim=True)
    lo, hi = torch.where(lo <= hi, lo, 0.0), torch.where(lo <= hi, hi, 0.0)  # no finite value
    n_cells = _CELLS_PER_VALUE * k
    scale = torch.where(hi > lo, n_cells / (hi - lo), 1.0)
    offset = 1.0 - lo * scale

    def cell(x: Tensor) -> Tensor:  # 1 .. n_cells + 1; only -inf goes to cell 0 (below)
        return torch.addcmul(offset, x, scale).clamp_(1, n_cells + 1).long()

    sorted_cells = cell(sorted_values).masked_fill_(sorted_values == -torch.inf, 0)
    per_cell = torch.zeros((rows, n_cells + 2), dtype=torch.long, device=queries.device)
    per_cell.scatter_add_(1, sorted_cells, torch.ones_like(sorted_cells))
    before = per_cell.cumsum(dim=1).sub_(per_cell)
    depth = int(per_cell[:, 1:].max()).bit_length()
    if depth >= k.bit_length():  # cells too full: search the whole row
        before.zero_()
        depth = k.bit_length()
    padded = F.pad(sorted_values, (0, 1 << depth), value=torch.inf)
    count = before.gather(1, cell(queries))
    compare = torch.lt if strict else torch.le
    step = max(1, _SEARCH_ROWS // max(1, queries.shape[1]))
    value = queries.new_empty((min(step, rows), queries.shape[1]))
    hit = torch.empty_like(count[:step])
    for start in range(0, rows, step):  # a few rows at a time: the search stays in the cache
        c, q = count[start : start + step], queries[start : start + step]
        v, h = value[: c.shape[0]], hit[: c.shape[0]]
        for level in range(depth - 1, -1, -1):
            # the sorted values (1 << level) - 1 places on from each current count
            torch.gather(padded[start : start + step, (1 << level) - 1 :], 1, c, out=v)
            c.add_(compare(v, q, out=h), alpha=1 << level)
    return count.clamp_max_(k)  # queries at inf count the padding


def _suffix_argmin(values: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """For each position ``i`` of each row, the minimum of ``values[:, i:]`` and its ``index``."""
    flipped, at = torch.cummin(values.flip(1), dim=1)
    at = values.shape[1] - 1 - at.flip(1)
    return flipped.flip(1), index.gather(1, at)


def _nearest_above(neg_d: Tensor, pos_d: Tensor) -> tuple[Tensor, Tensor]:
    """For each entry of ``pos_d``, the smallest entry of its row of ``neg_d`` that is larger.

    Returns its value and its column, the lowest among equal values (inf and any column where
    there is none).
    With few columns in ``pos_d`` each takes a masked minimum of the row; with more, the row's
    entries are placed among the sorted ``pos_d`` (:func:`_count_below`), which splits them into
    bins, and a per-bin minimum followed by a suffix minimum answers every column at once.
    """
    if pos_d.shape[1] == 0:
        return pos_d.clone(), torch.zeros(pos_d.shape, dtype=torch.long, device=pos_d.device)
    if pos_d.shape[1] <= _MAX_MASKED:
        nearest = [
            torch.where(neg_d > pos_d[:, j : j + 1], neg_d, torch.inf).min(dim=1)
            for j in range(pos_d.shape[1])
        ]
        return torch.stack([v for v, _ in nearest], 1), torch.stack([i for _, i in nearest], 1)
    sorted_d, order = pos_d.sort(dim=1)
    # bin r: entries larger than exactly r of the sorted values, the candidates of ranks < r
    bins = _count_below(sorted_d, neg_d, strict=True)
    bin_min = neg_d.new_full((neg_d.shape[0], pos_d.shape[1] + 1), torch.inf)
    bin_min.scatter_reduce_(1, bins, neg_d, "amin")
    n = neg_d.shape[1]
    columns = torch.arange(n, device=neg_d.device)
    candidate = torch.where(neg_d == bin_min.gather(1, bins), columns, n)
    bin_arg = torch.full_like(bin_min, n, dtype=torch.long)
    bin_arg.scatter_reduce_(1, bins, candidate, "amin")
    near_d, near = _suffix_argmin(bin_min[:, 1:], bin_arg[:, 1:])
    near = near.clamp_max_(n - 1)  # none there: any column
    return near_d.scatter(1, order, near_d), near.scatter(1, order, near)


@torch.no_grad()
def semihard_triplets(dist: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Every anchor-positive pair with its nearest negative farther than the positive.

    FaceNet's rule (Schroff et al., 2015): for the pair ``(a, p)`` the negative is the nearest
    ``n`` with ``d(a, n) > d(a, p)``; when the margin has any negative in it, this one is in it.
    When no negative is farther than the positive, the farthest negative is taken instead, as
    TensorFlow's ``triplet_semihard_loss`` does.

    With ``k`` positives per anchor, each positive is compared with the anchor's row when ``k``
    is small; otherwise the positives are sorted and each negative placed among them (a binary
    search), which splits the negatives into ``k`` bins, and a per-bin minimum followed by a
    suffix minimum gives every positive its negative: ``O(n^2 log k)`` time, no ``n^3`` tensor
    and no full-row sort. Anchors are taken in blocks of rows.

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
    n = dist.shape[0]
    if n == 0:
        return _empty_triplets(dist.device)
    rows = _rows_per_block(n, dist.element_size(), dist.device)
    return tuple(_mine_blocks(_listed(_semihard_block), _rows_of(dist), n, rows, labels))


def _semihard_block(d: Tensor, start: int, classes: _Classes) -> _MinedBlock:
    """:func:`semihard_triplets` for the anchors of block ``d`` (rows ``start:``).

    One slot per positive, in increasing column order. Overwrites ``d``.
    """
    stop = start + d.shape[0]
    cols, valid = _positive_columns(classes, start, stop)
    valid &= classes.has_negative[start:stop, None]
    d_ap = d.gather(1, cols)
    d_an, neg = _nearest_above(_fill_own_class(d, start, cols, torch.inf), d_ap)
    fallback = (d_an == torch.inf) & valid
    rows = torch.nonzero(fallback.any(dim=1)).squeeze(1)
    if rows.numel():  # the farthest negative, only where some positive has none farther
        own = d[rows].scatter_(1, cols[rows], -torch.inf)
        own[torch.arange(rows.numel(), device=d.device), rows + start] = -torch.inf
        far_d, far = own.max(dim=1, keepdim=True)
        at = fallback[rows]
        d_an[rows] = torch.where(at, far_d, d_an[rows])
        neg[rows] = torch.where(at, far, neg[rows])
    return _MinedBlock(cols, neg, d_ap, d_an, valid)


def triplet_type_mask(d_ap: Tensor, d_an: Tensor, margin: float, type_of_triplets: str) -> Tensor:
    """Which triplets belong to ``type_of_triplets``, from broadcastable distances.

    ``"all"``: non-zero loss, ``d_ap - d_an + margin > 0``; ``"hard"``: ``d_an < d_ap``;
    ``"semihard"``: ``d_ap < d_an < d_ap + margin``; ``"easy"``: ``d_an - d_ap > margin``.
    """
    if type_of_triplets == "all":
        return d_ap - d_an + margin > 0
    if type_of_triplets == "hard":
        return d_an < d_ap
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
    n = dist.shape[0]
    if n == 0:
        return _empty_triplets(dist.device)
    return tuple(_mine_margin(_rows_of(dist), n, labels, margin, type_of_triplets))


def _mine_margin(rows, n: int, labels: Tensor, margin: float, type_of_triplets: str) -> list:
    width = max(1, int(torch.unique(labels, return_counts=True)[1].max()) - 1)
    block = _rows_per_chunk(n * width, 1, 4)  # boolean (rows, positives, n) masks
    return _mine_blocks(_margin_block, rows, n, block, labels, margin, type_of_triplets)


def _margin_block(
    d: Tensor, start: int, classes: _Classes, margin: float, type_of_triplets: str
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`margin_triplets` for the anchors of block ``d`` (rows ``start:``)."""
    stop = start + d.shape[0]
    cols, valid = _positive_columns(classes, start, stop)
    negative = classes.klass[start:stop, None] != classes.klass
    pos_d = d.gather(1, cols)
    mask = triplet_type_mask(pos_d[:, :, None], d[:, None, :], margin, type_of_triplets)
    mask &= valid[:, :, None] & negative[:, None, :]
    a, j, neg = torch.nonzero(mask, as_tuple=True)
    return a + start, cols[a, j], neg


def _check_computable(blocks: _PairwiseBlocks, embeddings: Tensor) -> None:
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
            u = _block_input(embeddings.detach(), self.distance)
            blocks = _PairwiseBlocks(u, self.distance)
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

    def _mine(self, blocks: _PairwiseBlocks, labels: Tensor) -> list[Tensor]:
        rows = blocks.rows_per_block()
        return _mine_blocks(_listed(_batch_hard_block), blocks.rows, blocks.n, rows, labels)


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

    def _mine(self, blocks: _PairwiseBlocks, labels: Tensor) -> list[Tensor]:
        rows = blocks.rows_per_block()
        return _mine_blocks(_listed(_semihard_block), blocks.rows, blocks.n, rows, labels)


class TripletMarginMiner(_Miner):
    """Every triplet of a type defined by the margin (pytorch-metric-learning's miner).

    With ``v = d(a, p) - d(a, n) + margin``:

    - ``"all"``: every triplet with a non-zero loss, ``v > 0``;
    - ``"hard"``: the negative is closer than the positive, ``d(a, n) < d(a, p)``;
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

    def _mine(self, blocks: _PairwiseBlocks, labels: Tensor) -> list[Tensor]:
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

    def _mine(self, blocks: _PairwiseBlocks, labels: Tensor) -> list[Tensor]:
        rows = _rows_per_chunk(blocks.n, blocks.u.element_size(), 4)
        found = []
        for start in range(0, blocks.n, rows):
            stop = min(blocks.n, start + rows)
            s = blocks.u[start:stop] @ blocks.u.T
            positive, negative = _block_label_masks(labels, start, stop)
            positive, negative = _multi_similarity_pairs(s, positive, negative, self.epsilon)
            a1, p = torch.nonzero(positive, as_tuple=True)
            a2, n = torch.nonzero(negative, as_tuple=True)
            found.append((a1 + start, p, a2 + start, n))
        return [torch.cat(parts) for parts in zip(*found, strict=True)]
