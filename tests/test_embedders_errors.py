"""The embedders' errors: bad X, y and parameters, each message pinned, and failed training
(a KeyboardInterrupt or a nan loss keeps the last finished epoch's weights).
"""

import collections
import copy
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from test_embedders import FAST, fast
from torch import nn

from sk_deepmetric.embedders import (
    ArcFaceEmbedder,
    MetricEmbedder,
    NPairsEmbedder,
    SphereFaceEmbedder,
    TripletEmbedder,
)
from sk_deepmetric.embedders import _base as base_module
from sk_deepmetric.losses._pair import TripletMarginLoss

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


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
    for method in ("fit", "partial_fit"):  # the warning names the caller's line either way
        with pytest.warns(UserWarning, match="3 of 13 classes in `y` have a single sample") as w:
            getattr(fast(TripletEmbedder), method)(X, y)
        assert w[0].filename == __file__
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
    # channels-last images: a reshape to (channels, height, width) would scramble them
    last = np.repeat(X.reshape(-1, 8, 8, 1), 3, axis=3)
    msg = _fit_error(fast(TripletEmbedder, network="cnn", input_shape=(3, 8, 8)), last, y)
    assert msg.startswith("X has shape (8, 8, 3) per sample, which a reshape cannot make")
    assert msg.endswith("np.moveaxis(X, -1, 1) puts channels first.")
    # a reshape that only adds, drops or flattens axes keeps the values in order
    for X_in, shape in ((X.reshape(-1, 8, 8, 1), (1, 8, 8)), (X.reshape(-1, 8, 8), (64,))):
        with pytest.warns(UserWarning, match="has no effect with network='mlp'"):
            fast(TripletEmbedder, input_shape=shape, max_iter=1).fit(X_in, y)
    images = X.reshape(-1, 1, 8, 8)
    assert _fit_error(fast(TripletEmbedder, network="cnn1d"), images, y) == (
        "network='cnn1d' needs signals: X of shape (n_samples, length) or (n_samples, "
        "channels, length), or flat X with input_shape=(channels, length); got X of shape "
        "(200, 1, 8, 8)."
    )
    assert _fit_error(fast(TripletEmbedder, augment="rotate"), X, y).startswith(
        "`augment` 'rotate' applies to images, but the network's samples have shape (64,) "
        "(rows of features)."
    )


def test_input_shape_with_the_mlp_says_it_builds_no_cnn(digits):
    # the CNNs take flat rows with input_shape; the default MLP flattens them again, so a
    # shape given without network= would silently train an MLP
    X, y = digits
    for shape, network in (((1, 8, 8), "cnn"), ((1, 64), "cnn1d")):
        with pytest.warns(UserWarning, match=re.escape(
            f"TripletEmbedder: `input_shape`={shape!r} has no effect with network='mlp', "
            "which flattens every sample (only `augment` reads the shape there). For a "
            f"convolutional network on {'images' if network == 'cnn' else 'signals'}, set "
            f"network={network!r}."
        )):  # fmt: skip
            fast(TripletEmbedder, input_shape=shape, max_iter=1).fit(X, y)
    with warnings.catch_warnings():  # where the shape is read: a CNN, or augment
        warnings.simplefilter("error")
        fast(TripletEmbedder, network="cnn", input_shape=(1, 8, 8), max_iter=1,
             conv_channels=(4,), early_stopping=False).fit(X, y)  # fmt: skip
        fast(TripletEmbedder, input_shape=(1, 8, 8), augment="shift", max_iter=1,
             early_stopping=False).fit(X, y)  # fmt: skip


