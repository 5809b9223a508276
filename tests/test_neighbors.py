"""EmbeddingKNeighborsClassifier and its search backends.

References: a loop over each query's sorted neighbours for the vote, and scikit-learn's
NearestNeighbors / KNeighborsClassifier (algorithm="brute") on the same embedding.
"""

import math
import pickle
import re
import sys
import warnings

import numpy as np
import pytest
from _rounding import (
    U32,
    U64,
    certain_ranks,
    cosine_distance_error,
    euclidean_direct_error,
    euclidean_from_squared_error,
    exact_distances,
    gamma,
    ranking_error,
    rounding_clusters,
    squared_expansion_error,
    unit_difference_error,
)
from sklearn.datasets import load_iris, make_blobs
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_deepmetric import neighbors
from sk_deepmetric.embedders import TripletEmbedder
from sk_deepmetric.neighbors import EmbeddingKNeighborsClassifier

# two epochs are enough to test the plumbing
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

ALGORITHMS = ["brute", "faiss", "faiss_ivf"]
EXACT = ["brute", "faiss"]
METRICS = ["euclidean", "cosine"]
# small and fast, as in test_common.py
FAST_TRIPLET = {
    "max_iter": 2,
    "hidden_layer_sizes": (16,),
    "n_components": 8,
    "batch_size": 16,
    "random_state": 0,
}


def identity():
    """An embedder that returns X itself: the search and vote are then fully controlled."""
    return FunctionTransformer(None, validate=True)


@pytest.fixture(scope="module")
def blobs():
    """Overlapping blobs, so that votes are mixed; queries drawn apart from the reference."""
    X, y = make_blobs(n_samples=260, n_features=6, centers=4, cluster_std=3.0, random_state=0)
    return X[:200].astype(np.float32), y[:200], X[200:].astype(np.float32)


def loop_vote(dist, ind, y_codes, n_classes, weights):
    """predict_proba by hand: each query's neighbours vote one by one."""
    proba = np.zeros((len(ind), n_classes))
    for q, (d_row, i_row) in enumerate(zip(dist.tolist(), ind.tolist())):
        exact = [d == 0.0 for d in d_row]
        for d, i, is_exact in zip(d_row, i_row, exact):
            if weights == "uniform":
                proba[q, y_codes[i]] += 1.0
            elif any(exact):
                proba[q, y_codes[i]] += 1.0 if is_exact else 0.0
            else:
                proba[q, y_codes[i]] += 1.0 / d
        proba[q] /= proba[q].sum()
    return proba


def reported_distance_error(metric, queries, reference):
    """Bound on the error of the distances the backends report, ``(n_queries, n_reference)``:
    every backend measures its neighbours' from the vectors."""
    exact = exact_distances(queries, reference, metric)
    if metric == "cosine":  # from the unit rows' differences
        return unit_difference_error(queries.shape[1], exact)
    return euclidean_direct_error(queries.shape[1], exact)  # |q - r|


def check_neighbors(dist, ind, queries, reference, metric, algorithm, exclude_self=False):
    """``(dist, ind)`` are each query's nearest, exactly up to the rounding the arithmetic allows.

    Against the float64 distances of the same float32 vectors: each rank holds a reference of
    the run of references that rounding can reorder around the exact one at that rank (the
    exact one itself where it is alone), and the reported distances are within the backend's
    error bound. Returns the ranks that are certain, ``(n_queries, k)``, for comparisons with
    other searches.
    """
    queries = reference if exclude_self else queries
    exact = exact_distances(queries, reference, metric)
    errors = ranking_error(queries, reference, metric).copy()
    if exclude_self:
        np.fill_diagonal(exact, np.inf)
        np.fill_diagonal(errors, 0.0)
    order, cluster = rounding_clusters(exact, errors)
    rows, k = np.arange(len(queries))[:, None], ind.shape[1]
    np.testing.assert_array_equal(cluster[rows, ind], cluster[rows, order[:, :k]])
    assert all(len(set(row)) == k for row in ind.tolist())  # k distinct references
    bound = reported_distance_error(metric, queries, reference)[rows, ind]
    assert (np.abs(dist - exact[rows, ind]) <= bound).all()
    return certain_ranks(order, cluster, k)


def loop_argmax(proba):
    """First class with the most votes (the lowest class index on a tie)."""
    out = []
    for row in proba.tolist():
        best = 0
        for c, p in enumerate(row):
            if p > row[best]:
                best = c
        out.append(best)
    return np.array(out)


# ---------------------------------------------------------------- the vote


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_vote_matches_loop_reference(blobs, weights, algorithm):
    X, y, X_query = blobs
    labels = np.array(["ant", "bee", "cat", "dog"])[y]  # string labels
    clf = EmbeddingKNeighborsClassifier(
        PCA(n_components=3), n_neighbors=7, weights=weights, algorithm=algorithm
    ).fit(X, labels)
    dist, ind = clf.kneighbors(X_query)
    y_codes = np.searchsorted(clf.classes_, labels)
    expected = loop_vote(dist, ind, y_codes, len(clf.classes_), weights)

    np.testing.assert_allclose(clf.predict_proba(X_query), expected, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X_query), clf.classes_[loop_argmax(expected)])
    assert clf.score(X_query, clf.predict(X_query)) == 1.0
    assert set(clf.predict(X_query)) <= set(clf.classes_)


