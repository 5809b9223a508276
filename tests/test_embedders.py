import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

import sk_deepmetric.embedders._base as base_module
from sk_deepmetric.embedders import (
    AngularEmbedder,
    ArcFaceEmbedder,
    CenterLossEmbedder,
    ContrastiveEmbedder,
    CosFaceEmbedder,
    LargeMarginSoftmaxEmbedder,
    MetricEmbedder,
    NPairsEmbedder,
    SoftmaxEmbedder,
    SphereFaceEmbedder,
    TripletEmbedder,
)
from sk_deepmetric.embedders._classifier import _ClassifierEmbedder
from sk_deepmetric.embedders._params import AUTO_MAX_ITER
from sk_deepmetric.losses._pair import TripletMarginLoss

ALL = [
    TripletEmbedder,
    ContrastiveEmbedder,
    NPairsEmbedder,
    AngularEmbedder,
    SoftmaxEmbedder,
    CenterLossEmbedder,
    LargeMarginSoftmaxEmbedder,
    SphereFaceEmbedder,
    CosFaceEmbedder,
    ArcFaceEmbedder,
]
FAST = {"max_iter": 3, "hidden_layer_sizes": (16,), "n_components": 8, "batch_size": 32}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X[:200]).astype(np.float32)
    return X, y[:200]


def fast(cls, **params):
    return cls(**{**FAST, "random_state": 0, **params})


@pytest.fixture(autouse=True)
def _no_convergence_noise():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


# --------------------------------------------------------------------- basic behaviour
@pytest.mark.parametrize("cls", ALL)
def test_fit_transform_shapes_and_attributes(cls, digits):
    X, y = digits
    model = fast(cls).fit(X, y)
    Z = model.transform(X)
    assert Z.shape == (200, 8) and Z.dtype == np.float32
    assert np.all(np.isfinite(Z))
    assert model.n_iter_ == len(model.history_) == 3
    assert model.n_features_in_ == 64
    np.testing.assert_array_equal(model.classes_, np.arange(10))
    assert set(model.history_[0]) == {"epoch", "loss", "score", "time"}
    assert 0.0 <= model.score(X, y) <= 1.0
    if model.normalize:
        np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, rtol=1e-5)


def test_normalize_defaults_follow_the_loss():
    on = [TripletEmbedder, ContrastiveEmbedder, AngularEmbedder, CosFaceEmbedder, ArcFaceEmbedder]
    for cls in ALL:
        assert cls().normalize is (cls in on), cls.__name__
    assert MetricEmbedder().normalize is False


def test_training_learns_something(digits):
    X, y = digits
    untrained = fast(TripletEmbedder, max_iter=1, learning_rate_init=1e-9).fit(X, y).score(X, y)
    trained = fast(TripletEmbedder, max_iter=15, learning_rate_init=1e-3).fit(X, y).score(X, y)
    assert trained > untrained + 0.1


