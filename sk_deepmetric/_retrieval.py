"""The machinery behind :mod:`sk_deepmetric.metrics`: input checks and one chunked scan.

:func:`prepare` checks the arguments all the metrics share and resolves both modes
(leave-one-out, or queries against a reference set) to one :class:`_Retrieval`: tensors on
one device, integer codes for labels of any type, and each query's ``R``. :func:`scan`
then computes every requested metric from a single search, reducing each chunk of queries
to running sums so that memory stays bounded however many samples there are. The
definitions (``R``, the ``R = 0`` rule, ties) are in the docstring of the public module.

The verification metrics work on pair scores: :func:`roc_points` checks ``(y_true, y_score)`` and
returns scikit-learn's ROC curve, from which EER, TAR@FAR, minDCF and the thresholds are
read; :func:`sample_pairs` draws balanced pairs without listing all of them;
:func:`pair_similarities` scores pairs and :func:`reid_scan` ranks a gallery, both in
chunks within the same memory bound.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import torch
from scipy import sparse
from sklearn.exceptions import UndefinedMetricWarning
from torch import Tensor

from sk_deepmetric._blocks import rows_per_chunk
from sk_deepmetric._devices import as_tensor, resolve_device
from sk_deepmetric._validation import (
    as_host_tensor,
    check_array,
    check_dense,
    check_int,
    check_option,
    check_real,
    external_stacklevel,
)
from sk_deepmetric.distances import (
    DISTANCES,
    iter_topk_neighbors,
    paired_distances,
    pairwise_distances,
)


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


def device_of(embeddings, device) -> torch.device:
    """``device`` resolved (``"auto"``, an absent GPU named); ``None``: that of
    ``embeddings`` if it is a tensor, else the CPU."""
    if device is None:
        device = embeddings.device if isinstance(embeddings, Tensor) else "cpu"
    return resolve_device(device)


def as_embeddings(x, name: str, device) -> Tensor:
    """``x`` as a floating-point tensor on ``device``; checked 2-D, non-empty and finite.

    Tensors are detached, integer and boolean ones made float64 and half-precision ones
    float32. Anything else is read as scikit-learn's ``check_array(dtype="numeric")`` reads
    an estimator's ``X``: object arrays of numbers and DataFrames of numeric (also nullable,
    ``pd.NA`` as NaN) columns become float64. Long double becomes float64, which torch holds.
    Sparse input (scipy or torch) is refused.
    """
    if isinstance(x, Tensor):
        check_dense(x, name)
        x = x.detach()
    else:
        array = numeric_array(x, name)
        if array.dtype.kind == "f" and array.dtype.itemsize > 8:
            array = array.astype(np.float64)
        x = as_tensor(np.ascontiguousarray(array))
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


def as_labels(y, name: str, n_samples: int, embeddings_name: str) -> np.ndarray:
    if y is None:
        raise ValueError(f"`{name}` is required with `{embeddings_name}`.")
    y = as_array(y, name)
    if y.ndim != 1 or y.shape[0] != n_samples:
        raise ValueError(
            f"`{name}` must be 1-D with one label per row of `{embeddings_name}` "
            f"({n_samples}), got shape {y.shape}."
        )
    return check_label_values(y, name)


def numeric_array(x, name: str) -> np.ndarray:
    """``x``, not a tensor, as a NumPy array of numbers (``check_array(dtype="numeric")``),
    or a ValueError naming ``name`` and what it holds."""
    _refuse_scipy_sparse(x, name)
    if isinstance(x, np.ndarray) and x.dtype.kind in "biuf":
        return x
    try:
        array = check_array(
            x,
            dtype="numeric",
            ensure_2d=False,
            allow_nd=True,
            ensure_all_finite=False,
            ensure_min_samples=0,
            ensure_min_features=0,
        )
    except (TypeError, ValueError):
        array = None
    if array is None or array.dtype.kind not in "biuf":
        given = np.asarray(x if array is None else array)
        held = ""
        if given.dtype == object:
            types = sorted({type(v).__name__ for v in given.flat if not _is_real(v)})
            held = f" holding values of type {', '.join(types)}" if types else ""
        raise ValueError(f"`{name}` must be real-valued, got dtype {given.dtype}{held}.")
    return array


def _refuse_scipy_sparse(x, name: str) -> None:
    if sparse.issparse(x):
        raise ValueError(
            f"`{name}` must be dense, got a scipy.sparse {type(x).__name__}; convert it with "
            "`.toarray()`."
        )


def _is_real(value) -> bool:
    return isinstance(value, (numbers.Real, np.bool_))


def check_label_values(y: np.ndarray, name: str) -> np.ndarray:
    """``y`` if its labels are classes that np.unique tells apart: no NaN or infinity, and
    values of types that sort against each other."""
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        # np.unique would make every NaN label one class
        raise ValueError(f"`{name}` must not hold NaN or infinity, got {y[~np.isfinite(y)][0]}.")
    if y.dtype == object:
        if any(isinstance(v, float) and v != v for v in y):
            raise ValueError(f"`{name}` must not hold NaN.")
        try:  # classes are found by sorting (np.unique), which a mix of types defeats
            np.unique(y)
        except TypeError:
            types = sorted({type(v).__name__ for v in y})
            raise ValueError(
                f"`{name}` must hold labels that sort against each other (numbers, or "
                f"strings), got values of types {', '.join(types)}."
            ) from None
    return y


def prepare(
    embeddings,
    labels,
    reference_embeddings=None,
    reference_labels=None,
    exclude_self=None,
    distance="cosine",
    chunk_size=None,
    device=None,
) -> _Retrieval:
    distance = check_option(distance, DISTANCES, "distance")
    if chunk_size is not None:
        chunk_size = check_int(chunk_size, "chunk_size", min_value=1)
    if exclude_self not in (None, True, False):
        raise ValueError(f"`exclude_self` must be None, True or False, got {exclude_self!r}.")
    device = device_of(embeddings, device)
    queries = as_embeddings(embeddings, "embeddings", device)
    query_labels = as_labels(labels, "labels", queries.shape[0], "embeddings")
    queries, reference, ref_labels, exclude_self = _reference_set(
        queries, query_labels, reference_embeddings, reference_labels, exclude_self, device
    )
    n_relevant, query_codes, reference_codes = encode(query_labels, ref_labels, device)
    if exclude_self and reference_embeddings is not None:
        _check_same_rows(queries, query_codes, reference, reference_codes)
    n_relevant -= int(exclude_self)
    if not (n_relevant > 0).any():
        other = "another" if exclude_self else "a"
        if exclude_self:  # leave-one-out, or spelled out with the reference rows
            reason = "each class needs at least two samples in leave-one-out mode"
        else:
            reason = "`reference_labels` holds none of the classes in `labels`"
        raise ValueError(
            f"No query has {other} reference sample of its class (R = 0 for all "
            f"{queries.shape[0]} queries), so no retrieval metric is defined; {reason}."
        )
    if chunk_size is None:
        chunk_size = rows_per_chunk(reference.shape[0], 8)  # float64 reductions
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
    """Resolve the two modes to ``(queries, reference, reference_labels, exclude_self)``;
    whether the queries are the reference rows (``exclude_self=True``) is checked once the
    labels are encoded."""
    if reference_embeddings is None:
        if reference_labels is not None:
            raise ValueError("`reference_labels` needs `reference_embeddings`.")
        if exclude_self is False:
            raise ValueError(
                "`exclude_self=False` without `reference_embeddings` would let every sample "
                "retrieve itself; pass reference_embeddings=embeddings to do that on purpose."
            )
        return queries, queries, query_labels, True
    queries, reference, ref_labels = searched_set(
        queries, reference_embeddings, reference_labels, device
    )
    return queries, reference, ref_labels, bool(exclude_self)


def searched_set(queries, embeddings, labels, device, names=("reference", "embeddings")):
    """``(queries, reference, reference_labels)``: the set searched, checked against the
    queries and brought to their dtype. ``names``: the prefix of the reference arguments
    (``"{prefix}_embeddings"``, ``"{prefix}_labels"``) and the name of the queries."""
    prefix, query_name = names
    reference = as_embeddings(embeddings, f"{prefix}_embeddings", device)
    ref_labels = as_labels(labels, f"{prefix}_labels", reference.shape[0], f"{prefix}_embeddings")
    if reference.shape[1] != queries.shape[1]:
        raise ValueError(
            f"`{prefix}_embeddings` must have as many columns as `{query_name}` "
            f"({queries.shape[1]}), got {reference.shape[1]}."
        )
    dtype = torch.promote_types(queries.dtype, reference.dtype)
    return queries.to(dtype), reference.to(dtype), ref_labels


def map_at_r(*args, **kwargs) -> float:
    """MAP@R, with :func:`prepare`'s arguments: the computation behind
    ``metrics.mean_average_precision_at_r`` and the estimators' ``score`` and validation,
    which sit below the metrics module."""
    return scan(prepare(*args, **kwargs), at_r=True)["map_at_r"]


def pair_threshold(y_true, y_score, target_far, prior=None) -> float:
    """The threshold of ``metrics.select_threshold``: the most accurate one, or the one for
    ``target_far`` (None: the most accurate); also that of the pairs estimator's fit.

    ``prior``, the fraction of same-identity pairs the threshold will meet, weighs the
    accuracy (see :func:`best_accuracy_threshold`); a false-accept rate does not depend on it.
    """
    if target_far is not None:
        target_far = check_rate(target_far, "target_far")
    roc = roc_points(y_true, y_score)
    dtype = y_score.dtype if isinstance(y_score, Tensor) else np.asarray(y_score).dtype
    if target_far is None:
        return representable(best_accuracy_threshold(roc, prior)[1], dtype)
    y = check_pair_labels(y_true)
    scores = check_scores(y_score, y.size)
    negative = scores[~y]
    threshold = far_threshold(negative, target_far)
    # as low as the rejected different-identity pairs allow, so that it accepts every
    # same-identity pair above them: halfway between the highest of those and the next
    # higher score of any pair
    rejected = negative[negative < threshold]
    if rejected.size:
        highest = rejected.max()
        above = scores[scores > highest]
        if above.size:
            threshold = _between(above.min(), highest)
    return representable(threshold, dtype)


def encode(
    query_labels: np.ndarray,
    ref_labels: np.ndarray,
    device,
    names: tuple[str, str] = ("labels", "reference_labels"),
):
    """``(R including self, query codes, reference codes)`` from labels of any hashable type.

    A label is a class of its own unless it equals one on the other side, as Python compares
    them (``1 == 1.0``, ``1 != "1"``). The two sides are encoded each against the classes of
    both, never cast to one dtype that would merge labels: NumPy promotes int64 and uint64 to
    float64, where ids above 2**53 collide, and numbers and strings to strings, where ``1``
    becomes ``"1"``. A mix of string and number labels is refused (``names``: the two
    arguments), as scikit-learn refuses it.
    """
    if ref_labels is query_labels:  # leave-one-out
        codes = np.unique(query_labels, return_inverse=True)[1].reshape(-1)
        query_codes = reference_codes = torch.from_numpy(codes.astype(np.int64)).to(device)
    else:
        check_same_label_kind(query_labels, ref_labels, names)
        query_classes, query_codes = np.unique(query_labels, return_inverse=True)
        ref_classes, reference_codes = np.unique(ref_labels, return_inverse=True)
        dtype = _exact_common_dtype(query_classes.dtype, ref_classes.dtype)
        query_classes, ref_classes = query_classes.astype(dtype), ref_classes.astype(dtype)
        classes = np.unique(np.concatenate([query_classes, ref_classes]))
        query_codes = np.searchsorted(classes, query_classes)[query_codes.reshape(-1)]
        reference_codes = np.searchsorted(classes, ref_classes)[reference_codes.reshape(-1)]
        query_codes = torch.from_numpy(query_codes.astype(np.int64)).to(device)
        reference_codes = torch.from_numpy(reference_codes.astype(np.int64)).to(device)
    n_classes = int(max(query_codes.max(), reference_codes.max())) + 1
    counts = torch.bincount(reference_codes, minlength=n_classes)
    return counts[query_codes], query_codes, reference_codes


def labels_held(y: np.ndarray) -> str:
    """What ``y`` holds, as a plural noun: "numbers" (booleans included), "strings",
    "bytes", or the type of its values; ``y`` is one kind (:func:`check_label_values`)."""
    if y.dtype.kind in "biufc":
        return "numbers"
    if y.dtype.kind in "US":
        return "strings" if y.dtype.kind == "U" else "bytes"
    if y.dtype != object:
        return f"values of dtype {y.dtype}"
    kinds = set()
    for value in y:
        if isinstance(value, (bool, np.bool_, numbers.Number)):
            kinds.add("numbers")
        elif isinstance(value, str):
            kinds.add("strings")
        elif isinstance(value, bytes):
            kinds.add("bytes")
        else:
            kinds.add(f"values of type {type(value).__name__}")
    return " and ".join(sorted(kinds)) or "numbers"


def check_same_label_kind(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> None:
    """Raise unless the labels ``first`` and ``second`` (the arguments ``names``) are of one
    kind, both numbers or both strings: a number never equals a string, so a mix is a
    mistake (scikit-learn: "Mix of label input types")."""
    kinds = labels_held(first), labels_held(second)
    if kinds[0] != kinds[1]:
        raise ValueError(
            f"`{names[0]}` and `{names[1]}` must hold labels of one kind (numbers, or strings), "
            f"got {kinds[0]} in `{names[0]}` and {kinds[1]} in `{names[1]}`."
        )


def _exact_common_dtype(a: np.dtype, b: np.dtype) -> np.dtype:
    """The dtype NumPy promotes ``a`` and ``b`` to if it holds every value of both exactly,
    else object (whose Python ints and floats compare exactly)."""
    try:
        common = np.result_type(a, b)
    except TypeError:
        return np.dtype(object)
    for dtype in (a, b):
        inexact = dtype.kind in "iu" and common.kind in "fc"  # "safe" for NumPy, yet rounds
        if inexact or not np.can_cast(dtype, common, "safe"):
            return np.dtype(object)
    return common


def _check_same_rows(queries, query_codes, reference, reference_codes) -> None:
    """Raise unless the queries are the reference rows: same embeddings, and labels of the
    same classes (their codes from :func:`encode`), in the same order."""
    if (
        queries.shape != reference.shape
        or not torch.equal(queries, reference)
        or not torch.equal(query_codes, reference_codes)
    ):
        raise ValueError(
            "`exclude_self=True` with `reference_embeddings` requires the queries to be the "
            "reference rows (same embeddings and labels, same order); leave "
            "`reference_embeddings=None` for leave-one-out."
        )


def check_ks(
    ks: Iterable[int], name: str, limit: int, exclude_self: bool, what: str = "reference samples"
) -> list[int]:
    ks = [ks] if isinstance(ks, int) or not isinstance(ks, Iterable) else list(ks)
    if not ks:
        raise ValueError(f"`{name}` must hold at least one value, got {ks!r}.")
    checked = []
    for k in ks:
        k = check_int(k, name, min_value=1)
        if k > limit:
            minus = " minus one (leave-one-out)" if exclude_self else ""
            raise ValueError(
                f"`{name}` ({k}) must not exceed the number of {what}{minus} ({limit})."
            )
        checked.append(k)
    return sorted(set(checked))


def scan(run: _Retrieval, precision_k=(), recall_k=(), at_r: bool = False) -> dict:
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


# ------------------------------------------------------------------ verification (pairs)
# The definitions are in the docstrings of the public functions in sk_deepmetric.metrics.

#: ``make_pairs(n_pairs=None)`` enumerates all pairs up to this many (16 bytes each).
MAX_ALL_PAIRS = 10_000_000


class _ROC(NamedTuple):
    """``sklearn.metrics.roc_curve`` with every threshold kept, and the class counts."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray  # descending; thresholds[0] is +inf (nothing accepted)
    n_positive: int
    n_negative: int


