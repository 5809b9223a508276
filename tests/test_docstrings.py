"""Every public estimator's docstring documents exactly its signature, in order, with the
defaults it really has, and its parameter constraints cover every parameter (in the style of
scikit-learn's ``test_docstring_parameters``)."""

import ast
import inspect
import re

import pytest
from numpydoc.docscrape import ClassDoc

from sk_deepmetric import embedders
from sk_deepmetric.neighbors import EmbeddingKNeighborsClassifier

ESTIMATORS = [getattr(embedders, name) for name in embedders.__all__]
ESTIMATORS.append(EmbeddingKNeighborsClassifier)


def _read(text):
    """The value a numpydoc type line's ``default=...`` shows (a literal, or its text)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_docstring_documents_the_signature(cls):
    signature = inspect.signature(cls).parameters
    documented = ClassDoc(cls)["Parameters"]
    assert [p.name for p in documented] == list(signature)
    for parameter in documented:
        assert " ".join(parameter.desc).strip(), f"{parameter.name} has no description"
        match = re.search(r"default=(.+)$", parameter.type)
        assert match, f"{parameter.name}: the type line names no default"
        default = signature[parameter.name].default
        assert _read(match.group(1)) == default, f"{parameter.name}: documented {match.group(1)}"


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_constraints_cover_every_parameter(cls):
    assert set(cls._parameter_constraints) == set(inspect.signature(cls).parameters)


WITH_LOSS = [cls for cls in ESTIMATORS if getattr(cls, "_loss_class", None) is not None]


@pytest.mark.parametrize("cls", WITH_LOSS, ids=lambda cls: cls.__name__)
def test_loss_defaults_have_one_source(cls):
    """An estimator's loss parameter defaults to the loss's own default, unless it is one of
    the estimator's tuned defaults, whose docstring then gives the loss's value too."""
    loss = inspect.signature(cls._loss_class).parameters
    estimator = inspect.signature(cls).parameters
    documented = {p.name: " ".join(p.desc) for p in ClassDoc(cls)["Parameters"]}
    shared = [name for name in cls._loss_params if name in loss]
    assert set(cls._tuned_defaults) <= set(shared)
    for name in shared:
        if name not in cls._tuned_defaults:
            assert estimator[name].default == loss[name].default, name
            continue
        assert estimator[name].default == cls._tuned_defaults[name] != loss[name].default
        paper = loss[name].default
        shown = f'"{paper}"' if isinstance(paper, str) else f"{paper:g}"
        assert re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d])", documented[name]), (
            f"{name}: the docstring does not give the loss's default {shown}"
        )
