import math
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from _rounding import (
    U32,
    certain_ranks,
    cosine_distance_error,
    exact_distances,
    gamma,
    ranking_error,
    rounding_clusters,
)
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import sk_deepmetric.distances
import sk_deepmetric.metrics
from sk_deepmetric.metrics import (
    make_retrieval_scorer,
    mean_average_precision_at_r,
    precision_at_k,
    r_precision,
    recall_at_k,
    retrieval_report,
)

DISTANCES = ["euclidean", "squared_euclidean", "cosine"]
PRECISION_K = (1, 3)
RECALL_K = (1, 2, 4, 8)


# ---------------------------------------------------------------- loop-over-queries reference


def _loop_distance(a, b, distance):
    if distance == "cosine":
        return 1.0 - float(a @ b) / (math.sqrt(float(a @ a)) * math.sqrt(float(b @ b)))
    squared = float(((a - b) ** 2).sum())
    return squared if distance == "squared_euclidean" else math.sqrt(squared)


def _loop_report(queries, query_labels, reference, reference_labels, exclude_self, distance):
    """Each metric by its textbook definition: sort every reference by (distance, index)."""
    scores = {f"precision_at_{k}": [] for k in PRECISION_K}
    scores |= {f"recall_at_{k}": [] for k in RECALL_K}
    scores |= {"r_precision": [], "map_at_r": []}
    for i, query in enumerate(queries):
        candidates = [j for j in range(len(reference)) if not (exclude_self and j == i)]
        order = sorted(
            candidates, key=lambda j: (_loop_distance(query, reference[j], distance), j)
        )
        relevant = [reference_labels[j] == query_labels[i] for j in order]
        r = sum(relevant)
        if r == 0:
            continue
        for k in PRECISION_K:
            scores[f"precision_at_{k}"].append(sum(relevant[:k]) / k)
        for k in RECALL_K:
            scores[f"recall_at_{k}"].append(float(any(relevant[:k])))
        scores["r_precision"].append(sum(relevant[:r]) / r)
        precisions = [sum(relevant[: i + 1]) / (i + 1) for i in range(r) if relevant[i]]
        scores["map_at_r"].append(sum(precisions) / r)
    return {name: float(np.mean(values)) for name, values in scores.items()}