def test_signals_and_images_given_to_the_mlp_are_said_to_be_flattened(digits):
    # X of signals or images with the default network: the MLP flattens them, which loses
    # every pattern that moves along an axis; a user passing shaped X meant the shape
    X, y = digits
    for X_in, layout in (
        (X.reshape(-1, 8, 8), "signals (channels, length), network='cnn1d'; for images"),
        (X.reshape(-1, 1, 8, 8), "images, network='cnn'."),
    ):
        with pytest.warns(UserWarning, match=re.escape(
            f"TripletEmbedder: the samples of X have shape {X_in.shape[1:]}, which "
            "network='mlp' flattens"
        )) as record:  # fmt: skip
            fast(TripletEmbedder, max_iter=1, early_stopping=False).fit(X_in, y)
        assert layout in str(record[0].message)
    with warnings.catch_warnings():  # flat rows, a CNN, or a shape `augment` reads: silent
        warnings.simplefilter("error")
        fast(TripletEmbedder, max_iter=1, early_stopping=False).fit(X, y)
        fast(TripletEmbedder, network="cnn", conv_channels=(4,), max_iter=1,
             early_stopping=False).fit(X.reshape(-1, 8, 8), y)  # fmt: skip
        fast(TripletEmbedder, augment="shift", max_iter=1,
             early_stopping=False).fit(X.reshape(-1, 1, 8, 8), y)  # fmt: skip


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
        (  # zero loss on every triplet it selects: the fit would train nothing
            {"miner": "easy"},
            ValueError,
            r"TripletEmbedder's `miner` must not be 'easy': easy triplets already satisfy the "
            r"margin, so their loss and its gradient are zero",
        ),
        (
            {"early_stopping": "yes"},
            InvalidParameterError,
            r"The 'early_stopping' parameter of TripletEmbedder must be an instance of 'bool' "
            r".* or a str among \{'auto'\}\. Got 'yes' instead\.",
        ),
        (
            {"conv_channels": (16, 0)},
            ValueError,
            re.escape(
                "`conv_channels` must be None or a non-empty tuple of positive integers (the "
                "channels of each convolutional stage), got (16, 0)."
            ),
        ),
        (
            {"conv_channels": ()},
            ValueError,
            re.escape("`conv_channels` must be None or a non-empty tuple of positive integers"),
        ),
        (
            {"augment": "jiter"},
            ValueError,
            re.escape("got 'jiter'. Did you mean 'jitter'?"),
        ),
        (
            {"network": "cnn2d"},
            InvalidParameterError,
            r"The 'network' parameter of TripletEmbedder must be a str among .*'cnn1d'.*",
        ),
        (
            {"learning_rate_init": "high"},
            InvalidParameterError,
            r"The 'learning_rate_init' parameter of TripletEmbedder must be a float in the "
            r"range \(0.0, inf\) or a str among \{'auto'\}\. Got 'high' instead\.$",
        ),
        (
            {"validation_holdout": "class"},
            InvalidParameterError,
            r"The 'validation_holdout' parameter of TripletEmbedder must be a str among "
            r"\{('(auto|both|classes|samples)'(, )?){4}\}"
            r"\. Got 'class' instead\. Did you mean 'classes'\?",
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
            {"device": "mps"},
            ValueError,
            r"or a torch.device of one of those types, got 'mps'",
        ),
        (
            {"device": torch.device("meta")},
            ValueError,
            r"or a torch.device of one of those types, got device\(type='meta'\)",
        ),
        (
            {"num_workers": -1},
            InvalidParameterError,
            r"The 'num_workers' parameter of TripletEmbedder must be an int in the range "
            r"\[0, inf\)\. Got -1 instead\.",
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
    ) as record:
        model.fit(X, y)
    assert record[0].filename == __file__
    assert model.n_iter_ == 2
    np.testing.assert_array_equal(model.transform(X), reference.transform(X))


def test_keyboard_interrupt_keeps_the_best_epoch_when_validating(digits, monkeypatch):
    # as a finished fit (and scikit-learn's MLP) does: the best validated epoch, not the last
    X, y = digits
    scores = [0.1, 0.5, 0.9, 0.3, 0.2]  # the starting weights', then epochs 1 to 4

    def scripted():
        values = iter(scores)
        monkeypatch.setattr(base_module, "map_at_r", lambda *a, **k: next(values))

    validated = {"early_stopping": True, "validation_holdout": "samples"}
    scripted()
    reference = _one_batch_per_epoch(loss=TripletMarginLoss(), max_iter=2, **validated).fit(X, y)
    scripted()
    model = _one_batch_per_epoch(loss=_Interrupting(5, "interrupt"), max_iter=10, **validated)
    with pytest.warns(
        RuntimeWarning,
        match="interrupted during epoch 5; the model keeps the weights of its best epoch by "
        "validation score, epoch 2",
    ):
        model.fit(X, y)
    assert model.n_iter_ == len(model.history_) == 4
    np.testing.assert_array_equal(model.transform(X), reference.transform(X))


def assert_same_optimiser_state(state, expected):
    assert state["param_groups"] == expected["param_groups"]
    assert state["state"].keys() == expected["state"].keys()
    for index, values in expected["state"].items():
        assert state["state"][index].keys() == values.keys()
        for name, value in values.items():
            torch.testing.assert_close(state["state"][index][name], value, rtol=0, atol=0)