def as_array(x, name: str) -> np.ndarray:
    """``x`` as a NumPy array: a tensor detached and brought to the CPU, bfloat16 (which
    NumPy has no type for) as float32, exactly. Sparse input (scipy or torch) is refused,
    naming the argument ``name``."""
    if isinstance(x, Tensor):
        check_dense(x, name)
        return as_host_tensor(x).numpy()
    _refuse_scipy_sparse(x, name)
    return np.asarray(x)


def check_pair_labels(y_true, name: str = "y_true") -> np.ndarray:
    """Same-identity flags from labels in {0, 1}, {-1, 1} or booleans, of any dtype (an
    object array of them too); both kinds present."""
    y = as_array(y_true, name)
    if y.ndim != 1 or y.shape[0] == 0:
        raise ValueError(f"`{name}` must be a non-empty 1-D array, got shape {y.shape}.")
    if y.dtype != bool:
        try:
            values = np.unique(y)
        except TypeError:  # an object array of values that do not sort
            types = sorted({type(v).__name__ for v in y})
            raise ValueError(
                f"`{name}` must hold 1 for same-identity pairs and 0 (or -1) for "
                f"different-identity pairs, got values of types {', '.join(types)}."
            ) from None
        listed = values.tolist()
        numbers_only = all(_is_real(v) for v in listed)  # "1" == 1 is False, but say why
        if not numbers_only or not (set(listed) <= {0, 1} or set(listed) <= {-1, 1}):
            dtype = f" (dtype {y.dtype})" if y.dtype == object else ""
            raise ValueError(
                f"`{name}` must hold 1 for same-identity pairs and 0 (or -1) for "
                f"different-identity pairs, got values {listed[:5]}{dtype}."
            )
        y = np.asarray(y == 1, dtype=bool)
    n_same = int(y.sum())
    if n_same in (0, y.size):
        kind = "same-identity (1)" if n_same else "different-identity (0 or -1)"
        raise ValueError(
            f"`{name}` must hold both same-identity and different-identity pairs, got only "
            f"{kind} pairs ({y.size})."
        )
    return y


