"""The embedders' errors: bad X, y and parameters, each message pinned, and failed training
(a KeyboardInterrupt or a nan loss keeps the last finished epoch's weights).
"""

import re

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError
from test_embedders import FAST, fast
from torch import nn

from sk_deepmetric.embedders import (
    ArcFaceEmbedder,
    MetricEmbedder,
    SphereFaceEmbedder,
    TripletEmbedder,
)
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
            r"\{'(auto|classes|samples)', '(auto|classes|samples)', '(auto|classes|samples)'\}"
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
