"""Searches of vectors far from the origin for their spread: centred before the float32
ranking, whose rounding is relative to the squared norms (without centring, a common offset
of 10,000 on a spread of 30 gave most queries a wrong neighbour set)."""

import pickle

import numpy as np
import pytest
import torch
from _rounding import exact_distances, gamma
from sklearn.preprocessing import FunctionTransformer

from sk_deepmetric.distances import iter_topk_neighbors, search_center, topk_neighbors
from sk_deepmetric.neighbors import EmbeddingKNeighborsClassifier

OFFSET, SPREAD, DIM, K = 1.0e4, 30.0, 16, 5


def _offset_data(seed, n_ref=3000, n_q=200):
    rng = np.random.default_rng(seed)
    reference = (OFFSET + SPREAD * rng.standard_normal((n_ref, DIM))).astype(np.float32)
    queries = reference[:n_q] + rng.standard_normal((n_q, DIM)).astype(np.float32)
    return queries, reference


def _assert_nearest(queries, reference, dist, ind, exclude_self=False):
    """``ind`` holds, for each query, k vectors no farther than the true k-th nearest, to
    within the rounding of a search of the centred vectors.

    Centring is exact here (coordinates within a factor 2 of the center: Sterbenz); the
    float32 ranking score ``|r|^2 - 2 q.r`` of the centred vectors is then off by at most
    ``gamma(d + 2) (|r| + |q|)^2`` (its terms' magnitudes), so any two vectors it orders
    wrongly have squared distances within twice that; the returned distances are the direct
    ones, ``gamma(d + 3)`` relative on the square.
    """
    exact = exact_distances(queries, reference, "euclidean")
    if exclude_self:
        np.fill_diagonal(exact, np.inf)
    center = reference.astype(np.float64).mean(axis=0)
    # the searched center is the mean of a sample of rows: bound norms with some slack
    radius = 2 * np.abs(np.concatenate([queries, reference]) - center).max() * np.sqrt(DIM)
    tolerance = 2 * gamma(DIM + 2) * (2 * radius) ** 2
    kth = np.sort(exact, axis=1)[:, K - 1]
    found = np.take_along_axis(exact, ind, axis=1)
    assert (found**2 <= kth[:, None] ** 2 + tolerance).all()
    assert np.allclose(dist**2, found**2, rtol=2 * gamma(DIM + 3), atol=0)
    assert (np.diff(dist, axis=1) >= 0).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_topk_neighbors_of_offset_vectors(seed):
    queries, reference = _offset_data(seed)
    dist, ind = topk_neighbors(torch.from_numpy(queries), torch.from_numpy(reference), K)
    _assert_nearest(queries, reference, dist.numpy(), ind.numpy())


def test_leave_one_out_of_offset_vectors():
    _, reference = _offset_data(2)
    r = torch.from_numpy(reference)
    chunks = list(iter_topk_neighbors(r, r, K, exclude_self=True, chunk_size=700, refine=True))
    assert [c[0] for c in chunks] == list(range(0, len(reference), 700))
    dist = torch.cat([c[1] for c in chunks]).numpy()
    ind = torch.cat([c[2] for c in chunks]).numpy()
    assert (ind != np.arange(len(reference))[:, None]).all()
    _assert_nearest(reference, reference, dist, ind, exclude_self=True)


def test_search_center_only_where_the_offset_dominates():
    rng = np.random.default_rng(3)
    centred = torch.from_numpy(rng.standard_normal((5000, DIM)).astype(np.float32))
    assert search_center(centred) is None
    assert search_center(centred + 0.5) is None  # offset 0.5^2 x 16 < the spread's 16
    shifted = centred + 100.0
    center = search_center(shifted, "squared_euclidean")
    # the mean of every row (5,000 // 4,096 = 1), rounded to a multiple of a power of two
    # between an eighth and a quarter of the spread per coordinate (~1 here): at least 1/8
    # (std >= 1/2), so within 1/8 of the mean and a multiple of 1/8
    assert (center - shifted.mean(dim=0)).abs().max() <= 0.125
    assert torch.equal(center * 8, torch.round(center * 8))
    assert search_center(shifted, "cosine") is None
    assert search_center(shifted[:0]) is None
    with pytest.raises(ValueError, match="`distance` must be one of"):
        search_center(shifted, "manhattan")


@pytest.mark.parametrize("algorithm", ["brute", "faiss"])
def test_classifier_searches_offset_embeddings(algorithm):
    queries, reference = _offset_data(4)
    labels = np.arange(len(reference)) % 7
    model = EmbeddingKNeighborsClassifier(
        FunctionTransformer(), n_neighbors=K, algorithm=algorithm
    ).fit(reference, labels)
    assert model._index.center_ is not None
    dist, ind = model.kneighbors(queries)
    _assert_nearest(queries, reference, dist, ind)
    # the center travels with a pickled model
    again = pickle.loads(pickle.dumps(model))
    dist2, ind2 = again.kneighbors(queries)
    np.testing.assert_array_equal(ind2, ind)
    np.testing.assert_array_equal(dist2, dist)
    # leave-one-out through the training set
    dist, ind = model.kneighbors()
    _assert_nearest(reference, reference, dist, ind, exclude_self=True)


def test_exact_data_stays_exact_when_centred():
    # integers far from the origin: centred on a multiple of a power of two, their distances
    # and ranking scores stay exact, so equal distances stay equal and ordered by index,
    # whatever the chunking
    g = torch.Generator().manual_seed(5)
    ref = (1000 + torch.randint(-2, 3, (400, 3), generator=g)).float()
    assert search_center(ref) is not None
    exact = torch.cdist(ref.double(), ref.double())
    exact.fill_diagonal_(float("inf"))
    # ties by index: a stable sort of the exact distances
    want = torch.sort(exact, dim=1, stable=True).indices[:, :8]
    for chunk_size in (None, 7, 64):
        dist, ind = topk_neighbors(ref, ref, 8, exclude_self=True, chunk_size=chunk_size)
        assert torch.equal(ind, want)
        assert torch.equal(dist.double(), exact.gather(1, want).float().double())
