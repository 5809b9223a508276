"""Retrieval and verification metrics of an embedding, and scorers for model selection.

Verification (same identity or not?) works on pairs in scikit-learn's ``(y_true, y_score)``
convention, read from :func:`sklearn.metrics.roc_curve`: :func:`equal_error_rate`,
:func:`tar_at_far`, :func:`min_dcf`, :func:`verification_report`, the LFW protocol's
:func:`verification_accuracy` and :func:`select_threshold`; :func:`make_pairs` and
:func:`pair_scores` make the pairs of an embedding; :func:`reidentification_report` is the
query/gallery protocol of person re-identification. Their definitions are in their
docstrings and in the user guide's "Verification and open-set recognition".

The rest of this docstring is about the retrieval metrics.

Precision@k, Recall@k, R-Precision and MAP@R as defined in the user guide's evaluation
protocol (Musgrave et al.,
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
:func:`~sk_deepmetric.distances.iter_topk_neighbors`. The distances are those computed, in
floating point: distances that are equal mathematically but come from different vectors
(two reference vectors orthogonal to a query, or collinear ones) can be rounded apart by a
few units in the last place, which way depending on the number of queries searched at once
(``chunk_size``), and are then ranked by that rounding rather than by index.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import Tensor

from sk_deepmetric._devices import resolve_device
from sk_deepmetric._retrieval import (
    MAX_ALL_PAIRS,
    all_pairs,
    as_array,
    as_embeddings,
    as_labels,
    check_ks,
    check_label_values,
    check_pair_labels,
    check_rate,
    check_scores,
    device_of,
    encode,
    map_at_r,
    pair_indices,
    pair_similarities,
    pair_threshold,
    prepare,
    reid_scan,
    roc_eer,
    roc_min_dcf,
    roc_points,
    roc_tar_at_far,
    sample_pairs,
    scan,
    searched_set,
)
from sk_deepmetric._validation import (
    check_int,
    check_option,
    check_random_state,
    check_real,
    external_stacklevel,
)
from sk_deepmetric.distances import DISTANCES

__all__ = [
    "SCORER_METRICS",
    "VERIFICATION_SCORER_METRICS",
    "equal_error_rate",
    "make_pairs",
    "make_retrieval_scorer",
    "make_verification_scorer",
    "mean_average_precision_at_r",
    "min_dcf",
    "pair_scores",
    "precision_at_k",
    "r_precision",
    "recall_at_k",
    "reidentification_report",
    "retrieval_report",
    "select_threshold",
    "tar_at_far",
    "verification_accuracy",
    "verification_report",
]

_COMMON_PARAMETERS = """\
    embeddings : array-like or Tensor of shape (n_queries, n_components)
        The query embeddings (in leave-one-out mode, the whole evaluation set): dense, and
        read as scikit-learn's ``check_array(dtype="numeric")`` reads ``X`` (a DataFrame of
        numeric columns, an object array of numbers); long double is read as float64.
    labels : array-like of shape (n_queries,)
        Class of each query; any hashable values (integers, strings).
    reference_embeddings : array-like or Tensor of shape (n_reference, n_components), \
default=None
        The set searched. ``None``: leave-one-out on ``embeddings``.
    reference_labels : array-like of shape (n_reference,), default=None
        Class of each reference sample; required with ``reference_embeddings``. Labels of
        the same kind as ``labels`` (numbers, or strings): a label is a query's class when
        it equals it, as Python compares them (``1 == 1.0``; ``1`` is not ``"1"``).
    exclude_self : bool, default=None
        Whether query ``i`` is reference row ``i`` and must not retrieve itself. ``None``
        means True in leave-one-out mode and False with a reference set. ``True`` with a
        reference set requires the same rows and labels in both.
    distance : {"cosine", "euclidean", "squared_euclidean"}, default="cosine"
        How neighbours are ranked. ``"cosine"`` (1 - cosine similarity) is the evaluation
        protocol's choice -- it compares L2-normalised embeddings, as every embedder's
        ``score`` does -- and on normalised embeddings all three rank neighbours alike.
    chunk_size : int, default=None
        Queries searched at once; ``None`` bounds the temporaries to ~32 MiB. The result
        does not depend on it, up to the floating-point rounding of mathematically equal
        distances (see the ties in :mod:`sk_deepmetric.metrics`).
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
    distance: str = "cosine",
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
    >>> round(precision_at_k(x, ["a", "a", "a", "b"], distance="euclidean"), 4)
    0.6667
    """
    run = prepare(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        exclude_self,
        distance,
        chunk_size,
        device,
    )
    (k,) = check_ks([k], "k", run.limit, run.exclude_self)
    return scan(run, precision_k=[k])[f"precision_at_{k}"]


@_fill_doc
def recall_at_k(
    embeddings,
    labels,
    *,
    k: int = 1,
    reference_embeddings=None,
    reference_labels=None,
    exclude_self: bool | None = None,
    distance: str = "cosine",
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
    >>> recall_at_k(x, [0, 1, 0, 1, 1], k=2, distance="euclidean")
    0.6
    """
    run = prepare(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        exclude_self,
        distance,
        chunk_size,
        device,
    )
    (k,) = check_ks([k], "k", run.limit, run.exclude_self)
    return scan(run, recall_k=[k])[f"recall_at_{k}"]


