"""Label-aware triplet mining: ``miner(embeddings, labels) -> (anchor, positive, negative)``.

A miner looks at the pairwise distances of a batch, under ``torch.no_grad()``, and returns three
int64 index tensors of equal length into the batch. Each miner also exists as a function of a
precomputed distance matrix (:func:`batch_hard_triplets`, :func:`semihard_triplets`,
:func:`margin_triplets`), so that a loss that already holds the distance matrix mines on it
without computing it twice.

Labels may be any integers (negative, non-contiguous). A batch without a valid triplet gives
three empty int64 tensors.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._validation import check_embeddings_and_labels, check_option, check_real
from .distances import DISTANCES, _rows_per_chunk, pairwise_distances

__all__ = [
    "TRIPLET_TYPES",
    "BatchHardMiner",
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


def _empty_triplets(device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    empty = torch.zeros(0, dtype=torch.long, device=device)
    return empty, empty.clone(), empty.clone()


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
        One triplet per anchor that has at least one positive and one negative.
    """
    positive, negative = label_masks(labels)
    far_pos = dist.masked_fill(~positive, -torch.inf).argmax(dim=1)
    near_neg = dist.masked_fill(~negative, torch.inf).argmin(dim=1)
    keep = positive.any(dim=1) & negative.any(dim=1)
    anchor = torch.nonzero(keep).squeeze(1)
    return anchor, far_pos[anchor], near_neg[anchor]


