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

from sk_deepmetric._retrieval import _check_ks, _prepare, _scan
from sk_deepmetric._validation import check_int, check_option
from sk_deepmetric.distances import DISTANCES

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