def test_same_seed_is_bit_identical_and_global_rng_untouched(digits):
    X, y = digits
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()  # noqa: NPY002 (the global one)
    a = fast(TripletEmbedder, dropout=0.2).fit(X, y).transform(X)
    b = fast(TripletEmbedder, dropout=0.2).fit(X, y).transform(X)
    c = fast(TripletEmbedder, dropout=0.2, random_state=1).fit(X, y).transform(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert torch.equal(state, torch.get_rng_state())
    np.testing.assert_array_equal(np_state, np.random.get_state()[1])  # noqa: NPY002


def test_fit_starts_fresh(digits):
    X, y = digits
    model = fast(ArcFaceEmbedder)
    first = model.fit(X, y).transform(X)
    np.testing.assert_array_equal(first, model.fit(X, y).transform(X))
    assert model.n_iter_ == 3


CLASSIFIERS = [cls for cls in ALL if issubclass(cls, _ClassifierEmbedder)]


def _class_weight(model):
    return model.loss_.softmax.weight if hasattr(model.loss_, "softmax") else model.loss_.weight


@pytest.mark.parametrize("estimator", CLASSIFIERS)
def test_fit_starts_class_weights_at_the_centred_class_mean_directions(
    digits, monkeypatch, estimator
):
    X, y = digits  # labels 0..9: the encoded labels are y itself
    seen = {}
    original = estimator._init_loss_from_data

    def spy(self, X_fit, y_fit, device):
        before = _class_weight(self).detach().clone()
        original(self, X_fit, y_fit, device)
        seen.update(before=before, after=_class_weight(self).detach().clone())
        seen["Z"] = self.transform(X_fit)  # the initial network's embedding
        if hasattr(self.loss_, "centers"):
            seen["centers"] = self.loss_.centers.detach().clone()

    monkeypatch.setattr(estimator, "_init_loss_from_data", spy)
    fast(estimator).fit(X, y)
    Z = seen["Z"]
    class_means = np.stack([Z[y == c].mean(axis=0) for c in range(10)])
    means = class_means - Z.mean(axis=0)
    # the directions of the centred class means, with the random weights' mean norm
    scale = np.linalg.norm(seen["before"].numpy(), axis=1).mean()
    expected = scale * means / np.linalg.norm(means, axis=1, keepdims=True)
    np.testing.assert_allclose(seen["after"].numpy(), expected, atol=1e-5)
    if "centers" in seen:  # centre loss: the centres start at the class means themselves
        np.testing.assert_allclose(seen["centers"].numpy(), class_means, atol=1e-5)


def test_transform_does_not_depend_on_the_batch(digits):
    X, y = digits
    model = fast(TripletEmbedder).fit(X, y)
    whole = model.transform(X)
    rows = np.vstack([model.transform(X[i : i + 1]) for i in range(0, 200, 7)])
    np.testing.assert_array_equal(rows, whole[::7])
    np.testing.assert_array_equal(model.transform(X[::-1]), whole[::-1])


def test_pickle_round_trip(digits):
    X, y = digits
    model = fast(CenterLossEmbedder).fit(X, y)
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.transform(X), model.transform(X))
    loaded.partial_fit(X, y)  # the optimiser state came along
    assert loaded.n_iter_ == 4


def test_partial_fit_and_warm_start_continue(digits):
    X, y = digits
    model = fast(TripletEmbedder)
    model.partial_fit(X, y)
    model.partial_fit(X, y)
    assert model.n_iter_ == len(model.history_) == 2
    warm = fast(TripletEmbedder, warm_start=True).fit(X, y)
    before = warm.transform(X)
    warm.set_params(max_iter=2).fit(X, y)
    assert warm.n_iter_ == 5
    assert not np.array_equal(before, warm.transform(X))
    # Continuing from 3 epochs differs from 5 epochs from scratch only through the fresh
    # schedule/RNG draws; the weights are not re-initialised.
    fresh_second_fit = fast(TripletEmbedder).fit(X, y).set_params(max_iter=2).fit(X, y)
    assert fresh_second_fit.n_iter_ == 2


def test_partial_fit_rejects_new_classes_for_classifier_losses(digits):
    X, y = digits
    model = fast(ArcFaceEmbedder).partial_fit(X[y < 5], y[y < 5])
    with pytest.raises(ValueError, match=r"`y` holds classes \[5, 6, 7, 8, 9\] that were not"):
        model.partial_fit(X, y)
    triplet = fast(TripletEmbedder).partial_fit(X[y < 5], y[y < 5]).partial_fit(X, y)
    np.testing.assert_array_equal(triplet.classes_, np.arange(10))


