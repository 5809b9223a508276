"""The machinery behind :mod:`sk_deepmetric.metrics`: input checks and one chunked scan.

:func:`_prepare` checks the arguments all the metrics share and resolves both modes
(leave-one-out, or queries against a reference set) to one :class:`_Retrieval`: tensors on
one device, integer codes for labels of any type, and each query's ``R``. :func:`_scan`
then computes every requested metric from a single search, reducing each chunk of queries
to running sums so that memory stays bounded however many samples there are. The
definitions (``R``, the ``R = 0`` rule, ties) are in the docstring of the public module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from sk_deepmetric._validation import check_int, check_option
from sk_deepmetric.distances import DISTANCES, _rows_per_chunk, iter_topk_neighbors


class _Retrieval(NamedTuple):
    """Validated inputs of a retrieval evaluation, on one device."""

    queries: Tensor
    reference: Tensor
    query_codes: Tensor
    reference_codes: Tensor
    n_relevant: Tensor  # R per query, self excluded
    exclude_self: bool
    limit: int  # neighbours a query can have
    distance: str
    chunk_size: int


def _as_embeddings(x, name: str, device) -> Tensor:
    if isinstance(x, Tensor):
        x = x.detach()
    else:
        array = np.asarray(x)
        if array.dtype.kind not in "fiub":
            raise ValueError(f"`{name}` must be real-valued, got dtype {array.dtype}.")
        x = torch.from_numpy(np.ascontiguousarray(array))
    if x.is_complex():
        raise ValueError(f"`{name}` must be real-valued, got dtype {x.dtype}.")
    if not x.is_floating_point():
        x = x.to(torch.float64)
    elif x.element_size() < 4:  # half precision ranks neighbours poorly, and not on every CPU
        x = x.to(torch.float32)
    if x.ndim != 2:
        hint = " Use x.reshape(-1, 1) for a single feature." if x.ndim == 1 else ""
        raise ValueError(
            f"`{name}` must be 2-D of shape (n_samples, n_components), got shape "
            f"{tuple(x.shape)}.{hint}"
        )
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"`{name}` must not be empty, got shape {tuple(x.shape)}.")
    if not torch.isfinite(x).all():
        raise ValueError(f"`{name}` must be finite, got NaN or infinity.")
    return x.to(device)


def _as_labels(y, name: str, n_samples: int, embeddings_name: str) -> np.ndarray:
    if y is None:
        raise ValueError(f"`{name}` is required with `{embeddings_name}`.")
    y = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(
            f"`{name}` must be 1-D with one label per row of `{embeddings_name}` "
            f"({n_samples}), got shape {y.shape}."
        )
    return y


def _prepare(
    embeddings,
    labels,
    reference_embeddings,
    reference_labels,
    exclude_self,
    distance,
    chunk_size,
    device,
) -> _Retrieval:
    distance = check_option(distance, DISTANCES, "distance")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    if exclude_self not in (None, True, False):
        raise ValueError(f"`exclude_self` must be None, True or False, got {exclude_self!r}.")
    if device is None:
        device = embeddings.device if isinstance(embeddings, Tensor) else "cpu"
    queries = _as_embeddings(embeddings, "embeddings", device)
    query_labels = _as_labels(labels, "labels", queries.shape[0], "embeddings")
    queries, reference, ref_labels, exclude_self = _reference_set(
        queries, query_labels, reference_embeddings, reference_labels, exclude_self, device
    )
    n_relevant, query_codes, reference_codes = _encode(query_labels, ref_labels, device)
    n_relevant -= int(exclude_self)
    if not (n_relevant > 0).any():
        raise ValueError(
            "No query has another reference sample of its class (R = 0 for all "
            f"{queries.shape[0]} queries), so no retrieval metric is defined; each class "
            "needs at least two samples in leave-one-out mode."
        )
    if chunk_size is None:
        chunk_size = _rows_per_chunk(reference.shape[0], 8)  # float64 reductions
    limit = reference.shape[0] - int(exclude_self)
    return _Retrieval(
        queries,
        reference,
        query_codes,
        reference_codes,
        n_relevant,
        exclude_self,
        limit,
        distance,
        chunk_size,
    )


def _reference_set(
    queries, query_labels, reference_embeddings, reference_labels, exclude_self, device
):
    """Resolve the two modes to ``(queries, reference, reference_labels, exclude_self)``."""
    if reference_embeddings is None:
        if reference_labels is not None:
            raise ValueError("`reference_labels` needs `reference_embeddings`.")
        if exclude_self is False:
            raise ValueError(
                "`exclude_self=False` without `reference_embeddings` would let every sample "
                "retrieve itself; pass reference_embeddings=embeddings to do that on purpose."
            )
        return queries, queries, query_labels, True
    reference = _as_embeddings(reference_embeddings, "reference_embeddings", device)
    ref_labels = _as_labels(
        reference_labels, "reference_labels", reference.shape[0], "reference_embeddings"
    )
    if reference.shape[1] != queries.shape[1]:
        raise ValueError(
            f"`reference_embeddings` must have as many columns as `embeddings` "
            f"({queries.shape[1]}), got {reference.shape[1]}."
        )
    dtype = torch.promote_types(queries.dtype, reference.dtype)
    queries, reference = queries.to(dtype), reference.to(dtype)
    if exclude_self:
        _check_same_rows(queries, query_labels, reference, ref_labels)
    return queries, reference, ref_labels, bool(exclude_self)


def _encode(query_labels: np.ndarray, ref_labels: np.ndarray, device):
    """``(R including self, query codes, reference codes)`` from labels of any hashable type."""
    codes = np.unique(np.concatenate([query_labels, ref_labels]), return_inverse=True)[1]
    codes = torch.from_numpy(codes.reshape(-1).astype(np.int64)).to(device)
    query_codes, reference_codes = codes[: len(query_labels)], codes[len(query_labels) :]
    counts = torch.bincount(reference_codes, minlength=int(codes.max()) + 1)
    return counts[query_codes], query_codes, reference_codes


def _check_same_rows(queries, query_labels, reference, ref_labels) -> None:
    if (
        queries.shape != reference.shape
        or not torch.equal(queries, reference)
        or not np.array_equal(query_labels, ref_labels)
    ):
        raise ValueError(
            "`exclude_self=True` with `reference_embeddings` requires the queries to be the "
            "reference rows (same embeddings and labels, same order); leave "
            "`reference_embeddings=None` for leave-one-out."
        )


def _check_ks(ks: Iterable[int], name: str, limit: int, exclude_self: bool) -> list[int]:
    ks = [ks] if isinstance(ks, int) or not isinstance(ks, Iterable) else list(ks)
    if not ks:
        raise ValueError(f"`{name}` must hold at least one value, got {ks!r}.")
    checked = []
    for k in ks:
        k = check_int(k, name, min_value=1)
        if k > limit:
            what = " minus one (leave-one-out)" if exclude_self else ""
            raise ValueError(
                f"`{name}` ({k}) must not exceed the number of reference samples{what} ({limit})."
            )
        checked.append(k)
    return sorted(set(checked))


def _scan(run: _Retrieval, precision_k=(), recall_k=(), at_r: bool = False) -> dict:
    """Every requested metric from one chunked pass over the neighbours."""
    valid_all = run.n_relevant > 0
    top = max([*precision_k, *recall_k, 1])
    need = torch.full_like(run.n_relevant, top)
    if at_r:
        need = torch.maximum(need, run.n_relevant)
    sums = {f"precision_at_{k}": 0.0 for k in precision_k}
    sums |= {f"recall_at_{k}": 0.0 for k in recall_k}
    if at_r:
        sums |= {"r_precision": 0.0, "map_at_r": 0.0}
    neighbours = iter_topk_neighbors(
        run.queries, run.reference, need, run.distance, run.exclude_self, run.chunk_size
    )
    with torch.no_grad():
        for start, _, inds in neighbours:
            stop = start + inds.shape[0]
            valid = valid_all[start:stop]
            match = run.reference_codes[inds[valid]] == run.query_codes[start:stop][valid, None]
            _reduce_chunk(sums, match, run.n_relevant[start:stop][valid], precision_k, recall_k)
    n_valid = int(valid_all.sum())
    return {name: total / n_valid for name, total in sums.items()}


def _reduce_chunk(sums: dict, match: Tensor, r: Tensor, precision_k, recall_k) -> None:
    """Add one chunk's per-query scores (``match``: (chunk, k) relevance, ``r``: R)."""
    for k in precision_k:
        sums[f"precision_at_{k}"] += float(match[:, :k].sum()) / k
    for k in recall_k:
        sums[f"recall_at_{k}"] += float(match[:, :k].any(dim=1).sum())
    if "map_at_r" in sums:
        rank = torch.arange(1, match.shape[1] + 1, device=match.device, dtype=torch.float64)
        hits = (match & (rank <= r.unsqueeze(1))).to(torch.float64)
        r = r.to(torch.float64)
        sums["r_precision"] += float((hits.sum(dim=1) / r).sum())
        precision_at_hits = hits.cumsum(dim=1).div_(rank).mul_(hits)
        sums["map_at_r"] += float((precision_at_hits.sum(dim=1) / r).sum())