def _labels(layout, n, rng):
    if layout == "four_per_class":
        labels = np.repeat(np.arange(n // 4), 4)
    elif layout == "two_large_classes":
        labels = np.arange(n) % 2
    elif layout == "with_singletons":
        labels = np.concatenate([np.repeat(np.arange(5), 8), np.arange(100, 100 + n - 40)])
    else:  # strings
        labels = np.array(["cat", "dog", "emu", "fox", "gnu"])[np.arange(n) % 5]
    return rng.permutation(labels)


def _data(layout, mode, seed=0):
    rng = np.random.default_rng(seed)
    n = 60
    x = rng.normal(size=(n, 5))
    y = _labels(layout, n, rng)
    if mode == "leave_one_out":
        return dict(embeddings=x, labels=y), (x, y, x, y, True)
    if mode == "exclude_self":
        kwargs = dict(
            embeddings=x, labels=y, reference_embeddings=x, reference_labels=y, exclude_self=True
        )
        return kwargs, (x, y, x, y, True)
    q, qy, ref, ref_y = x[:20], y[:20], x[20:], y[20:]
    kwargs = dict(embeddings=q, labels=qy, reference_embeddings=ref, reference_labels=ref_y)
    return kwargs, (q, qy, ref, ref_y, False)


@pytest.mark.parametrize("distance", DISTANCES)
@pytest.mark.parametrize("mode", ["leave_one_out", "exclude_self", "reference"])
@pytest.mark.parametrize(
    "layout", ["four_per_class", "two_large_classes", "with_singletons", "strings"]
)
def test_report_matches_loop_reference(layout, mode, distance):
    kwargs, loop_args = _data(layout, mode)
    want = _loop_report(*loop_args, distance)
    for chunk_size in (None, 1, 7):
        got = retrieval_report(
            **kwargs,
            precision_k=PRECISION_K,
            recall_k=RECALL_K,
            distance=distance,
            chunk_size=chunk_size,
        )
        assert list(got) == list(want)
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=0, atol=1e-12)


@pytest.mark.parametrize("mode", ["leave_one_out", "reference"])
def test_single_metrics_equal_report(mode):
    kwargs, _ = _data("with_singletons", mode, seed=1)
    report = retrieval_report(**kwargs, precision_k=(1, 3), recall_k=(1, 4), chunk_size=5)
    assert precision_at_k(**kwargs) == pytest.approx(report["precision_at_1"], abs=1e-12)
    assert precision_at_k(**kwargs, k=3) == pytest.approx(report["precision_at_3"], abs=1e-12)
    assert recall_at_k(**kwargs, k=4) == pytest.approx(report["recall_at_4"], abs=1e-12)
    assert recall_at_k(**kwargs) == pytest.approx(report["precision_at_1"], abs=1e-12)
    assert r_precision(**kwargs) == pytest.approx(report["r_precision"], abs=1e-12)
    assert mean_average_precision_at_r(**kwargs) == pytest.approx(report["map_at_r"], abs=1e-12)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean"])
def test_ties_ranked_by_reference_index(distance):
    # integer points on a 3 x 3 grid: distances are exact, so ties and duplicates abound
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, size=(80, 2)).astype(np.float64)
    y = rng.integers(0, 4, size=80)
    want = _loop_report(x, y, x, y, True, distance)
    for chunk_size in (None, 1, 13):
        got = retrieval_report(
            x,
            y,
            precision_k=PRECISION_K,
            recall_k=RECALL_K,
            distance=distance,
            chunk_size=chunk_size,
        )
        np.testing.assert_allclose(list(got.values()), list(want.values()), rtol=0, atol=1e-12)


def test_exact_cosine_ties_ranked_by_reference_index():
    # axis-aligned vectors of lengths 1, 2 and 4: their unit vectors and cosines (0, 1, -1)
    # are exact in floating point, so the ties are ties of the computed distances whatever
    # the block shape of the product (mathematically equal cosines of other vectors can be
    # rounded apart, the caveat of the module's docstring)
    rng = np.random.default_rng(4)
    x = np.zeros((80, 3))
    x[np.arange(80), rng.integers(0, 3, 80)] = rng.choice([-4.0, -2.0, -1.0, 1.0, 2.0, 4.0], 80)
    y = rng.integers(0, 4, size=80)
    leave_one_out = _loop_report(x, y, x, y, True, "cosine")
    against_reference = _loop_report(x[:30], y[:30], x[30:], y[30:], False, "cosine")
    options = dict(precision_k=PRECISION_K, recall_k=RECALL_K, distance="cosine")
    for chunk_size in (None, 1, 4, 13):
        got = retrieval_report(x, y, chunk_size=chunk_size, **options)
        want = list(leave_one_out.values())
        np.testing.assert_allclose(list(got.values()), want, rtol=0, atol=1e-12)
        got = retrieval_report(
            x[:30],
            y[:30],
            reference_embeddings=x[30:],
            reference_labels=y[30:],
            chunk_size=chunk_size,
            **options,
        )
        want = list(against_reference.values())
        np.testing.assert_allclose(list(got.values()), want, rtol=0, atol=1e-12)