def test_convergence_warning_when_still_improving(digits):
    X, y = digits
    no_validation = {"early_stopping": False, "tol": 0.0}
    with pytest.warns(ConvergenceWarning, match="reached max_iter=2 epochs while its training"):
        fast(TripletEmbedder, max_iter=2, n_iter_no_change=2, **no_validation).fit(X, y)
    # "auto" validates on held-out classes here (10 classes): the warning says so, and
    # suggests only a larger budget
    with pytest.warns(
        ConvergenceWarning,
        match=r"max_iter=2 epochs while its validation score was still improving\. Increase "
        r"max_iter\.$",
    ):
        fast(TripletEmbedder, max_iter=2, n_iter_no_change=2, tol=0.0).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="validation score was still improving"):
        fast(TripletEmbedder, max_iter=2, early_stopping=True, tol=0.0).fit(X, y)
    with warnings.catch_warnings():  # a budget shorter than n_iter_no_change is deliberate
        warnings.simplefilter("error", ConvergenceWarning)
        fast(TripletEmbedder, max_iter=2, n_iter_no_change=3, tol=0.0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fast(TripletEmbedder, max_iter=2, n_iter_no_change=3, **no_validation).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = fast(
            SoftmaxEmbedder, max_iter=50, n_iter_no_change=1, early_stopping=False, tol=10.0
        ).fit(X, y)
    assert model.n_iter_ == 2  # the second epoch did not improve by tol: converged


@pytest.mark.parametrize(
    ("scores", "patience", "expected"),
    [
        (
            [0.1, 0.2, 0.3, 0.35, 0.4],
            3,
            "TripletEmbedder reached max_iter=4 epochs while its validation score was still "
            "improving. Increase max_iter.",
        ),
        (  # flat after epoch 2: only the patience had not run out
            [0.1, 0.2, 0.3, 0.3, 0.3],
            3,
            "TripletEmbedder reached max_iter=4 epochs before n_iter_no_change=3 epochs without "
            "an improvement by more than tol=0.0001: its validation score last improved in "
            "epoch 2. Increase max_iter, or lower n_iter_no_change.",
        ),
        (
            [0.9, 0.5, 0.6, 0.7, 0.8],
            5,
            "TripletEmbedder reached max_iter=4 epochs before n_iter_no_change=5 epochs without "
            "an improvement by more than tol=0.0001: its validation score never improved on the "
            "starting weights' score. Increase max_iter, or lower n_iter_no_change.",
        ),
    ],
)
def test_convergence_warning_says_whether_the_score_still_improved(
    digits, monkeypatch, scores, patience, expected
):
    X, y = digits
    scripted = iter(scores)  # the first is the untrained network's
    monkeypatch.setattr(base_module, "mean_average_precision_at_r", lambda *a, **k: next(scripted))
    with pytest.warns(ConvergenceWarning, match=f"^{re.escape(expected)}$") as record:
        fast(TripletEmbedder, max_iter=4, n_iter_no_change=patience, early_stopping=True).fit(X, y)
    assert record[0].filename == __file__  # points at the caller of fit


def test_convergence_warning_for_a_flat_training_loss(digits):
    X, y = digits
    model = fast(TripletEmbedder, max_iter=3, n_iter_no_change=3, early_stopping=False, tol=5.0)
    expected = (
        "TripletEmbedder reached max_iter=3 epochs before n_iter_no_change=3 epochs without an "
        "improvement by more than tol=5.0: its training loss last improved in epoch 1. "
        "Increase max_iter, or set early_stopping=True, or lower n_iter_no_change."
    )
    with pytest.warns(ConvergenceWarning, match=f"^{re.escape(expected)}$"):
        model.fit(X, y)


def test_early_stopping_restores_the_best_epoch(digits, monkeypatch):
    X, y = digits
    scripted = iter([0.05, 0.1, 0.5, 0.3, 0.2, 0.4, 0.35, 0.1, 0.1])  # first: before training
    seen = []

    def fake_map_at_r(embedding, labels, **kwargs):
        seen.append((np.array(embedding, copy=True), np.asarray(labels).copy()))
        return next(scripted)

    monkeypatch.setattr(base_module, "mean_average_precision_at_r", fake_map_at_r)
    model = fast(TripletEmbedder, early_stopping=True, n_iter_no_change=3, max_iter=20)
    model.fit(X, y)
    assert [h["score"] for h in model.history_] == [0.1, 0.5, 0.3, 0.2, 0.4]
    assert model.n_iter_ == 5
    best_embedding, val_labels = seen[2]
    held_out = np.isin(y, np.unique(val_labels))
    assert 0 < held_out.sum() < len(y)  # class-disjoint: whole classes held out
    np.testing.assert_array_equal(model.transform(X[held_out]), best_embedding)


def test_early_stopping_keeps_the_initial_weights_when_no_epoch_beats_them(digits, monkeypatch):
    X, y = digits
    scripted = iter([0.9, 0.5, 0.6, 0.7, 0.8])  # the untrained network scores best
    seen = []

    def fake_map_at_r(embedding, labels, **kwargs):
        seen.append((np.array(embedding, copy=True), np.asarray(labels).copy()))
        return next(scripted)

    monkeypatch.setattr(base_module, "mean_average_precision_at_r", fake_map_at_r)
    model = fast(TripletEmbedder, n_iter_no_change=4, max_iter=20).fit(X, y)
    assert [h["score"] for h in model.history_] == [0.5, 0.6, 0.7, 0.8]
    initial_embedding, val_labels = seen[0]
    held_out = np.isin(y, np.unique(val_labels))
    np.testing.assert_array_equal(model.transform(X[held_out]), initial_embedding)
    assert not np.allclose(seen[-1][0], initial_embedding)  # training did change it


def test_early_stopping_auto_needs_two_held_out_classes(digits, monkeypatch):
    X, y = digits
    # 5 classes: 0.2 x 5 rounds to 1 class, too few to guide; a short fixed budget instead
    few = fast(TripletEmbedder, max_iter=None).fit(X[y < 5], y[y < 5])
    assert all(h["score"] is None for h in few.history_)
    assert few.n_iter_ == AUTO_MAX_ITER[False] == 5
    held_out = []

    def fake_map_at_r(embedding, labels, **kwargs):
        held_out.append(np.unique(labels))
        return 0.5  # never better than before training

    monkeypatch.setattr(base_module, "mean_average_precision_at_r", fake_map_at_r)
    many = fast(TripletEmbedder, max_iter=None, n_iter_no_change=4).fit(X, y)  # 10 classes
    assert many.n_iter_ == 4  # stopped by validation, long before the cap (AUTO_MAX_ITER[True])
    assert len(held_out) == 5 and all(np.array_equal(h, held_out[0]) for h in held_out)
    assert len(held_out[0]) == 2
    held_out.clear()
    fast(TripletEmbedder, early_stopping=True, max_iter=2).fit(X[y < 5], y[y < 5])
    assert len(held_out[0]) == 2 and set(held_out[0]) <= set(range(5))  # True: 2 of 5


def test_validation_holdout_samples_holds_out_part_of_every_class(digits, monkeypatch):
    X, y = digits
    held_out = []

    def fake_map_at_r(embedding, labels, **kwargs):
        held_out.append(np.asarray(labels).copy())
        return 0.5

    monkeypatch.setattr(base_module, "mean_average_precision_at_r", fake_map_at_r)
    model = fast(TripletEmbedder, validation_holdout="samples", n_iter_no_change=2)
    model.fit(X, y)  # "auto": every class has 4+ samples
    labels = held_out[0]
    counts = np.bincount(y)
    np.testing.assert_array_equal(np.unique(labels), np.unique(y))  # every class is in it
    # validation_fraction 0.2 of each class's ~20 samples (at least 2), never all of them
    per_class = np.bincount(labels, minlength=10)
    assert np.all(per_class >= 2) and np.all(per_class <= counts - 2)
    np.testing.assert_array_equal(per_class, np.maximum(2, np.round(0.2 * counts)))


def test_early_stopping_without_a_possible_split(digits):
    X, y = digits
    two_and_few = np.r_[np.flatnonzero(y == 0)[:4], np.flatnonzero(y == 1)[:2]]
    Xs, ys = X[two_and_few], y[two_and_few]  # class 0: 4 samples, class 1: 2
    # "auto" trains without validation where none is possible
    for holdout in ("classes", "samples"):
        model = fast(ArcFaceEmbedder, validation_holdout=holdout, batch_size=8).fit(Xs, ys)
        assert all(h["score"] is None for h in model.history_)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`early_stopping=True` with `validation_holdout`='samples' needs at least 2 "
            "classes with 4 or more samples, got 1. Set early_stopping=False or give more "
            "data."
        ),
    ):
        fast(ArcFaceEmbedder, early_stopping=True, validation_holdout="samples", batch_size=8).fit(
            Xs, ys
        )
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`early_stopping=True` needs a validation set: with 2 classes and "
            "`validation_fraction`=0.2, no class-disjoint split (2+ classes on each side) "
            "nor a split of the samples of classes with 4+ samples leaves 2 classes on each "
            "side."
        ),
    ):
        fast(ArcFaceEmbedder, early_stopping=True, batch_size=8).fit(Xs, ys)


