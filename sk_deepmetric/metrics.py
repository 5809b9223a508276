"""Retrieval metrics of an embedding, and scorers for scikit-learn's model selection.

Precision@k, Recall@k, R-Precision and MAP@R as defined in PROTOCOL.md (Musgrave et al.,
2020), computed from an exact nearest-neighbour search in chunks of queries
(:func:`~sk_deepmetric.distances.iter_topk_neighbors`): each chunk is reduced to a few sums
as soon as it is found, so memory stays bounded (~32 MiB by default) and 100k x 128
embeddings are evaluated without an ``n x n`` matrix.

Two modes, one set of arguments:

- **leave-one-out** (``reference_embeddings=None``, the protocol's mode): each sample queries
  all the others, itself excluded;
- **query / reference**: ``embeddings`` query ``reference_embeddings``. When the queries are
  the reference rows themselves, pass ``exclude_self=True`` so that no row retrieves itself
  (this is leave-one-out again, spelled out).

``R`` is the number of reference samples of the query's class, the query itself excluded.
Queries with ``R = 0`` could never score and are left out of *every* metric (as
pytorch-metric-learning's ``AccuracyCalculator`` does); when no query is left, a ValueError
is raised. Neighbours at equal distance are ranked by reference index, the order of
:func:`~sk_deepmetric.distances.iter_topk_neighbors`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from sk_deepmetric._validation import check_int, check_option
from sk_deepmetric.distances import DISTANCES, _rows_per_chunk, iter_topk_neighbors

__all__ = [
    "SCORER_METRICS",
    "make_retrieval_scorer",
    "mean_average_precision_at_r",
    "precision_at_k",
    "r_precision",
    "recall_at_k",
    "retrieval_report",
]

_COMMON_PARAMETERS = """\
    embeddings : array-like or Tensor of shape (n_queries, n_components)
        The query embeddings (in leave-one-out mode, the whole evaluation set).
    labels : array-like of shape (n_queries,)
        Class of each query; any hashable values (integers, strings).
    reference_embeddings : array-like or Tensor of shape (n_reference, n_components), \
default=None
        The set searched. ``None``: leave-one-out on ``embeddings``.
    reference_labels : array-like of shape (n_reference,), default=None
        Class of each reference sample; required with ``reference_embeddings``.
    exclude_self : bool, default=None
        Whether query ``i`` is reference row ``i`` and must not retrieve itself. ``None``
        means True in leave-one-out mode and False with a reference set. ``True`` with a
        reference set requires the same rows and labels in both.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        The protocol of PROTOCOL.md uses L2-normalised embeddings, i.e. ``"cosine"`` (on
        normalised embeddings all three rank neighbours alike).
    chunk_size : int, default=None
        Queries searched at once; ``None`` bounds the temporaries to ~32 MiB. The result
        does not depend on it.
    device : str or torch.device, default=None
        Where to search; ``None``: the device of ``embeddings`` if it is a tensor, else CPU."""

_REFERENCES = """\
    .. [1] K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning Reality Check", ECCV 2020.
       https://arxiv.org/abs/2003.08505"""


def _fill_doc(func):
    doc = func.__doc__.replace("    {common_parameters}", _COMMON_PARAMETERS)
    func.__doc__ = doc.replace("    {references}", _REFERENCES)
    return func


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


@_fill_doc
def precision_at_k(
    embeddings,
    labels,
    *,
    k: int = 1,
    reference_embeddings=None,
    reference_labels=None,
    exclude_self: bool | None = None,
    distance: str = "euclidean",
    chunk_size: int | None = None,
    device=None,
) -> float:
    """Precision@k: the fraction of each query's k nearest neighbours of its class, averaged.

    Precision@1, the protocol's number, is whether the nearest neighbour has the query's
    class. For ``k > 1`` a query with fewer than ``k`` relevant samples cannot reach 1.

    Parameters
    ----------
    {common_parameters}
    k : int, default=1
        Neighbours per query, at most the reference size (minus one in leave-one-out).

    Returns
    -------
    float
        In ``[0, 1]``, averaged over the queries with ``R > 0`` (see the module docstring).

    References
    ----------
    {references}

    Examples
    --------
    The only "b" has no other sample of its class, so it is left out; of the three "a",
    the one at 3 has the "b" as its nearest neighbour:

    >>> from sk_deepmetric.metrics import precision_at_k
    >>> x = [[0.0], [1.0], [3.0], [4.0]]
    >>> round(precision_at_k(x, ["a", "a", "a", "b"]), 4)
    0.6667
    """
    run = _prepare(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        exclude_self,
        distance,
        chunk_size,
        device,
    )
    (k,) = _check_ks([k], "k", run.limit, run.exclude_self)
    return _scan(run, precision_k=[k])[f"precision_at_{k}"]