def test_inputs_as_tensors_float32_and_numpy_agree():
    kwargs, _ = _data("strings", "reference", seed=2)
    # float32 ranks the same: no two references' float64 distances closer than the float32
    # rounding of the data (u (|q| + |r|)) plus the float32 expansion's error bound
    queries, reference = kwargs["embeddings"], kwargs["reference_embeddings"]
    rounded = [v.astype(np.float32) for v in (queries, reference)]
    norms = np.linalg.norm(queries, axis=1)[:, None] + np.linalg.norm(reference, axis=1)
    errors = ranking_error(*rounded, "euclidean") + U32 * norms
    order, cluster = rounding_clusters(exact_distances(queries, reference, "euclidean"), errors)
    assert certain_ranks(order, cluster, len(reference)).all()
    want = retrieval_report(**kwargs)
    as_tensors = dict(
        kwargs,
        embeddings=torch.from_numpy(kwargs["embeddings"]).float(),
        reference_embeddings=torch.from_numpy(kwargs["reference_embeddings"]).float(),
    )
    got = retrieval_report(**as_tensors, device="cpu")
    np.testing.assert_allclose(list(got.values()), list(want.values()), atol=1e-12)
    labels = torch.arange(6).repeat(4)
    x = torch.randn(24, 3, generator=torch.Generator().manual_seed(0))
    assert mean_average_precision_at_r(x, labels) == pytest.approx(
        mean_average_precision_at_r(x.numpy(), labels.numpy().astype(str)), abs=1e-12
    )
    x_int = (x * 100).round()
    assert mean_average_precision_at_r(x_int.half(), labels) == pytest.approx(
        mean_average_precision_at_r(x_int.long().numpy(), labels), abs=1e-12
    )


# ------------------------------------------------------------------------- hand-computed cases


def test_points_on_a_line_by_hand():
    x = np.array([[0.0], [1.0], [3.0], [4.0], [10.0], [12.0]])
    y = [0, 0, 1, 1, 0, 1]
    # relevance of each query's neighbours, nearest first (R = 2 for everyone):
    # 0: [1,0,0,1,0]  1: [1,0,0,1,0]  3: [1,0,0,0,1]  4: [1,0,0,0,1]  10: [0,0,0,1,1]
    # 12: [0,1,1,0,0]
    report = retrieval_report(x, y, precision_k=(1, 2), recall_k=(1, 2, 4), distance="euclidean")
    assert report == pytest.approx(
        {
            "precision_at_1": 4 / 6,
            "precision_at_2": (5 / 2) / 6,
            "recall_at_1": 4 / 6,
            "recall_at_2": 5 / 6,
            "recall_at_4": 1.0,
            "r_precision": 2.5 / 6,
            "map_at_r": (0.5 * 4 + 0 + 0.5 * 0.5) / 6,
        },
        abs=1e-15,
    )


def test_queries_against_reference_by_hand():
    reference = np.array([[1.0], [2.0], [3.0], [4.0], [5.0]])
    reference_labels = ["a", "b", "a", "b", "a"]
    queries = np.array([[0.0], [2.6], [7.0]])
    labels = ["a", "b", "c"]  # "c" is not in the reference: left out
    # query 0.0 ("a", R=3): [1,0,1,0,1] -> AP@R = (1 + 2/3) / 3, R-precision 2/3
    # query 2.6 ("b", R=2): neighbours 3, 2, 4, 1, 5 -> [0,1,1,0,0] -> AP@R = (1/2) / 2
    ref = dict(
        reference_embeddings=reference, reference_labels=reference_labels, distance="euclidean"
    )
    assert precision_at_k(queries, labels, **ref) == 0.5
    assert r_precision(queries, labels, **ref) == pytest.approx((2 / 3 + 1 / 2) / 2, abs=1e-15)
    assert mean_average_precision_at_r(queries, labels, **ref) == pytest.approx(
        (5 / 9 + 1 / 4) / 2, abs=1e-15
    )
    assert recall_at_k(queries, labels, k=2, **ref) == 1.0


def test_equal_distances_go_to_the_lower_index():
    # the middle point is equally far from both ends: the end with the lower index wins
    x = np.array([[-1.0], [0.0], [1.0]])
    assert precision_at_k(x, [0, 1, 1], distance="euclidean") == 0.5  # label 0 alone: left out
    assert precision_at_k(x, [1, 1, 0], distance="euclidean") == 1.0


def test_cosine_ignores_norms():
    x = np.array([[1.0, 0.0], [5.0, 0.0], [0.0, 1.0], [0.0, 2.0], [-1.0, 0.0]])
    y = [0, 0, 1, 1, 1]
    assert precision_at_k(x, y, distance="cosine") == 1.0
    assert precision_at_k(x, y, distance="euclidean") == 0.8