def test_early_stopping_with_few_classes_splits_samples(digits):
    X, y = digits
    mask = y < 3
    model = fast(ArcFaceEmbedder, early_stopping=True, max_iter=2).fit(X[mask], y[mask])
    assert all(h["score"] is not None for h in model.history_)


def test_lr_schedules_and_optimizers_run(digits):
    X, y = digits
    for schedule in ("cosine", "step"):
        for optimizer in ("adam", "adamw", "sgd"):
            model = fast(SoftmaxEmbedder, lr_schedule=schedule, optimizer=optimizer)
            assert np.isfinite(model.fit(X, y).transform(X)).all()


def test_set_output_pandas_and_feature_names(digits):
    import pandas as pd  # in the [test] extra: a missing pandas must fail, not skip

    X, y = digits
    frame = pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
    model = fast(TripletEmbedder).set_output(transform="pandas").fit(frame, y)
    out = model.transform(frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == [f"tripletembedder{i}" for i in range(8)]
    np.testing.assert_array_equal(model.feature_names_in_, frame.columns)
    assert list(model.get_feature_names_out()) == list(out.columns)


def test_string_labels(digits):
    X, y = digits
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "8", "9"], dtype=object
    )[y]
    for cls in (TripletEmbedder, ArcFaceEmbedder):
        model = fast(cls).fit(X, names)
        assert set(model.classes_) == set(names)
        assert 0.0 <= model.score(X, names) <= 1.0


