"""Worst-case rounding-error bounds for the tests that compare floating-point results.

Results computed along different paths (torch, scikit-learn, faiss; another CPU's vector
kernels, another BLAS, another thread count) agree only up to rounding, so each tolerance here
is a bound derived from the arithmetic, valid for any order of summation and with or without
fused multiply-adds (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., ch. 3):
with unit roundoff ``u``, a sum or dot product of ``n`` terms has relative error at most
``gamma(n) = n u / (1 - n u)`` of the sum of the terms' magnitudes.
"""

import numpy as np

#: Unit roundoff of float32 and float64.
U32 = 2.0**-24
U64 = 2.0**-53


def gamma(n, u=U32):
    """Higham's ``gamma_n``: relative error bound of an ``n``-term sum or dot product."""
    return n * u / (1 - n * u)


def exact_distances(queries, reference, metric):
    """Distances between the rows, in float64 (the exact value, to about 1e-15)."""
    q, r = np.asarray(queries, np.float64), np.asarray(reference, np.float64)
    if metric == "cosine":
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        r = r / np.linalg.norm(r, axis=1, keepdims=True)
        return 1.0 - q @ r.T
    return np.sqrt(((q[:, None, :] - r[None, :, :]) ** 2).sum(axis=2))


def cosine_distance_error(dim, distance, u=U32):
    """Bound on the error of ``1 - <x / |x|, y / |y|>`` evaluated in precision ``u``.

    ``|x|`` (a sum of ``dim`` squares, then a square root) has relative error
    ``gamma(dim) / 2 + u``; dividing (or multiplying by the reciprocal) adds up to ``2 u``, so
    each component of the unit vector is within ``a = gamma(dim) / 2 + 3 u`` of its exact
    value, relatively. In the dot product of the two unit vectors these errors weigh at most
    ``(2 a + a^2) sum |x_i y_i| / (|x| |y|) <= 2 a + a^2`` (Cauchy-Schwarz), the summation
    ``gamma(dim) (1 + a)^2`` more. ``1 - s`` is exact for ``s`` in [1/2, 2] (Sterbenz) and
    otherwise rounds by ``u |1 - s|``. The bound is absolute: near distance 0 the relative
    error is unbounded, which is what makes ``1 / d`` weights ill-conditioned there.
    """
    a = gamma(dim, u) / 2 + 3 * u
    dot = 2 * a + a * a + gamma(dim, u) * (1 + a) ** 2
    return dot + u * (np.abs(distance) + dot)


def unit_difference_error(dim, distance, u=U32):
    """Bound on the error of the cosine distance ``1 - cos`` evaluated as ``|x / |x| - y /
    |y||^2 / 2`` in precision ``u``.

    Each component of the computed unit vectors is within ``a = gamma(dim) / 2 + 3 u`` of its
    exact value, relatively (see :func:`cosine_distance_error`), so each computed unit vector
    is within ``a`` of the exact one and their difference within ``2 a`` of the exact
    difference, whose length is ``D = sqrt(2 distance)``: its square is off by at most
    ``4 a D + 4 a^2``. The differences, their squares and their sum round by a relative
    ``gamma(dim + 2)`` of the computed square; halving is exact.
    """
    a = gamma(dim, u) / 2 + 3 * u
    length = np.sqrt(2 * np.abs(distance))
    return 2 * a * length + 2 * a * a + gamma(dim + 2, u) * (length + 2 * a) ** 2 / 2


def euclidean_direct_error(dim, distance, u=U32):
    """Bound on the error of ``sqrt(sum((x_i - y_i)^2))`` evaluated in precision ``u``.

    Each difference and its square round (``(1 + u)^3``), the sum of the ``dim`` non-negative
    squares adds ``gamma(dim)``: relative ``gamma(dim + 3)`` on the square; the square root
    halves it and rounds once more.
    """
    g = gamma(dim + 3, u)
    return (g / 2 + u + g * u) * np.abs(distance)