def check_scores(y_score, n: int, name: str = "y_score", against: str = "y_true"):
    s = as_array(y_score, name)
    if s.dtype == object:  # numbers in an object array, as roc_curve reads them
        s = numeric_array(s, name)
    if s.dtype.kind not in "biuf":  # booleans score 0 and 1, as in roc_curve
        raise ValueError(f"`{name}` must be real-valued, got dtype {s.dtype}.")
    if s.ndim != 1 or s.shape[0] != n:
        raise ValueError(
            f"`{name}` must be 1-D with one score per entry of `{against}` ({n}), got shape "
            f"{s.shape}."
        )
    s = s.astype(np.float64)
    bad = int((~np.isfinite(s)).sum())
    if bad:
        raise ValueError(f"`{name}` must be finite, got NaN or infinity in {bad} of {n} scores.")
    return s


def roc_points(y_true, y_score) -> _ROC:
    """Checked inputs -> the ROC curve (``score >= threshold`` accepts a pair)."""
    from sklearn.metrics import roc_curve

    y = check_pair_labels(y_true)
    s = check_scores(y_score, y.size)
    fpr, tpr, thresholds = roc_curve(y, s, drop_intermediate=False)
    n_positive = int(y.sum())
    return _ROC(fpr, tpr, thresholds, n_positive, y.size - n_positive)