def test_pipeline_and_grid_search_over_margin_and_miner(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), fast(TripletEmbedder, max_iter=2))
    search = GridSearchCV(
        pipe,
        {"tripletembedder__margin": [0.1, 0.3], "tripletembedder__miner": ["semihard", "all"]},
        cv=2,
    ).fit(X, y)
    assert len(search.cv_results_["mean_test_score"]) == 4
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    knn = make_pipeline(fast(ArcFaceEmbedder), KNeighborsClassifier()).fit(X, y)
    assert knn.score(X, y) > 0.5


# --------------------------------------------------------------------- networks
def test_cnn_on_images_and_on_flat_rows_with_input_shape(digits):
    X, y = digits
    images = fast(TripletEmbedder, network="cnn").fit(X.reshape(-1, 8, 8), y)
    flat = fast(TripletEmbedder, network="cnn", input_shape=(1, 8, 8)).fit(X, y)
    assert images.input_shape_ == flat.input_shape_ == (1, 8, 8)
    np.testing.assert_array_equal(images.transform(X.reshape(-1, 8, 8)), flat.transform(X))
    with pytest.raises(ValueError, match=r"X has shape \(8, 9\) per sample, but Triplet"):
        images.transform(np.zeros((5, 8, 9), dtype=np.float32))
    four_d = fast(ArcFaceEmbedder, network="cnn").fit(X.reshape(-1, 1, 8, 8), y)
    assert four_d.transform(X.reshape(-1, 1, 8, 8)).shape == (200, 8)


