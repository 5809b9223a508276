"""The mining steps that the miners and the tuple losses share, one block of anchors at a
time: the batch's classes, each anchor's positives, batch-hard and semi-hard selection, and
the multi-similarity pair rule.

This is the one home of those helpers; the public miners are in :mod:`sk_deepmetric.miners`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def block_label_masks(labels: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """Rows ``start:stop`` of :func:`label_masks`: ``(stop - start, n)`` positive and negative."""
    same = labels[start:stop, None] == labels[None, :]
    negative = ~same
    same.diagonal(start).fill_(False)
    return same, negative


def multi_similarity_pairs(
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


class Classes(NamedTuple):
    """The classes of a batch, from which each block of anchors finds its positives.

    ``members`` (n_classes, max_class_size): each class's sample indices in increasing order,
    padded with -1; ``klass``: each sample's class number; ``rank``: its place in its class's
    row of ``members``; ``has_negative``: whether the batch has a sample of another class.
    """

    members: Tensor
    klass: Tensor
    rank: Tensor
    has_negative: Tensor


def batch_classes(labels: Tensor) -> Classes:
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
    return Classes(members, klass, rank, counts[klass] < n)


def positive_columns(classes: Classes, start: int, stop: int) -> tuple[Tensor, Tensor]:
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


def fill_own_class(d: Tensor, start: int, cols: Tensor, value: float) -> Tensor:
    """Set, in place, each anchor's entries of its own class (``cols`` and itself)."""
    d.scatter_(1, cols, value)
    d.diagonal(start).fill_(value)
    return d


class MinedBlock(NamedTuple):
    """The triplets that a miner picks for a block of anchors, one per (row, slot).

    ``positive``, ``negative``: columns, ``(rows, slots)``; ``d_ap``, ``d_an``: their
    distances; ``valid``: which slots hold a triplet (the others hold anything).
    """

    positive: Tensor
    negative: Tensor
    d_ap: Tensor
    d_an: Tensor
    valid: Tensor


def batch_hard_block(d: Tensor, start: int, classes: Classes) -> MinedBlock:
    """:func:`batch_hard_triplets` for the anchors of block ``d`` (rows ``start:``), one slot.

    Overwrites ``d``.
    """
    cols, valid = positive_columns(classes, start, start + d.shape[0])
    if cols.shape[1] == 0:  # every class a single sample
        cols, valid = cols.new_zeros((d.shape[0], 1)), valid.new_zeros((d.shape[0], 1))
    d_ap, far = d.gather(1, cols).masked_fill_(~valid, -torch.inf).max(dim=1, keepdim=True)
    d_an, near = fill_own_class(d, start, cols, torch.inf).min(dim=1, keepdim=True)
    keep = valid[:, :1] & classes.has_negative[start : start + d.shape[0], None]
    return MinedBlock(cols.gather(1, far), near, d_ap, d_an, keep)


# below this many positives per anchor, counting by comparisons beats searching
MAX_COMPARED = 32


# nearest_above: up to this many positives per anchor, a masked minimum per positive beats bins
# (semi-hard loss at B = 4,096, one thread: 19 positives 5.6x the floor against 6.1x with bins,
# 23 even, 31 8.8x against 8.3x)
MAX_MASKED = 20


# On a CPU with float32 rows, semi-hard (nearest_above) answers anchors with more than this many
# positives per thread from one sort of each row (sorts_rows); with fewer, a masked minimum per
# positive is faster, and runs on all threads where the sort runs on one. Loss at B = 4,096,
# x the floor, before / after sorting: one thread, 3 positives 1.38x / 1.42x, 7: 2.51x / 1.59x;
# two threads, 7 positives 2.79x / 2.55x
MAX_MASKED_PER_THREAD = 3


# The same for batch-all (active_triplet_weights), where a comparison per positive is the
# alternative: one thread, 3 positives 2.24x / 2.27x, 7: 2.99x / 2.67x; two threads, 7
# positives 3.16x / 3.92x, 15: 4.71x / 3.98x
MAX_COMPARED_PER_THREAD = 4