def _class_members(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Sample indices of each class, ``(n_classes, max_class_size)`` padded with -1, and each
    sample's class number."""
    _, klass, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    order = torch.argsort(klass, stable=True)
    starts = counts.cumsum(0) - counts
    rank = torch.arange(labels.shape[0], device=labels.device) - starts[klass[order]]
    members = torch.full(
        (counts.shape[0], int(counts.max())), -1, dtype=torch.long, device=labels.device
    )
    members[klass[order], rank] = order
    return members, klass


def _sorted_positives(
    dist_rows: Tensor, start: int, members: Tensor, klass: Tensor
) -> tuple[Tensor, Tensor]:
    """Each row's positive distances sorted ascending, ``(rows, max_class_size)``, and their
    column indices. The anchor itself and the padding come first as ``-inf`` (column 0)."""
    rows = torch.arange(start, start + dist_rows.shape[0], device=dist_rows.device)
    cols = members[klass[rows]]
    valid = (cols >= 0) & (cols != rows.unsqueeze(1))
    cols = cols.clamp_min(0)
    values = dist_rows.gather(1, cols).masked_fill(~valid, -torch.inf)
    values, order = values.sort(dim=1)
    return values, cols.gather(1, order)


# below this many positives per anchor, counting by comparisons beats torch.searchsorted
_MAX_COMPARED = 32


def _count_below(sorted_values: Tensor, queries: Tensor, strict: bool) -> Tensor:
    """Per row, how many ``sorted_values`` are ``<`` (``strict``) or ``<=`` each query."""
    if sorted_values.shape[1] > _MAX_COMPARED:
        return torch.searchsorted(sorted_values, queries.contiguous(), right=not strict)
    count = torch.zeros(queries.shape, dtype=torch.long, device=queries.device)
    for j in range(sorted_values.shape[1]):
        column = sorted_values[:, j : j + 1]
        count += column < queries if strict else column <= queries
    return count


def _suffix_argmin(values: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """For each position ``i`` of each row, the minimum of ``values[:, i:]`` and its ``index``."""
    flipped, at = torch.cummin(values.flip(1), dim=1)
    at = values.shape[1] - 1 - at.flip(1)
    return flipped.flip(1), index.gather(1, at)


@torch.no_grad()
def semihard_triplets(dist: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Every anchor-positive pair with its nearest negative farther than the positive.

    FaceNet's rule (Schroff et al., 2015): for the pair ``(a, p)`` the negative is the nearest
    ``n`` with ``d(a, n) > d(a, p)``; when the margin has any negative in it, this one is in it.
    When no negative is farther than the positive, the farthest negative is taken instead, as
    TensorFlow's ``triplet_semihard_loss`` does.

    Each anchor's ``k`` positive distances are sorted; each negative is placed among them (a
    binary search, or ``k`` comparisons when ``k`` is small), which splits the negatives into
    ``k`` bins, and a per-bin minimum followed by a suffix minimum gives every positive its
    negative: ``O(n^2 log k)`` time, ``O(n^2)`` memory, no ``n^3`` tensor and no full-row sort.

    Parameters
    ----------
    dist : Tensor of shape (n_samples, n_samples)
        Pairwise distances (smaller is closer).
    labels : Tensor of shape (n_samples,)

    Returns
    -------
    anchor, positive, negative : Tensor of shape (n_triplets,), int64
        One triplet per ordered positive pair whose anchor has a negative, ordered by
        ``(anchor, positive)``.
    """
    n = dist.shape[0]
    if n == 0:
        return _empty_triplets(dist.device)
    members, klass = _class_members(labels)
    has_negative = (klass.bincount()[klass] < n).unsqueeze(1)
    rows = _rows_per_chunk(n, 8, 6)  # int64/float64 temporaries
    out = [
        _semihard_chunk(dist[start : start + rows], start, members, klass, has_negative)
        for start in range(0, n, rows)
    ]
    anchor, positive, negative = (torch.cat(parts) for parts in zip(*out))
    order = torch.argsort(anchor * n + positive)
    return anchor[order], positive[order], negative[order]


def _semihard_chunk(
    d: Tensor, start: int, members: Tensor, klass: Tensor, has_negative: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`semihard_triplets` for the anchors ``start .. start + len(d)``."""
    n = d.shape[1]
    same = klass[start : start + d.shape[0], None] == klass
    pos_d, pos_cols = _sorted_positives(d, start, members, klass)
    # bin r: negatives farther than exactly r of the sorted entries (r >= 1: the anchor's own
    # -inf entry), i.e. the semi-hard candidates of the positives of sorted rank < r
    bins = _count_below(pos_d, d, strict=True)
    neg_d = d.masked_fill(same, torch.inf)
    bin_min = neg_d.new_full((d.shape[0], pos_d.shape[1] + 1), torch.inf)
    bin_min.scatter_reduce_(1, bins, neg_d, "amin")
    # among equal distances the lowest column wins (inf bins are never chosen)
    columns = torch.arange(n, device=d.device)
    candidate = torch.where(neg_d == bin_min.gather(1, bins), columns, n)
    bin_arg = torch.full_like(bin_min, n, dtype=torch.long)
    bin_arg.scatter_reduce_(1, bins, candidate, "amin")
    nearest_d, nearest = _suffix_argmin(bin_min[:, 1:], bin_arg[:, 1:])
    farthest = d.masked_fill(same, -torch.inf).argmax(dim=1, keepdim=True)
    chosen = torch.where(nearest_d < torch.inf, nearest, farthest)
    a_loc, rank = torch.nonzero(
        (pos_d > -torch.inf) & has_negative[start : start + d.shape[0]], as_tuple=True
    )
    return a_loc + start, pos_cols[a_loc, rank], chosen[a_loc, rank]


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

    Positive pairs are gathered first and their negatives examined in chunks, so temporaries
    stay under ~32 MiB; the output itself holds ``3 x n_triplets`` int64 values and can be
    large (a batch of 4096 in 10 classes has 6.2e9 triplets: 150 GB).

    Returns
    -------
    anchor, positive, negative : Tensor of shape (n_triplets,), int64
        Ordered by ``(anchor, positive, negative)``, as pytorch-metric-learning's.
    """
    positive, negative = label_masks(labels)
    a_idx, p_idx = torch.nonzero(positive, as_tuple=True)
    d_ap = dist[a_idx, p_idx]
    rows = _rows_per_chunk(dist.shape[0], 8, 4)
    out = []
    for start in range(0, a_idx.shape[0], rows):
        a, p = a_idx[start : start + rows], p_idx[start : start + rows]
        mask = triplet_type_mask(
            d_ap[start : start + rows, None], dist[a], margin, type_of_triplets
        )
        pair, n = torch.nonzero(mask & negative[a], as_tuple=True)
        out.append((a[pair], p[pair], n))
    if not out:
        return _empty_triplets(dist.device)
    return tuple(torch.cat(parts) for parts in zip(*out))


class _Miner:
    """Shared ``__call__``: check inputs, compute distances under no_grad, mine."""

    def __call__(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        embeddings, labels = check_embeddings_and_labels(embeddings, labels)
        with torch.no_grad():
            dist = pairwise_distances(embeddings.detach(), distance=self.distance)
            return self._mine(dist, labels)

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

    def _mine(self, dist: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return batch_hard_triplets(dist, labels)


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

    def _mine(self, dist: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return semihard_triplets(dist, labels)


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

    def _mine(self, dist: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return margin_triplets(dist, labels, self.margin, self.type_of_triplets)