def check_rate(value, name: str) -> float:
    return check_real(value, name, min_value=0.0, max_value=1.0, closed="neither")


def roc_eer(roc: _ROC) -> tuple[float, float]:
    """(EER, threshold): where the ROC segment crosses FNR = FPR, linearly interpolated.

    The threshold is that of the ROC point nearer the crossing (never the +inf sentinel).
    """
    gap = (1.0 - roc.tpr) - roc.fpr  # FNR - FPR: 1 at the first point, -1 at the last
    j = int(np.argmax(gap <= 0))
    i = j - 1
    alpha = gap[i] / (gap[i] - gap[j])
    eer = roc.fpr[i] + alpha * (roc.fpr[j] - roc.fpr[i])
    nearest = j if alpha >= 0.5 or i == 0 else i
    return float(eer), float(roc.thresholds[nearest])


def roc_tar_at_far(roc: _ROC, far: float) -> float:
    """TPR on the ROC curve (linear between points) at FPR = ``far``, taking the highest TPR
    of the points at exactly that FPR. With fewer than ``1 / far`` negative pairs the rate
    lies between the curve's first two points, an extrapolation: a warning says so."""
    if roc.n_negative * far < 1:
        warnings.warn(
            f"TAR at FAR={far:g} is read from {roc.n_negative} different-identity pairs, "
            f"fewer than 1 / far = {math.ceil(1 / far)}: the curve's first false accept is "
            f"already a rate of {1 / roc.n_negative:.3g}, so the value is interpolated "
            "between FAR 0 and that point. Use more pairs (or a larger far) for this rate.",
            UndefinedMetricWarning,
            stacklevel=external_stacklevel(),
        )
    i = int(np.searchsorted(roc.fpr, far, side="right")) - 1
    if roc.fpr[i] == far:
        return float(roc.tpr[i])
    j = i + 1
    slope = (roc.tpr[j] - roc.tpr[i]) / (roc.fpr[j] - roc.fpr[i])
    return float(roc.tpr[i] + (far - roc.fpr[i]) * slope)