def numpy_sorts_with_simd() -> bool:
    """Whether numpy sorts 64-bit integers with vectorised kernels on this CPU.

    numpy uses x86-simd-sort: AVX-512 from numpy 1.25, AVX2 from numpy 2.0. Its scalar sort is
    ~9x slower (a 64 x 4,096 block of keys: 9.7 ms against 1.1 ms with AVX-512 and 2.3 ms with
    AVX2 here), too slow for the sorted paths to pay.
    """
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return False
    # numpy >= 2.4 names the enabled groups X86_V3 (AVX2) and X86_V4 (AVX-512)
    avx512 = features.get("X86_V4", features.get("AVX512_SKX", False))
    avx2 = features.get("X86_V3", features.get("AVX2", False))
    major, minor = (int(part) for part in np.__version__.split(".")[:2])
    return bool((avx512 and (major, minor) >= (1, 25)) or (avx2 and major >= 2))


# whether float32 rows on a CPU may be answered from sorted row keys (sorts_rows) at all
SORT_KEYS = numpy_sorts_with_simd()


# the sorts of row keys take a few rows at a time, about this many bytes of keys: the passes
# after the sort then read the cache (batch-all at B = 4,096, 10 classes: 64 x 4,096 block 5.3 ms
# in one piece, 3.0 ms in four, one thread)
SORT_BYTES = 2**19


# count_below's grid: cells per sorted value (a few values per cell at most, mostly one or none)
CELLS_PER_VALUE = 4


# count_below_by_grid searches blocks of about this many queries at a time
SEARCH_ROWS = 2**16


def count_below(sorted_values: Tensor, queries: Tensor, strict: bool) -> Tensor:
    """Per row, how many ``sorted_values`` are ``<`` (``strict``) or ``<=`` each query.

    ``sorted_values`` may hold ``-inf`` and ``inf``; ``queries`` may hold ``inf`` but not
    ``-inf``. With few sorted values each is compared with the queries; with many, see
    :func:`count_below_by_grid`.
    """
    if sorted_values.shape[1] > MAX_COMPARED:
        return count_below_by_grid(sorted_values, queries, strict)
    count = torch.zeros(queries.shape, dtype=torch.long, device=queries.device)
    compare = torch.lt if strict else torch.le
    hit = torch.empty_like(count)
    for j in range(sorted_values.shape[1]):
        count += compare(sorted_values[:, j : j + 1], queries, out=hit)
    return count