def distance_vote_error(dist, err, codes, n_classes, relative=0.0):
    """Bound on the error of each class's share of ``1 / d`` votes, from distance errors.

    ``dist`` (exact) and ``err`` (a bound on the computed distances' error) are each query's
    neighbours', ``codes`` their classes. A weight computed as ``1 / d~`` with
    ``|d~ - d| <= e`` is within ``rho = e / (d - e)`` of ``w = 1 / d`` relatively, plus
    ``relative`` for rounding the reciprocal. With ``W`` the total weight, ``W_c`` the
    class's, ``E_c`` the sum of its neighbours' ``w rho`` and ``E`` everyone's, the share
    ``p_c = W_c / W`` becomes ``(W_c + a_c) / (W + a_c + a_o)`` with ``|a_c| <= E_c``,
    ``|a_o| <= E - E_c``: ``|p~_c - p_c| <= ((W - W_c) E_c + W_c (E - E_c)) / (W (W - E))``.
    """
    assert (dist > err).all()
    w = 1.0 / dist
    rows = np.repeat(np.arange(len(dist)), dist.shape[1]) * n_classes + codes.ravel()
    size = len(dist) * n_classes

    def per_class(v):
        return np.bincount(rows, v.ravel(), minlength=size).reshape(len(dist), n_classes)

    w_c, e_c = per_class(w), per_class(w * (err / (dist - err) + relative))
    total, e = w_c.sum(axis=1, keepdims=True), e_c.sum(axis=1, keepdims=True)
    return ((total - w_c) * e_c + w_c * (e - e_c)) / (total * (total - e))


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("metric", METRICS)
def test_predictions_match_sklearn_pipeline(blobs, weights, metric):
    X, y, X_query = blobs
    k, n_classes = 6, 4
    ours = EmbeddingKNeighborsClassifier(
        PCA(n_components=3), n_neighbors=k, weights=weights, metric=metric
    ).fit(X, y)
    theirs = make_pipeline(
        PCA(n_components=3),
        KNeighborsClassifier(k, weights=weights, metric=metric, algorithm="brute"),
    ).fit(X, y)
    # PCA's covariance solver (chosen for 200 x 6) makes fit_transform equal to transform:
    # both search the same float32 vectors and differ only in their arithmetic on them
    reference, queries = ours.embedder_.transform(X), ours.embedder_.transform(X_query)
    np.testing.assert_array_equal(PCA(n_components=3).fit_transform(X), reference)
    exact = exact_distances(queries, reference, metric)
    order, cluster = rounding_clusters(exact, ranking_error(queries, reference, metric))
    # the 6 nearest are the same set for any rounding: no other point within rounding of the
    # 6th (the smallest gap to the 7th is 13 times the two error bounds in cosine distance,
    # 24 times in euclidean distance)
    rows = np.arange(len(queries))[:, None]
    assert (cluster[rows, order[:, k - 1 : k]] != cluster[rows, order[:, k : k + 1]]).all()
    dist, codes = exact[rows, order[:, :k]], y[order[:, :k]]
    # the vote of the exact distances, in float64
    w = np.ones_like(dist) if weights == "uniform" else 1.0 / dist
    votes = np.zeros((len(queries), n_classes))
    np.add.at(votes, (np.broadcast_to(rows, codes.shape), codes), w)
    expected = votes / votes.sum(axis=1, keepdims=True)
    if weights == "uniform":  # the counts are exact: only the float64 division rounds
        ours_bound = theirs_bound = np.zeros_like(expected)
    else:
        # the nearest neighbour of one query is at cosine distance 2.6e-5, where the float32
        # error bound (7e-7) is 3% of the distance and 1 / d carries it to the vote.
        # Ours: half the squared difference of the unit rows (or |q - r|) in float32, 1 / d
        # in float64. scikit-learn:
        # 1 - cos in float32 too; euclidean, |q|^2 + |r|^2 - 2 q.r in float64 rounded to
        # float32, square root in float32; 1 / d in float32.
        if metric == "cosine":  # ours from the unit rows' differences, theirs 1 - cos
            ours_err, theirs_err = unit_difference_error(3, dist), cosine_distance_error(3, dist)
        else:
            ours_err = euclidean_direct_error(3, dist)
            norms = np.linalg.norm(queries, axis=1), np.linalg.norm(reference, axis=1)
            sq = squared_expansion_error(*norms, 3, U64)[rows, order[:, :k]]
            theirs_err = euclidean_from_squared_error(sq + U32 * dist**2, dist)
        ours_bound = distance_vote_error(dist, ours_err, codes, n_classes)
        theirs_bound = distance_vote_error(dist, theirs_err, codes, n_classes, relative=U32)
    slack = gamma(k + 2, U64) * expected  # the float64 sums and division of the votes
    ours_proba, theirs_proba = ours.predict_proba(X_query), theirs.predict_proba(X_query)
    assert (np.abs(ours_proba - expected) <= ours_bound + slack).all()
    assert (np.abs(ours_proba - theirs_proba) <= ours_bound + theirs_bound + 2 * slack).all()
    # the predicted class is certain where its share leads by more than twice the bound (in
    # the uniform vote ties are exact, and both break them towards the first class)
    top_two = np.sort(expected, axis=1)[:, -2:]
    bound = np.maximum(ours_bound, theirs_bound).max(axis=1) + slack.max(axis=1)
    decided = (top_two[:, 1] - top_two[:, 0] > 2 * bound) | (weights == "uniform")
    assert decided.mean() > 0.9
    predicted = ours.predict(X_query)[decided]
    np.testing.assert_array_equal(predicted, np.argmax(expected, axis=1)[decided])
    np.testing.assert_array_equal(predicted, theirs.predict(X_query)[decided])


@pytest.mark.parametrize("labels", [["b", "a"], ["a", "b"]])
def test_tied_vote_goes_to_the_first_class(labels):
    # the query at 0 is at distance 1 from both references: one vote each
    X = np.array([[-1.0], [1.0]])
    clf = EmbeddingKNeighborsClassifier(identity(), n_neighbors=2).fit(X, labels)
    sk = KNeighborsClassifier(2, algorithm="brute").fit(X, labels)
    assert clf.predict([[0.0]])[0] == sk.predict([[0.0]])[0] == "a"
    np.testing.assert_array_equal(clf.predict_proba([[0.0]]), [[0.5, 0.5]])


def test_distance_weights_at_zero_distance_take_only_exact_matches():
    X = np.array([[0.0], [0.0], [0.1], [0.2]])
    clf = EmbeddingKNeighborsClassifier(identity(), n_neighbors=4, weights="distance")
    clf.fit(X, [1, 2, 3, 3])
    np.testing.assert_array_equal(clf.predict_proba([[0.0]]), [[0.5, 0.5, 0.0]])
    assert clf.predict([[0.0]])[0] == 1


@pytest.mark.parametrize("algorithm", EXACT)
def test_cosine_distance_weights_of_duplicates(algorithm):
    # each training sample queried: it is its own neighbour at cosine distance 0 (never below,
    # which would give it a negative weight), and takes the whole vote, as in scikit-learn
    X, y = load_iris(return_X_y=True)
    clf = EmbeddingKNeighborsClassifier(
        identity(), weights="distance", metric="cosine", algorithm=algorithm
    ).fit(X, y)
    dist, ind = clf.kneighbors(X)
    assert (dist >= 0).all()
    proba = clf.predict_proba(X)
    assert (proba >= 0).all()
    sk = KNeighborsClassifier(5, weights="distance", metric="cosine", algorithm="brute")
    np.testing.assert_array_equal(clf.predict(X), sk.fit(X, y).predict(X))
    # distances measured from the vectors: a duplicate is at 0
    assert (dist[ind == np.arange(len(X))[:, None]] == 0).all()


