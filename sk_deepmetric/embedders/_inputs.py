"""What the embedders do with ``X`` and ``y`` before the network sees them.

:class:`InputMixin` checks ``X`` and ``y``, encodes the labels to ``0 .. n_classes - 1`` for
the loss and reshapes ``X`` to the shape the network takes. On the first fit it sets the
fitted attributes that describe the input: ``classes_``, ``input_shape_``, and through
scikit-learn's ``validate_data`` ``n_features_in_`` (and ``feature_names_in_`` for a
DataFrame). Later calls are checked against them; only a loss on class-balanced batches lets
``partial_fit`` add classes. It is kept apart from :mod:`._base`, which builds and trains the
network, because none of this touches torch.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._retrieval import check_label_values
from .._streaming import RowSource, is_streamed, make_source
from .._validation import (
    as_host_tensor,
    check_feature_names,
    check_n_features,
    check_reshape,
    external_stacklevel,
    label_kind,
    type_of_target,
    validate_data,
)

#: network -> (spatial dimensions, what it takes, their names), for the shape checks.
_CONV_INPUTS = {"cnn": (2, "images", "height, width"), "cnn1d": (1, "signals", "length")}


class InputMixin:
    """Check and encode ``X`` and ``y``; record (at fit) or check (later) their shape.

    The host class provides the parameters ``input_shape`` and ``network``, and
    ``_batching``: "balanced" losses accept new classes and need two samples of some class.
    """

    def _validate_data_and_target(self, X, y, reset, classes=None, partial=False):
        if is_streamed(X):
            X, y = self._validate_source(X, y, reset)
        else:
            X = as_host_tensor(X)
            X = X if reset else self._in_fitted_form(X)
            if y is None:
                validate_data(self, X, y, reset=reset)  # scikit-learn's "requires y" message
            X, y = validate_data(
                self,
                X,
                y,
                reset=reset,
                dtype=np.float32,
                allow_nd=True,
                ensure_min_samples=2,
                ensure_min_features=1,
            )
        self._check_target(y)
        self._set_shape(X, reset)
        return X, self._encode(y, reset, classes, partial)

    def _check_target(self, y):
        """Refuse ``y`` unless it holds class labels (binary or multiclass)."""
        target = type_of_target(y, input_name="y", raise_unknown=True)
        if target not in ("binary", "multiclass"):
            raise ValueError(
                f"Unknown label type {target!r} for `y`: {type(self).__name__} needs class "
                f"labels (binary or multiclass), e.g. {y[:3].tolist()}."
            )

    def _check_score_labels(self, y):
        """``y`` of ``score``, checked as the metrics check labels and as ``fit`` does: no
        NaN (np.unique would make every NaN label one class, inflating MAP@R), labels that
        sort against each other, and class labels."""
        check_label_values(y, "y")
        self._check_target(y)
        return y

    def _encode(self, y, reset, classes=None, partial=False):
        """Codes ``0 .. n_classes - 1`` for the loss, in the order of ``classes_``.

        The first fit sorts the classes (those of ``classes`` when given, as in
        scikit-learn's ``partial_fit``); classes met later are appended, so that the code of
        a known class never changes (a loss with one weight per class keeps its rows).
        ``classes_`` changes only once ``y`` has passed every check: a refused call leaves
        it as it was.
        """
        if reset:
            known = np.unique(y if classes is None else classes)
            if classes is not None:
                where = "`classes` given to the first partial_fit"
                y = self._of_known_kind(y, known, where)
                self._check_known(y, known, where, partial)
        else:
            y = self._of_known_kind(y, self.classes_, "the first fit")
            unseen = np.setdiff1d(y, self.classes_)
            if unseen.size and self._batching != "balanced":
                self._check_known(y, self.classes_, "the first fit", partial)
            known = np.concatenate([self.classes_, unseen])
        order = np.argsort(known, kind="stable")
        encoded = order[np.searchsorted(known[order], y)].astype(np.int64)
        counts = np.bincount(encoded)
        counts = counts[counts > 0]
        # a loss with one weight per class trains on a chunk of one class of several known
        # (partial_fit on data grouped by class); a tuple loss needs negatives in each call
        n_classes = counts.size if self._batching == "balanced" else len(known)
        if n_classes < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes in `y`, got 1 class ({y[0]!r})."
            )
        self._check_class_sizes(counts)
        self._check_loss_classes(known, reset)
        self.classes_ = known
        return encoded

    def _of_known_kind(self, y, known, where):
        """``y`` in a dtype that holds the ``known`` classes too, so that comparing them and
        appending new classes casts neither (NumPy would make the numbers of a mix with
        strings strings, and int64 and uint64 ids float64, merging ids above 2**53).

        Labels of the other kind (strings where the classes are numbers, or the reverse) are
        refused, as scikit-learn's ``unique_labels`` refuses them; so are integer labels
        that no integer dtype holds together with the classes'.
        """
        kind, known_kind = label_kind(y), label_kind(known)
        if kind != known_kind:
            raise ValueError(
                f"Mix of label input types (string and number): `y` holds {kind}s "
                f"(dtype {y.dtype}), but {type(self).__name__}'s classes from {where} are "
                f"{known_kind}s (dtype {known.dtype}: {known[:5].tolist()}"
                f"{'...' if len(known) > 5 else ''}). Pass labels of one kind to every call."
            )
        if kind == "string" or y.dtype == known.dtype:
            return y
        with warnings.catch_warnings(), np.errstate(invalid="ignore", over="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            same = y.astype(known.dtype)
            if (same == y).all():  # NumPy compares int64 with uint64 exactly
                return same
        common = np.result_type(known.dtype, y.dtype)
        if known.dtype.kind in "iub" and y.dtype.kind in "iub" and common.kind not in "iub":
            raise ValueError(
                f"`y` (dtype {y.dtype}) holds labels that the dtype of {type(self).__name__}'s "
                f"classes from {where} ({known.dtype}) cannot hold, and no integer dtype holds "
                f"both (e.g. {y[same != y][0].item()!r}): NumPy would cast both to {common}, "
                f"which merges ids above 2**53. Pass labels of dtype {known.dtype}."
            )
        return y

    def _check_loss_classes(self, classes, reset):
        """Refuse ``classes`` (all the classes, known and new) if the loss cannot take them;
        the estimators build their loss for them, so this accepts any."""

    def _check_known(self, y, known, where, partial):
        unseen = np.setdiff1d(y, known)
        if unseen.size:
            advice = (
                "Pass every class to the first partial_fit as `classes=`."
                if partial
                else "A warm_start fit keeps the loss's classes: set warm_start=False to fit "
                "afresh on every class."
            )
            raise ValueError(
                f"`y` holds classes {unseen[:5].tolist()} that were not in {where}; "
                f"{type(self).__name__}'s loss has one weight per class in "
                f"{known[:5].tolist()}... ({len(known)} classes). {advice}"
            )

    def _check_class_sizes(self, counts):
        if self._batching != "balanced":
            return
        singles = int((counts < 2).sum())
        if singles == counts.size:
            raise ValueError(
                f"Every class in `y` has a single sample ({counts.size} classes). "
                f"{type(self).__name__} learns from pairs of samples of one class, so it would "
                "get no positive pair and a zero loss; give at least 2 samples of some classes."
            )
        if singles:
            warnings.warn(
                f"{singles} of {counts.size} classes in `y` have a single sample; "
                f"{type(self).__name__} uses them only as negatives.",
                UserWarning,
                stacklevel=external_stacklevel(),
            )

    def _in_fitted_form(self, X):
        """``X`` with the per-sample shape of the fit, for samples of more than one axis.

        Images of one channel given as ``(n, height, width)`` and as ``(n, 1, height,
        width)`` (signals likewise) are the same input to the network, which ``fit`` takes in
        either form: later calls may use the other (reshaped here). Any other per-sample
        shape that differs from the fit's is refused here, naming it: scikit-learn's check
        would call ``X.shape[1]`` (a height, or a channel count) its number of features.
        """
        fitted = getattr(self, "_sample_shape", None)
        shape = getattr(X, "shape", None)
        reshapes = hasattr(X, "reshape") or isinstance(X, RowSource)
        if fitted is None or shape is None or len(shape) < 2 or not reshapes:
            return X
        sample = tuple(int(d) for d in shape[1:])
        if sample == fitted or (len(sample) == 1 and len(fitted) == 1):
            return X  # flat samples: scikit-learn's own message names their features
        network_shape = tuple(self.input_shape_)
        if self.network in _CONV_INPUTS and network_shape[0] == 1:
            forms = (network_shape, network_shape[1:])
            if sample in forms and fitted in forms:
                if isinstance(X, RowSource):
                    return X.reshaped(fitted)
                return X.reshape(shape[0], *fitted)
        raise self._other_sample_shape(sample)

    def _other_sample_shape(self, sample: tuple) -> ValueError:
        return ValueError(
            f"X has shape {sample} per sample, but {type(self).__name__} was fitted on "
            f"samples of shape {self._sample_shape}."
        )

    def _set_shape(self, X, reset):
        """Record (at fit) or check (later) the shape of one sample as the network sees it."""
        sample_shape = tuple(int(d) for d in X.shape[1:])
        if not reset:
            if sample_shape != self._sample_shape:
                raise self._other_sample_shape(sample_shape)
            return
        shape = sample_shape
        if self.input_shape is not None:
            shape = tuple(int(d) for d in self.input_shape)
            check_reshape(sample_shape, shape)
        if self.network in _CONV_INPUTS:
            dims, kind, shapes = _CONV_INPUTS[self.network]
            shape = (1, *shape) if len(shape) == dims else shape  # one channel
            if len(shape) != dims + 1:
                raise ValueError(
                    f"network={self.network!r} needs {kind}: X of shape (n_samples, "
                    f"{shapes}) or (n_samples, channels, {shapes}), or flat X with "
                    f"input_shape=(channels, {shapes}); got X of shape {X.shape}."
                )
        self._sample_shape = sample_shape
        self.input_shape_ = shape

    def _validate_source(self, X, y, reset, labels_needed=True, min_samples=2):
        """An array on disk or a torch Dataset as a :class:`RowSource`, and its labels.

        What scikit-learn checks on the whole array up front is checked here where it can be
        without reading every sample (the shape, the number of samples and features, the
        labels); finite values are checked as batches are read. ``min_samples``: 2 to fit
        (as for arrays in memory), 1 to embed.
        """
        source, y = make_source(X, y, labels=labels_needed)
        if y is None and labels_needed:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None "
                "(a torch Dataset of (x, label) pairs brings its own)."
            )
        n_values = int(np.prod(source.sample_shape))
        if len(source) < min_samples or n_values < 1:
            raise ValueError(
                f"Found array with {len(source)} sample(s) and {n_values} feature(s) "
                f"(shape={source.shape}) while a minimum of {min_samples} sample(s) and 1 "
                f"feature is required by {type(self).__name__}."
            )
        if not reset:  # the per-sample shape, as for arrays in memory
            source = self._in_fitted_form(source)
        check_n_features(self, source, reset=reset)
        check_feature_names(self, source, reset=reset)
        return source, y

    def _validate_X(self, X, reset):
        if is_streamed(X):
            X, _ = self._validate_source(X, None, reset, labels_needed=False, min_samples=1)
        else:
            X = as_host_tensor(X)
            X = X if reset else self._in_fitted_form(X)
            X = validate_data(self, X, reset=reset, dtype=np.float32, allow_nd=True)
        self._set_shape(X, reset)
        return self._as_network_input(X)

    def _as_network_input(self, X):
        if isinstance(X, RowSource):
            return X.reshaped(self.input_shape_)  # a view: rows come in this shape
        return np.ascontiguousarray(X.reshape(X.shape[0], *self.input_shape_))