def roc_min_dcf(roc: _ROC, p_target: float, c_miss: float, c_fa: float) -> tuple[float, float]:
    cost = c_miss * (1.0 - roc.tpr) * p_target + c_fa * roc.fpr * (1.0 - p_target)
    best = int(np.argmin(cost))
    norm = min(c_miss * p_target, c_fa * (1.0 - p_target))
    return float(cost[best] / norm), float(roc.thresholds[best])


def representable(threshold: float, dtype) -> float:
    """``threshold`` raised to the nearest value of the scores' ``dtype`` at or above it.

    NumPy 2 and torch compare float32 (or float16) scores with a Python float in the scores'
    precision, which rounds a threshold built in float64 to the nearest value there: a
    threshold just above a score can round onto that score and accept it. The smallest
    value of the dtype not below ``threshold`` decides ``score >= threshold`` alike in
    either precision (every score of the dtype above the float64 threshold is also at or
    above it, and none below is). ``dtype``: a NumPy dtype, or a torch dtype (torch's
    bfloat16 has no NumPy type).
    """
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point or torch.finfo(dtype).bits >= 64:
            return float(threshold)
        rounded = torch.tensor(threshold, dtype=torch.float64).to(dtype)
        if float(rounded) < threshold:
            rounded = torch.nextafter(rounded, torch.tensor(math.inf, dtype=dtype))
        return float(rounded)
    dtype = np.dtype(dtype)
    if dtype.kind != "f" or dtype.itemsize >= 8:
        return float(threshold)
    rounded = dtype.type(threshold)
    if float(rounded) < threshold:
        rounded = np.nextafter(rounded, dtype.type(np.inf))
    return float(rounded)