def count_below_by_grid(sorted_values: Tensor, queries: Tensor, strict: bool) -> Tensor:
    """:func:`count_below` through a grid of equal cells over each row's finite range.

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
    n_cells = CELLS_PER_VALUE * k
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
    step = max(1, SEARCH_ROWS // max(1, queries.shape[1]))
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


def sorts_rows(values: Tensor, n_positives: int, per_thread: int) -> bool:
    """Whether anchors with rows ``values`` and ``n_positives`` positives each are answered
    from their rows sorted as :func:`row_keys`: float32 on a CPU, more than ``per_thread``
    positives per thread."""
    return (
        selects_with_keys(values, values.shape[-1])
        and n_positives > per_thread * torch.get_num_threads()
    )


def selects_with_keys(values: Tensor, n_columns: int) -> bool:
    """Whether rows of ``values`` over ``n_columns`` columns may be sorted or selected as
    :func:`row_keys` with numpy: float32 on a CPU, where numpy has SIMD kernels
    (:data:`SORT_KEYS`), columns that fit the keys' 32-bit low word.

    A key orders like its value and, between equal values, like its column, so numpy's
    vectorised sort or partition orders or selects exactly, ties by column, with no further
    step (a partition of keys: 1.4x-3.5x as fast as ``torch.topk`` and its tie check for k
    from 10 to 300).
    """
    return (
        SORT_KEYS
        and values.device.type == "cpu"
        and values.dtype == torch.float32
        and n_columns < 2**31
    )


def row_keys(values: Tensor, low: Tensor | int) -> Tensor:
    """64-bit integer keys that order float32 ``values`` as ``<`` does, ties by ``low``.

    The high 32 bits are the value's bits made orderable as signed integers (``-0.0`` and
    ``0.0`` alike; NaN orders above ``inf``, or below ``-inf`` with its sign bit set); the low
    32 bits are ``low`` (int32, broadcast to ``values``), read as unsigned. Two keys compare as
    their values do and, between equal values, as their ``low``.
    """
    words = torch.empty((*values.shape, 2), dtype=torch.int32, device=values.device)
    words[..., 0] = low  # little-endian: the low half of each int64 comes first
    torch.add(values, 0.0, out=words.view(torch.float32)[..., 1])  # -0.0 + 0.0 is 0.0
    # negative floats (or NaN): reverse their magnitude bits
    if values.numel() and not bool(values.min() >= 0):
        high = words[..., 1]
        high ^= (high >> 31).bitwise_and_(0x7FFFFFFF)
    return words.view(torch.int64).squeeze(-1)


def key_values(keys: Tensor) -> Tensor:
    """The float32 values of :func:`row_keys` ``keys`` (``-0.0`` comes back as ``0.0``)."""
    high = (keys >> 32).to(torch.int32)
    high ^= (high >> 31).bitwise_and_(0x7FFFFFFF)
    return high.view(torch.float32)


def key_lows(keys: Tensor) -> Tensor:
    """The low words of :func:`row_keys` ``keys``, as int64 (read as unsigned)."""
    return keys & 0xFFFFFFFF


def sort_keys_(keys: Tensor) -> Tensor:
    """Sort each row of :func:`row_keys` ``keys`` in place, with numpy's sort.

    numpy sorts 64-bit integers with vectorised kernels (AVX-512 or AVX2): a 64 x 4,096 block
    in ~1 ms on one thread, where ``torch.sort`` of its float32 values takes ~11 ms.
    """
    keys.numpy().sort(axis=-1)
    return keys


def suffix_argmin(values: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
    """For each position ``i`` of each row, the minimum of ``values[:, i:]`` and its ``index``."""
    flipped, at = torch.cummin(values.flip(1), dim=1)
    at = values.shape[1] - 1 - at.flip(1)
    return flipped.flip(1), index.gather(1, at)


def _masked_min_above(values: Tensor, bound: Tensor) -> tuple[Tensor, Tensor]:
    """``torch.where(values > bound, values, inf).min(dim=1)``, the same values and indices.

    Written as a comparison into floats, two in-place scalings and an ``fmax``: on a CPU these
    are vectorised passes, where ``torch.where`` with a broadcast operand runs element by
    element (0.43 ms against 0.88 ms for a 64 x 4,096 block with its minimum, one thread).
    ``fmax`` ignores NaN, so an entry that is NaN counts as not larger, as in ``where``.
    """
    masked = torch.gt(values, bound, out=torch.empty_like(values))  # 1 where larger, else 0
    masked.sub_(0.5).mul_(-torch.inf)  # -inf where larger, inf elsewhere
    return torch.fmax(values, masked, out=masked).min(dim=1)


def nearest_above(neg_d: Tensor, pos_d: Tensor) -> tuple[Tensor, Tensor]:
    """For each entry of ``pos_d``, the smallest entry of its row of ``neg_d`` that is larger.

    Returns its value and its column, the lowest among equal values (inf and any column where
    there is none).
    With few columns in ``pos_d`` each takes a masked minimum of the row. With more, on a CPU
    in float32, each row is sorted once (:func:`row_keys`) and searched; elsewhere the row's
    entries are placed among the sorted ``pos_d`` (:func:`count_below`), which splits them into
    bins, and a per-bin minimum followed by a suffix minimum answers every column at once.
    """
    if pos_d.shape[1] == 0:
        return pos_d.clone(), torch.zeros(pos_d.shape, dtype=torch.long, device=pos_d.device)
    if sorts_rows(neg_d, pos_d.shape[1], MAX_MASKED_PER_THREAD):
        return _nearest_above_sorted(neg_d, pos_d)
    if pos_d.shape[1] <= MAX_MASKED:
        nearest = [_masked_min_above(neg_d, pos_d[:, j : j + 1]) for j in range(pos_d.shape[1])]
        return torch.stack([v for v, _ in nearest], 1), torch.stack([i for _, i in nearest], 1)
    sorted_d, order = pos_d.sort(dim=1)
    # bin r: entries larger than exactly r of the sorted values, the candidates of ranks < r
    bins = count_below(sorted_d, neg_d, strict=True)
    bin_min = neg_d.new_full((neg_d.shape[0], pos_d.shape[1] + 1), torch.inf)
    bin_min.scatter_reduce_(1, bins, neg_d, "amin")
    n = neg_d.shape[1]
    columns = torch.arange(n, device=neg_d.device)
    candidate = torch.where(neg_d == bin_min.gather(1, bins), columns, n)
    bin_arg = torch.full_like(bin_min, n, dtype=torch.long)
    bin_arg.scatter_reduce_(1, bins, candidate, "amin")
    near_d, near = suffix_argmin(bin_min[:, 1:], bin_arg[:, 1:])
    near = near.clamp_max_(n - 1)  # none there: any column
    return near_d.scatter(1, order, near_d), near.scatter(1, order, near)


def _nearest_above_sorted(neg_d: Tensor, pos_d: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`nearest_above` from one sort of each row's (value, column) keys.

    Each entry of ``pos_d`` finds, by binary search, the first key of its row whose value is
    larger; a key's column is the lowest among equal values.
    """
    n = neg_d.shape[1]
    keys = sort_keys_(row_keys(neg_d, torch.arange(n, dtype=torch.int32, device=neg_d.device)))
    above = row_keys(pos_d, -1)  # the largest key of each positive's value
    at = torch.searchsorted(keys, above, right=True).clamp_max_(n - 1)
    near = key_lows(keys.gather(1, at))
    near_d = neg_d.gather(1, near)
    near_d.masked_fill_(~(near_d > pos_d), torch.inf)  # none larger (or a NaN): inf
    return near_d, near


