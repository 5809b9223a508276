"""scikit-learn's estimator checks, on every embedder, with its default parameters.

The list of embedders is read from ``sk_deepmetric.embedders.__all__``, so a new embedder is
checked without editing this file. ``MetricEmbedder`` gets the one parameter it requires (a
loss). ``ContrastivePairsEmbedder`` takes pairs, ``X`` of shape ``(n_pairs, 2, n_features)``,
and its tags say that it takes no 2-D ``X``; scikit-learn then runs none of its checks that
feed data, so the ones that need no data run here on its defaults, and their pair-shaped
counterparts in test_embedders_pairs.py.
"""

import pytest
from sklearn.utils import estimator_checks
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_deepmetric import embedders
from sk_deepmetric.embedders import ContrastivePairsEmbedder, MetricEmbedder
from sk_deepmetric.losses import TripletMarginLoss

#: Parameters an embedder cannot do without (everything else stays at its default).
REQUIRED = {MetricEmbedder: {"loss": TripletMarginLoss()}}

ESTIMATORS = [
    cls(**REQUIRED.get(cls, {}))
    for cls in (getattr(embedders, name) for name in embedders.__all__)
    if cls is not ContrastivePairsEmbedder
]


def test_every_embedder_is_checked():
    assert len(ESTIMATORS) == len(embedders.__all__) - 1 >= 11


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
# check_estimators_nan_inf fits 10 samples: too few to hold out, as the warning says
@pytest.mark.filterwarnings("ignore:.*holding out 4 of the 10 samples:UserWarning")
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
