"""The embedders' fit, transform and score: shapes, seeds, continued training, pickling,
pandas output, pipelines and grid search, the networks, the GPU and ``torch.compile``.

Validation, early stopping and ``ConvergenceWarning`` are tested in
test_embedders_early_stopping.py, bad input and failed training in test_embedders_errors.py;
both take ``FAST`` and ``fast`` from here, and ``digits`` from conftest.py.
"""

import copy
import pickle
import re
import time
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils._param_validation import InvalidParameterError
from torch import nn

from sk_deepmetric.datasets import make_signals
from sk_deepmetric.embedders import (
    AngularEmbedder,
    ArcFaceEmbedder,
    CenterLossEmbedder,
    ContrastiveEmbedder,
    CosFaceEmbedder,
    LargeMarginSoftmaxEmbedder,
    MetricEmbedder,
    MultiSimilarityEmbedder,
    NPairsEmbedder,
    ProxyAnchorEmbedder,
    SoftmaxEmbedder,
    SphereFaceEmbedder,
    SubCenterArcFaceEmbedder,
    SupConEmbedder,
    TripletEmbedder,
)
from sk_deepmetric.embedders import _base as base_module
from sk_deepmetric.embedders._classifier import IMPRINT_LOGIT_SCALE, _ClassifierEmbedder
from sk_deepmetric.losses._pair import TripletMarginLoss
from sk_deepmetric.networks import ImageResNet, SignalResNet

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
    MultiSimilarityEmbedder,
    SupConEmbedder,
    ProxyAnchorEmbedder,
    SubCenterArcFaceEmbedder,
]
FAST = {"max_iter": 3, "hidden_layer_sizes": (16,), "n_components": 8, "batch_size": 32}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def fast(cls, **params):
    return cls(**{**FAST, "random_state": 0, **params})


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
    on = [
        TripletEmbedder,
        ContrastiveEmbedder,
        AngularEmbedder,
        SoftmaxEmbedder,
        CosFaceEmbedder,
        ArcFaceEmbedder,
        MultiSimilarityEmbedder,
        SupConEmbedder,
        ProxyAnchorEmbedder,
        SubCenterArcFaceEmbedder,
    ]
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


# sub-centre ArcFace imprints one of each class's sub-centres: its own test below
CLASSIFIERS = [
    cls
    for cls in ALL
    if issubclass(cls, _ClassifierEmbedder) and cls is not SubCenterArcFaceEmbedder
]