def active_triplet_weights(
    d: Tensor, start: int, cols: Tensor, valid: Tensor, shift: float | None
) -> Tensor:
    """Per entry of block ``d``, its count of triplets with ``d_an < d_ap + shift``, signed
    (``shift=None``: ``d_an <= d_ap``, see :func:`active_bound`).

    A positive's entry holds the number of negatives active with it, a negative's minus the
    number of positives, every other entry 0. ``cols``, ``valid``: the anchors' positives
    (:func:`positive_columns`). Each anchor's ``k`` positive distances are sorted and each
    negative placed among them (:func:`count_below`): the rank ``r`` says that the negative
    is active with the ``k - r`` farthest positives, and a histogram of the ranks says, per
    positive, how many negatives are active with it. With many positives, on a CPU in float32,
    each row is sorted once instead (:func:`_active_triplet_weights_sorted`).
    """
    k = cols.shape[1]
    if sorts_rows(d, k, MAX_COMPARED_PER_THREAD):
        return _active_triplet_weights_sorted(d, start, cols, valid, shift)
    sorted_d, order = d.gather(1, cols).masked_fill_(~valid, -torch.inf).sort(dim=1)
    # active iff d_ap > d_an - shift: with the k - rank positives the rank does not reach
    rank = fill_own_class(
        count_below(active_bound(sorted_d, shift), d, strict=False), start, cols, k
    )
    w = (rank - k).to(d.dtype)
    hist = d.new_zeros((d.shape[0], k + 1))
    hist.scatter_add_(1, rank, torch.ones((), dtype=d.dtype).expand(rank.shape))
    w.scatter_add_(1, cols.gather(1, order), hist.cumsum(dim=1)[:, :k])
    return w