# ---------------------------------------------------------------- pytorch-metric-learning


def _assert_rankings_agree_on_relevance(x, y, mode, distance):
    """Rounding cannot change the metrics: references it can reorder share their relevance.

    Ours ranks by ``-cos`` of unit rows, or ``|r|^2 - 2 q.r``, in float32; pml by faiss's
    float32 ``|q|^2 + |r|^2 - 2 q.r``, on rows that the test normalised in float32 for cosine.
    Such a row's norm is within ``a = gamma(8) / 2 + 3 u`` of 1, so its squared distance is
    ``2 (1 - cos)`` within ``8 a + 4 a^2``, and faiss's rounding adds ``4 gamma(10)``: halved,
    in cosine-distance units. The euclidean expansion is :func:`ranking_error`'s.
    """
    queries, reference = (x, x) if mode == "leave_one_out" else (x[:50], x[50:])
    exact = exact_distances(queries, reference, distance)
    if distance == "cosine":
        a = gamma(8) / 2 + 3 * U32
        errors = cosine_distance_error(8, exact) + 2 * gamma(10) + 4 * a + 2 * a * a
    else:
        errors = ranking_error(queries, reference, distance).copy()
    q_labels, r_labels = (y, y) if mode == "leave_one_out" else (y[:50], y[50:])
    if mode == "leave_one_out":
        np.fill_diagonal(exact, np.inf)
        np.fill_diagonal(errors, 0.0)
    order, cluster = rounding_clusters(exact, errors)
    relevant = q_labels[:, None] == r_labels[None, :]
    if mode == "leave_one_out":
        np.fill_diagonal(relevant, False)
    for runs, hits, ranked in zip(cluster, relevant, order):
        # the metrics read the first R = (number of relevant) ranks: each run that reaches
        # into them is all relevant or all irrelevant
        counted = np.unique(runs[ranked[: max(1, hits.sum())]])
        members = np.isin(runs, counted)
        pure = np.bincount(runs[members], hits[members]) % np.bincount(runs[members]) == 0
        assert pure.all()


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("mode", ["leave_one_out", "reference"])
def test_agrees_with_pytorch_metric_learning(mode, distance):
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    rng = np.random.default_rng(4)
    x = rng.normal(size=(150, 8)).astype(np.float32)
    if distance == "cosine":  # pml's faiss search is L2: on unit vectors it ranks as cosine
        x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = rng.permutation(np.concatenate([np.repeat(np.arange(20), 7), np.arange(50, 60)]))
    _assert_rankings_agree_on_relevance(x, y, mode, distance)
    calculator = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        device=torch.device("cpu"),
    )
    if mode == "leave_one_out":
        ours = retrieval_report(x, y, recall_k=(1,), distance=distance)
        theirs = calculator.get_accuracy(x, y)
    else:
        ref = dict(reference_embeddings=x[50:], reference_labels=y[50:])
        ours = retrieval_report(x[:50], y[:50], **ref, recall_k=(1,), distance=distance)
        theirs = calculator.get_accuracy(x[:50], y[:50], x[50:], y[50:], False)
    assert ours["precision_at_1"] == pytest.approx(theirs["precision_at_1"], abs=1e-12)
    assert ours["r_precision"] == pytest.approx(theirs["r_precision"], abs=1e-12)
    assert ours["map_at_r"] == pytest.approx(theirs["mean_average_precision_at_r"], abs=1e-12)


# ------------------------------------------------------------------------------------ memory