@_fill_doc
def r_precision(
    embeddings,
    labels,
    *,
    reference_embeddings=None,
    reference_labels=None,
    exclude_self: bool | None = None,
    distance: str = "cosine",
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
    >>> r_precision(x, [0, 1, 0, 1], distance="euclidean")
    0.0
    """
    run = prepare(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        exclude_self,
        distance,
        chunk_size,
        device,
    )
    return scan(run, at_r=True)["r_precision"]


@_fill_doc
def mean_average_precision_at_r(
    embeddings,
    labels,
    *,
    reference_embeddings=None,
    reference_labels=None,
    exclude_self: bool | None = None,
    distance: str = "cosine",
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
    >>> mean_average_precision_at_r(x, [0, 0, 1, 1, 0, 1], distance="euclidean")
    0.375
    """
    return map_at_r(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        exclude_self,
        distance,
        chunk_size,
        device,
    )


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
    distance: str = "cosine",
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
    >>> report = retrieval_report(x, [0, 0, 1, 1, 0, 1], recall_k=(1, 2), distance="euclidean")
    >>> list(report)
    ['precision_at_1', 'recall_at_1', 'recall_at_2', 'r_precision', 'map_at_r']
    >>> report["recall_at_2"], report["map_at_r"]
    (0.8333333333333334, 0.375)
    """
    run = prepare(
        embeddings,
        labels,
        reference_embeddings,
        reference_labels,
        exclude_self,
        distance,
        chunk_size,
        device,
    )
    precision_k = check_ks(precision_k, "precision_k", run.limit, run.exclude_self)
    recall_k = check_ks(recall_k, "recall_k", run.limit, run.exclude_self)
    return scan(run, precision_k, recall_k, at_r=True)


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
    distance: str = "cosine",
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
    distance : {"cosine", "euclidean", "squared_euclidean"}, default="cosine"
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
            raise ValueError(f"`k` is not used by metric={metric!r}; leave it None, got {k!r}.")
    elif metric.endswith("_at_1"):
        if k not in (None, 1):
            raise ValueError(f"`k` must be 1 or None with metric={metric!r}, got {k!r}.")
        k = 1
    else:
        k = 1 if k is None else check_int(k, "k", min_value=1)
    if device is not None:  # a bad one is named now, not at the first score
        resolve_device(device)
    return _RetrievalScorer(metric, distance, k, chunk_size, device)


# ====================================================================== verification
# Same-identity (1) or different-identity (0) pairs with a similarity score each, higher
# meaning more alike, as scikit-learn's roc_curve takes them. A pair is accepted when its
# score is at least the threshold.

_VERIFICATION_INPUTS = """\
    y_true : array-like of shape (n_pairs,)
        1 (or True) for a same-identity pair, 0 or -1 (or False) for a different-identity
        pair, in any numeric dtype or an object array of such numbers; both kinds must be
        present.
    y_score : array-like or Tensor of shape (n_pairs,)
        Similarity of each pair, higher meaning more alike (e.g. from :func:`pair_scores`);
        a pair is accepted when its score is at least the threshold. Read as
        :func:`sklearn.metrics.roc_curve` reads it: booleans score 0 and 1, and an object
        array of numbers is read as float64."""

_VERIFICATION_REFERENCES = """\
    .. [1] NIST, "The NIST Year 2010 Speaker Recognition Evaluation Plan", 2010 (the
       detection cost function and its normalisation).
    .. [2] A. Nagrani, J. S. Chung, J. Huh et al., "VoxSRC 2020: The Second VoxCeleb Speaker
       Recognition Challenge", arXiv:2012.06867, 2020 (EER, and minDCF at P_target = 0.05).
    .. [3] G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller, "Labeled Faces in the Wild: A
       Database for Studying Face Recognition in Unconstrained Environments", Technical
       Report 07-49, University of Massachusetts, Amherst, 2007.
    .. [4] B. Maze, J. Adams, J. A. Duncan et al., "IARPA Janus Benchmark - C: Face Dataset
       and Protocol", ICB 2018 (TAR at FAR 1e-3, 1e-4 ...)."""


def _fill_verification_doc(func):
    doc = func.__doc__.replace("    {inputs}", _VERIFICATION_INPUTS)
    func.__doc__ = doc.replace("    {references}", _VERIFICATION_REFERENCES)
    return func


@_fill_verification_doc
def equal_error_rate(y_true, y_score, *, return_threshold: bool = False):
    """Equal error rate: where the false-accept rate equals the false-reject rate.

    With ``FAR(t)`` the fraction of different-identity pairs with a score at least ``t`` and
    ``FRR(t)`` the fraction of same-identity pairs below it, the EER is the rate where the
    two curves cross. ROC points come from :func:`sklearn.metrics.roc_curve` (every
    threshold kept) and the crossing is interpolated linearly on the segment between the
    two ROC points where ``FRR - FAR`` changes sign, as in the speaker-verification
    evaluations [1]_ [2]_; on a finite set of pairs no single threshold need reach it.

    Parameters
    ----------
    {inputs}
    return_threshold : bool, default=False
        Also return the threshold of the ROC point nearer the crossing (its FAR and FRR
        straddle the EER).

    Returns
    -------
    eer : float
        In ``[0, 1]``; 0 when every same-identity pair scores above every other.
    threshold : float
        Only with ``return_threshold=True``.

    See Also
    --------
    verification_report : EER, TAR@FAR and minDCF from one ROC curve.

    References
    ----------
    {references}

    Examples
    --------
    >>> from sk_deepmetric.metrics import equal_error_rate
    >>> equal_error_rate([1, 1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.3, 0.2])
    0.3333333333333333
    """
    eer, threshold = roc_eer(roc_points(y_true, y_score))
    return (eer, threshold) if return_threshold else eer


@_fill_verification_doc
def tar_at_far(y_true, y_score, *, far: float = 1e-3) -> float:
    """True-accept rate at a false-accept rate: the ROC curve read at ``FPR = far``.

    The ROC curve of :func:`sklearn.metrics.roc_curve` (every threshold kept) is read at
    ``far`` by linear interpolation between the last point with ``FAR <= far`` (the highest
    TAR among the points at that FAR) and the next one, the "verification rate at a
    false-accept rate" of the face-verification protocols (IJB-B/C [4]_, BLUFR). It is only
    meaningful with well over ``1 / far`` different-identity pairs: with fewer, the curve is
    read between its first two points.

    Parameters
    ----------
    {inputs}
    far : float, default=1e-3
        The false-accept rate, in ``(0, 1)``. A float32 rate is read as the decimal it
        prints as (``np.float32(1e-3)`` is ``1e-3``).

    Returns
    -------
    tar : float
        In ``[0, 1]``.

    References
    ----------
    {references}

    Examples
    --------
    >>> from sk_deepmetric.metrics import tar_at_far
    >>> tar_at_far([1, 1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.3, 0.2], far=0.5)
    1.0
    """
    far = _check_far(far)
    return roc_tar_at_far(roc_points(y_true, y_score), far)


@_fill_verification_doc
def min_dcf(
    y_true,
    y_score,
    *,
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
    return_threshold: bool = False,
):
    """Normalised minimum detection cost (NIST SRE, VoxCeleb).

    The detection cost at threshold ``t`` is
    ``C_det(t) = C_miss * P_miss(t) * P_target + C_fa * P_fa(t) * (1 - P_target)``, with
    ``P_miss`` the false-reject and ``P_fa`` the false-accept rate; it is divided by
    ``min(C_miss * P_target, C_fa * (1 - P_target))``, the cost of the better of accepting or
    rejecting everything, and minimised over the thresholds of the ROC curve [1]_ [2]_. A
    system no better than a fixed decision scores 1; 0 is perfect.

    Parameters
    ----------
    {inputs}
    p_target : float, default=0.01
        Prior probability of a same-identity trial, in ``(0, 1)``: 0.01 in the VoxCeleb
        papers (and one of the operating points of the NIST evaluations), 0.05 in the
        VoxSRC challenges from 2020, 0.001 in NIST SRE 2010.
    c_miss : float, default=1.0
        Cost of a false reject, ``> 0``.
    c_fa : float, default=1.0
        Cost of a false accept, ``> 0``.
    return_threshold : bool, default=False
        Also return the threshold that reaches the minimum (``inf``: reject every pair).

    Returns
    -------
    min_dcf : float
        In ``[0, 1]``.
    threshold : float
        Only with ``return_threshold=True``.

    References
    ----------
    {references}

    Examples
    --------
    >>> from sk_deepmetric.metrics import min_dcf
    >>> round(min_dcf([1, 1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.3, 0.2], p_target=0.5), 4)
    0.3333
    """
    p_target = check_rate(p_target, "p_target")
    c_miss = check_real(c_miss, "c_miss", min_value=0.0, closed="neither")
    c_fa = check_real(c_fa, "c_fa", min_value=0.0, closed="neither")
    value, threshold = roc_min_dcf(roc_points(y_true, y_score), p_target, c_miss, c_fa)
    return (value, threshold) if return_threshold else value


def _check_far(far) -> float:
    """A false-accept rate in ``(0, 1)``, a number or a 0-d array, as the float of the
    decimal it prints as: float32 0.001 is 0.0010000000474974513 as a float, but the rate
    written was 0.001, and its report key and TAR are those of 0.001."""
    if isinstance(far, np.ndarray) and far.ndim == 0:
        far = far[()]
    if isinstance(far, np.floating) and far.dtype.itemsize < 8:
        far = float(str(far))  # numpy prints the shortest decimal that reads back as far
    return check_rate(far, "far")


def _far_key(far: float) -> str:
    """The report's key of a rate: its shortest repr, so that distinct rates stay apart
    (``0.001`` -> ``"tar_at_far_0.001"``, ``1e-05`` -> ``"tar_at_far_1e-05"``)."""
    return f"tar_at_far_{far!r}"


@_fill_verification_doc
def verification_report(
    y_true,
    y_score,
    *,
    far: float | Iterable[float] = (1e-2, 1e-3),
    p_target: float = 0.01,
    c_miss: float = 1.0,
    c_fa: float = 1.0,
) -> dict[str, float]:
    """Every verification metric, and its threshold, from one ROC curve.

    Parameters
    ----------
    {inputs}
    far : float or iterable of float, default=(1e-2, 1e-3)
        The false-accept rates of the TAR@FAR entries, each in ``(0, 1)``; a rate given
        twice has one entry. A float32 rate is read as the decimal it prints as
        (``np.float32(1e-3)`` is ``1e-3``, key ``"tar_at_far_0.001"``).
    p_target, c_miss, c_fa : float
        The parameters of :func:`min_dcf`.

    Returns
    -------
    dict
        ``"roc_auc"``; ``"equal_error_rate"`` and ``"eer_threshold"``;
        ``"tar_at_far_{far}"`` for each rate (``"tar_at_far_0.001"``); ``"min_dcf"`` and
        ``"min_dcf_threshold"``; ``"n_same"`` and ``"n_different"``, the pair counts.

    References
    ----------
    {references}

    Examples
    --------
    >>> from sk_deepmetric.metrics import verification_report
    >>> report = verification_report([1, 1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.3, 0.2])
    >>> report["equal_error_rate"], report["eer_threshold"], report["tar_at_far_0.01"]
    (0.3333333333333333, 0.7, 0.6666666666666666)
    """
    scalar = isinstance(far, numbers.Real) or (isinstance(far, np.ndarray) and far.ndim == 0)
    if not scalar and not isinstance(far, Iterable):
        raise ValueError(f"`far` must be a rate in (0, 1) or an iterable of rates, got {far!r}.")
    fars = [far] if scalar else list(far)
    if not fars:
        raise ValueError("`far` must hold at least one rate, got an empty iterable.")
    fars = list(dict.fromkeys(_check_far(f) for f in fars))  # equal rates once, in order
    p_target = check_rate(p_target, "p_target")
    c_miss = check_real(c_miss, "c_miss", min_value=0.0, closed="neither")
    c_fa = check_real(c_fa, "c_fa", min_value=0.0, closed="neither")
    roc = roc_points(y_true, y_score)
    eer, eer_threshold = roc_eer(roc)
    dcf, dcf_threshold = roc_min_dcf(roc, p_target, c_miss, c_fa)
    from sklearn.metrics import auc

    report = {"roc_auc": float(auc(roc.fpr, roc.tpr))}
    report |= {"equal_error_rate": eer, "eer_threshold": eer_threshold}
    report |= {_far_key(f): roc_tar_at_far(roc, f) for f in fars}
    report |= {"min_dcf": dcf, "min_dcf_threshold": dcf_threshold}
    report |= {"n_same": roc.n_positive, "n_different": roc.n_negative}
    return report


def select_threshold(y_true, y_score, *, target_far: float | None = None) -> float:
    """A decision threshold on pair scores: the most accurate one, or one for a target FAR.

    Pairs with a score at least the threshold are accepted. ``target_far=None``: the
    threshold of highest accuracy on these pairs (of equally accurate ones the strictest),
    halfway between the lowest accepted score and the highest rejected one. A rate: with
    ``N`` different-identity pairs and ``k`` the most that ``target_far`` allows
    (``k / N <= target_far``), the threshold accepts ``k`` of them (tied scores are
    accepted or rejected together) and as many same-identity pairs as that allows: it lies
    halfway between the highest different-identity score it rejects and the next higher
    score of any pair. A
    warning says when ``target_far * N < 1``: the threshold then rejects every
    different-identity pair and the rate it will give is unknown.

    Choose it on pairs of classes that neither the embedding was trained on nor the
    evaluation uses (a validation split); on the evaluation pairs themselves it is optimistic.

    Parameters
    ----------
    y_true : array-like of shape (n_pairs,)
        1 for a same-identity pair, 0 or -1 for a different-identity pair.
    y_score : array-like or Tensor of shape (n_pairs,)
        Similarity of each pair, higher meaning more alike.
    target_far : float, default=None
        The false-accept rate to aim at, in ``(0, 1)``; ``None``: best accuracy.

    Returns
    -------
    threshold : float
        For float32, float16 or (tensor) bfloat16 scores a value of their dtype, which
        decides ``score >= threshold`` alike whether the scores are compared in their own
        precision (as NumPy and torch compare them with a Python float) or in float64.

    Examples
    --------
    >>> from sk_deepmetric.metrics import select_threshold
    >>> y, s = [1, 1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.3, 0.2]
    >>> select_threshold(y, s), round(select_threshold(y, s, target_far=0.34), 6)
    (0.75, 0.45)
    """
    return pair_threshold(y_true, y_score, target_far)


def verification_accuracy(y_true, y_score, *, cv=10, random_state=None) -> tuple[float, float]:
    """LFW-style accuracy: a best-accuracy threshold chosen on k-1 folds, tested on the k-th.

    The protocol of Labeled Faces in the Wild ("View 2", unrestricted) [1]_: the pairs are
    split into folds; for each fold, the threshold of highest accuracy on the other folds
    (:func:`select_threshold`) classifies the fold's pairs, and the accuracies of the folds
    are averaged. LFW reports the mean and the standard error ``std / sqrt(k)``, with the
    standard deviation taken with ``k - 1`` degrees of freedom; that standard deviation is
    returned here (the face-recognition code bases that print "mean +- std" use ``k``).

    Parameters
    ----------
    y_true : array-like of shape (n_pairs,)
        1 for a same-identity pair, 0 or -1 for a different-identity pair.
    y_score : array-like of shape (n_pairs,)
        Similarity of each pair, higher meaning more alike.
    cv : int or array-like of shape (n_pairs,), default=10
        The number of folds, stratified by ``y_true`` and shuffled with ``random_state``; or
        one fold label per pair (LFW's own ten folds, which keep identities apart, or folds
        made from ``groups`` of your own), every distinct label a fold. -1 is an ordinary
        label, a fold tested like the others, not "never tested" as in
        :class:`~sklearn.model_selection.PredefinedSplit`. Splitters such as
        :class:`~sklearn.model_selection.GroupKFold`, and iterables of (train, test)
        indices, are not accepted: pass the fold of each pair instead. The other folds of
        each fold must hold pairs of both kinds.
    random_state : int, RandomState instance or None, default=None
        Shuffles the pairs into folds when ``cv`` is an int.

    Returns
    -------
    mean : float
        Mean accuracy over the folds, in ``[0, 1]``.
    std : float
        Standard deviation of the fold accuracies (``ddof=1``).

    References
    ----------
    .. [1] G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller, "Labeled Faces in the Wild: A
       Database for Studying Face Recognition in Unconstrained Environments", Technical
       Report 07-49, University of Massachusetts, Amherst, 2007.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_deepmetric.metrics import verification_accuracy
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat([1, 0], 300)
    >>> scores = rng.normal(loc=2.0 * y)  # same-identity pairs score 2 higher on average
    >>> mean, std = verification_accuracy(y, scores, random_state=0)
    >>> round(mean, 2)
    0.82
    """
    from sklearn.model_selection import PredefinedSplit, StratifiedKFold

    _check_random_state(random_state)
    y = check_pair_labels(y_true)
    scores = check_scores(y_score, y.size)
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        cv = check_int(cv, "cv", min_value=2)
        if cv > min(y.sum(), (~y).sum()):
            raise ValueError(
                f"`cv` ({cv}) must not exceed the number of pairs of either kind "
                f"({int(y.sum())} same, {int((~y).sum())} different)."
            )
        splits = StratifiedKFold(cv, shuffle=True, random_state=random_state).split(scores, y)
    else:
        folds = None if isinstance(cv, (bool, numbers.Real)) else as_array(cv, "cv")
        if folds is None or folds.ndim == 0 or folds.shape != y.shape:
            given = repr(cv) if folds is None or folds.ndim == 0 else f"shape {folds.shape}"
            raise ValueError(
                f"`cv` must be an int or one fold label per pair ({y.size}), got {given}."
            )
        if np.unique(folds).size < 2:
            raise ValueError("`cv` must hold at least 2 distinct folds.")
        splits = PredefinedSplit(np.unique(folds, return_inverse=True)[1].ravel()).split()
    accuracies = []
    for train, test in splits:
        if y[train].all() or not y[train].any():
            raise ValueError(
                "Every fold's complement must hold pairs of both kinds to choose a threshold; "
                "a fold of `cv` leaves only one kind outside it."
            )
        threshold = select_threshold(y[train], scores[train])
        accuracies.append(float(np.mean((scores[test] >= threshold) == y[test])))
    return float(np.mean(accuracies)), float(np.std(accuracies, ddof=1))


def _check_random_state(random_state) -> np.random.RandomState:
    """scikit-learn's ``check_random_state``, with an error that names the parameter."""
    try:
        return check_random_state(random_state)
    except ValueError:
        raise ValueError(
            f"`random_state` must be None, an int or a numpy RandomState, got {random_state!r}."
        ) from None


def make_pairs(labels, *, n_pairs: int | None = None, random_state=None):
    """Pairs of samples, labelled same-identity (1) or not (0), for the verification metrics.

    ``n_pairs=None``: every unordered pair ``(i, j)``, ``i < j`` (up to ten million pairs,
    about 4,500 samples); their balance is the labels' own. An int: ``n_pairs // 2``
    same-class pairs and the rest different-class pairs, each drawn uniformly without
    replacement from all such pairs, without listing them (so any number of samples works).
    Draw the pairs from classes the embedding was not trained on.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Class of each sample: integers, strings or other values that sort against each
        other; no NaN (two samples of unknown class are not one class).
    n_pairs : int, default=None
        Number of balanced pairs to draw, at least 2; ``None``: all pairs.
    random_state : int, RandomState instance or None, default=None
        Seeds the draw (an int gives the same pairs every time).

    Returns
    -------
    pairs : ndarray of shape (n_pairs, 2), int64
        Row indices, ``pairs[:, 0] < pairs[:, 1]``, sorted.
    y_pairs : ndarray of shape (n_pairs,), int64
        1 where both samples have the same label, else 0.

    See Also
    --------
    pair_scores : the score of each pair in an embedding.

    Examples
    --------
    >>> from sk_deepmetric.metrics import make_pairs
    >>> pairs, same = make_pairs(["a", "b", "a"])
    >>> pairs.tolist(), same.tolist()
    ([[0, 1], [0, 2], [1, 2]], [0, 1, 0])
    """
    return _labelled_pairs(labels, n_pairs, random_state)


def _labelled_pairs(labels, n_pairs, random_state, fill: bool = False):
    """:func:`make_pairs`; ``fill=True``: where one kind has fewer pairs than half of
    ``n_pairs``, all of them, and the other kind the rest (instead of an error)."""
    y = as_array(labels, "labels")
    if y.ndim != 1 or y.shape[0] < 2:
        raise ValueError(f"`labels` must be 1-D with at least 2 samples, got shape {y.shape}.")
    codes = np.unique(check_label_values(y, "labels"), return_inverse=True)[1].ravel()
    random_state = _check_random_state(random_state)
    if n_pairs is None:
        return all_pairs(codes)
    n_pairs = check_int(n_pairs, "n_pairs", min_value=2)
    seed = random_state.randint(np.iinfo(np.int32).max)
    return sample_pairs(codes, n_pairs, np.random.default_rng(seed), fill)


def pair_scores(
    embeddings,
    pairs=None,
    *,
    distance: str = "cosine",
    chunk_size: int | None = None,
    device=None,
) -> np.ndarray:
    """Similarity of the two samples of each pair in an embedding, higher meaning more alike.

    ``"cosine"``: the cosine similarity; ``"euclidean"`` and ``"squared_euclidean"``: the
    negated distance. Computed from the differences (:func:`~sk_deepmetric.distances.\
paired_distances`), a chunk of pairs at a time within ~32 MiB.

    Parameters
    ----------
    embeddings : array-like or Tensor of shape (n_samples, n_components) or \
(n_pairs, 2, n_components)
        The embeddings indexed by ``pairs``, or the pairs' two embeddings side by side.
    pairs : array-like of shape (n_pairs, 2), default=None
        Row indices into ``embeddings`` (as returned by :func:`make_pairs`); ``None`` when
        ``embeddings`` holds the pairs.
    distance : {"cosine", "euclidean", "squared_euclidean"}, default="cosine"
    chunk_size : int, default=None
        Pairs scored at once; ``None`` bounds the temporaries to ~32 MiB.
    device : str or torch.device, default=None
        Where to compute; ``None``: the device of ``embeddings`` if it is a tensor, else CPU.

    Returns
    -------
    scores : ndarray of shape (n_pairs,), float64

    Examples
    --------
    >>> from sk_deepmetric.metrics import pair_scores
    >>> pair_scores([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]], [[0, 1], [0, 2]])
    array([0., 1.])
    """
    distance = check_option(distance, DISTANCES, "distance")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    device = device_of(embeddings, device)
    if pairs is None:
        x = embeddings if isinstance(embeddings, Tensor) else np.asarray(embeddings)
        if x.ndim != 3 or x.shape[1] != 2 or x.shape[0] == 0 or x.shape[2] == 0:
            raise ValueError(
                "Without `pairs`, `embeddings` must have shape (n_pairs, 2, n_components) "
                f"with at least one pair and one component, got shape {tuple(x.shape)}."
            )
        first = as_embeddings(x[:, 0], "embeddings", device)
        second = as_embeddings(x[:, 1], "embeddings", device)
    else:
        x = as_embeddings(embeddings, "embeddings", device)
        index = torch.from_numpy(pair_indices(pairs, x.shape[0])).to(x.device)
        first, second = x[index[:, 0]], x[index[:, 1]]
    return pair_similarities(first, second, distance, chunk_size)


def reidentification_report(
    query_embeddings,
    query_labels,
    gallery_embeddings,
    gallery_labels,
    *,
    query_groups=None,
    gallery_groups=None,
    ranks: Iterable[int] = (1, 5, 10),
    distance: str = "euclidean",
    chunk_size: int | None = None,
    device=None,
) -> dict[str, float]:
    """Re-identification: CMC at rank k and mAP of queries against a separate gallery.

    The protocol of Market-1501 [1]_: each query ranks the whole gallery by distance; gallery
    items of the query's identity taken in the query's *group* (its camera) are removed from
    its ranking, since finding a person again in the same camera is too easy; a query with
    no remaining item of its identity is left out. ``CMC@k`` is the fraction of queries with
    a correct item within the first ``k``; ``mAP`` the mean over queries of the average
    precision ``(1/G) * sum over the G correct items of (correct items up to it) / (its
    rank)``. This is the non-interpolated AP of most re-ID code since (torchreid,
    fast-reid); the original MATLAB code of [1]_ integrates precision by the trapezoidal
    rule, which gives slightly different numbers. Equal distances are ranked by gallery
    index, up to the floating-point rounding of mathematically equal ones (which can depend
    on ``chunk_size``, as in the retrieval metrics). A chunk of queries is ranked at a
    time, within ~32 MiB.

    Parameters
    ----------
    query_embeddings : array-like or Tensor of shape (n_queries, n_components)
    query_labels : array-like of shape (n_queries,)
        Identity of each query; any hashable values.
    gallery_embeddings : array-like or Tensor of shape (n_gallery, n_components)
    gallery_labels : array-like of shape (n_gallery,)
        Identity of each gallery item, of the same kind as ``query_labels`` (numbers, or
        strings).
    query_groups, gallery_groups : array-like of shape (n_queries,) and (n_gallery,), \
default=None
        The camera (or any group) of each sample: both or neither, of one kind (numbers, or
        strings). ``None``: nothing is removed from the rankings.
    ranks : int or iterable of int, default=(1, 5, 10)
        The ``k`` of each ``CMC@k``, at most ``n_gallery``.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
    chunk_size : int, default=None
        Queries ranked at once; ``None`` bounds the temporaries to ~32 MiB.
    device : str or torch.device, default=None
        Where to compute; ``None``: the device of ``query_embeddings`` if it is a tensor,
        else CPU.

    Returns
    -------
    dict
        ``"cmc_at_{k}"`` for each rank and ``"map"``, floats in ``[0, 1]``, and
        ``"n_valid_queries"``, the number of queries that count.

    References
    ----------
    .. [1] L. Zheng, L. Shen, L. Tian, S. Wang, J. Wang, Q. Tian, "Scalable Person
       Re-identification: A Benchmark", ICCV 2015.

    Examples
    --------
    Query 0's only same-camera match is removed, so its first correct item is at rank 2:

    >>> from sk_deepmetric.metrics import reidentification_report
    >>> gallery = [[0.0], [1.0], [2.0], [5.0]]
    >>> report = reidentification_report(
    ...     [[0.1], [4.9]], ["a", "b"], gallery, ["a", "c", "a", "b"],
    ...     query_groups=[1, 1], gallery_groups=[1, 2, 2, 2], ranks=(1, 2))
    >>> report["cmc_at_1"], report["cmc_at_2"], report["map"]
    (0.5, 1.0, 0.75)
    """
    distance = check_option(distance, DISTANCES, "distance")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    device = device_of(query_embeddings, device)
    queries = as_embeddings(query_embeddings, "query_embeddings", device)
    q_labels = as_labels(query_labels, "query_labels", queries.shape[0], "query_embeddings")
    queries, gallery, g_labels = searched_set(
        queries, gallery_embeddings, gallery_labels, device, ("gallery", "query_embeddings")
    )
    names = ("query_labels", "gallery_labels")
    _, q_codes, g_codes = encode(q_labels, g_labels, queries.device, names)
    if (query_groups is None) != (gallery_groups is None):
        raise ValueError("`query_groups` and `gallery_groups` go together: pass both or neither.")
    q_groups = g_groups = None
    if query_groups is not None:
        q_groups = as_labels(query_groups, "query_groups", queries.shape[0], "query_embeddings")
        g_groups = as_labels(
            gallery_groups, "gallery_groups", gallery.shape[0], "gallery_embeddings"
        )
        names = ("query_groups", "gallery_groups")
        _, q_groups, g_groups = encode(q_groups, g_groups, queries.device, names)
    ranks = check_ks(ranks, "ranks", gallery.shape[0], False, what="gallery items")
    return reid_scan(
        queries, q_codes, q_groups, gallery, g_codes, g_groups, ranks, distance, chunk_size
    )


#: Metric names accepted by :func:`make_verification_scorer`.
VERIFICATION_SCORER_METRICS = ("equal_error_rate", "tar_at_far", "min_dcf")

#: Pairs that make_verification_scorer(n_pairs=None) draws from a fold with more than
#: make_pairs' ten million: 500,000 different-class pairs still count 50 false accepts at
#: a FAR of 1e-4, and scoring them is a tenth of the work of the largest fold listed whole.
_LARGE_FOLD_PAIRS = 1_000_000


class _VerificationScorer:
    """``scorer(estimator, X, y)``: a verification metric of pairs of ``transform(X)``."""

    def __init__(self, metric, far, p_target, distance, n_pairs, random_state):
        self.metric = metric
        self.far = far
        self.p_target = p_target
        self.distance = distance
        self.n_pairs = n_pairs
        self.random_state = random_state

    def __call__(self, estimator, X, y=None) -> float:
        if y is None:
            raise ValueError(f"The {self.metric!r} verification scorer needs the labels `y`.")
        y = check_label_values(as_array(y, "y"), "y")
        seen = getattr(estimator, "classes_", None)
        if seen is not None and np.isin(y, seen).any():
            warnings.warn(
                f"The {self.metric!r} verification scorer was given samples of "
                f"{np.unique(y[np.isin(y, seen)]).size} classes the estimator was trained "
                "on; its pairs should come from classes never seen in training. Split by "
                "class: GroupKFold with groups=y.",
                UserWarning,
                stacklevel=external_stacklevel(),
            )
        n_pairs = self.n_pairs
        if n_pairs is None and y.size * (y.size - 1) // 2 > MAX_ALL_PAIRS:
            n_pairs = _LARGE_FOLD_PAIRS  # too many to list: drawn, as documented
        fill = self.n_pairs is None
        pairs, same = _labelled_pairs(y, n_pairs, self.random_state, fill)
        scores = pair_scores(estimator.transform(X), pairs, distance=self.distance)
        if self.metric == "equal_error_rate":
            return -equal_error_rate(same, scores)
        if self.metric == "min_dcf":
            return -min_dcf(same, scores, p_target=self.p_target)
        return tar_at_far(same, scores, far=self.far)

    def __repr__(self) -> str:
        option = {"tar_at_far": f", far={self.far}", "min_dcf": f", p_target={self.p_target}"}
        return (
            f"make_verification_scorer(metric={self.metric!r}"
            f"{option.get(self.metric, '')}, distance={self.distance!r})"
        )


def make_verification_scorer(
    metric: str = "equal_error_rate",
    *,
    far: float = 1e-3,
    p_target: float = 0.01,
    distance: str = "cosine",
    n_pairs: int | None = None,
    random_state=0,
):
    """A scikit-learn scorer: a verification metric on pairs of the validation samples.

    The scorer, called as ``scorer(estimator, X, y)``, embeds ``X`` with
    ``estimator.transform``, forms pairs of its samples (:func:`make_pairs`: all of them, a
    million of them from a fold too large for that, or ``n_pairs`` balanced ones), scores
    them (:func:`pair_scores`) and returns the metric, greater being better: ``-EER`` and
    ``-minDCF`` (negated, as scikit-learn's ``neg_*`` scorers), or TAR@FAR. Use it with
    class-disjoint folds (``GroupKFold`` with ``groups=y``), so that the pairs come from
    classes the candidate was not trained on; when ``estimator.classes_`` shows classes of
    ``y`` seen in training, it warns.

    Parameters
    ----------
    metric : {"equal_error_rate", "tar_at_far", "min_dcf"}, default="equal_error_rate"
    far : float, default=1e-3
        The false-accept rate of ``"tar_at_far"``, in ``(0, 1)``. A validation fold needs
        many more than ``1 / far`` different-class pairs for it to mean much.
    p_target : float, default=0.01
        The target prior of ``"min_dcf"``, in ``(0, 1)``.
    distance : {"cosine", "euclidean", "squared_euclidean"}, default="cosine"
    n_pairs : int, default=None
        Balanced pairs drawn per fold, as :func:`make_pairs` draws them. ``None``: all pairs
        of the fold where there are at most ten million of them (a fold of up to 4,472
        samples); from a larger fold, 1,000,000 pairs drawn as ``n_pairs=1_000_000`` draws
        them -- half same-class, half different-class, except that where the fold has fewer
        pairs of one kind than that, all of them are taken and the other kind makes up the
        rest.
    random_state : int, RandomState instance or None, default=0
        Seeds the pairs drawn (with ``n_pairs``, or from a fold too large for all pairs);
        fixed by default, so that every candidate is scored on the same pairs.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.decomposition import PCA
    >>> from sk_deepmetric.metrics import make_verification_scorer
    >>> X = np.array([[0.0, 1.0], [0.1, 5.0], [3.0, 2.0], [3.1, 4.0]])
    >>> scorer = make_verification_scorer("equal_error_rate", distance="euclidean")
    >>> scorer(PCA(n_components=1).fit(X), X, [0, 0, 1, 1])
    -0.5
    """
    metric = check_option(metric, VERIFICATION_SCORER_METRICS, "metric")
    far = _check_far(far)
    p_target = check_rate(p_target, "p_target")
    distance = check_option(distance, DISTANCES, "distance")
    if n_pairs is not None:
        n_pairs = check_int(n_pairs, "n_pairs", min_value=2)
    _check_random_state(random_state)  # a bad one is named now, not at the first score
    return _VerificationScorer(metric, far, p_target, distance, n_pairs, random_state)
