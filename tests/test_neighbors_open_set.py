"""Open-set identification with EmbeddingKNeighborsClassifier(target_far=...).

References: a loop over each held-out sample's sorted neighbours among the other classes'
samples, its vote, and the distance to the voted class; the threshold read from the sorted
distances by counting.
"""

import math
import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import check_random_state

from sk_deepmetric.embedders import TripletEmbedder
from sk_deepmetric.neighbors import EmbeddingKNeighborsClassifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def identity():
    return FunctionTransformer(None, validate=True)


def make_classes(seed, n_classes=16, n_per_class=12, n_features=4):
    """Gaussian classes around random centres: unseen classes come from the same law."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=2.0, size=(n_classes, n_features))
    y = np.repeat(np.arange(n_classes), n_per_class)
    return (centres[y] + rng.normal(size=(y.size, n_features))).astype(np.float32), y


def loop_distance(a, b, metric):
    if metric == "cosine":
        return 1.0 - float(a @ b) / math.sqrt(float(a @ a) * float(b @ b))
    return math.sqrt(float(((a - b) ** 2).sum()))


def loop_predicted_class_distance(query, reference, labels, k, weights, metric):
    """(voted class, distance to its nearest neighbour among the k) for one query."""
    d = [loop_distance(query, r, metric) for r in reference]
    order = sorted(range(len(reference)), key=lambda j: (d[j], j))[:k]
    votes = {}
    exact = [j for j in order if d[j] == 0.0]
    for j in order:
        if weights == "uniform":
            w = 1.0
        elif exact:
            w = 1.0 if j in exact else 0.0
        else:
            w = 1.0 / d[j]
        votes[labels[j]] = votes.get(labels[j], 0.0) + w
    best = max(votes.values())
    winner = min(c for c, v in votes.items() if v == best)  # the first class on a tie
    return winner, min(d[j] for j in order if labels[j] == winner)


def loop_held_out_distances(embedding, y, classes, k, weights="uniform", metric="euclidean"):
    out = {}
    for i in range(len(y)):
        if y[i] not in classes:
            continue
        others = [j for j in range(len(y)) if y[j] != y[i]]
        _, out[i] = loop_predicted_class_distance(
            embedding[i],
            [embedding[j] for j in others],
            [y[j] for j in others],
            min(k, len(others)),
            weights,
            metric,
        )
    return out


def loop_within_class_scale(embedding, y):
    """Median over samples of the distance to the nearest other sample of their class."""
    nearest = []
    for i in range(len(y)):
        own = [j for j in range(len(y)) if y[j] == y[i] and j != i]
        if own:
            d = [loop_distance(embedding[i], embedding[j], "euclidean") for j in own]
            nearest.append(min(d))
    return float(np.median(nearest))


def loop_threshold(distances, far):
    """Accept at most k = floor(far * n) distances (ties together), halfway to the next."""
    values = sorted(distances)
    n = len(values)
    k = max(i for i in range(n + 1) if i / n <= far)
    allowed = [v for v in sorted(set(values)) if sum(1 for x in values if x <= v) <= k]
    if not allowed:
        return float(np.nextafter(values[0], -np.inf))
    nxt = min(v for v in values if v > allowed[-1])
    return (allowed[-1] + nxt) / 2


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_leave_class_out_threshold_matches_loop(weights, metric):
    X, y = make_classes(0)
    clf = EmbeddingKNeighborsClassifier(
        identity(), n_neighbors=4, weights=weights, metric=metric, target_far=0.1,
        calibration="leave_class_out",
    ).fit(X, y)  # fmt: skip
    expected = loop_held_out_distances(X, y, set(y), 4, weights, metric)
    expected = np.array([expected[i] for i in range(len(y))])
    np.testing.assert_allclose(clf.calibration_distances_, expected, rtol=1e-5, atol=1e-6)
    assert clf.threshold_ == pytest.approx(loop_threshold(expected, 0.1), rel=1e-5, abs=1e-6)
    assert np.mean(clf.calibration_distances_ <= clf.threshold_) <= 0.1


def test_cross_fit_uses_embedders_that_never_saw_the_held_out_classes():
    X, y = make_classes(1, n_features=6)
    clf = EmbeddingKNeighborsClassifier(
        PCA(n_components=3), n_neighbors=3, target_far=0.05, calibration_folds=4, random_state=7
    ).fit(X, y)
    folds = np.array_split(check_random_state(7).permutation(16), 4)
    final_scale = loop_within_class_scale(PCA(n_components=3).fit(X).transform(X), y)
    expected = {}
    for fold in folds:
        held_out = np.isin(y, fold)
        embedding = PCA(n_components=3).fit(X[~held_out]).transform(X)
        ratio = final_scale / loop_within_class_scale(embedding[~held_out], y[~held_out])
        distances = loop_held_out_distances(embedding, y, set(fold.tolist()), 3)
        expected |= {i: d * ratio for i, d in distances.items()}
    expected = np.array([expected[i] for i in range(len(y))])
    np.testing.assert_allclose(clf.calibration_distances_, expected, rtol=1e-4, atol=1e-5)
    assert clf.threshold_ == pytest.approx(loop_threshold(expected, 0.05), rel=1e-4, abs=1e-5)
    # the final embedder and reference set are fitted on all classes
    np.testing.assert_allclose(
        clf.embedder_.transform(X), PCA(n_components=3).fit(X).transform(X), atol=1e-5
    )


def test_predict_rejects_queries_beyond_the_threshold():
    X, y = make_classes(2)
    train = y < 10
    clf = EmbeddingKNeighborsClassifier(
        identity(), n_neighbors=3, target_far=0.1, calibration="leave_class_out"
    ).fit(X[train], y[train])
    closed = EmbeddingKNeighborsClassifier(identity(), n_neighbors=3).fit(X[train], y[train])
    queries = X[~train]
    distance = -clf.score_samples(queries)
    for q, d in zip(queries[:20], distance[:20]):
        _, expected = loop_predicted_class_distance(
            q, X[train], y[train].tolist(), 3, "uniform", "euclidean"
        )
        assert d == pytest.approx(expected, rel=1e-5)
    predicted = clf.predict(queries)
    np.testing.assert_array_equal(predicted == -1, distance > clf.threshold_)
    # a float32 value: distances compared in float32 or in float64 decide alike
    assert float(np.float32(clf.threshold_)) == clf.threshold_
    np.testing.assert_array_equal(predicted == -1, distance.astype(np.float64) > clf.threshold_)
    accepted = predicted != -1
    np.testing.assert_array_equal(predicted[accepted], closed.predict(queries)[accepted])
    # predict_proba is the vote, rejected or not
    np.testing.assert_array_equal(clf.predict_proba(queries), closed.predict_proba(queries))
    # a training sample voted into its own class is its own neighbour there, at distance 0
    own = closed.predict(X[train]) == y[train]
    np.testing.assert_array_equal(clf.predict(X[train])[own], y[train][own])


def test_realised_false_accept_rate_on_unseen_classes():
    # an embedder that learned nothing from the classes: leave-class-out scores are unbiased
    X, y = make_classes(1, n_classes=80, n_per_class=15, n_features=5)
    train = y < 40
    for target in (0.05, 0.1):
        clf = EmbeddingKNeighborsClassifier(
            identity(), target_far=target, calibration="leave_class_out"
        ).fit(X[train], y[train])
        realised = np.mean(clf.predict(X[~train]) != -1)
        # 600 unknown queries from 40 classes: the class-to-class spread dominates
        assert target / 2 <= realised <= 2 * target


def test_set_target_far_equals_a_refit():
    X, y = make_classes(3)
    clf = EmbeddingKNeighborsClassifier(PCA(2), target_far=0.02, random_state=0).fit(X, y)
    refit = EmbeddingKNeighborsClassifier(PCA(2), target_far=0.2, random_state=0).fit(X, y)
    assert clf.set_target_far(0.2) is clf
    assert clf.target_far == 0.2 and clf.threshold_ == refit.threshold_
    np.testing.assert_array_equal(clf.predict(X[:50] + 1.5), refit.predict(X[:50] + 1.5))
    with pytest.raises(ValueError, match=r"The 'target_far' parameter .* Got 1.5 instead"):
        clf.set_target_far(1.5)
    with pytest.raises(ValueError, match="was fitted without it, so nothing was calibrated"):
        EmbeddingKNeighborsClassifier(PCA(2)).fit(X, y).set_target_far(0.1)
    with pytest.raises(NotFittedError):
        EmbeddingKNeighborsClassifier(PCA(2)).set_target_far(0.1)


def test_a_rejected_set_target_far_changes_nothing():
    X, y = make_classes(3)
    clf = EmbeddingKNeighborsClassifier(
        identity(), target_far=0.1, calibration="leave_class_out"
    ).fit(X, y)
    params, threshold, far_away = clf.get_params(), clf.threshold_, X[:5] + 100.0
    assert (clf.predict(far_away) == -1).all()
    msg = "set_target_far needs a rate `target_far` in (0, 1), got None."
    with pytest.raises(ValueError, match=re.escape(msg)):
        clf.set_target_far(None)
    for bad in (2, 0.0, "0.1"):
        with pytest.raises(ValueError, match="The 'target_far' parameter"):
            clf.set_target_far(bad)
    assert clf.get_params() == params and clf.threshold_ == threshold
    assert (clf.predict(far_away) == -1).all()
    clone(clf).fit(X, y)  # its parameters are still valid


def test_target_far_changed_after_fit_is_refused_until_calibrated():
    X, y = make_classes(3)
    far_away = X[:5] + 100.0
    closed = EmbeddingKNeighborsClassifier(identity(), calibration="leave_class_out").fit(X, y)
    msg = (
        "`target_far` was set to 0.1 after this EmbeddingKNeighborsClassifier was fitted "
        "without it (closed set), so no threshold was calibrated. Call fit to calibrate it."
    )
    with pytest.raises(NotFittedError, match=re.escape(msg)):
        closed.set_params(target_far=0.1).predict(far_away)
    assert (closed.fit(X, y).predict(far_away) == -1).all()

    clf = EmbeddingKNeighborsClassifier(
        identity(), target_far=0.02, calibration="leave_class_out"
    ).fit(X, y)
    msg = (
        "`target_far` was changed to 0.2 after fit, but `threshold_` is calibrated for 0.02. "
        "Call set_target_far(0.2), which needs no refit, or fit."
    )
    with pytest.raises(NotFittedError, match=re.escape(msg)):
        clf.set_params(target_far=0.2).predict(far_away)
    refit = clone(clf).fit(X, y)
    np.testing.assert_array_equal(clf.set_target_far(0.2).predict(X), refit.predict(X))
    msg = (
        "`target_far` was set to None after this EmbeddingKNeighborsClassifier was fitted as "
        "an open set with target_far=0.2. Call fit to classify in a closed set, or set "
        "target_far back to 0.2."
    )
    with pytest.raises(NotFittedError, match=re.escape(msg)):
        clf.set_params(target_far=None).predict(far_away)
    assert (clf.set_params(target_far=0.2).predict(far_away) == -1).all()


def test_unknown_label_defaults_to_the_kind_of_the_labels():
    X, y = make_classes(4, n_classes=6)
    names = np.array(list("abcdef"))[y]
    far_away = X[:3] + 100.0
    common = dict(target_far=0.3, calibration="leave_class_out")
    numbers = EmbeddingKNeighborsClassifier(identity(), **common).fit(X, y)
    assert numbers.predict(far_away).tolist() == [-1] * 3 and numbers.unknown_label_ == -1
    assert numbers.predict(far_away).dtype == y.dtype
    # -1 is a label: one less than the smallest
    shifted = clone(numbers).fit(X, y - 1)
    assert shifted.predict(far_away).tolist() == [-2] * 3 and shifted.unknown_label_ == -2
    clf = EmbeddingKNeighborsClassifier(identity(), **common).fit(X, names)
    rejected = clf.predict(far_away)
    assert rejected.tolist() == ["unknown"] * 3 and rejected.dtype.kind == "U"
    assert clf.unknown_label_ == "unknown"
    # set_params(unknown_label=...) applies at predict, without a refit
    assert clf.set_params(unknown_label="nobody").predict(far_away).tolist() == ["nobody"] * 3
    assert clf.unknown_label_ == "nobody"
    # unfitted, or a closed set (nothing rejected): no such attribute
    assert not hasattr(clone(clf), "unknown_label_")
    closed = EmbeddingKNeighborsClassifier(identity()).fit(X, y)
    with pytest.raises(AttributeError, match="exists only with `target_far`"):
        getattr(closed, "unknown_label_")  # noqa: B009
    # pandas' object columns of strings are strings too
    assert clone(clf).fit(X, names.astype(object)).predict(far_away).tolist() == ["nobody"] * 3


def test_unknown_label_fits_the_dtype_of_integer_labels():
    # the default -1 and uint64 ids made float64 predictions: ids above 2**53 merged
    X, y = make_classes(4, n_classes=6)
    far_away = X[:3] + 100.0
    common = dict(target_far=0.3, calibration="leave_class_out")
    ids = np.uint64(2**63) + y.astype(np.uint64)
    clf = EmbeddingKNeighborsClassifier(identity(), **common).fit(X, ids)
    largest = 2**63 + 5
    assert clf.unknown_label_ == largest + 1
    rejected, predicted = clf.predict(far_away), clf.predict(X)
    assert rejected.dtype == predicted.dtype == np.uint64
    assert rejected.tolist() == [largest + 1] * 3
    accepted = predicted != largest + 1
    closed = EmbeddingKNeighborsClassifier(identity()).fit(X, ids).predict(X)
    assert predicted[accepted].tolist() == closed[accepted].tolist()
    assert len(set(predicted[accepted].tolist())) == 6  # distinct ids, not one float
    # each dtype its own default: max + 1, else the smallest value it holds that is no label
    cases = [
        (y.astype(np.uint8), 6, np.uint8),
        (y.astype(np.uint8) + 250, 249, np.uint8),  # 250 .. 255: 256 does not fit
        (y.astype(np.int32), -1, np.int32),
        ((y - 128).astype(np.int8), -1, np.int8),
        # -1, min - 1 and max + 1 taken or out of range: the first gap
        (np.array([-128, -1, 127, 0, 1, 2], dtype=np.int8)[y], -127, np.int8),
    ]
    for labels, default, dtype in cases:
        fitted = clone(clf).fit(X, labels)
        assert fitted.unknown_label_ == default
        rejected = fitted.predict(far_away)
        assert rejected.dtype == dtype and rejected.tolist() == [default] * 3
    # a value given: an integer that an integer dtype holds with the labels
    widened = clone(clf).set_params(unknown_label=-1).fit(X, y.astype(np.uint8))
    assert widened.predict(far_away).dtype == np.int64
    integral = clone(clf).set_params(unknown_label=-1.0).fit(X, y)
    assert integral.unknown_label_ == -1 and isinstance(integral.unknown_label_, int)
    assert integral.predict(far_away).dtype == np.int64
    msgs = {
        -1: "`unknown_label` (-1) does not fit the training labels' dtype (uint64), nor any "
        "integer dtype that holds them: predict would make the labels floats, which merge "
        "integer ids above 2**53. Pass an integer that uint64 holds, such as "
        f"{largest + 1}, or None for that default.",
        0.5: "`unknown_label` (0.5) must be an integer, as the training labels are (dtype "
        "uint64): predict would make the labels floats. Pass an integer such as "
        f"{largest + 1}, or None for that default.",
        2**64: "`unknown_label` (18446744073709551616) does not fit the training labels'",
    }
    for bad, msg in msgs.items():
        with pytest.raises(ValueError, match=re.escape(msg)):
            clone(clf).set_params(unknown_label=bad).fit(X, ids)
        with pytest.raises(ValueError, match=re.escape(msg)):
            clf.set_params(unknown_label=bad).predict(far_away)
    assert clf.set_params(unknown_label=None).predict(far_away).dtype == np.uint64


def test_unknown_label_is_checked_in_fit_and_predict():
    X, y = make_classes(4, n_classes=6)
    names = np.array(list("abcdef"))[y]
    common = dict(target_far=0.3, calibration="leave_class_out")
    cases = [
        (
            names,
            -1,
            "`unknown_label` (-1) must be a string, as the training labels are: "
            "scikit-learn's metrics (score, cross_val_score, GridSearchCV) cannot compare a "
            "mix of numbers and strings. Pass a string such as 'unknown', or None for that "
            "default.",
        ),
        (
            y,
            "unknown",
            "`unknown_label` ('unknown') must be a number, as the training labels are: "
            "scikit-learn's metrics (score, cross_val_score, GridSearchCV) cannot compare a "
            "mix of numbers and strings. Pass a number such as -1, or None for that default.",
        ),
        (
            names,
            "c",
            "`unknown_label` ('c') is one of the training labels; predict could not tell a "
            "rejection from that class. Choose another value.",
        ),
        (y, 2.0, "`unknown_label` (2.0) is one of the training labels;"),
        (y, np.nan, "`unknown_label` must be finite, got nan: a rejection labelled NaN"),
    ]
    for i, (labels, bad, msg) in enumerate(cases):
        clf = EmbeddingKNeighborsClassifier(identity(), unknown_label=bad, **common)
        with pytest.raises(ValueError, match=re.escape(msg)):
            clf.fit(X, labels)
        # set after fit: predict reads it, and checks it the same way, except for a label of
        # the other kind, which a classifier pickled by an earlier version holds (its default
        # was -1 whatever the labels): used as that version did, with a warning
        clf.set_params(unknown_label=None).fit(X, labels).set_params(unknown_label=bad)
        if i < 2:
            kind = "string" if labels is names else "number"
            with pytest.warns(UserWarning, match=rf"\({bad!r}\) is not a {kind}, as the training"):
                predicted = clf.predict(X[:3] + 100.0)
            assert predicted.dtype == object and predicted.tolist() == [bad] * 3
            continue
        with pytest.raises(ValueError, match=re.escape(msg)):
            clf.predict(X[:3] + 100.0)
    msg = (
        "The 'unknown_label' parameter of EmbeddingKNeighborsClassifier must be an instance "
        "of 'int', an instance of 'float', an instance of 'str' or None. Got [1, 2] instead."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        EmbeddingKNeighborsClassifier(identity(), unknown_label=[1, 2]).fit(X, y)


@pytest.mark.parametrize("labels", ["numbers", "strings"])
def test_model_selection_scores_rejections(labels):
    # queries of unseen classes, labelled as their rejections will be: score counts them, and
    # cross-validation and grid search score every fold (no NaN from mixed labels)
    X, y = make_classes(8, n_classes=10, n_per_class=12)
    if labels == "strings":
        y = np.array([f"class {c}" for c in range(10)])[y]
    unknown = -1 if labels == "numbers" else "unknown"
    clf = EmbeddingKNeighborsClassifier(
        identity(), n_neighbors=3, target_far=0.1, calibration="leave_class_out"
    )
    seen = np.isin(y, np.unique(y)[:8])
    truth = np.where(seen, y, unknown).astype(y.dtype)
    clf.fit(X[seen], y[seen])
    predicted = clf.predict(X)
    assert (predicted[~seen] == unknown).any()  # some rejections to score
    assert clf.score(X, truth) == np.mean(predicted == truth)
    scores = cross_val_score(clf, X[seen], y[seen], cv=3, error_score="raise")
    assert np.isfinite(scores).all()
    search = GridSearchCV(clf, {"target_far": [0.1, 0.3]}, cv=3, error_score="raise")
    assert np.isfinite(search.fit(X[seen], y[seen]).cv_results_["mean_test_score"]).all()


def test_open_set_errors_and_warnings():
    X, y = make_classes(5, n_classes=4, n_per_class=5)
    msg = (
        "`target_far` calibrates on held-out training classes, so it needs at least 2 "
        "classes in `y`, got 1 class."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        EmbeddingKNeighborsClassifier(identity(), target_far=0.1).fit(X, np.zeros(len(X)))
    with pytest.warns(UserWarning, match="A false-accept rate of 0.01 needs at least 100 "):
        EmbeddingKNeighborsClassifier(identity(), target_far=0.01).fit(X, y)
    # 4 classes in 4 folds: each embedder would be fitted on 3 classes; with 2 folds of 2,
    # a TripletEmbedder on 2 classes of 5 samples fits; with 2 classes, folds of 1 do not
    fast = TripletEmbedder(
        max_iter=1, hidden_layer_sizes=(4,), n_components=2, early_stopping=False
    )
    msg = (
        "Calibrating `target_far` fits the embedder on the classes outside each of 2 class "
        "folds; on the 1 classes outside fold 1 it failed: TripletEmbedder needs at least 2 "
        "classes in `y`, got 1 class"
    )
    with pytest.raises(ValueError, match=re.escape(msg)) as caught:
        EmbeddingKNeighborsClassifier(fast, target_far=0.2).fit(X[y < 2], y[y < 2])
    # 2 folds is the fewest: the advice does not ask for fewer
    assert str(caught.value).endswith(" Give more classes, or see `calibration`.")
    msg = "`calibration` must be one of ['cross_fit', 'leave_class_out'], got 'cross'."
    with pytest.raises(ValueError, match=re.escape(msg)):
        EmbeddingKNeighborsClassifier(identity(), target_far=0.2, calibration="cross").fit(X, y)
    for bad, name in ((0.0, "target_far"), (1, "target_far"), (1, "calibration_folds")):
        with pytest.raises(ValueError, match=f"The '{name}' parameter"):
            EmbeddingKNeighborsClassifier(identity(), **{name: bad}).fit(X, y)


@pytest.mark.parametrize("algorithm", ["faiss", "faiss_ivf"])
def test_faiss_backends_calibrate_exactly(algorithm):
    X, y = make_classes(6)
    common = dict(target_far=0.1, calibration="leave_class_out", n_neighbors=3)
    brute = EmbeddingKNeighborsClassifier(StandardScaler(), **common).fit(X, y)
    other = EmbeddingKNeighborsClassifier(StandardScaler(), algorithm=algorithm, **common)
    other.fit(X, y)
    np.testing.assert_allclose(
        other.calibration_distances_, brute.calibration_distances_, rtol=1e-5, atol=1e-5
    )


def test_fit_is_reproducible_with_random_state():
    X, y = make_classes(7, n_classes=6, n_per_class=10)
    fast = {"max_iter": 2, "hidden_layer_sizes": (8,), "n_components": 4}
    fits = [
        EmbeddingKNeighborsClassifier(
            TripletEmbedder(**fast, random_state=0), target_far=0.2, random_state=1
        ).fit(X, y)
        for _ in range(2)
    ]
    assert fits[0].threshold_ == fits[1].threshold_
    np.testing.assert_array_equal(fits[0].predict(X + 0.5), fits[1].predict(X + 0.5))