@_fill_doc
def recall_at_k(
    embeddings,
    labels,
    *,
    k: int = 1,
    reference_embeddings=None,
    reference_labels=None,
    exclude_self: bool | None = None,
    distance: str = "euclidean",
    chunk_size: int | None = None,
    device=None,
) -> float:
    """Recall@k in the deep metric learning sense: is any of the k nearest of the query's class.

    This is the fraction of queries with at least one relevant neighbour in their top k (the
    "Recall@k" of image retrieval papers), not the information-retrieval recall
    ``hits / R``. Recall@1 equals Precision@1.

    Parameters
    ----------
    {common_parameters}
    k : int, default=1
        Neighbours per query, at most the reference size (minus one in leave-one-out).

    Returns
    -------
    float
        In ``[0, 1]``, averaged over the queries with ``R > 0`` (see the module docstring).

    References
    ----------
    {references}

    Examples
    --------
    >>> from sk_deepmetric.metrics import recall_at_k
    >>> x = [[0.0], [1.0], [3.0], [4.0], [5.0]]
    >>> recall_at_k(x, [0, 1, 0, 1, 1], k=2)
    0.6
    """
    run = _prepare(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        exclude_self,
        distance,
        chunk_size,
        device,
    )
    (k,) = _check_ks([k], "k", run.limit, run.exclude_self)
    return _scan(run, recall_k=[k])[f"recall_at_{k}"]


@_fill_doc
def r_precision(
    embeddings,
    labels,
    *,
    reference_embeddings=None,
    reference_labels=None,
    exclude_self: bool | None = None,
    distance: str = "euclidean",
    chunk_size: int | None = None,
    device=None,
) -> float:
    """R-Precision: the fraction of each query's R nearest neighbours that share its class.

    ``R`` is the number of reference samples of the query's class (itself excluded).

    Parameters
    ----------
    {common_parameters}

    Returns
    -------
    float
        In ``[0, 1]``, averaged over the queries with ``R > 0``.

    References
    ----------
    {references}

    Examples
    --------
    >>> from sk_deepmetric.metrics import r_precision
    >>> x = [[0.0], [1.0], [3.0], [4.0]]
    >>> r_precision(x, [0, 1, 0, 1])
    0.0
    """
    run = _prepare(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        exclude_self,
        distance,
        chunk_size,
        device,
    )
    return _scan(run, at_r=True)["r_precision"]


@_fill_doc
def mean_average_precision_at_r(
    embeddings,
    labels,
    *,
    reference_embeddings=None,
    reference_labels=None,
    exclude_self: bool | None = None,
    distance: str = "euclidean",
    chunk_size: int | None = None,
    device=None,
) -> float:
    """MAP@R, the headline metric of Musgrave et al. [1]_.

    For a query with ``R`` relevant reference samples,
    ``AP@R = (1/R) * sum_{i <= R} P(i) * rel(i)``, where ``rel(i)`` says whether neighbour
    ``i`` has the query's class and ``P(i)`` is the precision over the first ``i``
    neighbours; MAP@R is its mean over the queries with ``R > 0``. Unlike Precision@1 it
    rewards a well-ordered neighbourhood. Only ``R`` neighbours per query are searched, in
    chunks, never the ``n x n`` matrix. This is the definition of pytorch-metric-learning's
    ``AccuracyCalculator`` (``mean_average_precision_at_r``), which agrees with it on the
    same neighbours (it computes in float32 with faiss).

    Parameters
    ----------
    {common_parameters}

    Returns
    -------
    float
        In ``[0, 1]``.

    See Also
    --------
    retrieval_report : all the metrics from one search.
    make_retrieval_scorer : this metric as a scorer for ``GridSearchCV``.

    References
    ----------
    {references}

    Examples
    --------
    >>> from sk_deepmetric.metrics import mean_average_precision_at_r
    >>> x = [[0.0], [1.0], [3.0], [4.0], [10.0], [12.0]]
    >>> mean_average_precision_at_r(x, [0, 0, 1, 1, 0, 1])
    0.375
    """
    run = _prepare(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        exclude_self,
        distance,
        chunk_size,
        device,
    )
    return _scan(run, at_r=True)["map_at_r"]


@_fill_doc
def retrieval_report(
    embeddings,
    labels,
    *,
    precision_k: Iterable[int] = (1,),
    recall_k: Iterable[int] = (1, 2, 4, 8),
    reference_embeddings=None,
    reference_labels=None,
    exclude_self: bool | None = None,
    distance: str = "euclidean",
    chunk_size: int | None = None,
    device=None,
) -> dict[str, float]:
    """Every retrieval metric from a single nearest-neighbour search.

    Each query's neighbours are searched once, up to ``max(R, k)``, and all metrics are
    reduced from them chunk by chunk; the values equal those of the single-metric functions.

    Parameters
    ----------
    {common_parameters}
    precision_k : int or iterable of int, default=(1,)
        The k of each Precision@k.
    recall_k : int or iterable of int, default=(1, 2, 4, 8)
        The k of each Recall@k; each at most the reference size (minus one in
        leave-one-out).

    Returns
    -------
    dict
        ``"precision_at_{k}"`` for each ``precision_k``, ``"recall_at_{k}"`` for each
        ``recall_k``, ``"r_precision"`` and ``"map_at_r"``, each a float in ``[0, 1]``
        averaged over the queries with ``R > 0``.

    References
    ----------
    {references}

    Examples
    --------
    >>> from sk_deepmetric.metrics import retrieval_report
    >>> x = [[0.0], [1.0], [3.0], [4.0], [10.0], [12.0]]
    >>> report = retrieval_report(x, [0, 0, 1, 1, 0, 1], recall_k=(1, 2))
    >>> list(report)
    ['precision_at_1', 'recall_at_1', 'recall_at_2', 'r_precision', 'map_at_r']
    >>> report["recall_at_2"], report["map_at_r"]
    (0.8333333333333334, 0.375)
    """
    run = _prepare(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        exclude_self,
        distance,
        chunk_size,
        device,
    )
    precision_k = _check_ks(precision_k, "precision_k", run.limit, run.exclude_self)
    recall_k = _check_ks(recall_k, "recall_k", run.limit, run.exclude_self)
    return _scan(run, precision_k, recall_k, at_r=True)


