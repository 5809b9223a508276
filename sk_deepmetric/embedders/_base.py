"""The base class of every ``*Embedder``: parameters, network, batching, training, transform.

Each public estimator (:mod:`._tuple`, :mod:`._classifier`, :mod:`._custom`) adds its loss's
parameters, their constraints, its docstring and :meth:`BaseEmbedder._build_loss`. The checks
of ``X`` and ``y`` come from :class:`._inputs.InputMixin`.
"""

from __future__ import annotations

import copy
import functools
import inspect
import numbers
import re
import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from .._devices import (
    broadcast_object,
    check_same_data,
    place_data,
    resolve_device,
    shard,
    torch_threads,
)
from .._retrieval import map_at_r
from .._streaming import BadSample, RowSource, Stream, is_streamed, make_source
from .._training import (
    OPTIMIZERS,
    SCHEDULES,
    Training,
    embed,
    fit_loop,
    indexed_batches,
    inference_chunks,
    inference_rows,
    init_optimizer,
    init_scheduler,
    state_keys,
    streamed_batches,
)
from .._training import NonFiniteLoss as _NonFiniteLoss
from .._validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    check_consistent_length,
    check_is_fitted,
    check_random_state,
    column_or_1d,
    did_you_mean,
    discard_fit,
    external_stacklevel,
    fit_context,
)
from ..augment import make_augmentation
from ..networks import (
    ACTIVATIONS,
    MLP,
    ImageResNet,
    L2Normalize,
    SignalResNet,
    forked_rng,
    reset_parameters,
)
from ..samplers import ClassBalancedBatchSampler, ShuffledBatchSampler
from ._holdout import holdout_plan, holdout_split
from ._inputs import InputMixin
from ._params import (
    AUTO_LEARNING_RATE,
    AUTO_MAX_ITER,
    DEFAULT_CONV_CHANNELS,
    public_signature,
)
from ._seams import (
    PARAM_GROUPS,
    RoutedParamsMixin,
    check_seams,
    parameter_groups,
    routed,
    run_callbacks,
)