def test_the_optimiser_state_kept_after_a_fault_is_that_of_the_kept_weights(digits):
    X, y = digits
    reference = _one_batch_per_epoch(loss=TripletMarginLoss(), max_iter=2).fit(X, y)
    for error in ("interrupt", "nan"):
        model = _one_batch_per_epoch(loss=_Interrupting(3, error), max_iter=10)
        with (
            pytest.warns(RuntimeWarning)
            if error == "interrupt"
            else pytest.raises(FloatingPointError)
        ):
            model.fit(X, y)
        # 2 steps (one batch an epoch), not the 3 that the dropped epoch had taken
        assert_same_optimiser_state(model._optimizer_state, reference._optimizer_state)


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


class _NanGradient(nn.Module):
    """A finite loss whose gradient is NaN from its ``at``-th call: sqrt at 0."""

    def __init__(self, at):
        super().__init__()
        self.at, self.calls = at, 0
        self.triplet = TripletMarginLoss()

    def forward(self, embeddings, labels):
        self.calls += 1
        if self.calls >= self.at:
            return torch.sqrt(embeddings[:, 0] * 0.0).sum() + 1.0  # d sqrt(x)/dx at 0: inf
        return self.triplet(embeddings, labels)


def test_finite_loss_with_nan_gradients_stops_and_keeps_good_weights(digits):
    X, y = digits
    reference = _one_batch_per_epoch(loss=TripletMarginLoss(), max_iter=2).fit(X, y)
    model = _one_batch_per_epoch(loss=_NanGradient(3), max_iter=10)
    with pytest.raises(FloatingPointError, match=re.escape(
        "The weights of MetricEmbedder became non-finite in epoch 3; training stopped and the "
        "model keeps the weights of epoch 2."
    )):  # fmt: skip
        model.fit(X, y)
    assert model.n_iter_ == 2 and len(model.history_) == 2
    assert all(torch.isfinite(p).all() for p in model.module_.parameters())
    np.testing.assert_array_equal(model.transform(X), reference.transform(X))
    # with several batches an epoch, the next batch's loss goes NaN first (on the NaN
    # weights): still the weights, and the gradient, that the message speaks of
    several = _one_batch_per_epoch(loss=_NanGradient(1), max_iter=10, batch_size=32)
    with pytest.raises(FloatingPointError, match=re.escape(
        "The weights of MetricEmbedder became non-finite in epoch 1; training stopped and the "
        "estimator is left unfitted. A step with non-finite gradients does this"
    )):  # fmt: skip
        several.fit(X, y)


def test_a_nan_in_the_first_epoch_leaves_the_estimator_unfitted(digits):
    X, y = digits
    model = _one_batch_per_epoch(loss=_NanGradient(1), max_iter=10)
    with pytest.raises(FloatingPointError, match="in epoch 1; training stopped and the estimator "
                       "is left unfitted"):  # fmt: skip
        model.fit(X, y)
    with pytest.raises(NotFittedError):
        model.transform(X)


@pytest.mark.parametrize("estimator", [TripletEmbedder, ArcFaceEmbedder])
def test_a_failed_refit_leaves_the_estimator_unfitted(digits, estimator):
    # the refit's input checks set n_features_in_ and classes_ before refusing its y: the
    # model of the first fit must not survive next to them
    X, y = digits
    model = fast(estimator).fit(X, y)
    with pytest.raises(ValueError, match="needs at least 2 classes"):
        model.fit(X[:, :30], np.zeros(len(y)))
    assert not [name for name in vars(model) if name.endswith("_")]
    with pytest.raises(NotFittedError):
        model.transform(X[:, :30])
    model.fit(X, y)  # and fits again from scratch
    assert model.transform(X).shape == (len(X), model.n_components)


def test_huge_inputs_are_named_as_the_cause(digits):
    X, y = digits
    model = fast(NPairsEmbedder, early_stopping=False, max_iter=3)
    message = _fit_error(model, X * 1e19, y, exc=FloatingPointError)
    assert message == (
        "The training loss of NPairsEmbedder became nan in epoch 1; training stopped and the "
        "estimator is left unfitted. X has values up to 1.41e+20: standardise it first (e.g. "
        "sklearn.preprocessing.StandardScaler in a pipeline)."
    )