#: Metric names accepted by :func:`make_retrieval_scorer`.
SCORER_METRICS = (
    "map_at_r",
    "r_precision",
    "precision_at_k",
    "precision_at_1",
    "recall_at_k",
    "recall_at_1",
)


class _RetrievalScorer:
    """``scorer(estimator, X, y)``: a leave-one-out retrieval metric of ``transform(X)``."""

    def __init__(self, metric: str, distance: str, k: int | None, chunk_size, device):
        self.metric = metric
        self.distance = distance
        self.k = k
        self.chunk_size = chunk_size
        self.device = device

    def __call__(self, estimator, X, y=None) -> float:
        if y is None:
            raise ValueError(f"The {self.metric!r} retrieval scorer needs the labels `y` of `X`.")
        embeddings = estimator.transform(X)
        options = dict(distance=self.distance, chunk_size=self.chunk_size, device=self.device)
        if self.metric == "map_at_r":
            return mean_average_precision_at_r(embeddings, y, **options)
        if self.metric == "r_precision":
            return r_precision(embeddings, y, **options)
        metric = precision_at_k if self.metric.startswith("precision") else recall_at_k
        return metric(embeddings, y, k=self.k, **options)

    def __repr__(self) -> str:
        k = "" if self.metric in ("map_at_r", "r_precision") else f", k={self.k}"
        return f"make_retrieval_scorer(metric={self.metric!r}, distance={self.distance!r}{k})"


def make_retrieval_scorer(
    metric: str = "map_at_r",
    *,
    distance: str = "euclidean",
    k: int | None = None,
    chunk_size: int | None = None,
    device=None,
):
    """A scikit-learn scorer computing a leave-one-out retrieval metric of an embedding.

    The scorer is called as ``scorer(estimator, X, y)``: it embeds ``X`` with
    ``estimator.transform`` (a transformer, or a Pipeline ending in one), and returns the
    metric of the embedding against itself, leave-one-out, greater being better. Use it as
    ``GridSearchCV(scoring=scorer)`` or in a dict of scorers for multi-metric search. Each
    validation fold is one evaluation set: samples whose class has no other sample in the
    fold are left out, and a fold where no class has two samples raises a ValueError
    (which ``GridSearchCV`` reports through ``error_score``).

    Parameters
    ----------
    metric : {"map_at_r", "r_precision", "precision_at_k", "precision_at_1", \
"recall_at_k", "recall_at_1"}, default="map_at_r"
        The metric; see :func:`mean_average_precision_at_r` and the others.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
    k : int, default=None
        The k of ``"precision_at_k"`` and ``"recall_at_k"`` (``None`` means 1); not
        accepted by the other metrics.
    chunk_size : int, default=None
        Queries searched at once, see :func:`mean_average_precision_at_r`.
    device : str or torch.device, default=None
        Where to search; ``None``: CPU, or the device of the embedding tensor.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning Reality Check", ECCV 2020.

    Examples
    --------
    PCA keeps the high-variance second feature, which does not separate the classes:

    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sk_deepmetric.metrics import make_retrieval_scorer
    >>> X = np.array([[0.0, 1.0], [0.1, 5.0], [3.0, 2.0], [3.1, 4.0]])
    >>> scorer = make_retrieval_scorer("precision_at_1")
    >>> scorer(PCA(n_components=1).fit(X), X, [0, 0, 1, 1])
    0.0
    """
    metric = check_option(metric, SCORER_METRICS, "metric")
    distance = check_option(distance, DISTANCES, "distance")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    if metric in ("map_at_r", "r_precision"):
        if k is not None:
            raise ValueError(f"`k` is not used by metric={metric!r}; leave it None.")
    elif metric.endswith("_at_1"):
        if k not in (None, 1):
            raise ValueError(f"`k` must be 1 or None with metric={metric!r}, got {k!r}.")
        k = 1
    else:
        k = 1 if k is None else check_int(k, "k", min_value=1)
    return _RetrievalScorer(metric, distance, k, chunk_size, device)
