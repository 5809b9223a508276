"""scikit-learn's estimator checks, on every embedder, with small fast settings."""

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

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
from sk_deepmetric.losses._pair import TripletMarginLoss

# Small and fast, set on the instances: the estimators' own defaults are left alone.
FAST = {"max_iter": 2, "hidden_layer_sizes": (16,), "n_components": 8, "batch_size": 16}

ESTIMATORS = [
    cls(**FAST)
    for cls in (
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
    )
] + [MetricEmbedder(loss=TripletMarginLoss(), **FAST)]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible_estimator(estimator, check, monkeypatch):
    # scikit-learn skips its array-API check (here: NumPy inputs under array-API dispatch)
    # unless SCIPY_ARRAY_API is set; set it so that no check is skipped.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)