class _NanOutput(nn.Module):
    def __init__(self, at):
        super().__init__()
        self.linear, self.at, self.calls = nn.Linear(64, 8), at, 0

    def forward(self, x):
        self.calls += 1
        out = self.linear(x)
        return out * float("nan") if not self.training and self.calls >= self.at else out


def test_a_network_with_non_finite_output_is_named_under_early_stopping(digits):
    X, y = digits
    model = fast(TripletEmbedder, network=_NanOutput(at=1), early_stopping=True)
    message = _fit_error(model, X, y, exc=FloatingPointError)
    assert message == (
        "TripletEmbedder's embedding of the held-out samples became non-finite before "
        "training, with the network's initial weights. Try a lower `learning_rate_init` "
        "(currently 0.0001)."
    )


@pytest.mark.parametrize("where", ["set-up", "snapshot", "progress"])
def test_keyboard_interrupt_anywhere_leaves_a_consistent_or_unfitted_model(
    digits, monkeypatch, where
):
    from sk_deepmetric import _training

    X, y = digits
    reference = _one_batch_per_epoch(loss=TripletMarginLoss(), max_iter=2).fit(X, y)
    calls = {"n": 0}

    def interrupting(original, at):
        def wrapper(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == at:
                raise KeyboardInterrupt
            return original(*args, **kwargs)

        return wrapper

    if where == "set-up":  # e.g. while the optimiser imports torch._dynamo
        monkeypatch.setattr(
            base_module, "init_optimizer", interrupting(base_module.init_optimizer, 1)
        )
    elif where == "snapshot":  # the 3rd copy of the weights: the end of epoch 3
        save = _training._Snapshot.save
        monkeypatch.setattr(_training._Snapshot, "save", interrupting(save, 3))
    else:  # the progress bar's line of epoch 3
        monkeypatch.setattr(_training, "_record_epoch", interrupting(_training._record_epoch, 3))
    model = _one_batch_per_epoch(loss=TripletMarginLoss(), max_iter=10)
    if where == "set-up":
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y)
        with pytest.raises(NotFittedError):
            model.transform(X)
        assert not hasattr(model, "n_iter_") and not hasattr(model, "module_")
        return
    with pytest.warns(RuntimeWarning, match="interrupted during epoch 3; the model keeps"):
        model.fit(X, y)
    assert model.n_iter_ == len(model.history_) == 2
    np.testing.assert_array_equal(model.transform(X), reference.transform(X))


def test_small_data_falls_back_to_no_validation(digits):
    X, y = digits
    rows = np.r_[np.flatnonzero(y == 0)[:5], np.flatnonzero(y == 1)[:5]]
    model = fast(TripletEmbedder, validation_holdout="samples", max_iter=None)
    with pytest.warns(UserWarning, match=re.escape(
        "TripletEmbedder: holding out 4 of the 10 samples for early stopping would leave 6, "
        "fewer than a batch needs (8); training on all of them without early stopping instead."
    )):  # fmt: skip
        model.fit(X[rows], y[rows])
    assert model.n_iter_ == 5 and all(h["score"] is None for h in model.history_)
    explicit = fast(TripletEmbedder, validation_holdout="samples", early_stopping=True)
    assert _fit_error(explicit, X[rows], y[rows]) == (
        "TripletEmbedder needs at least 2 x `samples_per_class` (4) = 8 training samples, so "
        "that a batch holds two classes; got 6 after holding out 4 for early stopping. Lower "
        "`samples_per_class` or give more data."
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_components": 16}, "`n_components` changed from 8 to 16"),
        ({"hidden_layer_sizes": (32,)}, "`hidden_layer_sizes` changed from (16,) to (32,)"),
        ({"margin": 0.5}, "`margin` changed from 0.2 to 0.5"),
    ],
)
def test_warm_start_refuses_a_changed_architecture(digits, change, message):
    X, y = digits
    model = fast(TripletEmbedder, warm_start=True).fit(X, y)
    weights = [p.detach().clone() for p in model.module_.parameters()]
    model.set_params(**change)
    with pytest.raises(ValueError, match=re.escape(message + " since they were built.")):
        model.fit(X, y)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.module_.parameters()))
    model.set_params(warm_start=False).fit(X, y)  # a fresh fit takes the new value
    assert model.n_iter_ > 0


_SMALL, _BIG = nn.Linear(64, 8), nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 8))