class BaseEmbedder(
    RoutedParamsMixin,
    InputMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Everything the embedders share: parameters, network, batching, training, transform."""

    #: Loss parameters of the subclass (name -> default); they come first in the signature.
    _loss_params: ClassVar[dict] = {}
    #: Defaults of common parameters that differ for this loss (e.g. ``normalize``).
    _default_overrides: ClassVar[dict] = {}
    #: The loss module the estimator trains with (its defaults are the estimator's, see
    #: :func:`._params.loss_params`), and the loss parameters whose estimator default differs.
    _loss_class: ClassVar[type | None] = None
    _tuned_defaults: ClassVar[dict] = {}
    #: "balanced" (P x K batches, tuple losses) or "shuffled" (classifier-style losses).
    _batching = "balanced"
    _cnn_skip = False

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "network": [StrOptions({"mlp", "cnn", "cnn1d"}), nn.Module],
        "hidden_layer_sizes": [tuple, list],
        "conv_channels": [None, tuple, list],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "skip_connection": ["boolean"],
        "input_shape": [None, tuple, list],
        "normalize": ["boolean"],
        "augment": [None, str, list, tuple, dict, callable],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "lr_schedule": [None, StrOptions(set(SCHEDULES)), type],
        "max_grad_norm": [None, Interval(Real, 0, None, closed="neither")],
        "callbacks": [None, list, tuple],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "validation_holdout": [StrOptions({"auto", "classes", "samples", "both"})],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "device": [str, torch.device],
        "precision": [StrOptions({"32", "bf16", "fp16"})],
        "compile": ["boolean"],
        "n_threads": [None, Interval(Integral, 1, None, closed="left"), Options(Integral, {-1})],
        "num_workers": [Interval(Integral, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        public_signature(cls)

    # ----------------------------------------------------------------- scikit-learn API
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        tags.input_tags.allow_nan = False
        return tags

    @property
    def _n_features_out(self):
        return self.n_components

    def _validate_params(self):
        """scikit-learn's checks, plus a "Did you mean ...?" for a misspelt option."""
        try:
            super()._validate_params()
        except InvalidParameterError as exc:
            match = re.match(r"The '(\w+)' parameter", str(exc))
            name = match.group(1) if match else None
            options = [
                o
                for c in self._parameter_constraints.get(name, [])
                if isinstance(c, StrOptions)
                for o in c.options
            ]
            hint = did_you_mean(getattr(self, name, None), options) if name else ""
            raise InvalidParameterError(f"{exc}{hint}") from None
        self._check_loss_params()

    def _check_loss_params(self):
        """Constraints between parameters, checked before any data is touched."""
        check_seams(self)
        if self._batching == "balanced" and self.batch_size < 2 * self.samples_per_class:
            raise ValueError(
                f"`batch_size` ({self.batch_size}) must be at least 2 x `samples_per_class` "
                f"({self.samples_per_class}) = {2 * self.samples_per_class}, so that a batch "
                "holds two classes."
            )
        if not _positive_ints(self.hidden_layer_sizes):
            raise ValueError(
                "`hidden_layer_sizes` must be a tuple of positive integers, got "
                f"{self.hidden_layer_sizes!r}."
            )
        if self.conv_channels is not None and (
            not self.conv_channels or not _positive_ints(self.conv_channels)
        ):
            raise ValueError(
                "`conv_channels` must be None or a non-empty tuple of positive integers "
                f"(the channels of each convolutional stage), got {self.conv_channels!r}."
            )
        make_augmentation(self.augment)  # the names and strengths; their fit to X at fit
        if self.input_shape is not None and (
            len(self.input_shape) not in (1, 2, 3)
            or not all(isinstance(d, numbers.Integral) and d >= 1 for d in self.input_shape)
        ):
            raise ValueError(
                "`input_shape` must be None or a tuple of 1 to 3 positive integers, e.g. "
                f"(channels, height, width), got {self.input_shape!r}."
            )
        if (
            self.input_shape is not None
            and isinstance(self.network, str)
            and self.network == "mlp"
            and self.augment is None
        ):
            layout = "signals" if len(self.input_shape) < 3 else "images"
            network = "cnn1d" if len(self.input_shape) < 3 else "cnn"
            warnings.warn(
                f"{type(self).__name__}: `input_shape`={tuple(self.input_shape)!r} has no "
                "effect with network='mlp', which flattens every sample (only `augment` reads "
                f"the shape there). For a convolutional network on {layout}, set "
                f"network={network!r}.",
                UserWarning,
                stacklevel=external_stacklevel(),
            )
        if self.precision == "fp16" and resolve_device(self.device).type != "cuda":
            raise ValueError(
                "`precision`='fp16' needs a CUDA device (float16 training on CPU is slow and "
                "unstable); use precision='bf16' or '32' on CPU."
            )

    @fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Train the network on ``X`` with class labels ``y``.

        Starts from fresh weights unless ``warm_start=True`` and the estimator is fitted.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape), \
                numpy.memmap or torch.utils.data.Dataset
            Training data; images may be ``(n, H, W)`` or ``(n, C, H, W)``. An array on disk
            (a ``numpy.memmap``, an h5py or zarr array) or a torch ``Dataset`` is read batch
            by batch, never loaded whole; see the user guide's "Data larger than memory".
        y : array-like of shape (n_samples,), default=None
            Class labels (integers, strings, ...); at least 2 classes. None only when ``X``
            is a ``Dataset`` whose items are ``(x, label)`` pairs.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        continuing = self.warm_start and hasattr(self, "module_")
        return self._fit(X, y, continuing=continuing, max_iter=self.max_iter, partial=False)

    def partial_fit(self, X, y=None, classes=None):
        """Train for one epoch on ``X``, ``y``, continuing from the current weights.

        The first call initialises the estimator. Early stopping and the learning-rate
        schedule do not apply; the optimiser state carries over between calls, under the
        current training parameters, as with ``warm_start``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape), \
                numpy.memmap or torch.utils.data.Dataset
            As in :meth:`fit`: arrays on disk and Datasets are read batch by batch.
        y : array-like of shape (n_samples,), default=None
            Class labels; None only for a ``Dataset`` of ``(x, label)`` pairs.
        classes : array-like of shape (n_classes,), default=None
            Every class the calls will see, as in scikit-learn's incremental estimators:
            needed on the first call by the losses with one weight per class (softmax,
            centre loss and the margin losses) when later calls bring classes the first
            does not hold; ignored after the first call. The tuple losses also accept new
            classes without it.

        Returns
        -------
        self : object
        """
        return self._partial_fit(X, y, classes)

    # scikit-learn's fit_context validates a method named partial_fit on its first call
    # only; under another name it validates every call, so that set_params between calls
    # (max_grad_norm=-1, optimizer="bogus") meets the checks of the first
    @fit_context(prefer_skip_nested_validation=True)
    def _partial_fit(self, X, y, classes):
        continuing = hasattr(self, "module_")
        return self._fit(
            X, y, continuing=continuing, max_iter=1, partial=True,
            classes=None if continuing else classes,
        )  # fmt: skip

    def transform(self, X, out=None):
        """Embed ``X``.

        Runs in eval mode without gradients, in fixed-size chunks on ``device``: each row's
        embedding does not depend on the other rows passed with it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape), \
                numpy.memmap or torch.utils.data.Dataset
            An array on disk or a ``Dataset`` (its items samples, or ``(x, label)`` pairs
            whose labels are ignored) is read in the chunks the network runs on: 256
            samples on a GPU and for rows of features; on a CPU, signals and images in
            chunks of about 131,072 input values (a power of two from 16 to 256 samples: 16
            images of 3x64x64).
        out : ndarray of shape (n_samples, n_components), dtype float32, default=None
            Where to write the embedding, e.g. a writeable ``numpy.memmap`` when it is too
            large for memory; None allocates a new array.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components), dtype float32
            ``out`` when given.
        """
        return self._transform(X, out)

    def _transform(self, X, out=None):
        """:meth:`transform`'s NumPy array, whatever container ``set_output`` asks for."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        if out is not None:
            out = self._check_out(out, len(X))
        device = resolve_device(self.device)
        with torch_threads(self._threads(device)):
            return self._embed_input(X, device, out=out)

    def score(self, X, y=None):
        """MAP@R of the embedding of ``X``, leave-one-out, with cosine similarity.

        Each sample queries all the others; see
        :func:`sk_deepmetric.metrics.mean_average_precision_at_r`. Higher is better, so
        ``GridSearchCV`` can use it without ``scoring=``. The embedding is computed in
        chunks (arrays on disk and Datasets are streamed) and held in memory,
        ``n_samples x n_components`` floats; the search is chunked.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape), \
                numpy.memmap or torch.utils.data.Dataset
        y : array-like of shape (n_samples,), default=None
            Class labels, checked as ``fit`` checks them (NaN, a mix of types that do not
            sort against each other, and continuous values are refused); None only for a
            ``Dataset`` of ``(x, label)`` pairs.

        Returns
        -------
        score : float
            In ``[0, 1]``.
        """
        if is_streamed(X):
            X, y = make_source(X, y)
            if y is None:
                raise ValueError(
                    f"{type(self).__name__}.score needs class labels: pass y, or a torch "
                    "Dataset of (x, label) pairs."
                )
        embedding = self._transform(X)  # not a read-only DataFrame's values under set_output
        if y is None:
            raise ValueError(f"{type(self).__name__}.score needs class labels: pass y.")
        y = column_or_1d(y)
        check_consistent_length(embedding, y)
        y = self._check_score_labels(y)
        labels = np.unique(y, return_inverse=True)[1].ravel()
        return float(map_at_r(embedding, labels, distance="cosine", device="cpu"))

    def _check_out(self, out, n_samples):
        expected = (n_samples, self.n_components)
        if not isinstance(out, np.ndarray):
            given = type(out).__name__
        elif out.shape != expected or out.dtype != np.float32 or not out.flags.writeable:
            given = f"{type(out).__name__} of shape {out.shape}, dtype {out.dtype}"
            given += "" if out.flags.writeable else ", read-only"
        else:
            return out
        raise ValueError(
            f"`out` must be a writeable float32 NumPy array of shape {expected} "
            f"(n_samples, n_components), got a {given}."
        )

    def _embed_input(self, X, device, out=None):
        """The current network's embedding of checked ``X`` (network-shaped rows, or a
        :class:`RowSource` streamed in chunks)."""
        if not isinstance(X, RowSource):
            X = place_data(X, device)
        return embed(self.module_, X, device, out=out, num_workers=self.num_workers)

    # ----------------------------------------------------------------- pickling
    def __getstate__(self):
        """Store the network, loss and optimiser state on the CPU (loadable without a GPU):
        the fitted modules, and the ``network`` and ``loss`` parameters when they are modules
        on another device, as copies (the estimator keeps its own)."""
        state = dict(super().__getstate__())  # not the estimator's own __dict__ (Python 3.11+)
        copies = {}  # one copy per module: the pickle keeps what is the same object

        def on_cpu(value):
            if not isinstance(value, nn.Module) or not _off_cpu(value):
                return value
            if id(value) not in copies:
                copies[id(value)] = copy.deepcopy(value).to("cpu")
            return copies[id(value)]

        for name in ("module_", "loss_", "network", "loss"):
            if name in state:
                state[name] = on_cpu(state[name])
        if state.get("_architecture") is not None:  # a copy: the estimator's is left alone
            state["_architecture"] = {k: on_cpu(v) for k, v in state["_architecture"].items()}
        if state.get("_optimizer_state") is not None:
            state["_optimizer_state"] = _to_cpu(state["_optimizer_state"])
        return state

    def __setstate__(self, state):
        """A model pickled before a parameter existed gets that parameter's default, which
        is what it was fitted with."""
        super().__setstate__(state)
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if parameter.default is not inspect.Parameter.empty and name not in self.__dict__:
                setattr(self, name, parameter.default)

    # ----------------------------------------------------------------- steps of fit
    def _fit(self, X, y, *, continuing, max_iter, partial, classes=None):
        before = getattr(self, "history_", None)
        try:
            return self._fit_steps(X, y, continuing, max_iter, partial, classes)
        except BaseException as exc:
            # a fresh fit that fails (bad data, a non-finite loss, Ctrl-C) before finishing
            # an epoch of its own leaves no half-built model behind, nor the one an earlier
            # fit left (whose input attributes it may have overwritten): the estimator is
            # unfitted; so is one that meets a bad sample later, in data read batch by batch
            # (a fit on them in memory would have been refused before training)
            bad_data = isinstance(exc, BadSample)
            history = getattr(self, "history_", None)
            trained = bool(history) and history is not before
            if not continuing and (bad_data or not trained):
                self._discard_fit()
            raise

    def _fit_steps(self, X, y, continuing, max_iter, partial, classes):
        if continuing:
            self._check_unchanged_architecture()
        X, y_encoded = self._validate_data_and_target(
            X, y, reset=not continuing, classes=classes, partial=partial
        )
        check_same_data(X.shape, y_encoded)  # under torchrun: a mismatch would hang
        validation = None
        if not partial:
            validation = holdout_plan(
                y_encoded, self.early_stopping, self.validation_holdout, self.validation_fraction
            )
        device = resolve_device(self.device)
        if not continuing:
            self._warn_if_wide(X)
            self._warn_if_flattened(X)
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            seed = broadcast_object(seed)  # under torchrun: rank 0's, so all ranks agree
            self._rng = np.random.default_rng(seed)
            self._holdout_state = None
            self.history_, self.n_iter_ = [], 0
            self._optimizer_state = None
            self._architecture = self._architecture_params()
        with torch_threads(self._threads(device)):
            result, max_iter, validated = self._train(
                X, y_encoded, device, continuing, max_iter, partial, validation
            )
        if result.interrupted or partial:
            return self
        # Convergence is judged over `n_iter_no_change` epochs: a shorter budget is a choice,
        # not a failure, unless early stopping was asked for explicitly.
        judged = self.early_stopping is True or max_iter >= self.n_iter_no_change
        if judged and not result.converged and result.n_epochs == max_iter:
            self._warn_unconverged(max_iter, result.stalled, validated, result.best_epoch)
        elif result.best_epoch == -1 and result.n_epochs > 0:
            self._warn_untrained(result.n_epochs, len(y_encoded))
        return self

    def _discard_fit(self):
        """Forget everything a fit sets, so that the estimator is unfitted again."""
        discard_fit(self, _FIT_STATE)

    def _holdout_rng(self, continuing: bool) -> np.random.Generator:
        """The generator early stopping's hold-out is drawn from.

        The first fit that holds data out draws them from the fit's own generator and saves
        that generator's state; a warm start draws from a copy of the saved state, so that
        the same data give the same hold-out: a new one would validate on samples, or whole
        classes, that the earlier fit trained on. Called only by a fit that holds data out.
        """
        state = getattr(self, "_holdout_state", None)  # None: no hold-out yet (or pickled
        if continuing and state is not None:  # before it was kept)
            rng = np.random.default_rng()
            rng.bit_generator.state = copy.deepcopy(state)
            return rng
        self._holdout_state = copy.deepcopy(self._rng.bit_generator.state)
        return self._rng

    def _architecture_params(self) -> dict:
        """The parameters that define the network and the loss, which ``warm_start`` keeps
        (a module you passed, ``network`` or ``loss``, is kept as the object itself)."""
        names = [*_ARCHITECTURE, *(n for n in self._loss_params if n not in _TRAINING_ONLY)]
        params = self.get_params(deep=False)
        return {n: params[n] for n in names}

    def _check_unchanged_architecture(self):
        built = getattr(self, "_architecture", None)
        if built is None:  # pickled before this check existed
            return
        for name, value in self._architecture_params().items():
            if name in built and not _same(value, built[name]):
                both = isinstance(value, nn.Module) and isinstance(built[name], nn.Module)
                modules = " (a module is compared by identity)" if both else ""
                raise ValueError(
                    f"{type(self).__name__} continues training its fitted network and loss "
                    f"(warm_start=True or partial_fit), but `{name}` changed from "
                    f"{_shown(built[name])} to {_shown(value)} since they were built{modules}. "
                    "Set it back, or set warm_start=False to start afresh."
                )

    def _warn_if_wide(self, X):
        n_values = int(np.prod(X.shape[1:]))
        if self.n_components > max(WIDE_EMBEDDING, 16 * n_values):
            warnings.warn(
                f"`n_components`={self.n_components} is far above the {n_values} values of "
                "each sample: an embedding cannot carry more than its input, and the "
                "network's last layer grows with it (memory and time). Lower n_components.",
                UserWarning,
                stacklevel=external_stacklevel(),
            )

    def _warn_if_flattened(self, X):
        """Say that the MLP flattens samples that came as signals or images."""
        if not (
            isinstance(self.network, str)
            and self.network == "mlp"
            and self.input_shape is None
            and self.augment is None
            and len(X.shape) > 2
        ):
            return
        shape = tuple(X.shape[1:])
        layout = (
            "images, network='cnn'"
            if len(shape) == 3
            else "signals (channels, length), network='cnn1d'; for images (height, width), "
            "network='cnn'"
        )
        warnings.warn(
            f"{type(self).__name__}: the samples of X have shape {shape}, which "
            "network='mlp' flattens to vectors of independent features: a pattern that "
            "moves along the sample's axes is lost. For a convolutional network on "
            f"{layout}. To keep the MLP without this warning, pass X reshaped to "
            "(n_samples, n_features).",
            UserWarning,
            stacklevel=external_stacklevel(),
        )

    def _warn_untrained(self, n_epochs, n_samples):
        """Say that early stopping kept the weights the fit started from (``n_samples``:
        those given to fit, held-out ones included)."""
        start = "the previous fit's" if self.n_iter_ > n_epochs else "the untrained network's"
        holdout = ", validation_holdout" if "validation_holdout" in self._get_param_names() else ""
        advice = f"try another learning_rate_init{holdout} or early_stopping=False."
        if n_samples < 2 * self.batch_size:  # an epoch is one or two optimiser steps
            advice = (
                f"with {n_samples} samples an epoch is one or two optimiser steps and the "
                "held-out score is coarse: early_stopping=False with max_iter=200 trains on "
                "every sample for 200 epochs."
            )
        warnings.warn(
            f"{type(self).__name__}: none of the {n_epochs} epochs of this fit improved the "
            f"validation score of its starting weights ({start}), so early stopping kept "
            "them. The held-out score may be flat (held-out data that the embedding cannot "
            "separate, or too few of them to score); " + advice,
            UserWarning,
            stacklevel=external_stacklevel(),
        )

    def _warn_unconverged(self, max_iter, stalled, validated, best_epoch=None):
        """Say that ``max_iter`` ended the fit, and whether the watched value still improved
        (``best_epoch``: the loop's, the epoch of this fit whose weights are kept)."""
        watched = "validation score" if validated else "training loss"
        advice = "" if validated else ", or set early_stopping=True"
        if stalled == 0:
            state = f"while its {watched} was still improving"
        else:  # it had flattened; only the patience had not run out
            last = self.history_[-1]["epoch"]
            if stalled < max_iter:
                when = f"last improved in epoch {last - stalled}"
            elif best_epoch is None or best_epoch < 0:
                when = "never improved on the starting weights' score"
            else:  # it rose, by less than tol each time
                when = (
                    "rose, but never by more than tol over the best before it (the weights "
                    f"of its best epoch, {last - max_iter + best_epoch + 1}, are kept)"
                )
            state = (
                f"before n_iter_no_change={self.n_iter_no_change} epochs without an "
                f"improvement by more than tol={self.tol}: its {watched} {when}"
            )
            advice += ", or lower n_iter_no_change"
        warnings.warn(
            f"{type(self).__name__} reached max_iter={max_iter} epochs {state}. "
            f"Increase max_iter{advice}.",
            ConvergenceWarning,
            stacklevel=external_stacklevel(),
        )

    def _train(self, X, y, device, continuing, max_iter, partial, validation_plan):
        """Build (or continue) the network and loss and run the epochs.

        Returns the loop's result, the epoch budget used and whether it validated.
        """
        torch_gen = torch.Generator().manual_seed(int(self._rng.integers(2**62)))
        if not continuing:
            self.module_ = self._init_module(X, torch_gen).to(device)
            self.loss_ = self._init_loss(torch_gen).to(device)
            self._init_loss_from_data(X, y, device)
        else:  # warm start or partial_fit, perhaps after set_params(device=...)
            self.module_.to(device)
            self.loss_.to(device)
        train, validation = holdout_split(
            y,
            validation_plan,
            self.validation_holdout,
            self.validation_fraction,
            self._rng if validation_plan is None else self._holdout_rng(continuing),
        )
        train, validation = self._keep_a_batch(y, train, validation)
        if max_iter is None:
            max_iter = AUTO_MAX_ITER[validation is not None]
        training = self._init_training(device, max_iter, schedule=not partial)
        X_t = self._as_network_input(X)
        if not isinstance(X_t, RowSource):
            X_t = place_data(X_t, device)  # on the device if it fits; a source is streamed
        y_t = torch.from_numpy(y).to(device)
        sampler = self._sampler(y[train], held_out=0 if validation is None else validation.size)
        X_t, y_t, validation_score = self._hold_out(X_t, y_t, y, train, validation, device)
        if isinstance(X_t, RowSource):
            stream = Stream(X_t, sampler, device, self.num_workers)  # workers kept per fit

            def batches():
                return streamed_batches(stream, y_t)
        else:

            def batches():
                return indexed_batches(X_t, y_t, sampler, device)

        run_callbacks(self, "on_train_begin")

        def on_epoch_end(record):
            self.n_iter_ = len(self.history_)
            return run_callbacks(self, "on_epoch_end", record)

        hook = None
        if isinstance(self.network, nn.Module):
            network = self.module_[0] if self.normalize else self.module_
            check = functools.partial(_check_training_output, n_components=self.n_components)
            hook = network.register_forward_hook(check)
        try:
            result = fit_loop(
                training,
                batches,
                max_iter=max_iter,
                history=self.history_,
                seed=int(self._rng.integers(2**62)),
                validation_score=validation_score,
                n_iter_no_change=self.n_iter_no_change,
                tol=self.tol,
                verbose=self.verbose,
                description=type(self).__name__,
                on_epoch_end=on_epoch_end if self.callbacks else None,
            )
        except _NonFiniteLoss as exc:
            self.n_iter_ = len(self.history_)
            kept = continuing or bool(self.history_)
            raise FloatingPointError(self._non_finite_message(exc, X, kept)) from None
        except BaseException:  # e.g. a callback's: the loop kept the last finished epoch
            self.n_iter_ = len(self.history_)
            raise
        finally:  # the loop put back the optimiser's state with the weights it kept
            self._optimizer_state = training.optimizer.state_dict()
            self._optimizer_class = type(training.optimizer)
            if hook is not None:
                hook.remove()
        self.n_iter_ = len(self.history_)
        run_callbacks(self, "on_train_end")
        return result, max_iter, validation is not None

    def _keep_a_batch(self, y, train, validation):
        """Without validation when the hold-out would leave too few samples for one batch,
        unless early stopping was asked for (then the sampler explains)."""
        if validation is None or self.early_stopping is True:
            return train, validation
        if train.size >= self._min_training_samples():
            return train, validation
        warnings.warn(
            f"{type(self).__name__}: holding out {validation.size} of the {y.size} samples "
            f"for early stopping would leave {train.size}, fewer than a batch needs "
            f"({self._min_training_samples()}); training on all of them without early "
            "stopping instead. Give more data, or set early_stopping=False to silence this.",
            UserWarning,
            stacklevel=external_stacklevel(),
        )
        return np.arange(y.size), None

    def _min_training_samples(self) -> int:
        return 2 * self.samples_per_class if self._batching == "balanced" else 2

    def _non_finite_message(self, exc, X, kept: bool) -> str:
        what = {
            "loss": f"The training loss of {type(self).__name__} became {exc.args[0]}",
            "weights": f"The weights of {type(self).__name__} became non-finite",
            "validation": f"{type(self).__name__}'s embedding of the held-out samples became "
            "non-finite",
        }[getattr(exc, "kind", "loss")]
        # on data read batch by batch the scale is unknown without a pass over them
        scale = 0.0 if isinstance(X, RowSource) or not X.size else float(np.abs(X).max())
        if scale > LARGE_INPUT:
            advice = (
                f"X has values up to {scale:.3g}: standardise it first (e.g. "
                "sklearn.preprocessing.StandardScaler in a pipeline)."
            )
        else:
            advice = f"Try a lower `learning_rate_init` (currently {self._learning_rate()})."
        if getattr(exc, "kind", "loss") == "weights":
            advice = (
                "A step with non-finite gradients does this: a loss that is finite where its "
                "gradient is not (a custom loss taking sqrt or log of 0, say), or a learning "
                f"rate too high. {advice}"
            )
        if callable(getattr(self, "augment", None)):
            advice += " `augment` is a callable: check that it returns finite values."
        if exc.epoch == 0:
            where = "before training, with the network's initial weights"
        else:
            where = f"in epoch {exc.epoch}; training stopped"
        if kept:
            where += f" and the model keeps the weights of epoch {len(self.history_)}"
        elif exc.epoch > 0:
            where += " and the estimator is left unfitted"
        return f"{what} {where}. {advice}"

    def _hold_out(self, X_t, y_t, y, train, validation, device):
        """The training rows of ``X_t``, ``y_t``, and the score of the held-out ones (or None).

        The score is MAP@R of the current network's embedding of the ``validation`` rows.
        """
        if validation is None:
            return X_t, y_t, None
        scored = validation
        if validation.size > MAX_SCORED_SAMPLES:  # a fixed subsample: bounded cost per epoch
            chosen = self._rng.choice(validation.size, MAX_SCORED_SAMPLES, replace=False)
            scored = validation[np.sort(chosen)]
        y_val = y[scored]
        if isinstance(X_t, RowSource):
            X_val = X_t.subset(scored)
            rows = inference_rows(X_val.shape[1:], device)
            X_val = Stream(X_val, inference_chunks(len(X_val), rows), device, self.num_workers)
            X_t, y_t = X_t.subset(train), y_t[torch.from_numpy(train).to(y_t.device)]
        else:
            X_val = X_t[torch.from_numpy(scored).to(X_t.device)]

        def validation_score():
            val_embedding = embed(self.module_, X_val, device, num_workers=self.num_workers)
            if not np.isfinite(val_embedding).all():
                raise _NonFiniteLoss(float("nan"), kind="validation")
            return map_at_r(val_embedding, y_val, distance="cosine")

        if not isinstance(X_t, RowSource):
            X_t = X_t[torch.from_numpy(train).to(X_t.device)]
            y_t = y_t[torch.from_numpy(train).to(y_t.device)]
        return X_t, y_t, validation_score

    def _init_module(self, X, generator: torch.Generator) -> nn.Module:
        """The network, built from the data's shape and initialised from ``generator``."""
        seed = int(torch.randint(2**62, (1,), generator=generator))
        if isinstance(self.network, nn.Module):
            module = copy.deepcopy(self.network)
            # the check's forward pass materialises lazy layers (nn.LazyLinear), which draw
            # their weights from torch's global RNG: seeded here as the built-in networks are
            with forked_rng(seed):
                self._check_output(module, X)
            # a user's module keeps its own (maybe pre-trained) weights
            return nn.Sequential(module, L2Normalize()) if self.normalize else module
        with forked_rng(seed):
            if self.network in ("cnn", "cnn1d"):
                network = ImageResNet if self.network == "cnn" else SignalResNet
                module = network(
                    self.input_shape_,
                    self.n_components,
                    channels=DEFAULT_CONV_CHANNELS
                    if self.conv_channels is None
                    else tuple(self.conv_channels),
                    activation=self.activation,
                    dropout=self.dropout,
                    normalize=self.normalize,
                    skip=self.skip_connection and self._cnn_skip,
                )
            else:
                module = MLP(
                    int(np.prod(self.input_shape_)),
                    self.n_components,
                    hidden_layer_sizes=tuple(self.hidden_layer_sizes),
                    activation=self.activation,
                    dropout=self.dropout,
                    batch_norm=self.batch_norm,
                    normalize=self.normalize,
                    skip=self.skip_connection,
                )
        return reset_parameters(module, generator)

    def _check_output(self, module: nn.Module, X) -> None:
        """Run a user's ``module`` (before the L2 normalisation) in eval mode on two rows of
        ``X``, on the device its parameters are on, and check that it returns the embedding."""
        X = self._as_network_input(X)
        rows = X.read(np.arange(2)) if isinstance(X, RowSource) else X[:2]
        # a copy: X may be the caller's array, and a module may scale its input in place
        sample = torch.from_numpy(np.array(rows)).to(_device_of(module))
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                out = module(sample)
        except Exception as exc:  # a width or shape the module does not take
            raise ValueError(
                f"The `network` module failed on a batch of X of shape {tuple(sample.shape)} "
                f"(samples of shape {tuple(self.input_shape_)}): {type(exc).__name__}: {exc}. "
                f"{_input_hint(module)}"
            ) from exc
        finally:
            module.train(was_training)
        if not _is_embedding(out):
            raise ValueError(_not_an_embedding(out, self.n_components, "eval"))
        if out.ndim != 2 or out.shape[1] != self.n_components:
            raise ValueError(
                f"The `network` module maps a batch of X to shape {tuple(out.shape)}, but the "
                f"embedding must have shape (batch_size, n_components={self.n_components}); "
                "set `n_components` to the module's output width."
            )

    def _init_loss(self, generator: torch.Generator) -> nn.Module:
        with forked_rng(int(torch.randint(2**62, (1,), generator=generator))):
            loss = self._build_loss(len(self.classes_), self.n_components)
        return reset_parameters(loss, generator)

    def _build_loss(self, n_classes: int, n_components: int) -> nn.Module:
        """The loss module (a tuple loss: it takes neither ``n_classes`` nor ``n_components``)."""
        return self._loss_class(**self._loss_kwargs())

    def _loss_kwargs(self) -> dict:
        """The loss parameters that ``_loss_class`` takes, as set on the estimator."""
        accepted = inspect.signature(self._loss_class).parameters
        return {name: getattr(self, name) for name in self._loss_params if name in accepted}

    def _init_loss_from_data(self, X, y, device) -> None:
        """Set the new loss's parameters from the data and the initial network (default: keep)."""

    def _parameter_groups(self, learning_rate: float) -> list[dict]:
        """The optimiser's parameter groups: those of ``optimizer__param_groups`` if given,
        and the rest in the default groups (:meth:`_default_parameter_groups`)."""
        network = self.module_
        if isinstance(network, nn.Sequential) and isinstance(network[-1], L2Normalize):
            network = network[0]  # a module you passed: its own names, not the wrapper's
        named = [
            *((f"module_.{n}", p) for n, p in network.named_parameters()),
            *((f"loss_.{n}", p) for n, p in self.loss_.named_parameters()),
        ]
        default = self._default_parameter_groups(learning_rate)
        return parameter_groups(self, named, default, learning_rate)

    def _default_parameter_groups(self, learning_rate: float) -> list[dict]:
        """The network's and the loss's parameters (class weights, centres) together, at
        ``learning_rate``; a loss whose parameters train at their own rate gives them a
        group of their own (``ProxyAnchorEmbedder``)."""
        parameters = [*self.module_.parameters(), *self.loss_.parameters()]
        return [{"params": parameters, "lr": learning_rate}]

    def _init_training(self, device, max_iter, schedule) -> Training:
        trained = (*self.module_.parameters(), *self.loss_.parameters())
        if not any(p.requires_grad for p in trained):
            raise ValueError(
                f"{type(self).__name__} has nothing to train: no parameter of the network or "
                "of the loss requires grad (all frozen with requires_grad_(False), or none "
                "at all). Unfreeze some, or use the network as it is, without fitting."
            )
        groups = self._parameter_groups(self._learning_rate())
        try:
            optimizer = init_optimizer(
                self.optimizer,
                groups,
                self._learning_rate(),
                self.weight_decay,
                {k: v for k, v in routed(self, "optimizer__").items() if k != PARAM_GROUPS},
            )
        except ValueError as exc:
            raise ValueError(
                f"{type(self).__name__}: {exc}. Check `optimizer` and its `optimizer__*` "
                "arguments" + _none_routed(self, "optimizer__") + "."
            ) from exc.__cause__
        if self._optimizer_state is not None and self._saved_for(optimizer):
            self._load_optimizer_state(optimizer)
        scheduler = None
        if schedule:
            options = routed(self, "lr_schedule__")
            try:
                scheduler = init_scheduler(self.lr_schedule, optimizer, max_iter, options)
            except ValueError as exc:
                raise ValueError(
                    f"{type(self).__name__}: {exc}. Check `lr_schedule` and its "
                    "`lr_schedule__*` arguments" + _none_routed(self, "lr_schedule__") + "."
                ) from exc.__cause__
        scaler = torch.amp.GradScaler(device.type) if self.precision == "fp16" else None
        augment = make_augmentation(self.augment, self.input_shape_)
        generator = None
        if augment is not None:  # each rank draws its own augmentations
            seed = int(self._rng.integers(2**62)) + shard()["rank"]
            generator = torch.Generator(device=device).manual_seed(seed)
        return Training(
            self.module_,
            self.loss_,
            optimizer,
            scheduler,
            device,
            self.precision,
            scaler,
            compile=self.compile,
            augment=augment,
            generator=generator,
            max_grad_norm=self.max_grad_norm,
        )

    def _saved_for(self, optimizer) -> bool:
        """Whether the saved optimiser state suits ``optimizer``: that of another class
        (Adam's moments for SGD), or one that lacks what its settings need (Adam's
        ``max_exp_avg_sq`` once ``amsgrad`` is on), means nothing to it, which starts
        afresh instead."""
        saved = getattr(self, "_optimizer_class", None)  # None: pickled before it was kept
        if saved is not None and saved is not type(optimizer):
            return False
        needed = state_keys(optimizer)
        return needed is None or all(
            needed <= set(state) for state in self._optimizer_state["state"].values()
        )

    def _load_optimizer_state(self, optimizer) -> None:
        """Load the saved state into the new ``optimizer``, keeping the new one's settings.

        torch's ``load_state_dict`` also restores the saved parameter groups' settings;
        every current one (``lr``, ``weight_decay``, ``betas``, ``momentum``, the
        ``optimizer__*`` values) is put back, and what a schedule added (``initial_lr``)
        is dropped, so that the new schedule starts from the current rate.
        """
        settings = [{k: v for k, v in g.items() if k != "params"} for g in optimizer.param_groups]
        try:
            optimizer.load_state_dict(self._optimizer_state)
        except ValueError as exc:
            raise ValueError(
                f"{type(self).__name__}: warm_start continues from the optimiser state of "
                "the last fit, whose parameter groups differ from this fit's (did "
                "`optimizer__param_groups` change?); set warm_start=False to start afresh."
            ) from exc
        for group, current in zip(optimizer.param_groups, settings, strict=True):
            params = group["params"]
            group.clear()
            group.update(current, params=params)

    def _learning_rate(self) -> float:
        """``learning_rate_init``, with "auto" resolved for the network."""
        if self.learning_rate_init != "auto":
            return self.learning_rate_init
        return AUTO_LEARNING_RATE[self.network in ("cnn", "cnn1d")]

    def _sampler(self, y, held_out=0):
        if self._batching == "balanced":
            if y.size < 2 * self.samples_per_class:  # the batch size is capped at y.size
                after = f" after holding out {held_out} for early stopping" if held_out else ""
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 x `samples_per_class` "
                    f"({self.samples_per_class}) = {2 * self.samples_per_class} training "
                    f"samples, so that a batch holds two classes; got {y.size}{after}. Lower "
                    "`samples_per_class` or give more data."
                )
            return ClassBalancedBatchSampler(
                y, min(self.batch_size, y.size), self.samples_per_class, rng=self._rng, **shard()
            )
        return ShuffledBatchSampler(y.size, self.batch_size, rng=self._rng, **shard())

    def _threads(self, device):
        if self.n_threads == -1 or device.type != "cpu":
            return None
        return 1 if self.n_threads is None else self.n_threads