@pytest.mark.parametrize("metric", METRICS)
def test_backends_vote_alike_on_duplicates(metric):
    # queries that duplicate training samples, some of them duplicated across classes: every
    # backend puts a duplicate at distance exactly 0, so with weights="distance" the
    # duplicates take the whole vote, and the votes are equal to the last bit (1 / 0 is no
    # rounding, and a share of equal weights is the same division everywhere)
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(120, 16)) * 3 + 1).astype(np.float32)
    X[60:90] = X[:30]  # duplicated rows with their own labels
    X[100] = 0.0  # a zero vector, at cosine distance 1 from everything else
    y = rng.integers(0, 3, len(X))
    common = dict(n_neighbors=5, weights="distance", metric=metric)
    clfs = {
        "brute": EmbeddingKNeighborsClassifier(identity(), algorithm="brute", **common),
        "faiss": EmbeddingKNeighborsClassifier(identity(), algorithm="faiss", **common),
        # scanning every cell: exact
        "faiss_ivf": EmbeddingKNeighborsClassifier(
            identity(), algorithm="faiss_ivf", n_lists=4, n_probe=4, **common
        ),
    }
    # the zero vector's cosine distance to everything, itself included, is 1: a tie of all
    # the references, which the backends may break differently
    queries = X[rng.permutation(len(X))[:60]]
    queries = queries[queries.any(axis=1)]
    expected = clfs["brute"].fit(X, y).predict_proba(queries)
    for algorithm in ("brute", "faiss", "faiss_ivf"):
        clf = clfs[algorithm].fit(X, y)
        assert (clf.kneighbors(queries)[0][:, 0] == 0).all()
        np.testing.assert_array_equal(clf.predict_proba(queries), expected)
        # leave-one-out: the 30 samples with a copy meet it at 0
        dist, ind = clf.kneighbors(None, n_neighbors=1)
        twins = np.r_[0:30, 60:90]
        assert (dist[twins, 0] == 0).all()
        np.testing.assert_array_equal(ind[twins, 0], np.r_[60:90, 0:30])
        if metric == "cosine":  # the zero vector: distance exactly 1, as documented
            assert (clf.kneighbors(X[100:101])[0] == 1.0).all()


# ------------------------------------------------------------ the backends


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("algorithm", EXACT)
def test_exact_backends_match_sklearn_nearest_neighbors(blobs, algorithm, metric):
    X, y, X_query = blobs
    clf = EmbeddingKNeighborsClassifier(identity(), algorithm=algorithm, metric=metric)
    clf.fit(X, y)
    nn = NearestNeighbors(n_neighbors=8, algorithm="brute", metric=metric).fit(X)
    for queries in (X_query, None):  # separate queries, then leave-one-out
        dist, ind = clf.kneighbors(queries, n_neighbors=8)
        sk_ind = nn.kneighbors(queries, return_distance=False)
        assert dist.dtype == np.float32 and ind.dtype == np.int64
        certain = check_neighbors(dist, ind, X_query, X, metric, algorithm, queries is None)
        # rounding can swap neighbours at 0.2-0.4% of the ranks (within 5e-4 of each other in
        # euclidean distance, 2e-6 in cosine): elsewhere the ranking is scikit-learn's
        assert certain.mean() > 0.99
        np.testing.assert_array_equal(ind[certain], sk_ind[certain])
        assert (np.diff(dist, axis=1) >= 0).all()


@pytest.mark.parametrize("metric", METRICS)
def test_exact_backends_agree_on_a_learned_embedding(blobs, metric):
    X, y, X_query = blobs
    fitted = [
        EmbeddingKNeighborsClassifier(
            TripletEmbedder(**FAST_TRIPLET), n_neighbors=10, algorithm=a, metric=metric
        ).fit(X, y)
        for a in EXACT
    ]
    embedder = fitted[0].embedder_
    np.testing.assert_array_equal(fitted[1].embedder_.transform(X), embedder.transform(X))
    queries, reference = embedder.transform(X_query), embedder.transform(X)
    (dist, ind), (faiss_dist, faiss_ind) = (clf.kneighbors(X_query) for clf in fitted)
    certain = check_neighbors(dist, ind, queries, reference, metric, "brute")
    check_neighbors(faiss_dist, faiss_ind, queries, reference, metric, "faiss")
    # the learned embedding differs from CPU to CPU: most ranks are certain on any
    assert certain.mean() > 0.9
    np.testing.assert_array_equal(ind[certain], faiss_ind[certain])


