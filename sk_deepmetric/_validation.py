"""Parameter and input checks shared by the torch layer and the estimators.

The one place that touches scikit-learn's validation helpers. Every error names the
parameter, what was expected and what was given, in scikit-learn's style.
"""

from __future__ import annotations

import difflib
import math
import numbers
import sys
from collections.abc import Iterable

import numpy as np
import torch
from sklearn.base import _fit_context as fit_context
from sklearn.utils import _safe_indexing as safe_indexing
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, InvalidParameterError, Options, StrOptions
from sklearn.utils._param_validation import Interval as _SklearnInterval
from sklearn.utils._set_output import _get_output_config
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_feature_names as check_feature_names
from sklearn.utils.validation import _check_n_features as check_n_features
from sklearn.utils.validation import (
    check_array,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)
from torch import Tensor

# scikit-learn's parameter-validation machinery lives in private modules: the estimators import
# it, and its public input checks, from here, so that a scikit-learn release that moves one
# breaks one line, not several files.
__all__ = [
    "HasMethods",
    "Interval",
    "InvalidParameterError",
    "Options",
    "StrOptions",
    "as_host_tensor",
    "check_array",
    "check_class_labels",
    "check_classification_targets",
    "check_consistent_length",
    "check_dense",
    "check_embeddings_and_labels",
    "check_feature_names",
    "check_int",
    "check_is_fitted",
    "check_n_features",
    "check_option",
    "check_random_state",
    "check_real",
    "check_reshape",
    "column_or_1d",
    "did_you_mean",
    "discard_fit",
    "external_stacklevel",
    "fit_context",
    "label_kind",
    "output_container",
    "safe_indexing",
    "type_of_target",
    "validate_data",
]


class Interval(_SklearnInterval):
    """scikit-learn's ``Interval``, except that a boolean is not a number in it.

    scikit-learn lets ``True`` through an integer or real interval (a bool is an
    ``Integral``), as 1; here ``n_components=True`` is refused, naming the parameter, as a
    float is where an integer is required.
    """

    def is_satisfied_by(self, val):
        return not isinstance(val, bool) and super().is_satisfied_by(val)


def output_container(estimator: object, method: str = "transform") -> str:
    """The container ``set_output`` (or ``set_config(transform_output=...)``) asks of
    ``method``'s output: "default" (NumPy), "pandas" or "polars"."""
    return _get_output_config(method, estimator)["dense"]


def external_stacklevel() -> int:
    """``stacklevel`` for a ``warnings.warn`` that points at the caller outside this package.

    Call it as the argument of ``warnings.warn``. It skips the frames of ``sk_deepmetric`` and
    of scikit-learn's ``_fit_context`` wrapper (``sklearn.base``), whose number depends on the
    path that reached the warning (``fit`` or ``partial_fit``, one helper more or less), so
    that the warning shows the user's line (or, inside a Pipeline, scikit-learn's call).
    """
    frame, level = sys._getframe(2), 2  # 1 is the function that warns, 2 its caller
    while frame is not None and _is_internal(frame.f_globals.get("__name__", "")):
        frame, level = frame.f_back, level + 1
    return level


def _is_internal(module: str) -> bool:
    return module == "sklearn.base" or module.split(".")[0] == "sk_deepmetric"


def discard_fit(estimator: object, private: Iterable[str] = ()) -> None:
    """Delete what a fit set on ``estimator``: its public fitted attributes (names ending in
    ``_``) and the ``private`` ones, so that it is unfitted again."""
    private = set(private)
    for name in list(vars(estimator)):
        if (name.endswith("_") and not name.startswith("__")) or name in private:
            delattr(estimator, name)


def did_you_mean(value: object, options: Iterable[str]) -> str:
    """A " Did you mean 'x'?" suffix for an unknown name, or "" when nothing is close."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(options), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def check_option(value: object, options: Iterable[str | None], name: str) -> object:
    """Return ``value`` if it is one of ``options``, else raise a ValueError that suggests one."""
    options = list(options)
    if value in options:
        return value
    names = [o for o in options if isinstance(o, str)]
    raise ValueError(
        f"`{name}` must be one of {options}, got {value!r}.{did_you_mean(value, names)}"
    )


def check_int(
    value: object, name: str, *, min_value: int | None = None, max_value: int | None = None
) -> int:
    """Return ``value`` as int; a float (even 2.0) or bool where an integer is required fails."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"`{name}` must be an integer, got {value!r} of type {type(value).__name__}."
        )
    value = int(value)
    _check_bounds(value, name, min_value, max_value, "closed")
    return value


