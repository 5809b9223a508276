"""Models pickled by an earlier version load and embed as they did.

``data/legacy_models.pkl`` holds small fitted models (MLP and 1-D CNN; tuple, classifier
and centre losses) pickled by the commit recorded in it, with the data and what that
commit's network computed (``make_legacy_models.py`` writes it). Refresh it only on purpose:
a change that breaks loading it breaks every user's saved models.
"""

import copy
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from _rounding import U64, gamma
from sklearn.base import clone
from sklearn.exceptions import InconsistentVersionWarning
from torch import nn

from sk_deepmetric.networks import L2Normalize

DATA = Path(__file__).parent / "data" / "legacy_models.pkl"


def _load():
    with warnings.catch_warnings():
        # scikit-learn warns when the pickle came from another scikit-learn version
        warnings.simplefilter("ignore", InconsistentVersionWarning)
        with open(DATA, "rb") as f:
            return pickle.load(f)


FROZEN = _load()
NAMES = sorted(k for k in FROZEN if not k.startswith("_"))


def _float64_output(model, X):
    """The loaded network's output in float64, and a bound on its rounding error."""
    module = copy.deepcopy(model.module_).double().eval()
    magnitudes = []

    def record(layer, inputs, _output):  # max of |W| |x| + |b|: the magnitudes the layer sums
        weight, bias = layer.weight.abs(), None if layer.bias is None else layer.bias.abs()
        if isinstance(layer, nn.Linear):
            summed = nn.functional.linear(inputs[0].abs(), weight, bias)
        else:
            summed = layer._conv_forward(inputs[0].abs(), weight, bias)
        magnitudes.append(float(summed.max()))

    normalized = []  # what the L2 normalisation divides, if the network has one

    layers = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    for layer in layers:
        layer.register_forward_hook(record)
    for m in module.modules():
        if isinstance(m, L2Normalize):
            m.register_forward_hook(lambda _, inputs, __: normalized.append(inputs[0]))
    with torch.no_grad():
        inputs = torch.from_numpy(model._as_network_input(X).astype(np.float64))
        output = module(inputs)
        bound = _error_bound(
            module, layers, max(magnitudes), normalized[0] if normalized else None
        )
    return output.numpy(), bound


def _error_bound(module, layers, magnitude, raw) -> float:
    """Bound on the float64 rounding error of the network's output (Higham's analysis).

    A layer summing ``n`` products (its fan-in and bias) errs by at most ``gamma(n)`` times
    the magnitudes it sums (at most ``magnitude``); a later layer amplifies an error by at
    most its weights' infinity norm, a batch norm by its largest scale, a residual or skip
    path by 2 at most, and ReLU and pooling not at all: every layer's error, amplified by all
    the layers, bounds the output's. The final L2 normalisation divides it by the smallest
    norm it normalises (and rounds by ``gamma(d)`` more).
    """
    gains = []
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            gains.append(max(1.0, float(m.weight.abs().reshape(len(m.weight), -1).sum(1).max())))
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            factor = m.weight.abs() / torch.sqrt(m.running_var + m.eps)
            gains.append(max(1.0, float(factor.max())))
    amplification = float(np.prod(gains)) * 2.0 ** len(layers)
    fan_in = max(m.weight[0].numel() + 1 for m in layers)
    error = len(layers) * gamma(fan_in, U64) * magnitude * amplification
    if raw is None:
        return error
    norms = raw.reshape(len(raw), -1).norm(dim=1)
    return 2 * error / float(norms.min()) + gamma(raw.shape[1], U64)


@pytest.mark.parametrize("name", NAMES)
def test_legacy_model_embeds_as_before(name):
    """The current code computes, from the loaded weights, the function the pickling
    version computed: in float64, on any CPU, within float64 rounding of its output."""
    frozen = FROZEN[name]
    model, X = frozen["model"], frozen["X"]
    now64, bound = _float64_output(model, X)
    assert bound < 1e-6  # the bound is meaningful: any real change moves outputs far more
    np.testing.assert_allclose(now64, frozen["embedding64"], rtol=0, atol=2 * bound)
    # transform runs that network as it is, in float32
    with torch.no_grad():
        inputs = torch.from_numpy(model._as_network_input(X))
        expected = model.module_.eval()(inputs).numpy()
    np.testing.assert_array_equal(model.transform(X), expected)
    assert model.transform(X).shape == frozen["embedding"].shape


@pytest.mark.parametrize("name", NAMES)
def test_legacy_model_is_a_working_estimator(name):
    """Loaded, it clones, scores and trains on (warm start) like a model fitted now."""
    model, X = FROZEN[name]["model"], FROZEN[name]["X"]
    y = np.resize(model.classes_, len(X))
    assert clone(model).get_params().keys() == model.get_params().keys()
    assert 0.0 <= model.score(X, y) <= 1.0
    refit = copy.deepcopy(model).set_params(warm_start=True, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a 1-epoch fit warns that it did not converge
        refit.fit(X, y)
    assert refit.n_iter_ == model.n_iter_ + 1
    assert np.isfinite(refit.transform(X)).all()


def test_fixture_records_its_origin():
    made_by = FROZEN["_made_by"]
    assert len(made_by["commit"]) == 40 and made_by["torch"] and made_by["sklearn"]