def test_user_module_is_copied_and_checked(digits):
    X, y = digits
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8))
    weights = [p.detach().clone() for p in net.parameters()]
    model = fast(ContrastiveEmbedder, network=net).fit(X, y)
    assert model.module_[0] is not net
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters()))
    assert model.transform(X).shape == (200, 8)
    with pytest.raises(ValueError, match=r"maps a batch of X to shape \(2, 8\), but the embed"):
        fast(ContrastiveEmbedder, network=net, n_components=4).fit(X, y)


def test_metric_embedder_copies_its_loss(digits):
    X, y = digits
    loss = TripletMarginLoss(margin=0.3)
    model = MetricEmbedder(loss=loss, **FAST, random_state=0).fit(X, y)
    assert model.loss_ is not loss
    assert model.loss is loss and loss.margin == 0.3
    assert repr(clone(model).loss) == repr(loss)
    with pytest.raises(ValueError, match="MetricEmbedder needs a `loss`"):
        MetricEmbedder().fit(X, y)


def test_n_threads_is_restored(digits):
    X, y = digits
    before = torch.get_num_threads()
    fast(TripletEmbedder, n_threads=1).fit(X, y)
    assert torch.get_num_threads() == before


def test_verbose_shows_a_progress_bar(digits, capsys):
    X, y = digits
    fast(TripletEmbedder, verbose=1, early_stopping=True).fit(X, y)
    err = capsys.readouterr().err
    assert "TripletEmbedder" in err and "loss=" in err and "score=" in err


# --------------------------------------------------------------------- bad input
def _fit_error(model, X, y, exc=ValueError):
    with pytest.raises(exc) as info:
        model.fit(X, y)
    return str(info.value)


def test_bad_X(digits):
    X, y = digits
    model = fast(TripletEmbedder)
    for bad in (np.nan, np.inf):
        Xb = X.copy()
        Xb[3, 5] = bad
        assert "Input X contains" in _fit_error(model, Xb, y)
    assert "Found array with 1 sample(s)" in _fit_error(model, X[:1], y[:1])
    assert "Expected 2D array, got 1D array" in _fit_error(model, X[:, 0], y)
    fitted = fast(TripletEmbedder).fit(X, y)
    with pytest.raises(ValueError, match="X has 63 features, but TripletEmbedder is expecting 64"):
        fitted.transform(X[:, :63])


def test_bad_y(digits):
    X, _ = digits
    model = fast(TripletEmbedder)
    assert "requires y to be passed, but the target y is None" in _fit_error(model, X, None)
    assert "needs at least 2 classes in `y`, got 1 class" in _fit_error(model, X, np.zeros(200))
    msg = _fit_error(model, X, np.linspace(0, 1, 200))
    assert "Unknown label type 'continuous' for `y`" in msg


def test_single_sample_classes(digits):
    X, y = digits
    y = y.copy()
    y[:3] = [100, 101, 102]
    with pytest.warns(UserWarning, match="3 of 13 classes in `y` have a single sample"):
        fast(TripletEmbedder).fit(X, y)
    msg = _fit_error(fast(TripletEmbedder), X[:10], np.arange(10))
    assert "Every class in `y` has a single sample (10 classes)" in msg
    fast(ArcFaceEmbedder).fit(X[:10], np.arange(10))  # classifier losses are fine


def test_input_shape_must_match_width(digits):
    X, y = digits
    model = fast(TripletEmbedder, network="cnn", input_shape=(1, 8, 9))
    msg = _fit_error(model, X, y)
    assert msg == (
        "`input_shape` (1, 8, 9) holds 72 values per sample, but X has shape (64,) per sample "
        "(64 values)."
    )
    assert "network='cnn' needs images" in _fit_error(fast(TripletEmbedder, network="cnn"), X, y)