#: The parameters that define the network (``warm_start`` cannot change them).
_ARCHITECTURE = (
    "n_components",
    "network",
    "hidden_layer_sizes",
    "conv_channels",
    "activation",
    "dropout",
    "batch_norm",
    "skip_connection",
    "input_shape",
    "normalize",
)
#: Loss parameters that shape the training only, which ``warm_start`` may change.
_TRAINING_ONLY = ("samples_per_class", "proxy_lr_multiplier")
#: Private state a fit sets besides the attributes ending in ``_``.
_FIT_STATE = (
    "_rng",
    "_holdout_state",
    "_optimizer_state",
    "_optimizer_class",
    "_sample_shape",
    "_architecture",
)
#: ``n_components`` above this and 16 times the input's size gets a warning.
WIDE_EMBEDDING = 1024
#: Input values above this make a non-finite loss the input's fault, not the learning rate's.
LARGE_INPUT = 1e6
#: Early stopping scores MAP@R on at most this many held-out samples (a fixed random
#: subsample of larger hold-outs), so that an epoch's validation costs the same at any size.
MAX_SCORED_SAMPLES = 10_000


def _same(a, b) -> bool:
    if isinstance(a, nn.Module) or isinstance(b, nn.Module):
        return a is b  # the fit trains a copy of the module: the same object, the same network
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. arrays: compare what they hold
        return bool(np.array_equal(a, b))