def check_real(
    value: object,
    name: str,
    *,
    min_value: float | None = None,
    max_value: float | None = None,
    closed: str = "both",
) -> float:
    """Return ``value`` as float, checking it is a finite real within the bounds.

    ``closed`` is "both", "left", "right" or "neither", as in scikit-learn's ``Interval``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a real number, got {value!r}.")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"`{name}` must be finite, got {value!r}.")
    _check_bounds(value, name, min_value, max_value, closed)
    return value


def _check_bounds(value, name, low, high, closed):
    left_ok = low is None or (
        value >= low if closed in ("both", "left", "closed") else value > low
    )
    right_ok = high is None or (
        value <= high if closed in ("both", "right", "closed") else value < high
    )
    if left_ok and right_ok:
        return
    lb = "[" if closed in ("both", "left", "closed") else "("
    rb = "]" if closed in ("both", "right", "closed") else ")"
    lo = "-inf" if low is None else low
    hi = "inf" if high is None else high
    raise ValueError(f"`{name}` must be in the range {lb}{lo}, {hi}{rb}, got {value!r}.")


def as_host_tensor(X: object) -> object:
    """A torch tensor as scikit-learn's checks can read it: detached from autograd (the
    output of another network), on the CPU, and bfloat16 (which NumPy has no type for) as
    float32, exactly. Anything else is returned as it is."""
    if isinstance(X, Tensor):
        X = X.detach().cpu()
        if X.dtype == torch.bfloat16:
            X = X.float()
    return X


def label_kind(labels: object) -> str:
    """``"string"`` or ``"number"``: the kind of class labels (an array of them, or one), as
    scikit-learn's ``unique_labels`` tells them apart (it refuses a mix of the two).

    An object array (a pandas column) is of the kind of its first label; a label of another
    kind further on is a mix that the label checks refuse.
    """
    first = labels
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind in "US":
            return "string"
        if labels.dtype.kind != "O" or not labels.size:
            return "number"
        first = labels.flat[0]
    return "string" if isinstance(first, (str, np.str_)) else "number"


def check_reshape(
    sample_shape: tuple[int, ...], input_shape: tuple[int, ...], name: str = "input_shape"
) -> None:
    """Raise unless samples of ``sample_shape`` can be read as ``input_shape`` by a reshape.

    A reshape keeps the values in memory order: it restores the shape of flat rows, flattens,
    or adds and drops axes of size 1, but it does not move axes. Samples already of several
    axes given another layout of them (channels-last images for ``(channels, height,
    width)``) would have their values scrambled, not transposed, so they are refused, with
    the numpy call that moves the axes.
    """
    n_in, n_net = math.prod(sample_shape), math.prod(input_shape)
    if n_in != n_net:
        raise ValueError(
            f"`{name}` {tuple(input_shape)} holds {n_net} values per sample, but X has "
            f"shape {tuple(sample_shape)} per sample ({n_in} values)."
        )
    squeezed = tuple(d for d in sample_shape if d != 1), tuple(d for d in input_shape if d != 1)
    if len(sample_shape) > 1 and len(input_shape) > 1 and squeezed[0] != squeezed[1]:
        hint = ""
        if len(sample_shape) == 3 and tuple(sample_shape[-1:] + sample_shape[:-1]) == tuple(
            input_shape
        ):
            hint = " For channels-last images, np.moveaxis(X, -1, 1) puts channels first."
        raise ValueError(
            f"X has shape {tuple(sample_shape)} per sample, which a reshape cannot make "
            f"{tuple(input_shape)} (`{name}`) without scrambling the values: a reshape "
            "restores flat rows, flattens, or adds or drops axes of size 1, but does not move "
            f"axes.{hint}"
        )


def check_embeddings_and_labels(
    embeddings: Tensor, labels: Tensor, names: tuple[str, str] = ("embeddings", "labels")
) -> tuple[Tensor, Tensor]:
    """Check the ``loss(embeddings, labels)`` / ``miner(embeddings, labels)`` arguments.

    Half-precision embeddings (float16, bfloat16) are returned in float32, in which losses and
    miners compute; autograd takes the gradient back to their own dtype. ``names`` are the
    arguments' names in the messages (``ref_embeddings``, ``ref_labels`` for references).
    """
    e_name, l_name = names
    if not isinstance(embeddings, Tensor) or embeddings.ndim != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, Tensor) else type(embeddings)
        raise ValueError(
            f"`{e_name}` must be a 2-D tensor of shape (batch_size, n_components), got {shape}."
        )
    check_dense(embeddings, e_name)
    if not embeddings.is_floating_point():
        raise ValueError(f"`{e_name}` must be a floating-point tensor, got {embeddings.dtype}.")
    if embeddings.element_size() < 4:
        embeddings = embeddings.float()
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(labels, device=embeddings.device)
    check_dense(labels, l_name)
    if labels.ndim != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(
            f"`{l_name}` must be a 1-D tensor with one label per embedding "
            f"({embeddings.shape[0]}), got shape {tuple(labels.shape)}."
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"`{l_name}` must be an integer tensor, got {labels.dtype}.")
    return embeddings, labels.to(embeddings.device)


def check_dense(x: Tensor, name: str) -> None:
    """Raise unless the tensor ``x`` (the argument ``name``) has the strided (dense) layout."""
    if x.layout != torch.strided:
        raise ValueError(
            f"`{name}` must be a dense tensor, got layout {x.layout}; convert it with "
            "`.to_dense()`."
        )


def check_class_labels(labels: Tensor, n_classes: int) -> None:
    """Classifier-style losses take labels in ``0 .. n_classes - 1``."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= n_classes):
        raise ValueError(
            f"`labels` must be in 0..{n_classes - 1} (`n_classes`={n_classes}), got values in "
            f"{int(labels.min())}..{int(labels.max())}. Encode labels with "
            "sklearn.preprocessing.LabelEncoder first."
        )