def test_large_input_is_searched_in_bounded_chunks(monkeypatch):
    largest = []
    original = sk_deepmetric.distances._merged_with_tile

    def recording(best, scores, *args, **kwargs):  # every tile of scores passes through here
        largest.append(scores.numel())
        return original(best, scores, *args, **kwargs)

    monkeypatch.setattr(sk_deepmetric.distances, "_merged_with_tile", recording)
    g = torch.Generator().manual_seed(0)
    n, chunk_size = 10_000, 300
    labels = torch.arange(n) % 1_000  # R = 9
    centres = torch.randn(1_000, 16, generator=g) * 10
    x = centres[labels] + 0.01 * torch.randn(n, 16, generator=g)
    report = retrieval_report(x, labels, chunk_size=chunk_size)
    assert report == {name: 1.0 for name in report}
    assert max(largest) <= chunk_size * n


# ------------------------------------------------------------------------------------ scorers


def _digits():
    X, y = load_digits(return_X_y=True)
    return X[:360], y[:360]


def test_scorer_in_grid_search_matches_metric_by_hand():
    X, y = _digits()
    cv = KFold(3)
    scorer = make_retrieval_scorer("map_at_r")
    grid = {"pca__n_components": [2, 8, 24]}
    search = GridSearchCV(make_pipeline(StandardScaler(), PCA()), grid, scoring=scorer, cv=cv)
    search.fit(X, y)
    by_hand = []
    for n_components in grid["pca__n_components"]:
        folds = []
        for train, test in cv.split(X):
            model = make_pipeline(StandardScaler(), PCA(n_components)).fit(X[train])
            folds.append(mean_average_precision_at_r(model.transform(X[test]), y[test]))
        by_hand.append(np.mean(folds))
    assert (
        search.best_params_["pca__n_components"]
        == grid["pca__n_components"][int(np.argmax(by_hand))]
    )
    assert search.best_params_["pca__n_components"] != 2
    assert search.best_score_ == pytest.approx(max(by_hand), abs=1e-12)
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], by_hand, atol=1e-12)


def test_multimetric_scorers_in_cross_validate():
    X, y = _digits()
    scoring = {
        "map_at_r": make_retrieval_scorer(),
        "recall_at_4": make_retrieval_scorer("recall_at_k", k=4, distance="cosine"),
        "precision_at_1": make_retrieval_scorer("precision_at_1"),
    }
    model = make_pipeline(StandardScaler(), PCA(16))
    scores = cross_validate(model, X, y, scoring=scoring, cv=KFold(2))
    for name in scoring:
        assert np.all((scores[f"test_{name}"] > 0.5) & (scores[f"test_{name}"] <= 1.0))
    assert np.all(scores["test_recall_at_4"] >= scores["test_precision_at_1"] - 0.05)
    test = np.arange(180, 360)
    fitted = model.fit(X[:180], y[:180])
    expected = recall_at_k(fitted.transform(X[test]), y[test], k=4, distance="cosine")
    assert scores["test_recall_at_4"][1] == pytest.approx(expected, abs=1e-12)


def test_scorer_repr_and_pickle():
    scorer = make_retrieval_scorer("recall_at_k", k=2, distance="cosine")
    assert repr(scorer) == "make_retrieval_scorer(metric='recall_at_k', distance='cosine', k=2)"
    assert repr(pickle.loads(pickle.dumps(scorer))) == repr(scorer)
    assert repr(make_retrieval_scorer()) == (
        "make_retrieval_scorer(metric='map_at_r', distance='cosine')"
    )


# ------------------------------------------------------------------------------------- errors


