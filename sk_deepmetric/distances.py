"""Pairwise distances and similarities between batches of embeddings.

Every function takes ``x`` of shape ``(n, d)`` and optional ``y`` of shape ``(m, d)``
(``y=None`` means ``y = x``) and returns an ``(n, m)`` tensor, computed through one matrix
product so that it runs at BLAS / cuBLAS speed.

The module also holds the exact, memory-bounded top-k search that both the retrieval metrics
and the nearest-neighbour classifier use, because it is the lowest module they both import.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ._blocks import (
    measured_distances_,
    rows_per_block,
    rows_per_chunk,
    squared_euclidean_rows,
    translation,
)
from ._mining import key_lows, key_values, row_keys, selects_with_keys, sort_keys_
from ._validation import check_int, check_option

__all__ = [
    "DISTANCES",
    "cosine_similarity",
    "euclidean_distances",
    "iter_topk_neighbors",
    "paired_distances",
    "pairwise_distances",
    "search_center",
    "squared_euclidean_distances",
    "topk_neighbors",
]

#: Names accepted by :func:`pairwise_distances` (and by every ``distance=`` parameter).
DISTANCES = ("euclidean", "squared_euclidean", "cosine")


# Whether a refined float32 search certifies its neighbours (see _certified; a switch for
# benchmarks/bench_knn.py --certify, which measures what it costs)
_CERTIFY = True
# Queries per tile when a large reference set is tiled on both sides (see _tile_shape).
_TILE_QUERIES = 1024
# On a CPU with torch on at most this many threads, tiles hold half the 32 MiB bound (see
# _tile_shape; a switch for benchmarks/bench_knn.py --tiles, the same neighbours either way)
_HALF_TILE_THREADS = 1


def _check_matrices(x: object, y: object, x_name: str = "x", y_name: str = "y") -> None:
    """Raise unless ``x`` and ``y`` (``None`` allowed) are 2-D floating-point tensors with the
    same number of columns, dtype and device: a few attribute reads, cheap next to the product
    the caller computes, and torch's own errors for these name neither argument."""
    for name, t in ((x_name, x), (y_name, y)):
        if t is None and name == y_name:
            continue
        if not isinstance(t, Tensor):
            raise TypeError(
                f"`{name}` must be a torch.Tensor (torch.as_tensor converts an array), got "
                f"{type(t).__name__}."
            )
        if t.ndim != 2 or not t.is_floating_point():
            raise ValueError(
                f"`{name}` must be a 2-D floating-point tensor (n_samples, n_features), got "
                f"shape {tuple(t.shape)} and dtype {t.dtype}."
            )
    if y is None:
        return
    if x.shape[1] != y.shape[1] or x.dtype != y.dtype:
        raise ValueError(
            f"`{x_name}` and `{y_name}` must have the same number of features and dtype, got "
            f"{x.shape[1]} features of {x.dtype} and {y.shape[1]} of {y.dtype}."
        )
    if x.device != y.device:
        raise ValueError(
            f"`{x_name}` and `{y_name}` must be on the same device, got {x.device} and {y.device}."
        )