def _module(value):
    return f"<{type(value).__name__} module at {id(value):#x}>"


@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
@pytest.mark.parametrize(
    ("cls", "name", "before", "after"),
    [
        (TripletEmbedder, "network", _SMALL, _BIG),
        (TripletEmbedder, "network", _SMALL, copy.deepcopy(_SMALL)),  # equal, not the same
        (TripletEmbedder, "network", "mlp", _BIG),
        (TripletEmbedder, "network", _SMALL, "mlp"),
        (MetricEmbedder, "loss", TripletMarginLoss(), TripletMarginLoss(margin=0.5)),
    ],
)
def test_continued_training_refuses_another_network_or_loss(
    digits, method, cls, name, before, after
):
    X, y = digits
    params = {"loss": TripletMarginLoss()} if cls is MetricEmbedder else {}
    model = fast(cls, warm_start=method == "warm_start", **{**params, name: before})
    train = model.fit if method == "warm_start" else model.partial_fit
    train(X, y)
    weights = [p.detach().clone() for p in model.module_.parameters()]
    model.set_params(**{name: after})
    shown = [_module(v) if isinstance(v, nn.Module) else repr(v) for v in (before, after)]
    both = all(isinstance(v, nn.Module) for v in (before, after))
    message = (
        f"{cls.__name__} continues training its fitted network and loss (warm_start=True or "
        f"partial_fit), but `{name}` changed from {shown[0]} to {shown[1]} since they were "
        f"built{' (a module is compared by identity)' if both else ''}. Set it back, or set "
        "warm_start=False to start afresh."
    )
    with pytest.raises(ValueError) as info:
        train(X, y)
    assert str(info.value) == message
    assert all(torch.equal(a, b) for a, b in zip(weights, model.module_.parameters()))
    model.set_params(**{name: before})  # the same object again: training continues
    train(X, y)


def test_continued_training_after_pickling_keeps_the_network_and_loss_it_was_given(digits):
    # a pickle keeps the identity of the objects in it: the `network` and `loss` parameters
    # are the ones the loaded estimator's fitted state remembers
    X, y = digits
    model = fast(MetricEmbedder, loss=TripletMarginLoss(), network=nn.Linear(64, 8))
    model.set_params(warm_start=True, max_iter=1).fit(X, y)
    for loaded in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
        assert loaded.network is not model.network
        loaded.fit(X, y)
        loaded.partial_fit(X, y)
        assert loaded.n_iter_ == 3
        with pytest.raises(ValueError, match=r"`network` changed from <Linear module at"):
            loaded.set_params(network=model.network).fit(X, y)


def test_a_far_too_wide_embedding_warns(digits):
    X, y = digits
    with pytest.warns(UserWarning, match=re.escape(
        "`n_components`=2048 is far above the 64 values of each sample"
    )):  # fmt: skip
        fast(TripletEmbedder, n_components=2048, max_iter=1).fit(X, y)


def test_later_calls_name_a_different_sample_shape(digits):
    X, y = digits
    images = X.reshape(-1, 8, 8)
    model = fast(TripletEmbedder, network="cnn", conv_channels=(4,)).fit(images, y)
    # one channel with or without its axis: the same input to the network
    np.testing.assert_array_equal(model.transform(images[:5, None]), model.transform(images[:5]))
    for bad, shape in ((X[:5, :49].reshape(-1, 7, 7), (7, 7)), (X[:5], (64,))):
        with pytest.raises(ValueError, match=re.escape(f"X has shape {shape} per sample, but")):
            model.transform(bad)
    flat = fast(TripletEmbedder).fit(X, y)
    with pytest.raises(ValueError, match=re.escape("X has shape (8, 8) per sample, but")):
        flat.transform(images)
    with pytest.raises(ValueError, match="X has 63 features, but TripletEmbedder is expecting"):
        flat.transform(X[:, :63])


def test_score_names_missing_or_mismatched_labels(digits):
    X, y = digits
    model = fast(TripletEmbedder).fit(X, y)
    with pytest.raises(ValueError, match=r"TripletEmbedder.score needs class labels: pass y"):
        model.score(X)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[200, 10\]"):
        model.score(X, y[:10])