def _class_weight(model):
    if hasattr(model.loss_, "proxies"):
        return model.loss_.proxies
    return model.loss_.softmax.weight if hasattr(model.loss_, "softmax") else model.loss_.weight


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("estimator", CLASSIFIERS)
def test_fit_starts_class_weights_at_the_centred_class_mean_directions(
    digits, monkeypatch, estimator, normalize
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
    model = fast(estimator, normalize=normalize).fit(X, y)
    unit = estimator in (SphereFaceEmbedder, CosFaceEmbedder, ArcFaceEmbedder, ProxyAnchorEmbedder)
    assert model.loss_.normalizes_class_weights is unit
    Z = seen["Z"]
    class_means = np.stack([Z[y == c].mean(axis=0) for c in range(10)])
    means = class_means - Z.mean(axis=0)
    # the directions of the centred class means, with the random weights' mean norm, or on
    # unit-norm embeddings where the norm is the logit scale, IMPRINT_LOGIT_SCALE
    scale = np.linalg.norm(seen["before"].numpy(), axis=1).mean()
    if normalize and not model.loss_.normalizes_class_weights:
        scale = IMPRINT_LOGIT_SCALE
    expected = scale * means / np.linalg.norm(means, axis=1, keepdims=True)
    np.testing.assert_allclose(seen["after"].numpy(), expected, atol=1e-5)
    if "centers" in seen:  # centre loss: the centres start at the class means themselves
        np.testing.assert_allclose(seen["centers"].numpy(), class_means, atol=1e-5)


class _WeightsAtStart:
    def on_train_begin(self, model):
        self.weight = model.loss_.weight.detach().clone()


def test_metric_embedder_trains_a_loss_from_its_own_weights_imprinted_by_hand(digits):
    # as torch.rst says: MetricEmbedder does not imprint a loss= object (the built-in
    # estimators do); imprint_ by hand before fit, from the network you pass, is kept
    from sk_deepmetric.losses import ArcFaceLoss

    X, y = digits
    net, loss = nn.Linear(64, 8), ArcFaceLoss(n_classes=10, n_components=8)
    start = _WeightsAtStart()
    fast(MetricEmbedder, loss=loss, network=net, batching="shuffled", callbacks=[start]).fit(X, y)
    assert torch.equal(start.weight, loss.weight)  # the loss's own weights: not imprinted
    codes = torch.as_tensor(np.unique(y, return_inverse=True)[1])
    with torch.no_grad():
        Z = net.eval()(torch.as_tensor(X))
        means = torch.stack([Z[codes == c].mean(0) for c in range(10)])
    centred = means - Z.mean(0)
    assert nn.functional.cosine_similarity(loss.weight.detach(), centred).min() < 0.9
    loss.imprint_(means, center=Z.mean(0))
    net.train()
    fast(MetricEmbedder, loss=loss, network=net, batching="shuffled", callbacks=[start]).fit(X, y)
    cos = nn.functional.cosine_similarity(start.weight, centred)
    np.testing.assert_allclose(cos.numpy(), 1.0, atol=1e-5)


def test_sub_center_arcface_imprints_the_first_sub_center_of_each_class(digits, monkeypatch):
    X, y = digits
    seen = {}
    original = SubCenterArcFaceEmbedder._init_loss_from_data

    def spy(self, X_fit, y_fit, device):
        seen["before"] = self.loss_.weight.detach().clone().view(10, 3, -1)
        original(self, X_fit, y_fit, device)
        seen["after"] = self.loss_.weight.detach().clone().view(10, 3, -1)
        seen["Z"] = self.transform(X_fit)

    monkeypatch.setattr(SubCenterArcFaceEmbedder, "_init_loss_from_data", spy)
    fast(SubCenterArcFaceEmbedder).fit(X, y)
    before, after, Z = seen["before"], seen["after"], seen["Z"]
    norm = before.norm(dim=2).mean()
    means = np.stack([Z[y == c].mean(axis=0) for c in range(10)]) - Z.mean(axis=0)
    expected = norm.item() * means / np.linalg.norm(means, axis=1, keepdims=True)
    np.testing.assert_allclose(after[:, 0].numpy(), expected, atol=1e-5)
    # the other sub-centres keep their random directions, at the same norm
    torch.testing.assert_close(
        after[:, 1:], norm * torch.nn.functional.normalize(before[:, 1:], dim=2)
    )


def test_proxy_anchor_trains_the_proxies_at_their_own_learning_rate(digits):
    X, y = digits
    model = fast(ProxyAnchorEmbedder, learning_rate_init=1e-4, proxy_lr_multiplier=50.0)
    groups = model.fit(X, y)._optimizer_state["param_groups"]
    assert [g["lr"] for g in groups] == [1e-4, 5e-3]
    assert len(groups[1]["params"]) == 1  # the proxies
    # a training-only parameter: warm_start may change it, and the new rate applies
    model.set_params(warm_start=True, proxy_lr_multiplier=10.0, max_iter=1).fit(X, y)
    assert [g["lr"] for g in model._optimizer_state["param_groups"]] == [1e-4, 1e-3]
    with pytest.raises(ValueError, match=r"`alpha` changed from 4\.0 to 16\.0"):
        model.set_params(alpha=16.0).fit(X, y)


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


def test_pickling_moves_network_and_loss_parameters_on_a_gpu_to_the_cpu(digits, monkeypatch):
    # modules on a GPU stand in for modules on the CPU here: `_off_cpu` says they are not
    X, y = digits
    net, loss = nn.Linear(64, 8), TripletMarginLoss()
    model = MetricEmbedder(loss=loss, network=net, warm_start=True, **FAST, random_state=0)
    model.fit(X, y)
    fitted = (model.module_, model.loss_)
    gpu = (net, loss, *fitted)
    monkeypatch.setattr(base_module, "_off_cpu", lambda module: any(module is m for m in gpu))
    state = model.__getstate__()
    assert state["module_"] is not fitted[0] and state["loss_"] is not fitted[1]
    assert state["network"] is not net and state["loss"] is not loss  # CPU copies
    assert torch.equal(state["network"].weight, net.weight)
    assert state["_architecture"]["network"] is state["network"]  # one object in the pickle
    assert state["_architecture"]["loss"] is state["loss"]
    # the live estimator keeps its own
    assert model.network is net and model.loss is loss and (model.module_, model.loss_) == fitted
    assert model._architecture["network"] is net
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded._architecture["network"] is loaded.network
    loaded.fit(X, y)  # continues: the network and loss are those it was fitted with
    assert loaded.n_iter_ == 2 * FAST["max_iter"]


def test_partial_fit_and_warm_start_continue(digits):
    X, y = digits
    model = fast(TripletEmbedder)
    model.partial_fit(X, y)
    model.partial_fit(X, y)
    assert model.n_iter_ == len(model.history_) == 2
    # without early stopping, which may keep the first fit's weights (test_embedders_early_
    # stopping.py: a warm start validates on the same hold-out)
    warm = fast(TripletEmbedder, warm_start=True, early_stopping=False).fit(X, y)
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


def test_a_refused_continuing_call_leaves_classes_as_they_were(digits):
    X, y = digits
    model = fast(TripletEmbedder).partial_fit(X[y < 5], y[y < 5])
    with pytest.raises(ValueError, match=r"needs at least 2 classes in `y`, got 1 class"):
        model.partial_fit(X[y == 7], y[y == 7])
    np.testing.assert_array_equal(model.classes_, np.arange(5))
    # a warm_start fit cannot take the advice meant for partial_fit (it has no `classes=`)
    arcface = fast(ArcFaceEmbedder, warm_start=True).fit(X[y < 5], y[y < 5])
    with pytest.raises(ValueError, match=r"A warm_start fit keeps the loss's classes") as info:
        arcface.fit(X, y)
    assert "classes=" not in str(info.value)
    np.testing.assert_array_equal(arcface.classes_, np.arange(5))


@pytest.mark.parametrize("cls", [TripletEmbedder, ArcFaceEmbedder])
def test_a_continuing_call_refuses_labels_of_another_kind(cls, digits):
    # strings after numbers were all new classes to np.setdiff1d, and concatenating them
    # made the numbers strings: classes_ ['0', ..., '9', '0', ..., '9'], growing every call
    X, y = digits
    msg = (
        f"Mix of label input types (string and number): `y` holds strings (dtype <U21), but "
        f"{cls.__name__}'s classes from the first fit are numbers (dtype int64: [0, 1, 2, 3, "
        "4]...). Pass labels of one kind to every call."
    )
    for params, method in (({}, "partial_fit"), ({"warm_start": True}, "fit")):
        model = fast(cls, **params).fit(X, y)
        before = model.transform(X)
        with pytest.raises(ValueError, match=re.escape(msg)):
            getattr(model, method)(X, y.astype(str))
        assert model.classes_.dtype == np.int64
        np.testing.assert_array_equal(model.classes_, np.arange(10))
        np.testing.assert_array_equal(model.transform(X), before)
        getattr(model, method)(X, y)  # still usable with its classes
        np.testing.assert_array_equal(model.classes_, np.arange(10))
    strings = fast(cls).partial_fit(X, np.array(list("abcdefghij"))[y])
    with pytest.raises(ValueError, match=r"`y` holds numbers \(dtype int64\), but .* strings"):
        strings.partial_fit(X, y)
    with pytest.raises(ValueError, match=r"classes from `classes` given to the first partial_"):
        fast(cls).partial_fit(X, y.astype(str), classes=np.arange(10))


def test_a_continuing_call_keeps_the_dtype_of_integer_classes(digits):
    # int64 and uint64 ids together are float64 to NumPy, which merges ids above 2**53
    X, y = digits
    ids = np.uint64(2**63) + y.astype(np.uint64)
    model = fast(TripletEmbedder).partial_fit(X[y < 5], ids[y < 5]).partial_fit(X, ids)
    model.partial_fit(X[y < 5], y[y < 5] + 2**62)  # new ids, in int64 (uint64 holds them)
    assert model.classes_.dtype == np.uint64 and len(model.classes_) == 15
    np.testing.assert_array_equal(model.classes_[:10], np.uint64(2**63) + np.arange(10))
    signed = fast(TripletEmbedder).partial_fit(X, y - 1)  # -1 .. 8: no uint64 holds them
    msg = (
        "`y` (dtype uint64) holds labels that the dtype of TripletEmbedder's classes from the "
        "first fit (int64) cannot hold, and no integer dtype holds both (e.g. "
        "9223372036854775808): NumPy would cast both to float64"
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        signed.partial_fit(X, ids)
    np.testing.assert_array_equal(signed.classes_, np.arange(-1, 9))


def _group(model):
    return model._optimizer_state["param_groups"][0]


def test_warm_start_and_partial_fit_apply_the_current_optimiser_settings(digits):
    X, y = digits
    warm = fast(
        TripletEmbedder, warm_start=True, max_iter=1, lr_schedule="cosine", early_stopping=False
    ).fit(X, y)
    steps = {float(s["step"]) for s in warm._optimizer_state["state"].values()}
    warm.set_params(weight_decay=0.5, optimizer__betas=(0.5, 0.6), learning_rate_init=1e-3)
    warm.fit(X, y)
    group = _group(warm)
    assert (group["weight_decay"], group["betas"]) == (0.5, (0.5, 0.6))
    # the new schedule starts from the new rate, not from the last fit's
    assert group["initial_lr"] == 1e-3
    # the state itself carried over: the step count went on
    assert {float(s["step"]) for s in warm._optimizer_state["state"].values()} == {
        2 * n for n in steps
    }
    partial = fast(TripletEmbedder).partial_fit(X, y)
    partial.set_params(weight_decay=0.25, optimizer__amsgrad=True).partial_fit(X, y)
    assert (_group(partial)["weight_decay"], _group(partial)["amsgrad"]) == (0.25, True)
    # the setting is used, not only recorded: the same continued fit without it differs
    plain = fast(TripletEmbedder).partial_fit(X, y).partial_fit(X, y)
    assert not np.array_equal(plain.transform(X), partial.transform(X))


def test_warm_start_with_another_optimizer_starts_a_fresh_optimiser_state(digits):
    import copy

    X, y = digits
    adam = fast(TripletEmbedder, warm_start=True, max_iter=1).fit(X, y)
    reference = copy.deepcopy(adam)
    reference._optimizer_state = None  # as if nothing had been saved
    adam.set_params(optimizer="sgd").fit(X, y)
    reference.set_params(optimizer="sgd").fit(X, y)
    np.testing.assert_array_equal(adam.transform(X), reference.transform(X))
    assert all(set(s) == {"momentum_buffer"} for s in adam._optimizer_state["state"].values())
    assert (_group(adam)["momentum"], _group(adam)["nesterov"]) == (0.9, True)


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


def test_score_under_pandas_output_warns_nothing(digits):
    X, y = digits
    model = fast(TripletEmbedder).fit(X, y)
    expected = model.score(X, y)
    model.set_output(transform="pandas")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch's "The given NumPy array is not writable"
        assert model.score(X, y) == expected


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


@pytest.fixture(scope="module")
def series():
    X, y = make_signals(120, 4, n_channels=2, length=40, random_state=0)
    return X, y


def test_cnn1d_on_series_and_on_flat_rows_with_input_shape(series):
    X, y = series
    params = {"network": "cnn1d", "conv_channels": (4, 8)}
    shaped = fast(TripletEmbedder, **params).fit(X, y)
    flat = fast(TripletEmbedder, input_shape=(2, 40), **params).fit(X.reshape(120, -1), y)
    assert shaped.input_shape_ == flat.input_shape_ == (2, 40)
    assert isinstance(shaped.module_, SignalResNet)
    np.testing.assert_array_equal(shaped.transform(X), flat.transform(X.reshape(120, -1)))
    one_channel = fast(ArcFaceEmbedder, **params).fit(X[:, 0], y)  # (n, length)
    assert one_channel.input_shape_ == (1, 40)
    assert one_channel.transform(X[:, 0]).shape == (120, 8)


def test_cnn_is_the_residual_network_with_the_chosen_channels(digits):
    X, y = digits
    model = fast(TripletEmbedder, network="cnn", input_shape=(1, 8, 8), conv_channels=(4, 6, 8))
    model.fit(X, y)
    assert isinstance(model.module_, ImageResNet)
    widths = [m.out_channels for m in model.module_.modules() if isinstance(m, nn.Conv2d)]
    assert max(widths) == 8 and min(widths) == 4


@pytest.mark.parametrize(("network", "expected"), [("mlp", 1e-4), ("cnn", 1e-3), ("cnn1d", 1e-3)])
def test_auto_learning_rate_follows_the_network(network, expected):
    model = TripletEmbedder(network=network)
    assert model.learning_rate_init == "auto" and model._learning_rate() == expected
    assert TripletEmbedder(network=nn.Linear(4, 4))._learning_rate() == 1e-4
    assert TripletEmbedder(network=network, learning_rate_init=0.01)._learning_rate() == 0.01


def test_models_pickled_before_a_parameter_existed_get_its_default(digits):
    # a pickle from before `augment` and `conv_channels` existed holds neither attribute
    X, y = digits
    model = fast(TripletEmbedder).fit(X, y)
    state = model.__getstate__()
    for name in ("augment", "conv_channels"):
        del state[name]
    old = TripletEmbedder.__new__(TripletEmbedder)
    old.__setstate__(state)
    assert old.get_params()["augment"] is None and old.get_params()["conv_channels"] is None
    np.testing.assert_array_equal(old.transform(X), model.transform(X))


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
    narrow = nn.Linear(63, 8)  # X has 64 features
    with pytest.raises(ValueError, match=r"The `network` module failed on a batch of X of shape"):
        fast(ContrastiveEmbedder, network=narrow).fit(X, y)
    assert not hasattr(narrow, "weight_") and narrow.training


class _ScalesInPlace(nn.Module):
    """Scales its input in place (``x.div_``), an idiom of image code."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(64, 8)

    def forward(self, x):
        return self.linear(x.div_(16.0))


def test_fit_never_writes_into_the_callers_X(digits):
    # float32 C-contiguous X is not copied by the input checks: the network's output check
    # must give the module a copy of its two rows
    X, y = digits
    X = np.ascontiguousarray(X, dtype=np.float32)
    before = X.copy()
    model = fast(TripletEmbedder, network=_ScalesInPlace()).fit(X, y)
    np.testing.assert_array_equal(X, before)
    model.transform(X)
    np.testing.assert_array_equal(X, before)


class _Lazy(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.LazyLinear(8)  # any input width: materialised at the first forward

    def forward(self, x):
        return self.linear(x)


def test_a_lazy_module_is_materialised_from_random_state(digits):
    X, y = digits
    net = _Lazy()
    state = torch.get_rng_state()
    a = fast(TripletEmbedder, network=net).fit(X, y)
    assert torch.equal(state, torch.get_rng_state())  # torch's global RNG untouched
    torch.manual_seed(123)  # whatever the global state, the same random_state: the same model
    b = fast(TripletEmbedder, network=net).fit(X, y)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    c = fast(TripletEmbedder, network=net, random_state=1).fit(X, y)
    assert not torch.equal(a.module_[0].linear.weight, c.module_[0].linear.weight)
    assert isinstance(net.linear, nn.LazyLinear)  # the user's module stays lazy


def test_the_output_check_runs_on_the_device_of_the_module():
    # a module already on another device than the data (backbone.cuda()) is checked there;
    # a "meta" module stands for it on a machine without a GPU
    X = np.zeros((4, 64), dtype=np.float32)
    model = TripletEmbedder(network=nn.Linear(64, 8, device="meta"), n_components=8)
    model.input_shape_ = (64,)
    model._check_output(copy.deepcopy(model.network), X)  # no device mismatch
    with pytest.raises(ValueError, match=r"maps a batch of X to shape \(2, 8\)"):
        model.set_params(n_components=4)._check_output(model.network, X)


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


class _SlowEpochs:
    """Epochs slower than the progress bar's refresh interval (tqdm's ``mininterval``)."""

    def on_epoch_end(self, estimator, record):
        time.sleep(0.12)


def test_verbose_shows_a_progress_bar(digits, capsys):
    """The bar shows the loss and validation score per epoch, and every refresh counts as
    many epochs done as the epoch whose score it shows (it showed the previous count, and
    0/N throughout when the epochs were faster than its refresh interval)."""
    X, y = digits
    model = fast(TripletEmbedder, verbose=1, early_stopping=True, max_iter=4)
    model.set_params(callbacks=[_SlowEpochs()]).fit(X, y)
    err = capsys.readouterr().err
    assert "TripletEmbedder" in err and "loss=" in err and "score=" in err
    shown = []
    for line in err.replace("\r", "\n").splitlines():
        match = re.search(r"\| *(\d+)/4 \[[^\]]*?(?:score=([\d.]+))?\]", line)
        if match and match.group(2):
            shown.append((int(match.group(1)), match.group(2)))
    assert any(n < 4 for n, _ in shown)  # refreshes during the fit
    for n, score in shown:
        assert n >= 1 and score == f"{model.history_[n - 1]['score']:.4f}", (n, score)


class _FailsInEpoch3(_SlowEpochs):
    def on_epoch_end(self, estimator, record):
        super().on_epoch_end(estimator, record)
        if record["epoch"] == 3:
            raise RuntimeError("callback failed")


def test_verbose_bar_forgets_an_epoch_a_fault_drops(digits, capsys):
    # the bar counts an epoch when it is recorded, before the callbacks: one that a fault
    # then drops from history_ must not stay counted on the bar left on screen
    X, y = digits
    model = fast(TripletEmbedder, verbose=2, early_stopping=False, max_iter=6)
    with pytest.raises(RuntimeError, match="callback failed"):
        model.set_params(callbacks=[_FailsInEpoch3()]).fit(X, y)
    assert len(model.history_) == 2
    counts = re.findall(r"\| *(\d+)/6 ", capsys.readouterr().err)
    assert counts and int(counts[-1]) == 2


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        (
            [0.05, 0.1, 0.5, 0.3, 0.2, 0.4],  # the first: the untrained network's
            "TripletEmbedder stopped after epoch 5: the validation score did not improve by "
            "more than tol=0.0001 for 3 epochs; restored the weights of epoch 2, the best "
            "(validation score 0.5000).",
        ),
        (
            [0.9, 0.5, 0.6, 0.5],
            "TripletEmbedder stopped after epoch 3: the validation score did not improve by "
            "more than tol=0.0001 for 3 epochs; kept the starting weights, which no epoch "
            "beat (validation score 0.9000).",
        ),
        (
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.45, 0.4],
            "TripletEmbedder stopped at max_iter, after epoch 6; restored the weights of "
            "epoch 4, the best (validation score 0.5000).",
        ),
        ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], None),  # the last epoch's weights are kept
    ],
)
def test_verbose_says_which_epoch_early_stopping_kept(
    digits, capsys, monkeypatch, scores, expected
):
    """As scikit-learn's MLP prints why it stopped, ``verbose`` prints which epoch's weights
    early stopping kept, when they are not the last epoch's."""
    X, y = digits
    model = fast(TripletEmbedder, early_stopping=True, n_iter_no_change=3, max_iter=6)
    scripted = []
    monkeypatch.setattr(base_module, "map_at_r", lambda *a, **k: scripted.pop(0))
    for verbose in (0, 1):
        scripted[:] = scores
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the starting weights were kept
            clone(model).set_params(verbose=verbose).fit(X, y)
        out = capsys.readouterr().out
        assert out == ("" if expected is None or not verbose else expected + "\n")


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
    "backend",
    [
        "aot_eager",
        pytest.param(
            "inductor",
            marks=[
                pytest.mark.slow,
                # importing inductor imports torch.utils.mkldnn, whose modules torch 2.13
                # still declares with the deprecated torch.jit.script_method
                pytest.mark.filterwarnings(
                    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
                ),
            ],
        ),
    ],
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


# --------------------------------------------------------------------- class codes
@pytest.mark.parametrize("cls", [MetricEmbedder, TripletEmbedder])
def test_codes_of_known_classes_stay_when_a_new_class_sorts_before_them(cls, digits):
    X, y = digits
    seen = []

    class Recording(torch.nn.Module):
        def forward(self, embeddings, labels):
            seen.append(labels.unique().tolist())
            return embeddings.pow(2).mean()

    params = {"loss": Recording()} if cls is MetricEmbedder else {}
    model = fast(cls, **params)
    first, second = np.isin(y, [0, 1, 2, 4]), np.isin(y, [3, 4])
    model.partial_fit(X[first], y[first])
    np.testing.assert_array_equal(model.classes_, [0, 1, 2, 4])
    model.partial_fit(X[second], y[second])
    np.testing.assert_array_equal(model.classes_, [0, 1, 2, 4, 3])  # 3 appended
    if cls is MetricEmbedder:
        assert sorted({c for call in seen[:-1] for c in call}) == [0, 1, 2, 3]  # 4 is code 3
        assert set(seen[-1]) <= {3, 4}  # ... in both calls; digit 3 is the new code 4


def test_partial_fit_with_classes_fits_a_classifier_loss_batch_by_batch(digits):
    X, y = digits
    model = fast(ArcFaceEmbedder)
    first, second = y < 5, y >= 5
    model.partial_fit(X[first], y[first], classes=np.arange(10))
    weights = model.loss_.weight.detach().clone()
    assert torch.isfinite(weights).all() and weights.shape == (10, 8)
    model.partial_fit(X[second], y[second])
    np.testing.assert_array_equal(model.classes_, np.arange(10))
    assert not torch.equal(model.loss_.weight[5:], weights[5:])  # the new classes learnt
    with pytest.raises(ValueError, match=re.escape("Pass every class to the first partial_fit")):
        fast(ArcFaceEmbedder).partial_fit(X[first], y[first]).partial_fit(X[second], y[second])
    with pytest.raises(ValueError, match=re.escape("were not in `classes` given to the first")):
        fast(ArcFaceEmbedder).partial_fit(X, y, classes=np.arange(5))


def test_partial_fit_takes_chunks_of_one_class_where_the_loss_has_one_weight_per_class(digits):
    # data arriving grouped by class, as SGDClassifier.partial_fit takes it; a tuple loss
    # needs negatives in every call
    X, y = digits
    model = fast(ArcFaceEmbedder)
    for c in range(10):
        model.partial_fit(X[y == c], y[y == c], classes=np.arange(10))
    np.testing.assert_array_equal(model.classes_, np.arange(10))
    assert np.isfinite(model.transform(X)).all()
    with pytest.raises(ValueError, match="needs at least 2 classes in `y`, got 1 class"):
        fast(ArcFaceEmbedder).partial_fit(X[y == 0], y[y == 0])  # no other class known
    with pytest.raises(ValueError, match="needs at least 2 classes in `y`, got 1 class"):
        fast(TripletEmbedder).partial_fit(X[y == 0], y[y == 0], classes=np.arange(10))


# --------------------------------------------------------------------- cross-batch memory
MEMORY = [TripletEmbedder, ContrastiveEmbedder, MultiSimilarityEmbedder, SupConEmbedder]


@pytest.mark.parametrize("cls", MEMORY)
def test_memory_size_wraps_the_loss_in_a_cross_batch_memory(cls, digits):
    from sk_deepmetric.losses import CrossBatchMemory

    X, y = digits
    assert not isinstance(fast(cls).fit(X, y).loss_, CrossBatchMemory)  # 0: off
    model = fast(cls, memory_size=100).fit(X, y)
    memory = model.loss_
    assert isinstance(memory, CrossBatchMemory) and memory.memory_size == 100
    assert isinstance(memory.loss, cls._loss_class)
    assert memory.warmup == -(-len(y) // 32)  # about one epoch of 32-sample batches
    steps = int(memory.n_steps)
    assert steps > memory.warmup
    # after the warm-up every step queued its 32 samples
    assert int(memory.n_enqueued) == 32 * (steps - memory.warmup)
    assert model.transform(X).shape == (len(X), 8)
    clone_ = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone_.transform(X), model.transform(X))
    with pytest.raises(ValueError, match=r"`memory_size` changed from 100 to 50"):
        model.set_params(warm_start=True, memory_size=50).fit(X, y)


def test_memory_size_is_validated():
    with pytest.raises(
        InvalidParameterError,
        match=r"'memory_size' parameter of "
        r"TripletEmbedder must be an int in the range \[0, inf\)",
    ):
        TripletEmbedder(memory_size=-1).fit(np.zeros((8, 2)), [0, 0, 1, 1, 2, 2, 3, 3])


def test_torch_tensors_in_a_training_loop_form_are_taken_as_their_values(digits):
    # another network's output (requires grad) and bfloat16 data: NumPy reads neither as is
    X, y = digits
    model = fast(TripletEmbedder).fit(X, y)
    want = model.transform(X)
    t = torch.from_numpy(X.astype(np.float32))
    np.testing.assert_array_equal(model.transform(t.clone().requires_grad_(True)), want)
    half = t.bfloat16()
    values = half.float().numpy()  # what the bfloat16 tensor holds, exactly
    np.testing.assert_array_equal(model.transform(half), model.transform(values))
    refit = fast(TripletEmbedder).fit(half, torch.from_numpy(y))
    np.testing.assert_array_equal(
        refit.transform(X), fast(TripletEmbedder).fit(values, y).transform(X)
    )


def test_images_embedded_in_short_passes_are_the_same_whatever_the_batching():
    # 3 x 64 x 64 images go through the CNN 16 rows at a time on a CPU (inference_rows):
    # each row's embedding must not depend on which rows it came with
    from sk_deepmetric._training import inference_rows

    assert inference_rows((3, 64, 64), torch.device("cpu")) == 16
    assert inference_rows((1, 28, 28), torch.device("cpu")) == 128
    assert inference_rows((784,), torch.device("cpu")) == 256  # rows of features: 256
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3, 64, 64)).astype(np.float32)
    y = np.arange(40) % 4
    model = TripletEmbedder(
        network="cnn", conv_channels=(4,), max_iter=1, early_stopping=False, random_state=0
    ).fit(X, y)
    whole = model.transform(X)
    parts = np.concatenate(
        [model.transform(X[:1]), model.transform(X[1:18]), model.transform(X[18:])]
    )
    np.testing.assert_array_equal(parts, whole)