def squared_euclidean_distances(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Squared Euclidean distances ``||x_i - y_j||^2``, shape ``(n, m)``.

    Computed as ``|x|^2 + |y|^2 - 2 x.y`` and clamped at zero (the expansion can go slightly
    negative through rounding). When ``y`` is None the diagonal is exactly zero. Rows far
    from the origin compared with their spread are first moved near it (the same
    translation for ``x`` and ``y``, a constant: gradients are unchanged), since the
    expansion's rounding grows with the squared norms.
    """
    _check_matrices(x, y)
    center = translation(x if y is None else y)
    x = x - center
    if y is None:
        return squared_euclidean_rows(x, (x * x).sum(dim=1), 0, x.shape[0])
    y = y - center
    x_sq = (x * x).sum(dim=1, keepdim=True)
    y_sq = (y * y).sum(dim=1).unsqueeze(0)
    return torch.addmm(x_sq + y_sq, x, y.T, beta=1.0, alpha=-2.0).clamp_min_(0.0)


class _SafeSqrt(torch.autograd.Function):
    """``sqrt`` whose gradient is zero (not infinite) where the input is zero.

    One function instead of ``where(sq > 0, sqrt(where(sq > 0, sq, 1)), 0)`` saves four
    B x B temporaries: at B = 4096 this halves the time of the distance matrix's backward.
    """

    @staticmethod
    def forward(ctx, sq: Tensor) -> Tensor:
        d = sq.sqrt()
        ctx.save_for_backward(d)
        return d

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (d,) = ctx.saved_tensors
        return (grad / (2.0 * d)).masked_fill_(d == 0, 0.0)


def euclidean_distances(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Euclidean distances ``||x_i - y_j||``, shape ``(n, m)``.

    The gradient of ``sqrt`` is infinite at zero; here it is defined as zero where the distance
    is zero (a sample against itself, or duplicated samples), so training never sees NaN.
    """
    return _SafeSqrt.apply(squared_euclidean_distances(x, y))


def cosine_similarity(x: Tensor, y: Tensor | None = None) -> Tensor:
    """Cosine similarities ``x_i.y_j / (|x_i| |y_j|)``, shape ``(n, m)``, in ``[-1, 1]``.

    A zero vector has similarity 0 with everything (instead of NaN).
    """
    _check_matrices(x, y)
    xn = F.normalize(x, dim=1)
    yn = xn if y is None else F.normalize(y, dim=1)
    return xn @ yn.T


def pairwise_distances(x: Tensor, y: Tensor | None = None, distance: str = "euclidean") -> Tensor:
    """Pairwise distance matrix for ``distance`` in :data:`DISTANCES`.

    ``"cosine"`` returns the cosine *distance* ``1 - cos``, so that smaller always means closer
    here; a margin on it is a margin on the cosine similarity (``d_an - d_ap = s_ap - s_an``).

    Parameters
    ----------
    x : Tensor of shape (n, d)
    y : Tensor of shape (m, d), default=None
        ``None`` compares ``x`` with itself.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"

    Returns
    -------
    Tensor of shape (n, m)

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.distances import pairwise_distances
    >>> pairwise_distances(torch.tensor([[0.0, 0.0], [3.0, 4.0]]))
    tensor([[0., 5.],
            [5., 0.]])
    """
    if distance == "euclidean":
        return euclidean_distances(x, y)
    if distance == "squared_euclidean":
        return squared_euclidean_distances(x, y)
    if distance == "cosine":
        return 1.0 - cosine_similarity(x, y)
    raise ValueError(f"`distance` must be one of {list(DISTANCES)}, got {distance!r}.")


def paired_distances(x: Tensor, y: Tensor, distance: str = "euclidean") -> Tensor:
    """Distance between each row of ``x`` and the same row of ``y``, shape ``(n,)``.

    The row-wise counterpart of :func:`pairwise_distances` (as scikit-learn's
    ``paired_distances`` is of its ``pairwise_distances``), computed from the differences
    themselves, not from an expansion, so that a row against its duplicate is at exactly 0.
    As in :func:`euclidean_distances`, the gradient of the Euclidean distance is zero where
    the distance is zero, and a zero vector has cosine similarity 0 with everything.

    Parameters
    ----------
    x : Tensor of shape (n, d)
    y : Tensor of shape (n, d)
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        ``"cosine"`` is the cosine distance ``1 - cos``.

    Returns
    -------
    Tensor of shape (n,)

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.distances import paired_distances
    >>> x, y = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    >>> paired_distances(x, y)
    tensor([5.0000, 2.2361])
    """
    _check_matrices(x, y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"`x` and `y` must be 2-D tensors of one shape (n, d), got {tuple(x.shape)} and "
            f"{tuple(y.shape)}."
        )
    if distance == "cosine":
        return 1.0 - (F.normalize(x, dim=1) * F.normalize(y, dim=1)).sum(dim=1)
    diff = x - y
    sq = (diff * diff).sum(dim=1)
    if distance == "squared_euclidean":
        return sq
    if distance == "euclidean":
        return _SafeSqrt.apply(sq)
    raise ValueError(f"`distance` must be one of {list(DISTANCES)}, got {distance!r}.")


def topk_neighbors(
    queries: Tensor,
    reference: Tensor,
    k: int,
    distance: str = "euclidean",
    exclude_self: bool = False,
    chunk_size: int | None = None,
    *,
    reference_cache: dict | None = None,
) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours of each query in ``reference``, in chunks of queries.

    Memory is bounded by ``chunk_size x len(reference)`` distances (by default ~32 MiB), so
    100k x 100k searches run without building the full matrix. Euclidean searches of vectors
    far from the origin for their spread run on centred copies (see :func:`search_center`).

    The search ranks float32 (or float16) vectors by matrix-product scores (``|r|^2 - 2
    q.r``, or the cosine), whose rounding is relative to the vectors' norms, not to their
    distances. It keeps ``k + k // 16 + 4`` candidates per query and proves, from a bound
    on that rounding, that no vector left out is nearer than the k-th; the queries for
    which the bound does not hold (vectors closer together than about 1e-3 of their norms,
    or many distances equal to the k-th) are searched again in float64. The neighbours are
    then the k nearest by distances measured from the vectors, which differ from the
    exact ones only by the rounding of those distances themselves (what certifying
    costs, and how often float64 is needed: docs/benchmarks.md, "Certified neighbours").
    Under reduced float32 matrix-product precision (``torch.set_float32_matmul_precision``
    "high" or "medium", or a backend's ``fp32_precision`` of "tf32" or "bf16") the
    products are rounded more than that bound allows for, and the neighbours are only as
    near as those products can tell (uncertified), as are those of float16 vectors.

    Parameters
    ----------
    queries : Tensor of shape (n_queries, d)
    reference : Tensor of shape (n_reference, d)
    k : int
        Number of neighbours, ``k <= n_reference`` (``k <= n_reference - 1`` with
        ``exclude_self``).
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
    exclude_self : bool, default=False
        ``queries`` is ``reference`` (same rows, same order) and each row must not be its own
        neighbour (leave-one-out).
    chunk_size : int, default=None
        Queries per chunk; ``None`` picks it from the 32 MiB bound.
    reference_cache : dict, default=None
        A dict kept by the caller with ``reference``, for searches of the same reference to
        reuse what they derive from it alone: the bfloat16 copy that large searches for few
        neighbours are filtered with on CPUs with fast bfloat16 products (half the
        reference's memory; building it took ~40 ms for 100,000 x 128 on one thread). An
        entry is rebuilt where ``reference`` is another tensor or was changed in place since.
        ``None``: nothing is kept between calls.

    Returns
    -------
    distances : Tensor of shape (n_queries, k)
        Sorted ascending (for ``"cosine"``, the cosine distance ``1 - cos``), computed from
        the vectors themselves once the neighbours are found, so that a duplicate of a query
        is at distance 0 (the matrix-product form used for the search is not that exact).
    indices : Tensor of shape (n_queries, k), int64
        Row indices into ``reference``; equal distances among the k are ordered by index.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.distances import topk_neighbors
    >>> x = torch.tensor([[0.0], [1.0], [3.0]])
    >>> topk_neighbors(x, x, k=1, exclude_self=True)[1].ravel().tolist()
    [1, 0, 1]
    """
    if reference_cache is not None and not isinstance(reference_cache, dict):
        raise TypeError(
            f"`reference_cache` must be a dict or None, got {type(reference_cache).__name__}."
        )
    k = _check_search(queries, reference, k, distance, exclude_self, chunk_size)
    kept = reference_cache is not None
    if chunk_size is None and _filters_in_bfloat16(queries, reference, k, exclude_self, kept):
        found = _topk_through_bfloat16(
            queries, reference, k, distance, exclude_self, reference_cache
        )
        if found is not None:
            return found
    chunks = _checked_chunks(queries, reference, k, distance, exclude_self, chunk_size, True)
    return _concatenated(chunks, queries, k)


def _concatenated(
    chunks: Iterator[tuple[int, Tensor, Tensor]], queries: Tensor, k: int
) -> tuple[Tensor, Tensor]:
    """The distances and indices of :func:`iter_topk_neighbors`' chunks, all at once."""
    chunks = list(chunks)
    if not chunks:
        return queries.new_zeros((0, k)), torch.zeros((0, k), dtype=torch.long)
    return torch.cat([c[1] for c in chunks]), torch.cat([c[2] for c in chunks])


@torch.no_grad()
def iter_topk_neighbors(
    queries: Tensor,
    reference: Tensor,
    k: int | Tensor,
    distance: str = "euclidean",
    exclude_self: bool = False,
    chunk_size: int | None = None,
    refine: bool = False,
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Yield ``(start, distances, indices)`` for consecutive chunks of queries.

    The same search as :func:`topk_neighbors`, one chunk at a time, so that a caller can reduce
    each chunk (a retrieval metric, a vote) and never hold all neighbours at once (the search
    runs a group of chunks at a time, within the 32 MiB bound, and yields them in order).
    ``k`` may be an int, or an int tensor of shape ``(n_queries,)``: each chunk then returns
    ``k[start:stop].max()`` neighbours (MAP@R needs up to R neighbours, R varying per query).

    Neighbours are ranked by a score that orders each query's row like the distance but leaves
    out the query's own term (``|r|^2 - 2 q.r``, or ``-cos``): one matrix product per tile and
    no other pass over it. ``refine=True`` recomputes the distances of the k neighbours kept
    directly from the vectors (``|q - r|``, not the expansion, whose float32 rounding puts
    duplicates ~1e-3 apart) and orders them by those; the rows of a chunk are then held as
    ``(rows, k, d)``, so it is meant for small ``k``; the neighbours are then certified
    as :func:`topk_neighbors`' are. Without ``refine``, they are the k smallest scores,
    uncertified: neighbours whose distances differ by less than the scores' rounding
    (~1e-7 of the squared norms in float32) may come in either order.
    """
    k = _check_search(queries, reference, k, distance, exclude_self, chunk_size, True)
    yield from _checked_chunks(queries, reference, k, distance, exclude_self, chunk_size, refine)


@torch.no_grad()
def _checked_chunks(
    queries: Tensor,
    reference: Tensor,
    k: int | Tensor,
    distance: str,
    exclude_self: bool,
    chunk_size: int | None,
    refine: bool,
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """:func:`iter_topk_neighbors` once :func:`_check_search` passed its arguments."""
    queries, reference, ref_sq = _prepared(queries, reference, distance, exclude_self)
    _require_finite(reference, "reference", None if ref_sq is None else ref_sq.amax())
    if not exclude_self and queries.shape[0]:
        q_sq = None if distance == "cosine" else _squared_norms(queries).amax()
        _require_finite(queries, "queries", q_sq)
    excluded = torch.arange(queries.shape[0], device=queries.device) if exclude_self else None
    yield from _searched(queries, reference, ref_sq, k, distance, excluded, chunk_size, refine)


def _check_search(
    queries: object,
    reference: object,
    k: object,
    distance: object,
    exclude_self: bool,
    chunk_size: object,
    per_query: bool = False,
) -> int | Tensor:
    """Raise for arguments :func:`topk_neighbors` (``per_query``: :func:`iter_topk_neighbors`,
    whose ``k`` may be a tensor of one k per query) cannot search; return ``k`` as an int
    (or a long tensor)."""
    _check_matrices(queries, reference, "queries", "reference")
    check_option(distance, DISTANCES, "distance")
    if chunk_size is not None:
        check_int(chunk_size, "chunk_size", min_value=1)
    n_ref = reference.shape[0]
    if exclude_self and queries.shape[0] != n_ref:
        raise ValueError(
            "`exclude_self=True` needs queries and reference to be the same rows, got "
            f"{queries.shape[0]} queries and {n_ref} reference samples."
        )
    if per_query and isinstance(k, Tensor) and k.ndim == 1:
        if k.shape[0] != queries.shape[0] or k.is_floating_point() or k.dtype == torch.bool:
            raise ValueError(
                f"`k` as a tensor must hold one integer per query ({queries.shape[0]}), got "
                f"shape {tuple(k.shape)} and dtype {k.dtype}."
            )
        k_max = int(k.max()) if k.numel() else 1
        k_min = int(k.min()) if k.numel() else 1
    else:
        if isinstance(k, Tensor) and k.ndim == 0 and not k.is_floating_point():
            k = k.item()
        k_max = k_min = check_int(k, "k")
    limit = n_ref - 1 if exclude_self else n_ref
    if not 1 <= k_min <= k_max <= limit:
        raise ValueError(
            f"`k` must be between 1 and the number of reference samples"
            f"{' minus one (leave-one-out)' if exclude_self else ''} ({limit}), got "
            f"{k_max if k_max > limit else k_min}."
        )
    return k.long() if isinstance(k, Tensor) and k.ndim == 1 else k_max


def _searched(
    queries: Tensor,
    reference: Tensor,
    ref_sq: Tensor | None,
    k: int | Tensor,
    distance: str,
    excluded: Tensor | None,
    chunk_size: int | None,
    refine: bool,
) -> Iterator[tuple[int, Tensor, Tensor]]:
    """:func:`iter_topk_neighbors` once its arguments are checked; ``ref_sq``: the
    reference's squared norms (``None`` for ``"cosine"``); ``excluded``: for each query, a
    reference row that it skips (leave-one-out), or ``None``."""
    if not queries.shape[0]:
        return
    k_max = int(k.max()) if isinstance(k, Tensor) else k
    # a refined search of float32 (or float16) vectors keeps a few more candidates, whose
    # scores certify the k found (see _certified); the queries they cannot vouch for are
    # searched again in float64
    available = reference.shape[0] - (excluded is not None)
    certify = _CERTIFY and refine and queries.dtype == torch.float32 and k_max < available
    certify = certify and _exact_float32_products(queries.device)
    fallback = _Float64Reference(reference, distance) if certify else None
    rows, cols = _tile_shape(
        queries.shape[0],
        reference.shape[0],
        _certified_pool(k_max, available) if certify else k_max,
        max(reference.element_size(), queries.element_size()),
        chunk_size,
        reference.device,
    )
    # Several chunks of queries share each tile of reference rows, so that a tile is read
    # (and joined to its norms) once per group rather than once per chunk: as many chunks as
    # keep the group's query rows and kept neighbours within the 32 MiB bound.
    group = rows * max(
        1, rows_per_chunk(queries.shape[1] + 1 + 4 * int(k_max), queries.element_size()) // rows
    )
    for first in range(0, queries.shape[0], group):
        stops = range(first, min(first + group, queries.shape[0]), rows)
        ks = [int(k[s : s + rows].max()) if isinstance(k, Tensor) else k for s in stops]
        stop = min(first + group, queries.shape[0])
        own = None if excluded is None else excluded[first:stop]
        wide = [_certified_pool(c, available) for c in ks] if certify else ks
        found = _smallest_scores(
            queries[first:stop], reference, ref_sq, wide, distance, rows, cols, own
        )
        if not refine:
            for start, (vals, inds) in zip(stops, found):
                q = queries[start : start + rows]
                yield start, _distances_from_scores(vals, q, distance), inds
            continue
        done = []
        for start, c, (vals, inds) in zip(stops, ks, found):
            q = queries[start : start + rows]
            dists, kept = _refined(q, reference, inds[:, :c], distance)
            if certify:
                complete = vals.shape[1] >= available  # nothing left out to vouch for
                dists, kept = _certify(
                    q, vals, inds, dists, kept, reference, ref_sq, distance, complete
                )
            done.append((start, dists, kept))
        if certify:  # the queries left, searched again in float64 for the whole group
            fallback.search_missed(done, queries, excluded)
        yield from done


def _certified(
    vals: Tensor, inds: Tensor, k: int, q: Tensor, ref_sq: Tensor | None, distance: str
) -> Tensor:
    """For each query, whether the ``k`` smallest of its float32 ranking scores ``vals``
    (ascending, of the reference rows ``inds``; more than ``k``) are provably those of its
    ``k`` nearest neighbours, none of the rows left out being as near.

    A score ``|r|^2 - 2 q.r`` (``d + 1`` products and sums, the stored squared norm rounded
    too) is within ``e(|r|) = g(d+1) (2 |q| |r| + |r|^2 (1 + g(d))) + g(d) |r|^2`` of its
    exact value, ``g(n) = n u / (1 - n u)``, ``u = 2^-24``. The k first candidates' exact
    scores are at most ``U``, the largest of their scores plus their own ``e``. A row left
    out farther from the origin than ``R' = |q| + sqrt(|q|^2 + U)`` has an exact score above
    ``U`` whatever its rounding (``|r|^2 - 2 |q| |r| > U``); one nearer has one at least
    the last candidate's score less ``e(R')``. Where that exceeds ``U``, no row left out is
    among the k nearest. ``-cos`` of the unit vectors is within ``g(d) + 2 g(d + 2)``.
    Where the scores are close against the rounding (vectors closer together than about
    1e-3 of their norms, or distances equal to the k-th), that does not hold.
    """
    u = 2.0**-24
    d = q.shape[1]

    def g(n):
        return n * u / (1 - n * u)

    vals = vals.double()
    if distance == "cosine":
        bound = g(d) + 2 * g(d + 2)
        return vals[:, -1] - bound > vals[:, k - 1] + bound
    q_norm = (_squared_norms(q).double() * (1 + 2 * g(d))).sqrt_()[:, None]

    def error(norm_sq: Tensor) -> Tensor:  # of the score of a row of this squared norm
        norm_sq = norm_sq * (1 + 2 * g(d))  # as stored, rounded
        return g(d + 1) * (2 * q_norm * norm_sq.sqrt() + norm_sq * (1 + g(d))) + g(d) * norm_sq

    kept_sq = ref_sq[inds[:, :k]].double()
    upper = (vals[:, :k] + error(kept_sq)).amax(dim=1, keepdim=True)
    farthest = float(ref_sq.amax()) * (1 + 2 * g(d))
    reach = (q_norm + (q_norm * q_norm + upper.clamp_min(0.0)).sqrt()) * (1 + 2.0**-20)
    reach_sq = torch.minimum(reach * reach, torch.full_like(reach, farthest))
    lower = vals[:, -1:] - error(reach_sq)
    return (lower > upper).squeeze(1)


def _exact_float32_products(device: torch.device) -> bool:
    """Whether torch multiplies float32 matrices on ``device`` in float32 (its default), not
    through TF32 or bfloat16 (``torch.set_float32_matmul_precision("high")`` or a
    backend's ``fp32_precision``), whose rounding :func:`_certified` does not bound: the
    search is then not certified."""
    backend = torch.backends.cuda.matmul if device.type == "cuda" else None
    if backend is None and hasattr(torch.backends, "mkldnn"):
        backend = getattr(torch.backends.mkldnn, "matmul", None)
    setting = getattr(backend, "fp32_precision", None)
    if setting not in (None, "none"):
        return setting == "ieee"
    try:
        return torch.get_float32_matmul_precision() == "highest"
    except RuntimeError:  # a mix of torch's legacy and new settings: unknown, not bounded
        return False


def _certified_pool(k: int, available: int) -> int:
    """Candidates a certified search keeps for ``k`` neighbours: ``k + k // 16 + 4`` (of
    Gaussian and clustered 100,000 x 128 references, k = 1 to 300, no query was left that
    the float32 bound could not vouch for; with ``k + 1``, 0.1%-38%)."""
    return min(k + k // 16 + 4, available)


def _certify(q, vals, inds, dists, kept, reference, ref_sq, distance, complete):
    """The refined neighbours ``(dists, kept)`` of a chunk, where the first ``k + 1`` of
    the candidates' scores ``vals`` (``inds``) do not vouch for them, replaced by the
    ``k`` nearest of all its candidates where those do (or where the candidates are every
    reference vector, ``complete``); the rows neither vouches for get NaN distances, to be
    searched again in float64."""
    k = kept.shape[1]
    held = _certified(vals[:, : k + 1], inds, k, q, ref_sq, distance)
    if bool(held.all()):
        return dists, kept
    left = torch.nonzero(~held).squeeze(1)
    if complete:
        pool = torch.ones_like(left, dtype=torch.bool)
    else:
        pool = _certified(vals[left], inds[left], k, q[left], ref_sq, distance)
    wider = left[pool]
    if wider.numel():
        d, i = _refined(q[wider], reference, inds[wider], distance)
        dists[wider], kept[wider] = d[:, :k], i[:, :k]
    dists[left[~pool]] = math.nan
    return dists, kept


class _Float64Reference:
    """The float64 search of the queries that :func:`_certified` cannot vouch for: the
    reference stays float32, each tile converted as it is read, and its squared norms are
    computed in float64 on the first such query."""

    def __init__(self, reference: Tensor, distance: str):
        self.reference, self.distance = reference, distance
        self.ref_sq = None

    def search_missed(self, done: list, queries: Tensor, excluded: Tensor | None) -> None:
        """Search the rows of the chunks ``done`` (``(start, dists, inds)``, in place) whose
        distances are NaN again, all at once."""
        missed = [(start, torch.nonzero(d[:, 0].isnan()).squeeze(1)) for start, d, _ in done]
        rows = torch.cat([start + m for start, m in missed])
        if not rows.numel():
            return
        k_max = max(d.shape[1] for _, d, _ in done)
        if self.ref_sq is None and self.distance != "cosine":
            self.ref_sq = _squared_norms(self.reference, dtype=torch.float64)
        own = None if excluded is None else excluded[rows]
        q = queries[rows].double()
        chunks = _searched(q, self.reference, self.ref_sq, k_max, self.distance, own, None, True)
        found_d, found_i = _concatenated(chunks, q, k_max)
        at = 0
        for (_, dists, inds), (_, m) in zip(done, missed):
            k = dists.shape[1]
            dists[m] = found_d[at : at + m.numel(), :k].to(dists.dtype)
            inds[m] = found_i[at : at + m.numel(), :k]
            at += m.numel()


def search_center(reference: Tensor, distance: str = "euclidean") -> Tensor | None:
    """The vector to subtract from the queries and the reference before a search, or ``None``.

    The exact searches rank by ``|r|^2 - 2 q.r``, whose float32 rounding is relative to the
    squared norms: for vectors far from the origin compared with their spread, it swamps the
    differences between distances (a common offset of 10,000 on a spread of 30 per
    coordinate gave a wrong neighbour set for 81% of queries). Euclidean distances do not
    change under a translation, so where the mean's squared norm exceeds the mean squared
    distance of the rows from it, the search runs on vectors centred on the mean of a sample
    of the rows (every ``n // 4,096``-th), rounded to a multiple of a power of two near an
    eighth of the spread per coordinate so that exact data (integers) stay exact and equal
    distances equal. :func:`topk_neighbors` and
    :func:`iter_topk_neighbors` do so themselves, at the cost of a centred copy of the
    reference per call; an index searched many times centres once with this vector instead.

    Parameters
    ----------
    reference : Tensor of shape (n_reference, d)
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        ``"cosine"`` is not translation-invariant and is never centred.

    Returns
    -------
    center : Tensor of shape (d,), or None
        ``None`` where centring is not needed (or ``distance`` is ``"cosine"``).
    """
    _check_matrices(reference, None, "reference")
    check_option(distance, DISTANCES, "distance")
    if distance == "cosine" or reference.shape[0] == 0:
        return None
    return _center_of(reference)


def _center_of(reference: Tensor) -> Tensor | None:
    """:func:`search_center`'s vector, once the distance is known to be euclidean: the
    translation the losses apply too (see ``_blocks.translation``), ``None`` where it is
    zero (not needed)."""
    center = translation(reference)
    return center if bool(center.any()) else None


def _prepared(
    queries: Tensor, reference: Tensor, distance: str, same: bool
) -> tuple[Tensor, Tensor, Tensor | None]:
    """The vectors a float32 search ranks, and the reference's squared norms (``None`` for
    ``"cosine"``): centred where :func:`search_center` says so (``same``: the queries are
    the reference's rows). Non-finite vectors are never centred and raise later."""
    if distance == "cosine":
        return queries, reference, None
    center = _center_of(reference)
    if center is None:
        return queries, reference, _squared_norms(reference)
    centred, ref_sq = _squared_norms(reference, center)
    return centred if same else queries - center, centred, ref_sq


def _require_finite(x: Tensor, name: str, total: Tensor | None = None) -> None:
    """Raise if ``x`` holds NaN or infinity (or values whose squares overflow, where
    ``total`` is its largest squared norm; by default its sum, ~25x as fast as
    ``isfinite(x).all()`` on a CPU)."""
    if not bool(torch.isfinite(x.sum() if total is None else total)):
        raise ValueError(
            f"`{name}` must hold finite values whose squares fit in {x.dtype}, got NaN, "
            "infinity or values that overflow."
        )


def _smallest_scores(
    q: Tensor,
    reference: Tensor,
    ref_sq: Tensor | None,
    ks: list[int],
    distance: str,
    rows: int,
    cols: int,
    excluded: Tensor | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """For each chunk of ``rows`` queries of ``q``, each query's ``ks[chunk]`` smallest ranking
    scores over ``reference`` and their row indices.

    ``reference`` is scanned in tiles of ``cols`` rows, each tile once for all the chunks;
    ``ref_sq`` holds its squared norms (``None`` for ``"cosine"``). ``excluded``: for each
    query, a reference row that it skips (leave-one-out), or ``None``.
    """
    # -q: the product is then the negated cosine or dot product, smaller is closer. For the
    # euclidean scores |r|^2 rides in the product as one more column (q, 1) . (r, |r|^2):
    # adding it to the product's output instead is a full extra pass over every tile.
    if distance == _FACTORS:
        q_rank = q
    elif distance == "cosine":
        q_rank = -F.normalize(q, dim=1)
    else:
        q_rank = torch.cat([-2.0 * q, q.new_ones((q.shape[0], 1))], dim=1)
    # One buffer for every full tile, and one for its reference rows: a fresh 32 MiB tensor
    # per tile is a fresh mapping of memory on a CPU, whose page faults cost as much as the
    # product written into it.
    width = min(cols, reference.shape[0])
    # bfloat16 tiles' candidates are selected as float32 values (see _merged_with_tile);
    # float64 scores keep their precision (float32 keys would rank them in float32)
    keyed = q.dtype != torch.float64 and selects_with_keys(q[:1].float(), reference.shape[0])
    tile = q.new_empty((min(rows, q.shape[0]), width))
    ref_rows = q_rank.new_empty((width, q_rank.shape[1]))
    # on one thread, tiles after the first are compared whole (see _keys_compared_whole)
    compares = keyed and _COMPARE_TILES and max(ks) >= _COMPARE_FROM_K
    compares = compares and torch.get_num_threads() == 1 and q.dtype == torch.float32
    mask = np.empty(tuple(tile.shape), dtype=bool) if compares else None
    best = [None] * len(ks)
    for col in range(0, reference.shape[0], cols):
        r = reference[col : col + cols]
        full = r.shape[0] == width
        if r.dtype != q_rank.dtype:  # float64 queries of a float32 reference, tile by tile
            r = r.to(q_rank.dtype)
        if distance == _FACTORS:
            pass
        elif distance == "cosine":
            r = F.normalize(r, dim=1, out=ref_rows if full else None)
        else:
            parts = [r, ref_sq[col : col + cols, None]]
            r = torch.cat(parts, dim=1, out=ref_rows) if full else torch.cat(parts, dim=1)
        for chunk, k in enumerate(ks):
            q_chunk = q_rank[chunk * rows : (chunk + 1) * rows]
            n = q_chunk.shape[0]
            # the first n rows of the buffer are contiguous: the last, shorter chunk uses them
            score = torch.mm(q_chunk, r.T, out=tile[:n]) if full else q_chunk @ r.T
            if excluded is not None:
                own = excluded[chunk * rows : chunk * rows + n]
                local = torch.nonzero((own >= col) & (own < col + score.shape[1])).squeeze(1)
                score[local, own[local] - col] = math.inf
            best[chunk] = _merged_with_tile(best[chunk], score, col, k, keyed, mask)
    return [_ordered(b, keyed) for b in best]


# A CPU search for few neighbours of many pairs filters them with bfloat16 products first
# where those are at least _BFLOAT16_MIN_SPEEDUP as fast as float32 ones (see
# _topk_through_bfloat16; _BFLOAT16_FILTER is a switch for benchmarks/bench_knn.py --bfloat16),
# up to the k per torch thread count where that measured faster. 100,000 x 128 references on
# a Xeon with AMX (bfloat16 products ~4x as fast), clustered and i.i.d. Gaussian data (the
# harder case: its distances crowd near the k-th), float32 time / pre-filtered, median of 5
# alternate runs (docs/benchmarks.md, "The pre-filter's limits, re-measured"), Gaussian /
# clustered:
#   one thread, k = 10: 512 queries 0.90x / 1.17x, 768 1.05x / 1.32x, 1,024 0.99x / 1.22x,
#   2,048 1.28x / 1.51x; k = 20: 512 0.83x / 1.03x, 768 1.01x / 1.36x, 1,024 0.96x / 1.18x,
#   2,048 1.21x / 1.40x; k = 30: 768 0.98x / 1.20x, 1,024 0.89x / 1.07x;
#   two threads, k = 10: 512 0.83x / 1.07x, 768 0.97x / 1.27x, 1,024 1.07x / 1.08x, 2,048
#   1.12x / 1.31x; k = 20: 0.86x-1.25x.
# Unmeasured on more threads, so off there. Building the reference's factors is a fixed cost
# (~40 ms for 100,000 x 128) and the first tile's wider selection weighs more with fewer
# tiles, hence the least number of queries; a 30,000-vector reference measured 0.89x-1.00x.
# Where the caller keeps the factors between searches (topk_neighbors' reference_cache, as
# the classifier's index does), that cost goes and the limits are lower (the True entries;
# docs/benchmarks.md, "Keeping the reference's bfloat16 factors"), float32 / kept, Gaussian
# / clustered, k = 10, 20, 30:
#   one thread, 100,000 vectors: 512 queries 1.17x 1.12x 0.99x / 1.89x 1.69x 1.52x, 1,024
#   1.52x 1.18x 1.23x / 1.69x 1.54x 1.40x; 50,000 vectors, 512 queries, k = 10, 20: 1.64x
#   1.14x / 1.58x 1.51x; 30,000 vectors 1.16x 1.01x / 1.22x 1.10x; 256 queries 0.89x 1.72x
#   / 1.65x 1.67x;
#   two threads, 100,000 vectors: 512 queries 1.13x 1.25x 1.19x / 1.47x 1.82x 1.65x, 1,024
#   1.21x 1.09x 1.01x / 1.62x 1.35x 1.20x.
_BFLOAT16_FILTER = True
_BFLOAT16_MIN_SPEEDUP = 1.5
# per whether the reference's factors are kept: largest k per torch thread count, least
# queries, least reference vectors
_BFLOAT16_MAX_K = {False: {1: 20, 2: 10}, True: {1: 20, 2: 20}}
_BFLOAT16_MIN_QUERIES = {False: 768, True: 512}
_BFLOAT16_MIN_REFERENCE = {False: 100_000, True: 50_000}
# the bfloat16 tiles' widths are multiples of this many columns
_BFLOAT16_COLUMNS = 1024
# bfloat16 product speed-ups measured in this process, per torch thread count
_BFLOAT16_SPEEDUPS: dict[int, float] = {}


def _filters_in_bfloat16(
    queries: Tensor, reference: Tensor, k: int, exclude_self: bool, kept: bool = False
) -> bool:
    """Whether :func:`topk_neighbors` runs through :func:`_topk_through_bfloat16`."""
    return (
        queries.device.type == "cpu"
        and reference.device.type == "cpu"
        and queries.dtype == reference.dtype == torch.float32
        and filters_in_bfloat16(queries.shape[0], reference.shape[0], k, exclude_self, kept)
    )


def filters_in_bfloat16(
    n_queries: int,
    n_reference: int,
    k: int,
    exclude_self: bool = False,
    reference_kept: bool = False,
) -> bool:
    """Whether :func:`topk_neighbors` of float32 CPU vectors of these sizes (unchunked) finds
    its candidates from bfloat16 products first, with torch's current thread count.

    Only where bfloat16 products are fast on this CPU (:func:`bfloat16_speedup`, measured
    once), for few neighbours of many pairs, on one or two threads: with
    ``reference_kept`` (the search is given a ``reference_cache``, so that the reference's
    bfloat16 copy is built once for many searches) k <= 20 from 512 queries and 50,000
    reference vectors; without, k <= 20 on one thread and 10 on two, from 768 queries and
    100,000 reference vectors (measured in docs/benchmarks.md).
    """
    kept = bool(reference_kept)
    return (
        _BFLOAT16_FILTER
        and 1 <= k <= _BFLOAT16_MAX_K[kept].get(torch.get_num_threads(), 0)
        and _candidates(k) < n_reference - exclude_self
        and n_queries >= _BFLOAT16_MIN_QUERIES[kept]
        and n_reference >= _BFLOAT16_MIN_REFERENCE[kept]
        and bfloat16_speedup() >= _BFLOAT16_MIN_SPEEDUP
    )


def _candidates(k: int) -> int:
    """Candidates per query kept by the bfloat16 filter for ``k`` neighbours."""
    return 3 * k + 32


def bfloat16_speedup() -> float:
    """How many times as fast a bfloat16 matrix product of the search's shape (512 x 129 by
    129 x 4,096) runs as a float32 one on this CPU, with torch's current thread count.

    Measured once per process and thread count (best of three each, ~20 ms where bfloat16
    has hardware support): several times as fast on CPUs with AMX or AVX-512 BF16, slower
    where bfloat16 arithmetic is emulated.
    """
    threads = torch.get_num_threads()
    if threads not in _BFLOAT16_SPEEDUPS:
        generator = torch.Generator().manual_seed(0)
        a = torch.randn((512, 129), generator=generator)
        b = torch.randn((4096, 129), generator=generator)
        seconds = {}
        for dtype in (torch.float32, torch.bfloat16):
            x, y = a.to(dtype), b.to(dtype).T
            out = torch.empty((512, 4096), dtype=dtype)
            torch.mm(x, y, out=out)  # warm-up: the kernel's first call sets it up
            best = math.inf
            for _ in range(3):
                start = time.perf_counter()
                torch.mm(x, y, out=out)
                best = min(best, time.perf_counter() - start)
            seconds[dtype] = best
        _BFLOAT16_SPEEDUPS[threads] = seconds[torch.float32] / seconds[torch.bfloat16]
    return _BFLOAT16_SPEEDUPS[threads]


def _topk_through_bfloat16(
    queries: Tensor,
    reference: Tensor,
    k: int,
    distance: str,
    exclude_self: bool,
    cache: dict | None = None,
) -> tuple[Tensor, Tensor] | None:
    """:func:`topk_neighbors`, with the candidates found from bfloat16 products (``None``
    where the vectors are not finite, for the float32 search to say so).

    Each query's squared distances to the reference vectors, both centred on the reference
    mean (unit vectors for ``"cosine"``, whose squared distances order as cosine distances),
    plus an offset ``c`` that keeps them positive, are computed as one bfloat16 product of
    ``(-2q, 1, 1, |q|^2 + c)`` and ``(r, |r|^2, 1, 1)``, each squared norm split into a
    bfloat16 high part and the bfloat16 rest (sums in float32), and the ``3k + 32`` smallest
    are kept; those candidates are measured directly from the float32 vectors, as every
    search's neighbours are, and the ``k`` closest kept (equal distances by index).

    That is the exact result whenever the candidates provably hold it: rounding the factors
    and the result to bfloat16 (unit roundoff ``u = 2^-8``) and the float32 sums (``g``)
    move a score by at most ``E = e_dot 2 |q| R + e_norm (R^2 + |q|^2 + c) + u / (1 - u)
    |score|`` (``R`` the largest reference norm; ``e_dot = 2u + u^2`` and ``e_norm = u^2
    (1 + u)``, each plus ``g (1 + u)^2``, see :func:`_bfloat16_rounding`), so when the last
    candidate's score minus ``E`` exceeds the k-th's plus ``E`` (and a margin for the
    float32 distances), no vector left out can be closer than the k-th kept. Queries for
    which that does not hold (many near-equal distances at the k-th) are searched again in
    float32. The neighbours are then the ``k`` smallest of the distances measured from the
    vectors, as the float32 search's (certified, see :func:`topk_neighbors`) are.

    ``cache``: :func:`topk_neighbors`' ``reference_cache``, where the reference's factors
    are kept between calls.
    """
    n_q, n_ref = queries.shape[0], reference.shape[0]
    wide = _candidates(k)
    prepared = _cached_bfloat16_reference(reference, distance, cache)
    if prepared is None:
        return None  # the float32 search raises its error for non-finite vectors
    r16, center, scale, top = prepared
    q = F.normalize(queries, dim=1) if center is None else (queries - center) * scale
    q_sq = _squared_norms(q).double()
    if not bool(torch.isfinite(q_sq.sum())):
        return None
    largest = top**0.5 * (1 + 2**-20)
    q16, spread = _bfloat16_queries(q, q_sq, largest)
    del q
    rows, cols = _tile_shape(n_q, n_ref, wide, 2, None, queries.device)
    # whole multiples of 1,024 columns: bfloat16 products of other widths ran 1.3x-4x slower
    # per entry (oneDNN on a Xeon with AMX: 1,024 x 8,388 took 1.6-2.2x as long as 1,024 x
    # 8,192, 1,024 x 10,922 2.6x-4.3x; float32 products showed no such step)
    cols = max(_BFLOAT16_COLUMNS, cols - cols % _BFLOAT16_COLUMNS)
    dists = queries.new_empty((n_q, k))
    inds = torch.empty((n_q, k), dtype=torch.long)
    missed = []
    group = rows * max(1, rows_per_chunk(queries.shape[1] + 1 + 4 * wide, 4) // rows)
    for first in range(0, n_q, group):
        stop = min(first + group, n_q)
        excluded = torch.arange(first, stop) if exclude_self else None
        chunks = (stop - first + rows - 1) // rows
        found = _smallest_scores(
            q16[first:stop], r16, None, [wide] * chunks, _FACTORS, rows, cols, excluded
        )
        for start, (vals, cand) in zip(range(first, stop, rows), found):
            end = start + vals.shape[0]
            d, i = _refined(queries[start:end], reference, cand, distance)
            dists[start:end], inds[start:end] = d[:, :k], i[:, :k]
            holds = _bfloat16_bound_holds(
                vals.double(), k, q_sq[start:end], spread[start:end], largest
            )
            missed.append(torch.nonzero(~holds).squeeze(1) + start)
    missed = torch.cat(missed)
    if missed.numel():  # searched again in float32, these queries only
        excluded = missed if exclude_self else None
        found = _topk_in_float32(queries[missed], reference, k, distance, excluded)
        dists[missed], inds[missed] = found
    return dists, inds


class _Bfloat16Reference(NamedTuple):
    """A reference set prepared for :func:`_topk_through_bfloat16`."""

    factors: Tensor  # (r, high(|r|^2), low(|r|^2), 1, 1) in bfloat16, see _bfloat16_reference
    center: Tensor | None  # subtracted from every vector (None: unit vectors, for cosine)
    scale: float  # then multiplied by this power of two
    top: float  # the largest squared norm of the centred, scaled reference vectors


def _cached_bfloat16_reference(
    reference: Tensor, distance: str, cache: dict | None
) -> _Bfloat16Reference | None:
    """:func:`_prepared_bfloat16_reference`, kept in ``cache`` (where not ``None``) for the
    same memory, shape and strides, unchanged (torch counts in-place changes, through any
    view, in ``_version``), and distance. The entry holds the tensor it was built from, so
    that its memory cannot be reused by another tensor with the same address."""
    if cache is None:
        return _prepared_bfloat16_reference(reference, distance)
    key = (
        reference.data_ptr(),
        tuple(reference.shape),
        reference.stride(),
        reference.dtype,
        reference.device,
        reference._version,
        distance == "cosine",
    )
    entry = cache.get("bfloat16_reference")
    if entry is None or entry[0] != key:
        prepared = _prepared_bfloat16_reference(reference, distance)
        entry = cache["bfloat16_reference"] = key, prepared, reference
    return entry[1]


def _prepared_bfloat16_reference(reference: Tensor, distance: str) -> _Bfloat16Reference | None:
    """The reference's factors of :func:`_topk_through_bfloat16`'s scores, centred on its
    mean (unit vectors for ``"cosine"``) and scaled by a power of two where the squared norms
    would leave ``2^-60..2^60``; ``None`` where the vectors are not finite."""
    center = None if distance == "cosine" else reference.mean(dim=0)
    r16, r_sq = _bfloat16_reference(reference, center, 1.0)
    top, scale = float(r_sq.max()), 1.0
    if not 2.0**-60 <= top <= 2.0**60:
        # scaled by a power of two (exactly) to norms near 1: bfloat16 has float32's range,
        # but the squared norms would underflow or overflow (or are NaN)
        top = float((reference if center is None else reference - center).abs().max())
        if not 0 < top < math.inf:
            return None
        scale = 2.0 ** -math.frexp(top)[1]
        r16, r_sq = _bfloat16_reference(reference, center, scale)
        top = float(r_sq.max())
    if not math.isfinite(top):
        return None
    return _Bfloat16Reference(r16, center, scale, top)


def _bfloat16_reference(
    reference: Tensor, center: Tensor | None, scale: float
) -> tuple[Tensor, Tensor]:
    """The reference's bfloat16 factors of :func:`_topk_through_bfloat16`'s scores,
    ``(r, high(|r|^2), low(|r|^2), 1, 1)`` with ``r = (reference - center) * scale`` (unit
    rows where ``center`` is ``None``), and the float32 ``|r|^2``.

    Built in cache-sized blocks of rows: the centred copy, its norms and the concatenated
    factors at once are three fresh tensors as large as the reference, whose pages cost
    more than the arithmetic (the whole was 70 ms for 100,000 x 128 on one thread).
    """
    n, d = reference.shape
    r16 = torch.empty((n, d + 4), dtype=torch.bfloat16, device=reference.device)
    r16[:, d + 2 :] = 1.0
    r_sq = reference.new_empty(n)
    rows = rows_per_block(d, reference.element_size(), reference.device)
    buffer = reference.new_empty((min(rows, n), d))
    for start in range(0, n, rows):
        block = reference[start : start + rows]
        r = buffer[: block.shape[0]]
        if center is None:
            F.normalize(block, dim=1, out=r)
        else:
            torch.sub(block, center, out=r)
            if scale != 1.0:
                r.mul_(scale)
        sq = torch.sum(r * r, dim=1, out=r_sq[start : start + block.shape[0]])
        r16[start : start + block.shape[0], :d] = r
        high, low = _high_low(sq[:, None])
        r16[start : start + block.shape[0], d : d + 1] = high
        r16[start : start + block.shape[0], d + 1 : d + 2] = low
    return r16, r_sq


def _bfloat16_queries(q: Tensor, q_sq: Tensor, largest: float) -> tuple[Tensor, Tensor]:
    """The queries' bfloat16 factors of :func:`_topk_through_bfloat16`'s scores,
    ``(-2q, 1, 1, high(|q|^2 + c), low(|q|^2 + c))``, and each query's rounding bound less
    its part proportional to the score.

    ``q``: the centred (or unit) float32 queries; ``q_sq``: their squared norms in float64;
    ``largest``: an upper bound of the reference norms. With the reference's factors
    (:func:`_bfloat16_reference`), the bfloat16 product is ``|q - r|^2 + c`` to within
    ``spread + u / (1 - u) |score|``, and never negative.
    """
    # the dot products' factors rounded to bfloat16; the squared norms (and c) as a bfloat16
    # high and low part each, exact to u^2
    dots, norms = _bfloat16_rounding(q.shape[1])
    base = dots * 2 * q_sq.sqrt() * largest + norms * (largest * largest + q_sq)
    offset = 2 * base / (1 - 2 * norms)  # c: twice the rounding of the rest
    spread = base + norms * offset
    ones = q.new_ones((q.shape[0], 1))
    q16 = torch.cat([-2.0 * q, ones, ones, *_high_low((q_sq + offset)[:, None])], dim=1)
    return q16.bfloat16(), spread


def _topk_in_float32(
    queries: Tensor, reference: Tensor, k: int, distance: str, excluded: Tensor | None
) -> tuple[Tensor, Tensor]:
    """The float32 search of :func:`topk_neighbors` for ``queries``, each skipping its
    reference row in ``excluded`` (leave-one-out) unless that is ``None``."""
    queries, reference, ref_sq = _prepared(queries, reference, distance, False)
    chunks = _searched(queries, reference, ref_sq, k, distance, excluded, None, True)
    return _concatenated(chunks, queries, k)


def _high_low(x: Tensor) -> tuple[Tensor, Tensor]:
    """``x`` as a bfloat16 high part and the bfloat16 rest, as float32: their sum is ``x`` to
    a relative ``u^2 (1 + u)``."""
    high = x.float().bfloat16().float()
    return high, (x.float() - high).bfloat16().float()


def _bfloat16_rounding(dim: int) -> tuple[float, float]:
    """Relative error bounds of the bfloat16 products' terms before their result is rounded:
    of a dot product whose factors are rounded to bfloat16 (``2u + u^2``), and of a term
    split into a high and a low part (``u^2 (1 + u)``), both with ``g (1 + u)^2`` for the
    float32 sums of ``dim + 4`` products (``g``, plus ``2^-20`` for the float32 rounding of
    the factors themselves), ``u = 2^-8``."""
    u = 2.0**-8
    n = dim + 4
    sums = (n * 2.0**-24 / (1 - n * 2.0**-24) + 2.0**-20) * (1 + u) ** 2
    return 2 * u + u * u + sums, u * u * (1 + u) + sums


def _bfloat16_bound_holds(
    vals: Tensor, k: int, q_sq: Tensor, spread: Tensor, largest: float
) -> Tensor:
    """For each query, whether its candidates provably hold its ``k`` nearest neighbours.

    ``vals``: the bfloat16 scores of its candidates, ascending, as float64; ``q_sq``: the
    query's squared norm (centred); ``spread``: the part of the rounding bound that does not
    depend on the score; ``largest``: the largest reference norm (see
    :func:`_topk_through_bfloat16`).
    """
    to_bfloat16 = 2.0**-8 / (1 - 2.0**-8)
    kth, last = vals[:, k - 1], vals[:, -1]
    upper = kth + spread + to_bfloat16 * torch.maximum(vals[:, 0].abs(), kth.abs())
    lower = last - spread - to_bfloat16 * last.abs()
    margin = 2.0**-16 * (lower.abs() + upper.abs() + 2 * q_sq + 2 * largest * largest)
    return lower - upper > margin


def _ordered(best: tuple[Tensor, Tensor] | Tensor, keyed: bool) -> tuple[Tensor, Tensor]:
    """The values and indices of :func:`_merged_with_tile`'s ``best``, each row ascending,
    equal values by index."""
    if keyed:
        best = sort_keys_(best.contiguous())
        return key_values(best), key_lows(best)
    return _sort_by_value_then_index(*best)


def _squared_norms(x: Tensor, center: Tensor | None = None, dtype: torch.dtype | None = None):
    """``(x * x).sum(dim=1)`` in cache-sized blocks of rows, with the same values; with a
    ``center``, the copy ``x - center`` and its squared norms, built together; with a
    ``dtype``, each block converted to it first (float64 norms of a float32 ``x`` without a
    float64 copy of it).

    The whole product at once is a temporary as large as ``x`` (51 MiB for 100k x 128),
    whose fresh pages cost more than the arithmetic (centring as whole-tensor ops added
    69 ms to a search of 100,000 x 128 where this adds 31 ms).
    """
    dtype = x.dtype if dtype is None else dtype
    out = torch.empty(x.shape[0], dtype=dtype, device=x.device)
    centred = None if center is None else torch.empty_like(x)
    rows = rows_per_block(x.shape[1], max(x.element_size(), out.element_size()), x.device)
    for start in range(0, x.shape[0], rows):
        block = x[start : start + rows].to(dtype)
        if centred is not None:
            block = torch.sub(block, center, out=centred[start : start + rows])
        torch.sum(block * block, dim=1, out=out[start : start + rows])
    return out if centred is None else (centred, out)


def _distances_from_scores(vals: Tensor, q: Tensor, distance: str) -> Tensor:
    """The distances of ranking scores ``vals``: ``1 - cos``, or with ``|q|^2`` added back."""
    if distance == "cosine":
        return (vals + 1.0).clamp_min_(0.0)
    vals = (vals + (q * q).sum(dim=1, keepdim=True)).clamp_min_(0.0)
    return vals.sqrt_() if distance == "euclidean" else vals


def _refined(q: Tensor, reference: Tensor, inds: Tensor, distance: str) -> tuple[Tensor, Tensor]:
    """Distances of ``q``'s neighbours ``inds`` measured from the vectors
    (:func:`sk_deepmetric._blocks.measured_distances_`), reordered by them.

    Equal distances stay ordered by index. In blocks of queries whose ``(rows, k, d)``
    differences fit the cache on a CPU (see :func:`rows_per_block`): with k in the hundreds
    they would otherwise be hundreds of MiB, written and read from memory three times.
    """
    k, d = inds.shape[1], q.shape[1]
    block = rows_per_block(k * d, q.element_size(), q.device)
    # every block's neighbours are gathered into one buffer, and its distances written into
    # the result: a fresh (rows, k, d) tensor per block is a fresh mapping of memory on a CPU,
    # whose page faults made the whole refinement 1.13x-1.25x slower (k = 10-300)
    gathered = reference.new_empty((min(block, q.shape[0]) * k, d))
    mixed = reference.dtype != q.dtype  # float64 queries of a float32 reference
    dists = q.new_empty(inds.shape)
    for start in range(0, q.shape[0], block):
        qb, ib = q[start : start + block], inds[start : start + block]
        out = dists[start : start + block]
        # index_select of whole rows, then arithmetic in place on that private copy:
        # indexing with a 2-d index and fresh temporaries cost 3.5x as much here
        nb = torch.index_select(reference, 0, ib.reshape(-1), out=gathered[: ib.numel()])
        nb = nb.view(*ib.shape, d).to(q.dtype) if mixed else nb.view(*ib.shape, d)
        measured_distances_(qb, nb, distance, out)
    if selects_with_keys(dists, reference.shape[0]):
        return _ordered(row_keys(dists, inds), keyed=True)
    return _sort_by_value_then_index(dists, inds)


def _sort_by_value_then_index(vals: Tensor, inds: Tensor) -> tuple[Tensor, Tensor]:
    """Each row of ``vals`` (and ``inds`` alongside) ascending, equal values by index."""
    by_index = torch.argsort(inds, dim=1)
    order = by_index.gather(1, torch.argsort(vals.gather(1, by_index), dim=1, stable=True))
    return vals.gather(1, order), inds.gather(1, order)


def _tile_shape(
    n_queries: int,
    n_ref: int,
    k: int,
    element_size: int,
    chunk_size: int | None,
    device: torch.device | None = None,
) -> tuple[int, int]:
    """Queries x reference samples per distance tile, each tile within the 32 MiB bound.

    A few queries against the whole reference set make thin matrix products at 100k+
    reference samples (83 queries per 32 MiB at 100k), so large reference sets are tiled on
    both sides, as long as the k neighbours kept per tile stay small next to the tile.

    On a CPU (``device`` ``None`` or a CPU) with torch on one thread, a tile holds half the
    bound, ~16 MiB (1,024 queries x 4,096 float32 reference samples): on one thread of an
    Intel Xeon the same products written into 32 MiB tiles ran 1.2x-1.3x slower, the pass
    over each tile after its product no faster, and the search as a whole 1.10x-1.22x
    slower at k = 10-100 (the user guide's benchmarks); at k = 300 the two sizes measured
    0.89x-1.07x, a wash. For large ``k`` the tile widens (8 k columns, up to the bound) so
    that its blocks still discard most of it. Each thread writes its own part of a tile, so
    on two threads a 32 MiB tile is 16 MiB per thread, and there the two sizes measured the
    same (0.96x-1.04x); more threads, and an accelerator, take tiles up to the bound.
    """
    if chunk_size is not None:
        return chunk_size, n_ref
    on_cpu = device is None or device.type == "cpu"
    share = 2 if on_cpu and torch.get_num_threads() <= _HALF_TILE_THREADS else 1
    rows = min(n_queries, _TILE_QUERIES) or 1
    whole = rows_per_chunk(n_ref, element_size, share)
    if whole >= rows:
        return whole, n_ref
    bound = rows_per_chunk(rows, element_size)
    if 8 * k > bound:
        return rows_per_chunk(n_ref, element_size), n_ref
    return rows, min(bound, max(rows_per_chunk(rows, element_size, share), 8 * k))


def _merged_with_tile(
    best: tuple[Tensor, Tensor] | Tensor | None,
    score: Tensor,
    col: int,
    k: int,
    keyed: bool = False,
    mask: np.ndarray | None = None,
) -> tuple[Tensor, Tensor] | Tensor:
    """The ``k`` smallest ``(value, index)`` of ``best`` and of a tile ``score`` of columns
    ``col`` onwards, as a set: ties at the k-th value are kept by lowest index, but the k
    are in no particular order (:func:`_ordered` orders them once, after the last tile).

    The tile's columns are cut into blocks (see :func:`_block_size`), and only the blocks
    that can hold one of the ``k`` smallest entries are read past their minimum:

    - with ``k`` entries kept from earlier tiles (lower indices), an entry of this tile
      enters only if it is at most the k-th kept value, so only blocks whose minimum is at
      most that value are read; as the tiles go by, fewer and fewer do;
    - on the first tile, the k-th smallest block minimum bounds the k-th smallest entry
      (k blocks hold an entry at most that large), so only the blocks whose minimum is at
      most that bound are read.

    Block ``j`` holds columns ``j, j + n_blocks, j + 2 n_blocks, ...``: its minima are then
    elementwise minima of a few contiguous slices of each row, one vectorised pass over the
    tile. Of the blocks read, only the entries at most the same bound are kept, as a flat
    list over all rows: rows differ several-fold in how many blocks they read (3-7x between
    the mean and the largest row at 100k references), so padding every row to the largest
    before the selection would read and rank mostly padding. Only the few entries kept are
    padded (+inf at the largest index) into the rectangle that the selection ranks.

    A tile too narrow for the blocks to discard most of it is selected whole.

    ``keyed=True``: ``best`` and the result are :func:`sk_deepmetric._mining.row_keys` keys
    (each row's k, unordered), selected with numpy's partition (see
    :func:`sk_deepmetric._mining.selects_with_keys`). With ``mask`` as well, a tile after
    the first is not cut into blocks but compared whole with the bound into the boolean
    buffer ``mask`` (:func:`_keys_compared_whole`).
    """
    n_rows, n_cols = score.shape
    # bfloat16 scores (never negative, see _topk_through_bfloat16) order as their bits read as
    # int16 do, whose minima torch computes 3.7x as fast; the entries read become float32
    half = score.dtype == torch.bfloat16
    block = _block_size(n_cols, k)
    n_blocks = n_cols // block
    kept = best is not None and (best if keyed else best[0]).shape[1] == k
    if kept and keyed and mask is not None:
        vals = _keys_compared_whole(best, score, col, mask)
    elif n_blocks < (1 if kept else 4 * (k + 1)):
        vals = score.float() if half else score
        inds = torch.arange(col, col + n_cols, device=score.device).expand(n_rows, -1)
    else:
        bits = score.view(torch.int16) if half else score
        minima = bits[:, : n_blocks * block].unflatten(1, (block, n_blocks)).amin(dim=1)
        minima = minima.view(torch.bfloat16).float() if half else minima
        if kept and keyed:
            bound = key_values(best.amax(dim=1, keepdim=True))
        elif kept:
            bound = best[0].amax(dim=1, keepdim=True)
        elif keyed:  # the k-th smallest minimum, by numpy's partition (4x as fast as topk)
            kth = minima.numpy().copy()
            kth.partition(k - 1, axis=1)
            bound = torch.from_numpy(kth[:, k - 1 : k].copy())
        else:
            # the k-th smallest minimum (topk then max: 1.3x as fast as kthvalue here)
            bound = torch.topk(minima, k, dim=1, largest=False, sorted=False).values
            bound = bound.amax(dim=1, keepdim=True)
        # the blocks that may hold one of the k smallest (equal minima all read), and of
        # their entries those at most the bound: the columns of block j are
        # j + n_blocks * (0, 1, ...). Gathered as positions in the flat tile (index_select
        # of one index: 1.8x as fast as indexing with a row and a column index)
        first = _flat_nonzero(minima <= bound)
        row = torch.div(first, n_blocks, rounding_mode="floor")
        offsets = torch.arange(0, n_blocks * block, n_blocks, device=row.device)
        at = ((first + row * (n_cols - n_blocks))[:, None] + offsets).view(-1)
        vals = score.reshape(-1).index_select(0, at)
        vals = vals.float() if half else vals
        # rows are padded with +inf at an index after every real one: padding is kept only
        # where fewer than k entries are real, which the bounds above rule out
        hit = _flat_nonzero(vals.view(-1, block) <= bound[row])
        row = row[hit // block]
        vals, inds = vals[hit], at[hit] - row * n_cols + col
        if keyed:
            vals = _padded_rows(row, n_rows, row_keys(vals, inds), _LAST_KEY)
        else:
            vals = _padded_rows(row, n_rows, vals, math.inf)
            inds = _padded_rows(row, n_rows, inds, torch.iinfo(inds.dtype).max)
        if n_blocks * block < n_cols:
            tail = score[:, n_blocks * block :]
            tail = tail.float() if half else tail
            at = torch.arange(col + n_blocks * block, col + n_cols, device=score.device)
            if keyed:
                vals = torch.cat([vals, row_keys(tail, at)], dim=1)
            else:
                vals = torch.cat([vals, tail], dim=1)
                inds = torch.cat([inds, at.expand(n_rows, -1)], dim=1)
    if keyed:
        keys = vals if vals.dtype == torch.int64 else row_keys(vals, inds)
        keys = keys if best is None else torch.cat([best, keys], dim=1)
        if keys.shape[1] > k:
            keys = keys.contiguous()
            keys.numpy().partition(k - 1, axis=1)
            keys = keys[:, :k].clone()  # not the whole rectangle, held until the next tile
        return keys
    if best is not None:
        vals, inds = torch.cat([best[0], vals], dim=1), torch.cat([best[1], inds], dim=1)
    return _smallest_k_by_index(vals, inds, min(k, vals.shape[1]), ordered=False)


def _keys_compared_whole(best: Tensor, score: Tensor, col: int, mask: np.ndarray) -> Tensor:
    """For a tile after the first, the keys of the entries of ``score`` (columns ``col``
    onwards) at most each row's k-th kept value, the largest of ``best``'s keys, found by
    comparing the whole tile with it (in numpy, into ``mask``, a boolean buffer at least the
    tile's shape); rows padded as :func:`_merged_with_tile` pads its candidates.

    On one thread, comparing the tile and listing the entries found costs a little more than
    torch's block minima alone, and spares the gathers and index arithmetic of the blocks
    read, which grow with ``k``. With the 16 MiB tiles of :func:`_tile_shape` (three runs,
    clustered and Gaussian data): 0.97x-1.00x at k = 20-30, 1.05x-1.10x faster at k = 50,
    1.01x-1.04x at 100, 1.05x at 300, so it is used from k = 50. On more threads the block
    minima, which torch spreads over them, are faster (numpy compares on one; sharing the
    rows out among Python threads was slower still).
    """
    n_rows, n_cols = score.shape
    bound = key_values(best.amax(dim=1, keepdim=True)).numpy()
    mask = mask[:n_rows, :n_cols]
    np.less_equal(score.numpy(), bound, out=mask)
    at = torch.from_numpy(np.flatnonzero(mask))
    row = torch.div(at, n_cols, rounding_mode="floor")
    keys = row_keys(score.reshape(-1).index_select(0, at), at - row * n_cols + col)
    return _padded_rows(row, n_rows, keys, _LAST_KEY)


def _flat_nonzero(mask: Tensor) -> Tensor:
    """The positions of the true entries of ``mask`` in its flattened order, ascending.

    On a CPU by numpy (3.5x-5x as fast as ``torch.nonzero`` for the masks of a tile).
    """
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy())).long()
    return torch.nonzero(mask.reshape(-1)).squeeze(1)


# whether a search on one thread for _COMPARE_FROM_K neighbours or more compares its tiles
# after the first whole (a switch for benchmarks/bench_knn.py --compare; the same neighbours
# either way)
_COMPARE_TILES = True
_COMPARE_FROM_K = 50

# the `distance` of _smallest_scores whose queries and reference rows are already the two
# factors of the ranking scores
_FACTORS = "factors"

# pads rows of keys: above every key of a float32 value, NaN included
_LAST_KEY = torch.iinfo(torch.int64).max


def _padded_rows(row: Tensor, n_rows: int, entries: Tensor, fill: float | int) -> Tensor:
    """``entries`` of rows ``row`` (ascending) as an ``(n_rows, longest)`` array.

    Each row holds its own entries in their given order, then ``fill`` (+inf values, or the
    largest index: padding that a selection of the smallest values by index takes last).
    """
    counts = torch.bincount(row, minlength=n_rows)
    width = int(counts.max()) if counts.numel() else 0
    rank = torch.arange(row.numel(), device=row.device) - (counts.cumsum(0) - counts)[row]
    padded = entries.new_full((n_rows, width), fill)
    padded[row, rank] = entries
    return padded


def _block_size(n_cols: int, k: int) -> int:
    """Columns per block of :func:`_merged_with_tile` for ``k`` neighbours in a tile of
    ``n_cols``: about ``sqrt(n_cols / k)``, as a power of two from 4 to 32.

    A tile costs one pass for its block minima (``n_cols / block`` of them to rank) plus
    ``block`` columns read for each block that holds one of the ~k entries kept: the sum
    is smallest at ``block = sqrt(n_cols / k)`` (32 for k = 10 and 8192 columns, 8 for
    k = 100).
    """
    return int(min(32, max(4, 2 ** round(math.log2(math.sqrt(n_cols / k))))))


def _smallest_k_by_index(
    d: Tensor, index_or_k: Tensor | int, k: int | None = None, *, ordered: bool = True
) -> tuple[Tensor, Tensor]:
    """The ``k`` smallest entries of each row of ``d``, equal values ordered by index.

    Called as ``(d, k)`` the index of an entry is its column; called as ``(d, index, k)``
    it is ``index`` (same shape as ``d``: merging candidate lists).

    ``torch.topk`` keeps an arbitrary subset of the values tied with the last one it returns,
    so one extra column is asked for: rows whose k-th and (k+1)-th values are equal may have
    lost a lower index to the tie, and only those rows are sorted in full, stably.
    ``ordered=False`` returns the same k as a set, in no particular order (a merge before
    the last one needs no more).
    """
    index = None if k is None else index_or_k
    k = index_or_k if k is None else k
    n_cols = d.shape[1]
    vals, cols = torch.topk(d, min(k + 1, n_cols), dim=1, largest=False, sorted=True)
    inds = cols if index is None else index.gather(1, cols)
    if ordered:
        vals, inds = _sort_by_value_then_index(vals, inds)
    if k < n_cols:
        tied = torch.nonzero(vals[:, k - 1] == vals[:, k]).squeeze(1)
        if tied.numel():
            idx = (
                torch.arange(n_cols, device=d.device).expand(tied.numel(), -1)
                if index is None
                else index[tied]
            )
            by_index = torch.argsort(idx, dim=1)
            full = torch.sort(d[tied].gather(1, by_index), dim=1, stable=True)
            vals[tied] = full.values[:, : k + 1]
            inds[tied] = idx.gather(1, by_index.gather(1, full.indices))[:, : k + 1]
    return vals[:, :k], inds[:, :k]
