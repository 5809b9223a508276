"""Fixtures shared by the test modules; a module's own fixture of the same name wins."""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.preprocessing import StandardScaler


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X[:200]).astype(np.float32)
    return X, y[:200]
