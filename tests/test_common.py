"""scikit-learn's estimator checks, on every embedder, with small fast settings.

``ContrastivePairsEmbedder`` takes pairs, ``X`` of shape ``(n_pairs, 2, n_features)``, and its
tags say that it takes no 2-D ``X``; scikit-learn then runs none of its checks that feed data,
so the ones that need no data run here on its defaults, and their pair-shaped counterparts in
test_embedders_pairs.py.
"""

import pytest
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_deepmetric.embedders import (
    AngularEmbedder,
    ArcFaceEmbedder,
    CenterLossEmbedder,
    ContrastiveEmbedder,
    ContrastivePairsEmbedder,
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


#: The checks of scikit-learn that take no data (its API checks, and the parameter checks
#: that every estimator runs); the ones that feed 2-D X do not apply to a pairs estimator.
DATA_FREE_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_mixin_order",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
]


@pytest.mark.parametrize("check", DATA_FREE_CHECKS)
def test_pairs_estimator_passes_the_checks_that_take_no_data(check):
    estimator = ContrastivePairsEmbedder()
    tags = estimator.__sklearn_tags__()
    assert not tags.input_tags.two_d_array and tags.input_tags.three_d_array
    assert tags.estimator_type == "classifier" and tags.target_tags.required
    getattr(estimator_checks, check)(type(estimator).__name__, estimator)


def test_pairs_estimator_gets_no_check_that_feeds_2d_data():
    from sklearn.exceptions import SkipTestWarning

    with pytest.warns(SkipTestWarning, match="Can't test estimator ContrastivePairsEmbedder"):
        checks = list(estimator_checks.estimator_checks_generator(ContrastivePairsEmbedder()))
    names = [getattr(c, "func", c).__name__ for _, c in checks]
    assert names == ["check_estimator_cloneable"]