def _shown(value) -> str:
    """A parameter's value in a message: a module by its class and identity, not its repr
    (a whole backbone)."""
    if isinstance(value, nn.Module):
        return f"<{type(value).__name__} module at {id(value):#x}>"
    return repr(value)


def _positive_ints(values) -> bool:
    return all(
        not isinstance(v, bool) and isinstance(v, numbers.Integral) and v >= 1 for v in values
    )


def _tensors(module: nn.Module):
    yield from module.parameters()
    yield from module.buffers()


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.to("cpu")
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _off_cpu(module: nn.Module) -> bool:
    """Whether a parameter or buffer of ``module`` is on another device than the CPU."""
    return any(t.device.type != "cpu" for t in _tensors(module))


def _device_of(module: nn.Module) -> torch.device:
    """The device of the module's first parameter (or buffer); the CPU if it has none."""
    return next((t.device for t in _tensors(module)), torch.device("cpu"))


def _input_hint(module: nn.Module) -> str:
    """What to check when ``module`` fails on a float32 batch of X."""
    dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()}
    if dtypes - {torch.float32}:
        shown = ", ".join(sorted(str(d) for d in dtypes))
        return (
            f"Its parameters are {shown}, but X reaches it as torch.float32: convert the "
            "module with .float()."
        )
    return "Does it take samples of that shape?"