def test_score_checks_the_labels_as_fit_does(digits):
    # np.unique made every NaN (and pd.NA) label one class, which inflated MAP@R, and raised
    # NumPy's TypeError for labels that do not sort against each other
    import pandas as pd

    X, y = digits
    model = fast(TripletEmbedder).fit(X, y)
    missing = np.where(np.arange(len(y)) < 100, np.nan, y)
    nullable = pd.Series(y, dtype="Int64").mask(np.arange(len(y)) < 100)
    mixed = np.array([1, "a"] * (len(y) // 2), dtype=object)
    with_none = np.where(np.arange(len(y)) < 5, None, y.astype(str)).astype(object)
    cases = [
        (missing, "`y` must not hold NaN or infinity, got nan."),
        (nullable, "`y` must not hold NaN or infinity, got nan."),
        (mixed, "`y` must hold labels that sort against each other (numbers, or strings), "),
        (with_none, "`y` must hold labels that sort against each other (numbers, or strings), "),
        (y + 0.5, "Unknown label type 'continuous' for `y`: TripletEmbedder needs class labels"),
    ]
    for labels, msg in cases:
        with pytest.raises(ValueError, match=re.escape(msg)):
            model.score(X, labels)
    assert 0.0 <= model.score(X, y) <= 1.0


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"max_grad_norm": -1.0}, "max_grad_norm"),
        ({"optimizer": "bogus"}, "optimizer"),
        ({"n_threads": 0}, "n_threads"),
        ({"learning_rate_init": "fast"}, "learning_rate_init"),
    ],
)
def test_partial_fit_validates_the_parameters_on_every_call(digits, params, name):
    X, y = digits
    model = fast(TripletEmbedder).partial_fit(X, y)
    before = model.transform(X)
    original = {key: model.get_params()[key] for key in params}
    with pytest.raises(InvalidParameterError, match=f"The '{name}' parameter of TripletEmbedder"):
        model.set_params(**params).partial_fit(X, y)
    assert model.n_iter_ == 1
    model.set_params(**original)
    np.testing.assert_array_equal(model.transform(X), before)


@pytest.mark.parametrize(
    "name", ["n_components", "batch_size", "max_iter", "n_iter_no_change", "num_workers"]
)
def test_a_boolean_is_not_an_integer_parameter(digits, name):
    X, y = digits
    for value in (True, False):
        with pytest.raises(
            InvalidParameterError,
            match=re.escape(f"The '{name}' parameter of TripletEmbedder must be an int in the ")
            + f".*Got {value} instead",
        ):
            fast(TripletEmbedder, **{name: value}).fit(X, y)


def test_metric_embedder_names_a_loss_built_for_fewer_classes(digits):
    from sk_deepmetric.losses import ArcFaceLoss

    X, y = digits
    model = fast(
        MetricEmbedder, loss=ArcFaceLoss(n_classes=5, n_components=8), batching="shuffled"
    )
    msg = (
        "`loss` (ArcFaceLoss) is built for n_classes=5, but `y` holds 10 classes "
        "([0, 1, 2, 3, 4]...); build it with n_classes=10."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        model.fit(X, y)
    # balanced batches let partial_fit add classes, which the loss has no weight for
    fitted = fast(MetricEmbedder, loss=ArcFaceLoss(n_classes=5, n_components=8))
    fitted.partial_fit(X[y < 5], y[y < 5])
    with pytest.raises(ValueError, match=re.escape("built for n_classes=5, but `y` holds 6")):
        fitted.partial_fit(X[y < 6], y[y < 6])
    np.testing.assert_array_equal(fitted.classes_, np.arange(5))


# --------------------------------------------------------------------- a user's network
_Out = collections.namedtuple("_Out", "logits aux_logits")


class _Returns(nn.Module):
    """A linear map whose forward returns ``wrap(embedding)``; in train mode only when
    ``in_training``, as torchvision's inception_v3 returns its auxiliary logits."""

    def __init__(self, wrap, in_training=False):
        super().__init__()
        self.linear, self.wrap, self.in_training = nn.Linear(64, 8), wrap, in_training

    def forward(self, x):
        z = self.linear(x)
        return self.wrap(z) if self.training or not self.in_training else z


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize(
    ("wrap", "given"),
    [
        (lambda z: (z, z), "an object of type tuple"),
        (lambda z: {"embedding": z}, "an object of type dict"),
        (lambda z: _Out(z, z), "an object of type _Out (a tuple)"),
        (lambda z: z.argmax(1, keepdim=True), "a tensor of dtype torch.int64"),
    ],
)
def test_a_network_that_does_not_return_a_tensor_is_named(digits, wrap, given, normalize):
    X, y = digits
    for mode, in_training in (("eval", False), ("train", True)):
        net = _Returns(wrap, in_training)
        model = fast(TripletEmbedder, network=net, normalize=normalize)
        with pytest.raises(ValueError) as info:
            model.fit(X, y)
        assert str(info.value) == (
            f"The `network` module returned {given} in {mode} mode, but it must return the "
            "embedding: a floating-point tensor of shape (batch_size, n_components=8), in "
            "training and in eval mode. Wrap a module that returns several outputs (a tuple, "
            "a dict, or torchvision's inception_v3 with aux_logits in training) in one whose "
            "forward returns the embedding alone."
        )
        assert not hasattr(model, "module_") and net.training
        assert not net.linear._forward_hooks and not net._forward_hooks


def test_the_output_check_leaves_batch_norm_statistics_alone(digits):
    # the check at fit runs in eval mode only (train mode is checked at the first training
    # step): a forward pass in train mode would move a pre-trained network's statistics
    X, y = digits
    net = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8))
    model = fast(TripletEmbedder, network=net, max_iter=1, early_stopping=False)
    model.input_shape_ = (64,)
    module = model._init_module(X, torch.Generator().manual_seed(0))
    assert int(module[0][1].num_batches_tracked) == 0
    model.fit(X, y)
    assert not model.module_[0]._forward_hooks  # the training check is gone after fit