X = np.random.default_rng(0).normal(size=(10, 3))
Y = np.arange(10) % 3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(embeddings=X[:, 0]), r"`embeddings` must be 2-D .* got shape \(10,\)\. Use"),
        (dict(labels=Y[:9]), r"`labels` must be 1-D with one label per row of `embeddings` "),
        (dict(embeddings=np.where(X > 1, np.nan, X)), "`embeddings` must be finite"),
        (dict(embeddings=X[:0]), "`embeddings` must not be empty"),
        (dict(embeddings=X.astype(complex)), "`embeddings` must be real-valued"),
        (dict(distance="cosin"), r"`distance` must be one of .* Did you mean 'cosine'\?"),
        (dict(k=0), r"`k` must be in the range \[1, inf\], got 0"),
        (dict(k=2.0), "`k` must be an integer"),
        (
            dict(k=10),
            r"`k` \(10\) must not exceed the number of reference samples minus one "
            r"\(leave-one-out\) \(9\)",
        ),
        (dict(k=11, reference_embeddings=X, reference_labels=Y), r"samples \(10\)"),
        (dict(chunk_size=0), r"`chunk_size` must be in the range \[1, inf\]"),
        (
            dict(labels=np.arange(10)),
            r"No query has another reference sample of its class \(R = 0 for all 10 queries\), "
            "so no retrieval metric is defined; each class needs at least two samples in "
            "leave-one-out",
        ),
        (
            # not leave-one-out: no query's class is in the reference set
            dict(reference_embeddings=X, reference_labels=Y + 3),
            r"No query has a reference sample of its class \(R = 0 for all 10 queries\), so no "
            r"retrieval metric is defined; `reference_labels` holds none of the classes in "
            r"`labels`\.$",
        ),
        (dict(reference_embeddings=X), "`reference_labels` is required"),
        (dict(reference_labels=Y), "`reference_labels` needs `reference_embeddings`"),
        (
            dict(reference_embeddings=X[:, :2], reference_labels=Y),
            r"`reference_embeddings` must have as many columns as `embeddings` \(3\), got 2",
        ),
        (
            dict(reference_embeddings=np.full((4, 3), np.inf), reference_labels=Y[:4]),
            "`reference_embeddings` must be finite",
        ),
        (
            dict(reference_embeddings=X[:4], reference_labels=Y[:3]),
            r"`reference_labels` must be 1-D .* \(4\), got shape \(3,\)",
        ),
        (
            dict(reference_embeddings=X + 1, reference_labels=Y, exclude_self=True),
            "requires the queries to be the reference rows",
        ),
        (dict(exclude_self=False), "would let every sample retrieve itself"),
        (dict(exclude_self="yes"), "`exclude_self` must be None, True or False"),
    ],
)
def test_errors_name_the_parameter(kwargs, match):
    kwargs = {"embeddings": X, "labels": Y, **kwargs}
    with pytest.raises(ValueError, match=match):
        precision_at_k(**kwargs)


def test_report_and_scorer_errors():
    with pytest.raises(ValueError, match=r"`recall_k` \(16\) must not exceed"):
        retrieval_report(X, Y, recall_k=(1, 16))
    with pytest.raises(ValueError, match="`precision_k` must hold at least one value"):
        retrieval_report(X, Y, precision_k=())
    with pytest.raises(ValueError, match=r"`metric` must be one of .* Did you mean 'map_at_r'"):
        make_retrieval_scorer("map_at_R")
    with pytest.raises(
        ValueError,
        match=r"`k` is not used by metric='r_precision'; leave it None, got 5\.",
    ):
        make_retrieval_scorer("r_precision", k=5)
    with pytest.raises(ValueError, match="`k` must be 1 or None with metric='precision_at_1'"):
        make_retrieval_scorer("precision_at_1", k=5)
    with pytest.raises(ValueError, match="`distance` must be one of"):
        make_retrieval_scorer(distance="manhattan")
    with pytest.raises(ValueError, match="needs the labels `y`"):
        make_retrieval_scorer()(PCA(2).fit(X), X)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda X, y: mean_average_precision_at_r(X, y, device="gpu"),
            r"`device` must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or a torch.device, got 'gpu'",
        ),
        (
            lambda X, y: sk_deepmetric.metrics.make_retrieval_scorer(device="gpu0"),
            r"`device` must be .* got 'gpu0'",
        ),
        (
            lambda X, y: sk_deepmetric.metrics.make_verification_scorer(random_state="x"),
            r"`random_state` must be None, an int or a numpy RandomState, got 'x'",
        ),
        (
            lambda X, y: sk_deepmetric.metrics.make_pairs(
                y, random_state=np.random.default_rng(0)
            ),
            r"`random_state` must be None, an int or a numpy RandomState, got Generator\(PCG64\)",
        ),
        (
            lambda X, y: sk_deepmetric.metrics.make_pairs(y, n_pairs=4, random_state=1.5),
            r"`random_state` must be None, an int or a numpy RandomState, got 1.5\.",
        ),
        (
            lambda X, y: sk_deepmetric.metrics.verification_accuracy(
                y % 2, X[:, 0], random_state=np.random.default_rng(0)
            ),
            r"`random_state` must be None, an int or a numpy RandomState, got Generator\(PCG64\)",
        ),
        (
            lambda X, y: sk_deepmetric.metrics.verification_accuracy(y % 2, X[:, 0], cv=3.0),
            r"`cv` must be an int or one fold label per pair \(40\), got 3.0",
        ),
        (
            lambda X, y: sk_deepmetric.metrics.verification_accuracy(y % 2, X[:, 0], cv=KFold(2)),
            r"one fold label per pair \(40\), got KFold\(",
        ),
    ],
)
def test_bad_arguments_are_named_when_given(call, match):
    X, y = np.random.default_rng(0).random((40, 3)), np.arange(40) % 4
    with pytest.raises(ValueError, match=match):
        call(X, y)