def test_too_few_samples_for_a_balanced_batch_names_the_sample_count(digits):
    X, y = digits
    rows = np.r_[np.flatnonzero(y == 0)[:3], np.flatnonzero(y == 1)[:3]]
    # batch_size=32 is capped at the 6 samples; the error must not blame batch_size
    assert _fit_error(fast(TripletEmbedder, early_stopping=False), X[rows], y[rows]) == (
        "TripletEmbedder needs at least 2 x `samples_per_class` (4) = 8 training samples, "
        "so that a batch holds two classes; got 6. Lower `samples_per_class` or give more "
        "data."
    )
    model = fast(TripletEmbedder, samples_per_class=3, early_stopping=False)
    assert model.fit(X[rows], y[rows]).n_iter_ == 3


@pytest.mark.parametrize(
    ("params", "exc", "match"),
    [
        (
            {"batch_size": 6, "samples_per_class": 4},
            ValueError,
            r"`batch_size` \(6\) must be at least 2 x `samples_per_class` \(4\) = 8",
        ),
        (
            {"early_stopping": "yes"},
            InvalidParameterError,
            r"The 'early_stopping' parameter of TripletEmbedder must be an instance of 'bool' "
            r".* or a str among \{'auto'\}\. Got 'yes' instead\.",
        ),
        (
            {"validation_holdout": "class"},
            InvalidParameterError,
            r"The 'validation_holdout' parameter of TripletEmbedder must be a str among "
            r"\{'(classes|samples)', '(classes|samples)'\}\. Got 'class' instead\. Did you "
            r"mean 'classes'\?",
        ),
        (
            {"max_iter": 0},
            InvalidParameterError,
            r"The 'max_iter' parameter of TripletEmbedder must be an int in the range "
            r"\[1, inf\) or None\. Got 0 instead\.",
        ),
        (
            {"miner": "semi_hard"},
            InvalidParameterError,
            r"The 'miner' parameter of TripletEmbedder must be .* Got 'semi_hard' instead\. "
            r"Did you mean 'semihard'\?",
        ),
        (
            {"distance": "cosin"},
            InvalidParameterError,
            r"Got 'cosin' instead\. Did you mean 'cosine'\?",
        ),
        (
            {"device": "cuda:99"},
            ValueError,
            r"`device`='cuda:99' but this machine has \d+ CUDA device\(s\)",
        ),
        (
            {"device": "gpu"},
            ValueError,
            r"`device` must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or a torch.device",
        ),
        (
            {"skip_connection": "yes"},
            InvalidParameterError,
            r"The 'skip_connection' parameter of TripletEmbedder must be an instance of "
            r"'bool' or an instance of 'numpy.bool'\. Got 'yes' instead\.",
        ),
    ],
)
def test_bad_parameters(digits, params, exc, match):
    X, y = digits
    with pytest.raises(exc, match=match):
        fast(TripletEmbedder, **params).fit(X, y)


def test_integer_margin_given_as_float(digits):
    X, y = digits
    with pytest.raises(
        InvalidParameterError,
        match=r"The 'margin' parameter of SphereFaceEmbedder must be an int in the range "
        r"\[1, inf\)\. Got 4\.0 instead\.",
    ):
        fast(SphereFaceEmbedder, margin=4.0).fit(X, y)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only error")
def test_cuda_without_gpu(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"`device`='cuda' but this machine has 0 CUDA"):
        fast(TripletEmbedder, device="cuda").fit(X, y)
    with pytest.raises(ValueError, match=r"`precision`='fp16' needs a CUDA device"):
        fast(TripletEmbedder, precision="fp16").fit(X, y)


class _Interrupting(nn.Module):
    """Triplet loss that misbehaves at its ``at``-th call (one call per epoch below)."""

    def __init__(self, at, error):
        super().__init__()
        self.at, self.error, self.calls = at, error, 0
        self.triplet = TripletMarginLoss()

    def forward(self, embeddings, labels):
        self.calls += 1
        if self.calls == self.at:
            if self.error == "nan":
                return embeddings.sum() * float("nan")
            raise KeyboardInterrupt
        return self.triplet(embeddings, labels)


def _one_batch_per_epoch(**params):
    return MetricEmbedder(
        **{**FAST, "batch_size": 256, "early_stopping": False, "random_state": 0, **params}
    )