def test_a_network_of_another_dtype_is_named(digits):
    X, y = digits
    model = fast(TripletEmbedder, network=nn.Linear(64, 8).double())
    with pytest.raises(
        ValueError,
        match=r"The `network` module failed on a batch of X of shape \(2, 64\) .*Its "
        r"parameters are torch\.float64, but X reaches it as torch\.float32: convert the "
        r"module with \.float\(\)\.$",
    ):
        model.fit(X, y)


# --------------------------------------------------------------------- a user's loss
class _PerSample(nn.Module):  # reduction="none" by mistake
    def forward(self, embeddings, labels):
        return embeddings.pow(2).sum(1)


class _Detached(nn.Module):  # computed from detached embeddings
    def forward(self, embeddings, labels):
        return embeddings.detach().pow(2).mean()


class _Number(nn.Module):  # a Python float, not a tensor
    def forward(self, embeddings, labels):
        return 1.0


@pytest.mark.parametrize(
    ("loss", "message"),
    [
        (
            _PerSample(),
            "The `loss` returned a tensor of shape (32,), but it must return a scalar tensor "
            "(shape ()): reduce it over the batch, e.g. with .mean() (reduction='mean', not "
            "'none').",
        ),
        (_Number(), "The `loss` returned an object of type float, but it must return a scalar"),
        (
            _Detached(),
            "The `loss` returned a tensor that does not require grad, so training has no "
            "gradient to follow: compute it from the embeddings with autograd (not under "
            "torch.no_grad(), nor from detached tensors), also for a batch with nothing to "
            "compare (return embeddings.sum() * 0, not torch.tensor(0.0)).",
        ),
    ],
)
def test_a_loss_that_is_not_a_scalar_with_a_gradient_is_named(digits, loss, message):
    X, y = digits
    model = fast(MetricEmbedder, loss=loss, early_stopping=False)
    with pytest.raises(ValueError) as info:
        model.fit(X, y)
    assert str(info.value).startswith(message)
    assert not hasattr(model, "module_")


def test_fit_under_no_grad_is_named_as_the_cause(digits):
    X, y = digits
    with torch.no_grad(), pytest.raises(ValueError, match=r"gradients are disabled \(fit called"):
        fast(TripletEmbedder).fit(X, y)


def test_nothing_to_train_is_an_error_before_training(digits):
    X, y = digits
    frozen = nn.Linear(64, 8).requires_grad_(False)
    model = fast(TripletEmbedder, network=frozen)
    with pytest.raises(ValueError) as info:
        model.fit(X, y)
    assert str(info.value) == (
        "TripletEmbedder has nothing to train: no parameter of the network or of the loss "
        "requires grad (all frozen with requires_grad_(False), or none at all). Unfreeze "
        "some, or use the network as it is, without fitting."
    )
    assert not hasattr(model, "module_")
    # a loss with parameters of its own (class weights) has something to train
    fast(ArcFaceEmbedder, network=nn.Linear(64, 8).requires_grad_(False)).fit(X, y)