@pytest.mark.parametrize("nan", [np.nan, float("nan")])
def test_nan_labels_are_refused_not_merged_into_one_class(nan):
    X = np.random.default_rng(0).random((6, 3))
    for labels in (
        np.array([0.0, 0.0, 1.0, 1.0, nan, nan]),
        np.array(["a", "a", 1, 1, nan, nan], dtype=object),
    ):
        with pytest.raises(ValueError, match="`labels` must not hold NaN"):
            mean_average_precision_at_r(X, labels)


def test_labels_of_types_that_do_not_sort_are_refused():
    # np.unique sorts to find the classes: a mix of strings and numbers was a TypeError
    X = np.random.default_rng(0).random((6, 3))
    labels = np.array(["a", "a", 1, 1, None, None], dtype=object)
    with pytest.raises(
        ValueError,
        match=r"`labels` must hold labels that sort against each other \(numbers, or strings\), "
        r"got values of types NoneType, int, str\.",
    ):
        mean_average_precision_at_r(X, labels)
    # labels of one type in an object array still work
    labels = np.array(["a", "a", "b", "b", "c", "c"], dtype=object)
    assert 0.0 <= mean_average_precision_at_r(X, labels) <= 1.0


@pytest.mark.parametrize(
    "metric",
    [precision_at_k, recall_at_k, r_precision, mean_average_precision_at_r, retrieval_report],
)
def test_labels_of_another_kind_than_the_reference_labels_are_refused(metric):
    # concatenating them cast 1 to "1", and the query matched the reference sample "1"
    X = np.random.default_rng(0).random((6, 3))
    labels, reference_labels = np.arange(6) % 2, (np.arange(6) % 2).astype(str)
    msg = (
        "`labels` and `reference_labels` must hold labels of one kind (numbers, or strings), "
        "got numbers in `labels` and strings in `reference_labels`."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        metric(X, labels, reference_embeddings=X, reference_labels=reference_labels)
    objects = reference_labels.astype(object)  # strings held in an object array alike
    with pytest.raises(ValueError, match=re.escape(msg)):
        metric(X, labels, reference_embeddings=X, reference_labels=objects)


def test_integer_ids_of_two_dtypes_stay_apart():
    # int64 and uint64 labels were concatenated into float64, where 2**62 and 2**62 + 1 are
    # one value: every query then matched its nearest reference sample
    X = np.array([[0.0, 1.0], [1.0, 0.0]])
    ids = 2**62 + np.arange(2)
    run = dict(reference_embeddings=X, reference_labels=ids[::-1].astype(np.uint64))
    assert precision_at_k(X, ids.astype(np.int64), **run) == 0.0
    assert precision_at_k(X, ids.astype(np.uint64), **run) == 0.0
    # an integer and a float are one class if equal: 2**53 + 1 (int64) is not 2.0**53,
    # though float64 rounds it there; query 0 has no relevant item and is skipped
    queries, labels = np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([2**53 + 1, 2**53])
    reference = np.array([[0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    run = dict(reference_embeddings=reference, reference_labels=np.array([2.0**53, 5.0, 2.0**53]))
    assert precision_at_k(queries, labels, **run) == 0.0
    assert precision_at_k(queries, labels.astype(object), **run) == 0.0
    assert precision_at_k(queries, np.array([6, 5]), **run) == 1.0  # 5 is 5.0
    # the same ids in two dtypes are the same rows for exclude_self=True
    X = np.random.default_rng(0).random((6, 3))
    ids = 2**62 + np.arange(6) % 2
    expected = precision_at_k(X, ids)
    run = dict(reference_embeddings=X, reference_labels=ids.astype(np.uint64))
    assert precision_at_k(X, ids, exclude_self=True, **run) == expected


def test_embeddings_are_read_as_the_estimators_read_X():
    # check_array(dtype="numeric") semantics: these were "must be real-valued, got dtype
    # object", and long double a TypeError from torch.from_numpy
    import pandas as pd  # in the [test] extra: a missing pandas must fail, not skip

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(12, 3)), np.arange(12) % 3
    X[:, 1], X[:, 2] = rng.integers(-3, 4, 12), rng.random(12) > 0.5
    expected = mean_average_precision_at_r(X, y)
    # an embedding joined with an integer and a flag column: NumPy makes it dtype object
    mixed = pd.DataFrame({"a": X[:, 0], "b": X[:, 1].astype(int), "c": X[:, 2].astype(bool)})
    for embeddings in (
        mixed,
        pd.DataFrame(X).astype("Float64"),
        X.astype(object),
        X.astype(np.longdouble),
    ):
        assert mean_average_precision_at_r(embeddings, y) == expected
        run = dict(reference_embeddings=embeddings, reference_labels=y, exclude_self=True)
        assert mean_average_precision_at_r(X, y, **run) == expected
    nullable = pd.DataFrame(X).astype("Float64")
    nullable.iloc[0, 0] = pd.NA
    with pytest.raises(ValueError, match="`embeddings` must be finite, got NaN or infinity"):
        mean_average_precision_at_r(nullable, y)
    words = np.array([["a", 1.0]] * 12, dtype=object)
    msg = "`embeddings` must be real-valued, got dtype object holding values of type str."
    with pytest.raises(ValueError, match=re.escape(msg)):
        mean_average_precision_at_r(words, y)


def test_sparse_embeddings_and_labels_are_refused_naming_the_argument():
    import scipy.sparse

    X, y = np.eye(6), np.arange(6) % 2
    msg = (
        "`embeddings` must be dense, got a scipy.sparse csr_matrix; convert it with `.toarray()`."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        mean_average_precision_at_r(scipy.sparse.csr_matrix(X), y)
    sparse = torch.from_numpy(X).to_sparse()
    for kwargs, name in [
        (dict(embeddings=sparse), "embeddings"),
        (dict(labels=torch.from_numpy(y).to_sparse()), "labels"),
        (dict(reference_embeddings=sparse, reference_labels=y), "reference_embeddings"),
    ]:
        msg = (
            f"`{name}` must be a dense tensor, got layout torch.sparse_coo; convert it with "
            "`.to_dense()`."
        )
        with pytest.raises(ValueError, match=re.escape(msg)):
            mean_average_precision_at_r(**{"embeddings": X, "labels": y, **kwargs})


def test_read_only_embeddings_give_no_torch_warning(tmp_path):
    # a memory-mapped embedding is read-only: torch would warn that writing into its tensor
    # is undefined, and the metrics never write
    rng = np.random.default_rng(0)
    path = tmp_path / "E.npy"
    np.save(path, rng.normal(size=(40, 4)).astype(np.float32))
    y = np.arange(40) % 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score = mean_average_precision_at_r(np.load(path, mmap_mode="r"), y)
    assert score == mean_average_precision_at_r(np.load(path), y)