def squared_expansion_error(query_norms, reference_norms, dim, u=U32):
    """Bound on the error of ``|x|^2 + |y|^2 - 2 <x, y>`` evaluated in precision ``u``.

    Each of the three terms is a ``dim``-term dot product and they are summed together: at most
    ``gamma(dim + 2)`` times the sum of magnitudes, ``|x|^2 + |y|^2 + 2 |x| |y|``. The error is
    absolute and grows with the norms, not with the distance (the expansion cancels), so
    ``(n_queries, n_reference)`` from norms of shape ``(n_queries,)`` and ``(n_reference,)``.
    """
    q, r = np.asarray(query_norms)[:, None], np.asarray(reference_norms)[None, :]
    return gamma(dim + 2, u) * (q + r) ** 2


def euclidean_from_squared_error(squared_error, distance, u=U32):
    """Bound on the error of ``sqrt(max(s, 0))`` where ``s`` is ``distance^2 +- squared_error``.

    ``|sqrt(d^2 + e) - d| <= min(sqrt(e), e / d)``; the square root rounds by ``u`` once more.
    """
    e, d = np.asarray(squared_error), np.asarray(distance)
    with np.errstate(divide="ignore"):
        shift = np.minimum(np.sqrt(e), np.where(d > 0, e / np.where(d > 0, d, 1.0), np.inf))
    return shift + u * (d + shift)


def ranking_error(queries, reference, metric, u=U32):
    """A bound, shape ``(n_queries, n_reference)``, in distance units, on the error of any
    float32 quantity the searches here rank by: the cosine distance (or similarity) of
    normalised rows, or the expansion of the squared euclidean distance (the form with the
    largest error; direct differences err less).
    """
    q, r = np.asarray(queries, np.float64), np.asarray(reference, np.float64)
    dim = q.shape[1]
    d = exact_distances(q, r, metric)
    if metric == "cosine":
        return np.broadcast_to(cosine_distance_error(dim, d, u), d.shape)
    sq = squared_expansion_error(np.linalg.norm(q, axis=1), np.linalg.norm(r, axis=1), dim, u)
    return euclidean_from_squared_error(sq, d, u)


def rounding_clusters(distances, errors):
    """Group each query's references into the runs that rounding can reorder.

    ``distances`` (exact) and ``errors`` (a bound on the error of the computed distances) have
    shape ``(n_queries, n_reference)``. Sorted by distance, a run starts where every earlier
    reference's interval ``distance +- error`` ends below the next one's: no search whose
    values stay within their bounds can move a reference out of its run, so each rank holds a
    reference of the run that holds it exactly, and a run of one is a certain rank.

    Returns ``order``, each query's references by (exact distance, index), and ``cluster``,
    the run of each reference (indexed like ``distances``), numbered from 0 at the nearest.
    """
    n_reference = distances.shape[1]
    order = np.lexsort((np.broadcast_to(np.arange(n_reference), distances.shape), distances))
    d = np.take_along_axis(distances, order, axis=1)
    e = np.take_along_axis(np.broadcast_to(errors, distances.shape), order, axis=1)
    reach = np.maximum.accumulate(d + e, axis=1)  # the highest upper end up to each rank
    starts = np.ones(d.shape, dtype=bool)
    starts[:, 1:] = reach[:, :-1] < d[:, 1:] - e[:, 1:]
    cluster = np.empty(d.shape, dtype=np.int64)
    np.put_along_axis(cluster, order, np.cumsum(starts, axis=1) - 1, axis=1)
    return order, cluster


def certain_ranks(order, cluster, k):
    """``(n_queries, k)`` mask: the exact neighbour at each of the first ``k`` ranks is alone
    in its run of :func:`rounding_clusters`, so that every search puts it at that rank."""
    runs = np.take_along_axis(cluster, order[:, : k + 1], axis=1)
    alone = np.ones((runs.shape[0], k), dtype=bool)
    same = runs[:, 1:] == runs[:, :-1]  # rank j and j + 1 share a run
    alone[:, 1:] &= ~same[:, : k - 1]
    alone[:, : same.shape[1]] &= ~same[:, :k]
    return alone