def test_keyboard_interrupt_keeps_the_last_finished_epoch(digits):
    X, y = digits
    reference = _one_batch_per_epoch(loss=TripletMarginLoss(), max_iter=2).fit(X, y)
    model = _one_batch_per_epoch(loss=_Interrupting(3, "interrupt"), max_iter=10)
    with pytest.warns(
        RuntimeWarning, match="interrupted during epoch 3; the model keeps the weights of epoch 2"
    ):
        model.fit(X, y)
    assert model.n_iter_ == 2
    np.testing.assert_array_equal(model.transform(X), reference.transform(X))


def test_nan_loss_stops_with_an_error_and_keeps_good_weights(digits):
    X, y = digits
    reference = _one_batch_per_epoch(loss=TripletMarginLoss(), max_iter=2).fit(X, y)
    model = _one_batch_per_epoch(loss=_Interrupting(3, "nan"), max_iter=10)
    with pytest.raises(
        FloatingPointError,
        match=re.escape(
            "The training loss of MetricEmbedder became nan in epoch 3; training stopped and "
            "the model keeps the weights of epoch 2. Try a lower `learning_rate_init` "
            "(currently 0.0001)."
        ),
    ):
        model.fit(X, y)
    assert model.n_iter_ == 2
    np.testing.assert_array_equal(model.transform(X), reference.transform(X))


# --------------------------------------------------------------------- GPU
@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision", ["32", "bf16", "fp16"])
def test_gpu_fit_pickles_to_cpu(digits, precision):
    X, y = digits
    model = fast(ArcFaceEmbedder, device="cuda", precision=precision).fit(X, y)
    assert next(model.module_.parameters()).device.type == "cuda"
    state = model.__getstate__()
    assert next(state["module_"].parameters()).device.type == "cpu"
    assert next(state["loss_"].parameters()).device.type == "cpu"
    loaded = pickle.loads(pickle.dumps(model)).set_params(device="cpu")
    np.testing.assert_allclose(loaded.transform(X), model.transform(X), atol=1e-4)


@pytest.mark.gpu
@cuda
def test_gpu_same_seed_same_result(digits):
    X, y = digits
    a = fast(TripletEmbedder, device="cuda").fit(X, y).transform(X)
    b = fast(TripletEmbedder, device="cuda").fit(X, y).transform(X)
    np.testing.assert_allclose(a, b, atol=1e-5)


# --------------------------------------------------------------------- torch.compile
def _compile_with(monkeypatch, backend):
    compiled = []
    original = torch.compile

    def spy(module, **kwargs):
        compiled.append(module)
        return original(module, backend=backend, **kwargs)

    monkeypatch.setattr(torch, "compile", spy)
    return compiled


@pytest.mark.parametrize(
    "backend", ["aot_eager", pytest.param("inductor", marks=pytest.mark.slow)]
)
def test_compile_trains_the_same_network(digits, monkeypatch, backend):
    # "aot_eager" traces the network with dynamo and AOTAutograd without generating code
    # (seconds); "inductor", torch's default, compiles C++ kernels (about a minute on 2 cores).
    X, y = digits
    compiled = _compile_with(monkeypatch, backend)
    params = {"max_iter": 2, "hidden_layer_sizes": (16,), "n_components": 8, "batch_size": 32}
    model = fast(TripletEmbedder, compile=True, **params).fit(X, y)
    assert len(compiled) == 1 and compiled[0] is model.module_
    reference = fast(TripletEmbedder, **params).fit(X, y)
    np.testing.assert_allclose(model.transform(X), reference.transform(X), atol=1e-5)
    assert pickle.loads(pickle.dumps(model)).transform(X).shape == (200, 8)


def test_compile_must_be_a_bool(digits):
    X, y = digits
    with pytest.raises(
        InvalidParameterError,
        match=r"The 'compile' parameter of TripletEmbedder must be an instance of 'bool'",
    ):
        fast(TripletEmbedder, compile="yes").fit(X, y)