def _between(high: float, low: float) -> float:
    """A threshold halfway between two scores, strictly above ``low`` (``high`` otherwise)."""
    mid = float(low) / 2.0 + float(high) / 2.0
    return mid if low < mid <= high else float(high)


def best_accuracy_threshold(roc: _ROC, prior: float | None = None) -> tuple[float, float]:
    """(accuracy, threshold) of the most accurate decision ``score >= threshold``.

    Of equally accurate decisions the strictest wins; the threshold lies halfway between the
    lowest accepted score and the highest rejected one. ``prior``: the accuracy expected
    where a fraction ``prior`` of the pairs are positive, ``prior * TPR + (1 - prior) *
    (1 - FPR)``, for pairs whose own balance differs from the data's (None: their own).
    """
    # counts of correct decisions, exact integers: rates times counts are not, and two
    # equally accurate decisions must compare equal for the strictest to win
    tp = np.rint(roc.tpr * roc.n_positive)
    tn = np.rint((1.0 - roc.fpr) * roc.n_negative)
    if prior is None:
        score = tp + tn
        accuracy = score / (roc.n_positive + roc.n_negative)
    else:  # rates weighted by the prior (ties between them only to within rounding)
        accuracy = prior * (tp / roc.n_positive) + (1.0 - prior) * (tn / roc.n_negative)
        score = accuracy
    k = int(np.argmax(score))
    t = roc.thresholds
    if k == 0:  # accept nothing
        return float(accuracy[0]), float(np.nextafter(t[1], np.inf))
    if k == t.size - 1:  # accept everything
        return float(accuracy[k]), float(t[k])
    return float(accuracy[k]), _between(t[k], t[k + 1])