def _is_embedding(out: object) -> bool:
    return isinstance(out, torch.Tensor) and out.is_floating_point()


def _not_an_embedding(out: object, n_components: int, mode: str) -> str:
    """The error for a network whose output (in ``mode``, "train" or "eval") is not the
    embedding tensor."""
    if isinstance(out, torch.Tensor):
        given = f"a tensor of dtype {out.dtype}"
    else:
        given = type(out).__name__
        kinds = [k.__name__ for k in (tuple, list, dict) if isinstance(out, k)]
        given += f" (a {kinds[0]})" if kinds and given != kinds[0] else ""
        given = f"an object of type {given}"
    return (
        f"The `network` module returned {given} in {mode} mode, but it must return the "
        f"embedding: a floating-point tensor of shape (batch_size, "
        f"n_components={n_components}), in training and in eval mode. Wrap a module that "
        "returns several outputs (a tuple, a dict, or torchvision's inception_v3 with "
        "aux_logits in training) in one whose forward returns the embedding alone."
    )


def _check_training_output(module, args, out, *, n_components: int) -> None:
    """A forward hook on a user's network during training: it may return something else in
    train mode than the eval-mode check at fit saw (early stopping's validation embeds in
    eval mode under the same hook)."""
    if not _is_embedding(out):
        mode = "train" if module.training else "eval"
        raise ValueError(_not_an_embedding(out, n_components, mode))


def _none_routed(estimator, prefix: str) -> str:
    """A note on the routed keywords set to None that the class was given (a class that
    takes an argument gets the None: set_params cannot remove the keyword)."""
    names = [f"`{prefix}{k}`" for k, v in routed(estimator, prefix).items() if v is None]
    if not names:
        return ""
    return (
        f" ({', '.join(names)} {'is' if len(names) == 1 else 'are'} None, which a class that "
        "takes the argument is given: set a value)"
    )
