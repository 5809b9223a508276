"""Fixtures shared by the test modules; a module's own fixture of the same name wins."""

import builtins

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X[:200]).astype(np.float32)
    return X, y[:200]


@pytest.fixture
def without_matplotlib(monkeypatch):
    """Imports of matplotlib fail, as where the [plot] extra is not installed."""
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