def far_threshold(
    negative_scores: np.ndarray, far: float, what: str = "different-identity pairs"
) -> float:
    """The lowest threshold with at most ``far`` of ``negative_scores`` at or above it.

    With ``N`` negatives, ``k`` = the most that ``far`` allows (``k / N <= far``); the
    threshold lies halfway between the k-th highest and the next lower negative score, so
    that it accepts at most ``k`` (ties are kept together). When ``far * N < 1`` no negative
    may be accepted and the threshold is just above the highest one, with a warning.
    """
    n = negative_scores.size
    values, counts = np.unique(negative_scores, return_counts=True)
    values, counts = values[::-1], np.cumsum(counts[::-1])  # descending, accepted counts
    k = int(np.floor(far * n))
    while (k + 1) / n <= far:
        k += 1
    while k / n > far:
        k -= 1
    g = int(np.searchsorted(counts, k, side="right"))  # groups that fit in k
    if k == 0:
        warnings.warn(
            f"A false-accept rate of {far} needs at least {math.ceil(1 / far)} {what} to be "
            f"estimated, got {n}; the threshold only rejects all of them, and the realised "
            "rate is unknown. Give more data or a larger rate.",
            UserWarning,
            stacklevel=external_stacklevel(),
        )
    if g == 0:
        return float(np.nextafter(values[0], np.inf))
    return _between(values[g - 1], values[g])