def test_leave_one_out_with_duplicates_never_returns_the_query():
    X = np.repeat(np.arange(4.0)[:, None], 4, axis=0)  # every point four times
    y = np.arange(16) % 2
    for algorithm in ALGORITHMS:
        clf = EmbeddingKNeighborsClassifier(identity(), algorithm=algorithm, n_probe=16)
        ind = clf.fit(X, y).kneighbors(n_neighbors=3, return_distance=False)
        assert not (ind == np.arange(16)[:, None]).any(), algorithm
        # the three other copies, lowest index first
        expected = [
            [j for j in range(4 * (i // 4), 4 * (i // 4) + 4) if j != i] for i in range(16)
        ]
        np.testing.assert_array_equal(ind, expected, err_msg=algorithm)


@pytest.mark.parametrize("metric", METRICS)
def test_ivf_scanning_every_cell_is_exact(blobs, metric):
    X, y, X_query = blobs
    exact = EmbeddingKNeighborsClassifier(identity(), algorithm="brute", metric=metric)
    ivf = EmbeddingKNeighborsClassifier(
        identity(), algorithm="faiss_ivf", metric=metric, n_lists=10, n_probe=10
    )
    for queries in (X_query, None):
        e_dist, e_ind = exact.fit(X, y).kneighbors(queries, n_neighbors=10)
        i_dist, i_ind = ivf.fit(X, y).kneighbors(queries, n_neighbors=10)
        loo = queries is None
        certain = check_neighbors(e_dist, e_ind, X_query, X, metric, "brute", loo)
        check_neighbors(i_dist, i_ind, X_query, X, metric, "faiss_ivf", loo)
        assert certain.mean() > 0.99
        np.testing.assert_array_equal(i_ind[certain], e_ind[certain])


def test_ivf_defaults_and_approximation(blobs):
    X, y, X_query = blobs
    clf = EmbeddingKNeighborsClassifier(identity(), algorithm="faiss_ivf", n_probe=1).fit(X, y)
    assert clf._index.n_lists == round(np.sqrt(200))
    assert clf._index.index_.nprobe == 1
    # one cell of 14: a fraction of the exact neighbours, but the same ones on every fit
    ind = clf.kneighbors(X_query, n_neighbors=3, return_distance=False)
    exact = NearestNeighbors(n_neighbors=3).fit(X).kneighbors(X_query, return_distance=False)
    recall = np.mean([len(set(a) & set(b)) / 3 for a, b in zip(ind, exact)])
    assert 0.3 < recall < 1.0
    np.testing.assert_array_equal(clf.fit(X, y).kneighbors(X_query, 3)[1], ind)
    capped = EmbeddingKNeighborsClassifier(identity(), algorithm="faiss_ivf", n_lists=4)
    assert capped.fit(X, y)._index.index_.nprobe == 4  # n_probe=8 capped at n_lists


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pickle_round_trip(blobs, algorithm):
    X, y, X_query = blobs
    clf = EmbeddingKNeighborsClassifier(PCA(n_components=3), algorithm=algorithm).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    for queries in (X_query, None):
        for a, b in zip(clf.kneighbors(queries), copy.kneighbors(queries)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_pickles_from_before_the_backends_moved_still_load(blobs, algorithm):
    # the search backends lived in neighbors until they moved to _search: a pickle made then
    # names them there (protocol 0 writes the class's module as a line of text)
    X, y, X_query = blobs
    clf = EmbeddingKNeighborsClassifier(PCA(n_components=3), algorithm=algorithm).fit(X, y)
    new = pickle.dumps(clf, protocol=0)
    assert b"sk_deepmetric._search\n" in new  # the backend is pickled by its module's name
    old = new.replace(b"sk_deepmetric._search\n", b"sk_deepmetric.neighbors\n")
    copy = pickle.loads(old)
    for a, b in zip(clf.kneighbors(X_query), copy.kneighbors(X_query)):
        np.testing.assert_array_equal(a, b)


def test_auto_chooses_faiss_only_where_it_is_faster(blobs, monkeypatch):
    X, y, X_query = blobs
    calls = []

    def speedup(dim, metric, k, n_reference):
        calls.append((dim, metric, k, n_reference))
        return measured

    monkeypatch.setattr(neighbors, "faiss_flat_speedup", speedup)
    measured = 10.0
    clf = EmbeddingKNeighborsClassifier(identity(), algorithm="auto")
    assert clf.fit(X, y).algorithm_ == "brute" and not calls  # small: no calibration
    monkeypatch.setattr(neighbors, "AUTO_FAISS_MIN_SAMPLES", 200)
    assert clf.fit(X, y).algorithm_ == "faiss"
    # at the k it will search, knowing the reference's size
    assert calls == [(X.shape[1], "euclidean", clf.n_neighbors, len(X))]
    faiss_result = clf.kneighbors(X_query)
    measured = 1.1  # faster, but within the timing's spread
    assert clf.set_params(metric="cosine").fit(X, y).algorithm_ == "brute"
    assert calls[-1] == (X.shape[1], "cosine", clf.n_neighbors, len(X))
    measured = 0.5
    assert clf.set_params(metric="euclidean").fit(X, y).algorithm_ == "brute"
    # the same neighbours whichever backend auto picks, up to the ranks float32 rounding
    # can reorder (each backend checked against float64 within its own error bound)
    brute_result = clf.kneighbors(X_query)
    certain = check_neighbors(*brute_result, X_query, X, "euclidean", "brute")
    check_neighbors(*faiss_result, X_query, X, "euclidean", "faiss")
    assert certain.mean() > 0.9
    np.testing.assert_array_equal(brute_result[1][certain], faiss_result[1][certain])
    measured = 10.0
    # never for a search on a GPU (resolved without fitting: this machine may have none)
    assert clf.set_params(device="cuda:0")._resolve_algorithm(np.zeros((200, 2))) == "brute"
    n_calls = len(calls)
    clf.set_params(device="cpu").fit(X, y)
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if not installed
    assert clf.fit(X, y).algorithm_ == "brute"
    assert len(calls) == n_calls + 1


def test_auto_calibration_is_cached_and_deterministic(monkeypatch):
    """The calibration searches the same arrays every time, and runs once per process for a
    dimension, metric, k (to the nearest power of two) and thread counts; its ratio decides by
    a fixed rule."""
    from sk_deepmetric import _search

    a, b = _search.calibration_data(16), _search.calibration_data(16)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert a[0].shape == (_search._CALIBRATION_REFERENCE, 16) and a[1].shape[1] == 16
    searches = []
    real = _search._BruteSearch.search

    def counted(self, queries, k, exclude_self=False):
        searches.append(k)
        return real(self, queries, k, exclude_self)

    monkeypatch.setattr(_search, "_speedups", {})
    monkeypatch.setattr(_search, "_CALIBRATION_REFERENCE", 500)
    monkeypatch.setattr(_search._BruteSearch, "search", counted)
    first = _search.faiss_flat_speedup(16, "euclidean", 10)
    assert first > 0 and searches == [8] * _search._CALIBRATION_REPEATS
    # cached: no new search, also for a k with the same nearest power of two
    assert _search.faiss_flat_speedup(16, "euclidean", 10) == first
    assert _search.faiss_flat_speedup(16, "euclidean", 11) == first
    assert len(searches) == _search._CALIBRATION_REPEATS
    _search.faiss_flat_speedup(16, "cosine", 10)
    _search.faiss_flat_speedup(16, "euclidean", 100)
    repeats = _search._CALIBRATION_REPEATS
    assert searches[repeats:] == [8] * repeats + [128] * repeats
    want = {1: 1, 2: 2, 3: 4, 5: 4, 6: 8, 11: 8, 12: 16, 100: 128, 300: 256, 10**6: 1024}
    assert {k: _search.calibration_k(k) for k in want} == want
    assert _search.faster_exact_backend(_search.AUTO_FAISS_MIN_SPEEDUP) == "faiss"
    assert _search.faster_exact_backend(np.nextafter(_search.AUTO_FAISS_MIN_SPEEDUP, 0)) == (
        "brute"
    )


def test_auto_calibrates_again_where_brute_force_would_filter_in_bfloat16(monkeypatch):
    """Where faiss wins the small calibration and torch brute force would find the search's
    candidates from bfloat16 products (which the small calibration is too small for), a
    second calibration at a size where that filter runs decides, and only there."""
    from sk_deepmetric import _search, distances

    monkeypatch.setattr(_search, "_speedups", {})
    monkeypatch.setattr(_search, "_CALIBRATION_REFERENCE", 300)
    monkeypatch.setattr(_search, "_PREFILTER_CALIBRATION", (600, 40))
    monkeypatch.setattr(distances, "_BFLOAT16_MIN_QUERIES", {False: 10**9, True: 40})
    monkeypatch.setattr(distances, "_BFLOAT16_MIN_REFERENCE", {False: 10**9, True: 500})
    every = {t: 20 for t in range(1, 1025)}
    monkeypatch.setattr(distances, "_BFLOAT16_MAX_K", {False: {}, True: every})
    monkeypatch.setattr(distances, "bfloat16_speedup", lambda: math.inf)
    filtered, sizes = [], []
    through = distances._topk_through_bfloat16
    monkeypatch.setattr(
        distances,
        "_topk_through_bfloat16",
        lambda queries, reference, *args: (
            filtered.append(len(reference)) or through(queries, reference, *args)
        ),
    )
    real_data = _search.calibration_data
    monkeypatch.setattr(
        _search,
        "calibration_data",
        lambda dim, *args: sizes.append(args) or real_data(dim, *args),
    )
    # the second calibration runs the real searches, brute force through the filter
    assert _search._calibrated(8, "euclidean", 10, True) > 0
    assert sizes == [(600, 40)]
    assert filtered == [600] * _search._CALIBRATION_REPEATS
    # which calibrations run: a fake ratio per kind
    runs = []

    def fake(dim, metric, k, prefiltered):
        runs.append(prefiltered)
        return ratios[prefiltered]

    monkeypatch.setattr(_search, "_calibrated", fake)
    ratios = {False: 2.0, True: 0.8}  # faiss wins small, loses to the filter
    assert _search.faiss_flat_speedup(8, "euclidean", 10, 10_000) == 0.8
    assert runs == [False, True]
    for n_reference, k in ((None, 10), (499, 10), (10_000, 21)):  # filter would not run
        runs.clear()
        assert _search.faiss_flat_speedup(8, "euclidean", k, n_reference) == 2.0
        assert runs == [False]
    ratios[False] = 1.2  # brute force already wins small: no second calibration
    runs.clear()
    assert _search.faiss_flat_speedup(8, "euclidean", 10, 10_000) == 1.2
    assert runs == [False]


def test_auto_calibration_never_runs_after_fit(blobs, monkeypatch):
    """Predicting, searching and the embedder's own fit and transform never calibrate."""
    from sk_deepmetric import _search

    X, y, X_query = blobs
    monkeypatch.setattr(neighbors, "AUTO_FAISS_MIN_SAMPLES", 200)
    monkeypatch.setattr(_search, "_speedups", {})
    calls = []
    real = _search.calibration_data
    monkeypatch.setattr(_search, "calibration_data", lambda dim: calls.append(dim) or real(dim))
    clf = EmbeddingKNeighborsClassifier(
        TripletEmbedder(n_components=2, max_iter=2, random_state=0), algorithm="auto"
    ).fit(X, y)
    assert calls == [2]
    clf.embedder_.transform(X_query)
    clf.predict(X_query), clf.kneighbors(X_query), clf.predict_proba(X_query)
    clf.kneighbors(X_query, n_neighbors=64)  # another k: the backend chosen in fit
    TripletEmbedder(n_components=3, max_iter=2, random_state=0).fit(X, y).transform(X)
    assert calls == [2]


@pytest.mark.parametrize("algorithm", ["faiss", "faiss_ivf"])
def test_faiss_requested_but_not_installed(blobs, algorithm, monkeypatch):
    X, y, _ = blobs
    monkeypatch.setitem(sys.modules, "faiss", None)
    msg = (
        f"algorithm='{algorithm}' needs the faiss package, which is not installed. Install it "
        "with `pip install sk_deepmetric[faiss]`"
    )
    with pytest.raises(ImportError, match=re.escape(msg)):
        EmbeddingKNeighborsClassifier(identity(), algorithm=algorithm).fit(X, y)


def test_search_device_follows_the_embedder():
    clf = EmbeddingKNeighborsClassifier(TripletEmbedder(device="cpu"))
    clf.embedder_ = clf.embedder
    assert clf._search_device().type == "cpu"
    clf.embedder_ = PCA()  # no device parameter
    assert clf._search_device().type == "cpu"
    clf.set_params(device="auto")
    assert clf._search_device().type == ("cuda" if neighbors.torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize(
    ("device", "match"),
    [
        ("gpu", r"`device` must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or a torch.device"),
        ("mps", r"of one of those types, got 'mps'"),
        pytest.param(
            "cuda",
            r"`device`='cuda' but this machine has 0 CUDA device\(s\)",
            marks=pytest.mark.skipif(neighbors.torch.cuda.is_available(), reason="has CUDA"),
        ),
    ],
)
def test_a_bad_device_is_refused_before_the_embedder_is_fitted(device, match):
    X, y = load_iris(return_X_y=True)
    fitted = []

    class Recorded(FunctionTransformer):
        def fit(self, X, y=None):
            fitted.append(True)
            return super().fit(X, y)

    clf = EmbeddingKNeighborsClassifier(Recorded(), device=device)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not fitted
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_a_failed_fit_leaves_no_fitted_attribute():
    # the first fit's model must not survive a second fit that fails in the embedder
    X, y = load_iris(return_X_y=True)
    clf = EmbeddingKNeighborsClassifier(TripletEmbedder(**FAST_TRIPLET)).fit(X, y)
    with pytest.raises(ValueError, match="needs at least 2 classes"):
        clf.fit(X, np.zeros(len(y)))
    assert not [name for name in vars(clf) if name.endswith("_") or name in ("_y", "_index")]
    with pytest.raises(NotFittedError):
        clf.predict(X)


# ---------------------------------------------------------------- the estimator


def test_default_embedder_is_a_triplet_embedder_validated_on_held_out_samples():
    embedder = EmbeddingKNeighborsClassifier()._make_embedder()
    assert isinstance(embedder, TripletEmbedder)
    # the classifier only meets its training classes: early stopping on held-out samples
    expected = TripletEmbedder(validation_holdout="samples").get_params()
    assert embedder.get_params() == expected
    # random_state goes to the default embedder only
    seeded = EmbeddingKNeighborsClassifier(random_state=3)._make_embedder()
    assert seeded.get_params() == {**expected, "random_state": 3}
    mine = TripletEmbedder(random_state=5)
    assert EmbeddingKNeighborsClassifier(mine, random_state=3)._make_embedder().random_state == 5


def test_fit_clones_the_embedder_and_sets_attributes():
    X, y = load_iris(return_X_y=True)
    embedder = PCA(n_components=2)
    clf = EmbeddingKNeighborsClassifier(embedder).fit(X, y)
    assert not hasattr(embedder, "components_")
    assert clf.embedder_ is not embedder and hasattr(clf.embedder_, "components_")
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert (clf.n_features_in_, clf.n_samples_fit_, clf.algorithm_) == (4, 150, "brute")
    assert clf.score(X, y) > 0.9


def test_dataframe_input_and_string_labels():
    data = load_iris(as_frame=True)
    labels = np.array(data.target_names)[data.target]
    clf = EmbeddingKNeighborsClassifier(make_pipeline(StandardScaler(), PCA(n_components=2)))
    clf.fit(data.data, labels)
    np.testing.assert_array_equal(clf.feature_names_in_, data.data.columns)
    assert clf.predict(data.data.iloc[:1])[0] == "setosa"


def test_grid_search_over_n_neighbors(blobs):
    X, y, _ = blobs
    grid = {"n_neighbors": [1, 5, 15], "weights": ["uniform", "distance"]}
    search = GridSearchCV(EmbeddingKNeighborsClassifier(PCA(n_components=3)), grid, cv=3)
    search.fit(X, y)
    for params, mean in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
        clf = EmbeddingKNeighborsClassifier(PCA(n_components=3), **params)
        assert mean == pytest.approx(cross_val_score(clf, X, y, cv=3).mean())


def test_grid_search_over_embedder_parameters(blobs):
    X, y, _ = blobs
    clf = EmbeddingKNeighborsClassifier(TripletEmbedder(**FAST_TRIPLET))
    assert {"embedder__margin", "embedder__miner", "n_neighbors"} <= set(clf.get_params())
    grid = {
        "embedder__margin": [0.1, 0.5],
        "embedder__miner": ["semihard", "all"],
        "n_neighbors": [1, 5],
    }
    search = GridSearchCV(clf, grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 8
    best = search.best_estimator_
    assert best.embedder_.margin == search.best_params_["embedder__margin"]
    assert best.n_neighbors == search.best_params_["n_neighbors"]


# ---------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def fitted(blobs):
    X, y, _ = blobs
    return {
        a: EmbeddingKNeighborsClassifier(StandardScaler(), algorithm=a).fit(X, y)
        for a in ALGORITHMS
    }


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_more_neighbors_than_reference_samples(blobs, fitted, algorithm):
    X, y, X_query = blobs
    clf = fitted[algorithm]
    msg = "`n_neighbors` (201) must not exceed the number of training samples (200)."
    with pytest.raises(ValueError, match=re.escape(msg)):
        clf.kneighbors(X_query, n_neighbors=201)
    msg = (
        "`n_neighbors` (200) must not exceed the number of training samples minus one "
        "(leave-one-out, X=None) (199)."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        clf.kneighbors(n_neighbors=200)
    small = EmbeddingKNeighborsClassifier(StandardScaler(), n_neighbors=5, algorithm=algorithm)
    small.fit(X[:4], y[:4])
    msg = "`n_neighbors` (5) must not exceed the number of training samples (4)."
    with pytest.raises(ValueError, match=re.escape(msg)):
        small.predict(X_query)
    with pytest.raises(ValueError, match=re.escape("`n_neighbors` must be an integer, got 2.5")):
        clf.kneighbors(X_query, n_neighbors=2.5)


def test_ivf_that_finds_too_few_neighbors(blobs):
    X, y, X_query = blobs
    # one training sample per cell: a single scanned cell holds one neighbour, not three
    clf = EmbeddingKNeighborsClassifier(identity(), algorithm="faiss_ivf", n_lists=200, n_probe=1)
    clf.fit(X, y)
    msg = (
        "algorithm='faiss_ivf' found fewer than 3 neighbours for some queries in the `n_probe` "
        "(1) of `n_lists` (200) cells it scanned; increase `n_probe` or decrease `n_lists`."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        clf.kneighbors(X_query, n_neighbors=3)
    msg = (
        "`n_lists` (201) must not exceed the number of training samples (200) for "
        "algorithm='faiss_ivf'."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        clf.set_params(n_lists=201).fit(X, y)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_queries_of_the_wrong_width(blobs, fitted, algorithm):
    _, _, X_query = blobs
    msg = "X has 5 features, but EmbeddingKNeighborsClassifier is expecting 6 features as input."
    for method in ("predict", "predict_proba", "kneighbors"):
        with pytest.raises(ValueError, match=re.escape(msg)):
            getattr(fitted[algorithm], method)(X_query[:, :5])


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_nan_and_infinite_queries(blobs, algorithm, value):
    X, y, X_query = blobs
    X_bad = X_query.copy()
    X_bad[3, 2] = value
    # an embedder that lets them through: they must not reach the search
    clf = EmbeddingKNeighborsClassifier(FunctionTransformer(), algorithm=algorithm).fit(X, y)
    msg = (
        "The embedding of X contains NaN or infinity: X probably has missing or infinite "
        "values. Impute or remove them first."
    )
    for method in ("predict", "kneighbors"):
        with pytest.raises(ValueError, match=re.escape(msg)):
            getattr(clf, method)(X_bad)
    with pytest.raises(ValueError, match=re.escape(msg)):
        clf.fit(X_bad, y[:60])
    # an embedder that checks its input has the first word
    with pytest.raises(ValueError, match=r"Input X contains (NaN|infinity)"):
        EmbeddingKNeighborsClassifier(identity(), algorithm=algorithm).fit(X_bad, y[:60])


def test_list_queries_of_the_wrong_width(blobs):
    X, y, X_query = blobs
    # an embedder that checks nothing: the classifier checks the width, as scikit-learn does
    clf = EmbeddingKNeighborsClassifier(FunctionTransformer()).fit(X, y)
    msg = "X has 5 features, but EmbeddingKNeighborsClassifier is expecting 6 features as input."
    narrow = X_query[:, :5]
    for queries in (narrow.tolist(), tuple(map(tuple, narrow.tolist())), list(narrow)):
        for method in ("predict", "kneighbors"):
            with pytest.raises(ValueError, match=re.escape(msg)):
                getattr(clf, method)(queries)
    np.testing.assert_array_equal(clf.predict(X_query.tolist()), clf.predict(X_query))


def test_queries_of_another_sample_shape_than_fit_images():
    # n_features_in_ of (n, 8, 8) images is their height: flat rows of 64 pixels were
    # refused as "X has 64 features, but ... is expecting 8 features"
    rng = np.random.default_rng(0)
    images, y = rng.random((40, 8, 8), dtype=np.float32), np.arange(40) % 4
    embedder = TripletEmbedder(network="cnn", n_components=8, max_iter=1, random_state=0)
    clf = EmbeddingKNeighborsClassifier(embedder, n_neighbors=3).fit(images, y)
    msg = (
        "X has shape (64,) per sample, but TripletEmbedder was fitted on samples of shape (8, 8)."
    )
    for method in ("predict", "kneighbors"):
        with pytest.raises(ValueError, match=re.escape(msg)):
            getattr(clf, method)(images.reshape(40, 64))
    # one channel with or without its axis is the same input, as to the embedder
    np.testing.assert_array_equal(clf.predict(images[:, None]), clf.predict(images))
    # an embedder that takes both shapes decides for itself
    flatten = FunctionTransformer(lambda X: np.reshape(X, (len(X), -1)))
    flat = EmbeddingKNeighborsClassifier(flatten, n_neighbors=3).fit(images, y)
    np.testing.assert_array_equal(flat.predict(images.reshape(40, 64)), flat.predict(images))


@pytest.mark.parametrize("embedder", [FunctionTransformer(), StandardScaler()])
def test_feature_names_are_checked_at_predict(blobs, embedder):
    # FunctionTransformer records the names but does not check them; StandardScaler does,
    # and its warning must not come twice
    import pandas as pd  # in the [test] extra: a missing pandas must fail, not skip

    X, y, X_query = blobs
    columns = [f"f{i}" for i in range(X.shape[1])]
    clf = EmbeddingKNeighborsClassifier(embedder).fit(pd.DataFrame(X, columns=columns), y)
    queries = pd.DataFrame(X_query, columns=columns)
    expected = clf.predict(queries)
    with pytest.raises(ValueError, match="Feature names must be in the same order as they"):
        clf.predict(queries[columns[::-1]])
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- g0"):
        clf.kneighbors(queries.rename(columns={"f0": "g0"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np.testing.assert_array_equal(clf.predict(X_query), expected)
    msg = (
        "X does not have valid feature names, but EmbeddingKNeighborsClassifier was fitted "
        "with feature names"
    )
    assert [str(w.message) for w in caught] == [msg]
    assert caught[0].filename == __file__  # the user's line
    clf = EmbeddingKNeighborsClassifier(embedder).fit(X, y)
    msg = "X has feature names, but EmbeddingKNeighborsClassifier was fitted without feature names"
    with pytest.warns(UserWarning, match=msg):
        clf.predict(queries)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_embeddings_whose_distances_would_overflow_float32(blobs, algorithm):
    X, y, X_query = blobs
    kw = {"n_lists": 4, "n_probe": 4} if algorithm == "faiss_ivf" else {}  # exact
    clf = EmbeddingKNeighborsClassifier(
        FunctionTransformer(), algorithm=algorithm, weights="distance", **kw
    )
    msg = (
        "The embedding of X has rows of norm above 4.61e+18 (a quarter of the square root of "
        "the largest float32), whose distances would overflow float32 in the search. Scale X "
        "(or the embedder's output) down."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        clf.fit(X * 1e20, y)
    clf.fit(X, y)
    for method in ("predict", "predict_proba", "kneighbors"):
        with pytest.raises(ValueError, match=re.escape(msg)):
            getattr(clf, method)(X_query * 1e20)
    # just within the limit, the largest distances (queries opposite the references) are
    # finite, within the float32 searches' error bounds, and the vote sums to one
    limit = np.sqrt(np.float64(np.finfo(np.float32).max)) / 4
    norms = np.linalg.norm(X.astype(np.float64), axis=1)
    reference = (X * np.float32(0.999 * limit / norms.max())).astype(np.float32)
    assert np.linalg.norm(reference.astype(np.float64), axis=1).max() <= limit
    queries = -reference[::4]
    clf.fit(reference, y)
    dist, ind = clf.kneighbors(queries)
    assert np.isfinite(dist).all()
    check_neighbors(dist, ind, queries, reference, "euclidean", algorithm)
    np.testing.assert_allclose(clf.predict_proba(queries).sum(axis=1), 1.0, rtol=gamma(7, U64))


def test_unfitted():
    clf = EmbeddingKNeighborsClassifier(StandardScaler())
    for method in ("predict", "predict_proba", "kneighbors", "score"):
        args = ([[0.0]], [0]) if method == "score" else ([[0.0]],)
        with pytest.raises(NotFittedError):
            getattr(clf, method)(*args)


@pytest.mark.parametrize(
    "params, msg",
    [
        (
            {"algorithm": "fais"},
            "`algorithm` must be one of ['auto', 'brute', 'faiss', 'faiss_ivf'], got 'fais'. "
            "Did you mean 'faiss'?",
        ),
        (
            {"metric": "cosin"},
            "`metric` must be one of ['euclidean', 'cosine'], got 'cosin'. Did you mean 'cosine'?",
        ),
        (
            {"weights": "distances"},
            "`weights` must be one of ['uniform', 'distance'], got 'distances'. Did you mean "
            "'distance'?",
        ),
        (
            {"n_neighbors": 2.0},
            "The 'n_neighbors' parameter of EmbeddingKNeighborsClassifier must be an int in the "
            "range [1, inf). Got 2.0 instead.",
        ),
        (
            {"n_probe": 0},
            "The 'n_probe' parameter of EmbeddingKNeighborsClassifier must be an int in the "
            "range [1, inf). Got 0 instead.",
        ),
    ],
)
def test_bad_parameters(blobs, params, msg):
    X, y, _ = blobs
    with pytest.raises(ValueError, match=re.escape(msg)):
        EmbeddingKNeighborsClassifier(StandardScaler(), **params).fit(X, y)


def test_fit_needs_y(blobs):
    X, _, _ = blobs
    msg = "requires y to be passed, but the target y is None"
    with pytest.raises(ValueError, match=re.escape(msg)):
        EmbeddingKNeighborsClassifier(StandardScaler()).fit(X, None)
    with pytest.raises(ValueError, match="Unknown label type"):
        EmbeddingKNeighborsClassifier(StandardScaler()).fit(X, np.linspace(0, 1, len(X)))


@pytest.mark.parametrize(("value", "msg"), [(np.nan, "NaN"), (np.inf, "infinity")])
def test_nan_or_infinite_labels_are_an_error_without_a_warning(blobs, value, msg):
    X, y, _ = blobs
    y = y.astype(np.float64)
    y[3] = value
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast" on the way
        with pytest.raises(ValueError, match=f"Input y contains {msg}"):
            EmbeddingKNeighborsClassifier(StandardScaler()).fit(X, y)


# ---------------------------------------------------------------- scikit-learn's checks


def _expected_failures(estimator):
    if estimator.target_far is not None and estimator.weights == "uniform":
        # (with distance weights a training query takes only its own, exact, vote)
        return {
            "check_classifiers_train": (
                "open set: predict gives unknown_label to a rejected training query (voted "
                "into another class) while its predict_proba row stays the vote"
            )
        }
    return {}


# check_estimators_nan_inf fits 10 samples: too few to hold out, as the embedder's warning says
@pytest.mark.filterwarnings("ignore:.*holding out 4 of the 10 samples:UserWarning")
@parametrize_with_checks(
    [
        EmbeddingKNeighborsClassifier(),  # the defaults: a seeded TripletEmbedder
        EmbeddingKNeighborsClassifier(StandardScaler()),
        EmbeddingKNeighborsClassifier(StandardScaler(), algorithm="faiss", weights="distance"),
        EmbeddingKNeighborsClassifier(StandardScaler(), algorithm="faiss_ivf"),
        EmbeddingKNeighborsClassifier(
            TripletEmbedder(**FAST_TRIPLET), n_neighbors=3, metric="cosine"
        ),
        # open set; the default unknown_label is of the checks' labels' kind, numbers or
        # strings, and not one of them (-1 is a label of their binary data)
        EmbeddingKNeighborsClassifier(StandardScaler(), target_far=0.2),
        EmbeddingKNeighborsClassifier(
            PCA(n_components=1),
            target_far=0.2,
            calibration="leave_class_out",
            weights="distance",
        ),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_compatible_estimator(estimator, check, monkeypatch):
    # check_array_api_input (NumPy namespace, for every estimator) skips without this
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


@pytest.mark.parametrize("algorithm", ["faiss", "faiss_ivf"])
def test_faiss_backends_survive_faiss_torch_utils(algorithm):
    # pytorch-metric-learning imports faiss.contrib.torch_utils, which patches faiss indexes
    # to return torch tensors; the backends must still return the same numpy neighbours
    import faiss.contrib.torch_utils  # noqa: F401

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(60, 4)), np.arange(60) % 3
    kw = {"n_lists": 2, "n_probe": 2} if algorithm == "faiss_ivf" else {}
    clf = EmbeddingKNeighborsClassifier(
        StandardScaler(), n_neighbors=3, algorithm=algorithm, **kw
    ).fit(X, y)
    brute = EmbeddingKNeighborsClassifier(StandardScaler(), n_neighbors=3).fit(X, y)
    reference = brute.embedder_.transform(X).astype(np.float32)
    for queries in (None, rng.normal(size=(7, 4))):
        d, i = clf.kneighbors(queries)
        d_b, i_b = brute.kneighbors(queries)
        assert isinstance(i, np.ndarray) and i.dtype == np.int64
        loo = queries is None
        embedded = None if loo else brute.embedder_.transform(queries).astype(np.float32)
        certain = check_neighbors(d, i, embedded, reference, "euclidean", algorithm, loo)
        check_neighbors(d_b, i_b, embedded, reference, "euclidean", "brute", loo)
        assert certain.all()  # no two neighbours within rounding of each other here
        np.testing.assert_array_equal(i, i_b)


def test_frozen_embedder_searches_a_gallery_of_new_classes():
    from sklearn.frozen import FrozenEstimator

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(80, 5)), np.arange(80) % 4
    embedder = PCA(n_components=3).fit(X[y < 2])
    gallery = y >= 2
    clf = EmbeddingKNeighborsClassifier(FrozenEstimator(embedder), n_neighbors=1)
    clf.fit(X[gallery], y[gallery])
    # the gallery was embedded with the trained embedder, not a refitted one
    np.testing.assert_allclose(clf.embedder_.transform(X[:3]), embedder.transform(X[:3]))
    assert clf.classes_.tolist() == [2, 3]
    _, ind = clf.kneighbors(X[gallery][:4], n_neighbors=1)
    assert ind.ravel().tolist() == [0, 1, 2, 3]


def test_a_duck_typed_transformer_as_embedder(blobs):
    # fit/transform/get_params/set_params without scikit-learn's base class, as Pipeline
    # takes it: no tags to read, and X goes to it as given
    class FirstTwo:
        def fit(self, X, y=None):
            return self

        def transform(self, X):
            return np.asarray(X, dtype=np.float32)[:, :2]

        def get_params(self, deep=True):
            return {}

        def set_params(self, **params):
            return self

    X, y, X_query = blobs
    clf = EmbeddingKNeighborsClassifier(FirstTwo(), n_neighbors=3).fit(X, y)
    expected = KNeighborsClassifier(3, algorithm="brute").fit(X[:, :2], y)
    np.testing.assert_array_equal(clf.predict(X_query), expected.predict(X_query[:, :2]))


def test_score_on_classes_never_seen_warns(blobs):
    # a class-disjoint test fold (GroupKFold with groups=y) scores 0 whatever the embedding
    X, y, _ = blobs
    clf = EmbeddingKNeighborsClassifier(identity()).fit(X[y < 2], y[y < 2])
    with pytest.warns(UserWarning, match=r"None of the 2 labels of y is a class"):
        assert clf.score(X[y >= 2], y[y >= 2]) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert clf.score(X[y < 2], y[y < 2]) > 0.5  # seen classes: no warning
        assert clf.score(X, y) < 1.0  # some seen: the user's mix, no warning
        # labels of another kind (strings for integer classes): scikit-learn's own error,
        # not a warning about folds
        with pytest.raises(ValueError, match="Mix of label input types"):
            clf.score(X[:4], np.array(["a", "b", "a", "b"]))
        # the open set's unknown label is a label it names
        open_set = EmbeddingKNeighborsClassifier(identity(), target_far=0.1, random_state=0)
        open_set.fit(X[y < 3], y[y < 3])
        unknown = np.full((y == 3).sum(), open_set.unknown_label_)
        assert 0.0 <= open_set.score(X[y == 3], unknown) <= 1.0


def test_read_only_embeddings_give_no_torch_warning(blobs):
    # torch warns that writing into a tensor of a read-only array is undefined; the search
    # never writes (a memory-mapped embedding, a pandas frame's values under copy-on-write)
    X, y, X_query = blobs

    def read_only(Z):
        Z = np.array(Z, dtype=np.float32)
        Z.setflags(write=False)
        return Z

    clf = EmbeddingKNeighborsClassifier(FunctionTransformer(read_only), n_neighbors=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predicted = clf.fit(X, y).predict(X_query)
    expected = KNeighborsClassifier(3, algorithm="brute").fit(X, y).predict(X_query)
    np.testing.assert_array_equal(predicted, expected)


def test_one_sample_per_class_warns_that_uniform_votes_tie(blobs):
    # a gallery of one sample per identity: k > 1 uniform votes all tie (first class wins);
    # and no "could represent a regression problem" from scikit-learn for it
    X, _, X_query = blobs
    y = np.arange(40)
    with pytest.warns(UserWarning, match=r"^40 of 40 classes have a single sample") as record:
        EmbeddingKNeighborsClassifier(identity(), n_neighbors=5).fit(X[:40], y)
    assert len(record) == 1
    assert record[0].filename == __file__
    # one class of two among singletons: its neighbours' votes still tie
    with pytest.warns(UserWarning, match=r"^39 of 40 classes have a single sample"):
        EmbeddingKNeighborsClassifier(identity(), n_neighbors=5).fit(X[:41], np.r_[y, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = EmbeddingKNeighborsClassifier(identity(), n_neighbors=1).fit(X[:40], y)
        EmbeddingKNeighborsClassifier(identity(), weights="distance").fit(X[:40], y)
    nearest = KNeighborsClassifier(1, algorithm="brute").fit(X[:40], y)
    np.testing.assert_array_equal(one.predict(X_query), nearest.predict(X_query))