def active_bound(d_ap: Tensor, shift: float | None) -> Tensor:
    """The value below which a negative's distance makes a triplet with ``d_ap`` active:
    ``d_ap + shift``, or for ``shift=None`` the next float above ``d_ap`` (``d_an <= d_ap``;
    ``-inf``, a missing positive, stays so)."""
    if shift is not None:
        return d_ap + shift
    return torch.where(d_ap == -torch.inf, d_ap, torch.nextafter(d_ap, d_ap.new_tensor(torch.inf)))


def _active_triplet_weights_sorted(
    d: Tensor, start: int, cols: Tensor, valid: Tensor, shift: float | None
) -> Tensor:
    """:func:`active_triplet_weights` from one sort of each anchor's row.

    Each positive's entry is replaced by its bound (:func:`active_bound`) and the row is sorted as
    (value, positives before negatives, column) keys: a positive is active with the negatives
    sorted before it, a negative with the positives sorted after it, both read from a running
    count of the positives along the sorted row. A few rows at a time (``SORT_BYTES`` of keys),
    so that the passes after the sort read the cache.
    """
    n = d.shape[1]
    w = torch.empty_like(d)
    tagged = torch.arange(n, dtype=torch.int32, device=d.device) | -(2**31)  # negatives
    places = torch.arange(1, n + 1, dtype=d.dtype, device=d.device)
    last = 0x7FFFFFFF << 32 | 2**31
    step = max(1, SORT_BYTES // (8 * n))
    for first in range(0, d.shape[0], step):
        rows = slice(first, first + step)
        keys = row_keys(d[rows], tagged)
        keys.scatter_(
            1,
            cols[rows],
            row_keys(active_bound(d[rows].gather(1, cols[rows]), shift), cols[rows].int()),
        )
        # the anchor itself, tagged, above every value: it sorts last
        own = keys.diagonal(start + first)
        own.copy_(torch.arange(own.shape[0], device=d.device).add_(start + first + last))
        sort_keys_(keys)
        positive = torch.ge(keys.view(torch.int32)[:, 0::2], 0, out=torch.empty_like(w[rows]))
        seen = positive.cumsum(dim=1)  # positives up to each place
        # a negative's weight: minus the positives after it, seen - n_valid; a positive's: the
        # negatives before it, place + 1 - seen
        behind = seen - valid[rows].sum(dim=1, keepdim=True).to(d.dtype)
        ahead = torch.sub(places, seen, out=seen).sub_(behind)
        w[rows].scatter_(1, keys.bitwise_and_(2**31 - 1), torch.addcmul(behind, positive, ahead))
    w.diagonal(start).zero_()
    return w


def semihard_block(d: Tensor, start: int, classes: Classes) -> MinedBlock:
    """:func:`semihard_triplets` for the anchors of block ``d`` (rows ``start:``).

    One slot per positive, in increasing column order. Overwrites ``d``.
    """
    stop = start + d.shape[0]
    cols, valid = positive_columns(classes, start, stop)
    valid &= classes.has_negative[start:stop, None]
    d_ap = d.gather(1, cols)
    d_an, neg = nearest_above(fill_own_class(d, start, cols, torch.inf), d_ap)
    fallback = (d_an == torch.inf) & valid
    rows = torch.nonzero(fallback.any(dim=1)).squeeze(1)
    if rows.numel():  # the farthest negative, only where some positive has none farther
        own = d[rows].scatter_(1, cols[rows], -torch.inf)
        own[torch.arange(rows.numel(), device=d.device), rows + start] = -torch.inf
        far_d, far = own.max(dim=1, keepdim=True)
        at = fallback[rows]
        d_an[rows] = torch.where(at, far_d, d_an[rows])
        neg[rows] = torch.where(at, far, neg[rows])
    return MinedBlock(cols, neg, d_ap, d_an, valid)