def all_pairs(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = codes.size
    if n * (n - 1) // 2 > MAX_ALL_PAIRS:
        raise ValueError(
            f"All pairs of {n} samples are {n * (n - 1) // 2:,}, more than make_pairs "
            f"enumerates ({MAX_ALL_PAIRS:,}); pass `n_pairs` to draw balanced pairs instead."
        )
    first, second = np.triu_indices(n, k=1)
    return np.stack([first, second], axis=1), (codes[first] == codes[second]).astype(np.int64)


def sample_pairs(codes: np.ndarray, n_pairs: int, rng: np.random.Generator, fill: bool = False):
    """``n_pairs // 2`` same-class and the rest different-class pairs, uniform without
    replacement among all such unordered pairs, without listing them. ``fill=True``: where
    one kind has fewer pairs than its share, all of them, and the other kind the rest.

    In the class-sorted order, row ``r`` pairs with the later rows of its class (positives)
    and with every row after its class (negatives); a pair's linear index is decoded through
    the cumulative counts per row.
    """
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    end = np.searchsorted(sorted_codes, sorted_codes, side="right")  # end of each row's class
    rows = np.arange(codes.size)
    kinds = {"same": (end - rows - 1, rows + 1), "different": (codes.size - end, end)}
    cumulative = {kind: np.cumsum(per_row) for kind, (per_row, _) in kinds.items()}
    total = {kind: int(counts[-1]) for kind, counts in cumulative.items()}
    wanted = {"same": n_pairs // 2, "different": n_pairs - n_pairs // 2}
    if fill:
        wanted["same"] = min(total["same"], max(wanted["same"], n_pairs - total["different"]))
        wanted["different"] = min(n_pairs - wanted["same"], total["different"])
    parts = []
    for kind, (per_row, first_col) in kinds.items():
        if wanted[kind] > total[kind]:
            raise ValueError(
                f"`n_pairs` ({n_pairs}) asks for {wanted[kind]} {kind}-class pairs, but the "
                f"labels only have {total[kind]}."
            )
        index = rng.choice(total[kind], wanted[kind], replace=False)
        row = np.searchsorted(cumulative[kind], index, side="right")
        col = first_col[row] + index - (cumulative[kind][row] - per_row[row])
        parts.append(np.sort(np.stack([order[row], order[col]], axis=1), axis=1))
    pairs = np.concatenate(parts)
    same = np.repeat([1, 0], [len(parts[0]), len(parts[1])])
    keep = np.lexsort((pairs[:, 1], pairs[:, 0]))
    return pairs[keep], same[keep]


def pair_indices(pairs, n_samples: int) -> np.ndarray:
    p = as_array(pairs, "pairs")
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] == 0:
        raise ValueError(
            f"`pairs` must be an integer array of shape (n_pairs, 2), got shape {p.shape}."
        )
    if p.dtype.kind not in "iu":
        raise ValueError(f"`pairs` must hold integer row indices, got dtype {p.dtype}.")
    if p.min() < 0 or p.max() >= n_samples:
        raise ValueError(
            f"`pairs` must index rows of `embeddings` (0 to {n_samples - 1}), got values from "
            f"{p.min()} to {p.max()}."
        )
    return p.astype(np.int64)


def pair_similarities(first: Tensor, second: Tensor, distance: str, chunk_size) -> np.ndarray:
    """Similarity of row i of ``first`` with row i of ``second``, in chunks of rows."""
    rows = chunk_size or rows_per_chunk(first.shape[1], first.element_size(), 3)
    out = []
    with torch.no_grad():
        for start in range(0, first.shape[0], rows):
            d = paired_distances(
                first[start : start + rows], second[start : start + rows], distance
            )
            out.append((1.0 - d if distance == "cosine" else -d).double().cpu())
    return torch.cat(out).numpy()


# ------------------------------------------------------------------ re-identification
def reid_scan(
    queries: Tensor,
    query_codes: Tensor,
    query_groups: Tensor | None,
    gallery: Tensor,
    gallery_codes: Tensor,
    gallery_groups: Tensor | None,
    ranks: list[int],
    distance: str,
    chunk_size: int | None,
) -> dict[str, float]:
    """CMC at ``ranks`` and mAP, each query's whole gallery ranked in chunks of queries.

    Gallery items of the query's identity and group are removed from its ranking; queries
    left without a match are skipped (a ValueError when none is left).
    """
    n_gallery = gallery.shape[0]
    rows = chunk_size or rows_per_chunk(n_gallery, 8, 6)
    cmc = torch.zeros(len(ranks), dtype=torch.float64)
    ap_sum, n_valid = 0.0, 0
    rank_limits = torch.tensor(ranks, device=gallery.device)
    with torch.no_grad():
        for start in range(0, queries.shape[0], rows):
            stop = start + rows
            dist = pairwise_distances(queries[start:stop], gallery, distance)
            order = torch.sort(dist, dim=1, stable=True).indices  # ties by gallery index
            same_id = gallery_codes[order] == query_codes[start:stop, None]
            kept = torch.ones_like(same_id)
            if query_groups is not None:
                kept = ~(same_id & (gallery_groups[order] == query_groups[start:stop, None]))
            hits = same_id & kept
            valid = hits.any(dim=1)
            hits, kept = hits[valid], kept[valid]
            rank = kept.cumsum(dim=1)  # position among the items kept
            first = torch.where(hits, rank, n_gallery + 1).min(dim=1).values
            cmc += (first[:, None] <= rank_limits).sum(dim=0).double().cpu()
            found = hits.cumsum(dim=1).double()
            precision = torch.where(hits, found / rank.double(), 0.0)
            ap_sum += float((precision.sum(dim=1) / hits.sum(dim=1)).sum())
            n_valid += int(valid.sum())
    if n_valid == 0:
        raise ValueError(
            "No query has a gallery item of its identity (outside its own group), so CMC and "
            "mAP are not defined."
        )
    out = {f"cmc_at_{k}": float(c) / n_valid for k, c in zip(ranks, cmc.tolist())}
    out["map"] = ap_sum / n_valid
    out["n_valid_queries"] = n_valid
    return out
