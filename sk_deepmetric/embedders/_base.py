"""The base class of every ``*Embedder``: parameters, network, batching, training, transform.

Each public estimator (:mod:`._tuple`, :mod:`._classifier`, :mod:`._custom`) adds its loss's
parameters, their constraints, its docstring and :meth:`_BaseEmbedder._build_loss`. The checks
of ``X`` and ``y`` come from :class:`._inputs._InputMixin`.
"""

from __future__ import annotations

import copy
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

from .._devices import broadcast_object, place_data, resolve_device, shard, torch_threads
from .._training import (
    OPTIMIZERS,
    Training,
    embed,
    fit_loop,
    init_optimizer,
    init_scheduler,
)
from .._training import NonFiniteLoss as _NonFiniteLoss
from .._validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    _fit_context,
    check_is_fitted,
    check_random_state,
    did_you_mean,
    external_stacklevel,
)
from ..augment import make_augmentation
from ..metrics import mean_average_precision_at_r
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
from ._inputs import _InputMixin
from ._params import (
    AUTO_LEARNING_RATE,
    AUTO_MAX_ITER,
    COMMON_PARAMS,
    DEFAULT_CONV_CHANNELS,
    make_init,
)


class _BaseEmbedder(_InputMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Everything the embedders share: parameters, network, batching, training, transform."""

    #: Loss parameters of the subclass (name -> default); they come first in the signature.
    _loss_params: ClassVar[dict] = {}
    #: Defaults of common parameters that differ for this loss (e.g. ``normalize``).
    _default_overrides: ClassVar[dict] = {}
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
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "lr_schedule": [None, StrOptions({"cosine", "step"})],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "validation_holdout": [StrOptions({"auto", "classes", "samples"})],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "device": [str, torch.device],
        "precision": [StrOptions({"32", "bf16", "fp16"})],
        "compile": ["boolean"],
        "n_threads": [None, Interval(Integral, 1, None, closed="left"), Options(Integral, {-1})],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            common = {k: cls._default_overrides.get(k, v) for k, v in COMMON_PARAMS.items()}
            cls.__init__ = make_init({**cls._loss_params, **common})

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
        if self.precision == "fp16" and resolve_device(self.device).type != "cuda":
            raise ValueError(
                "`precision`='fp16' needs a CUDA device (float16 training on CPU is slow and "
                "unstable); use precision='bf16' or '32' on CPU."
            )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the network on ``X`` with class labels ``y``.

        Starts from fresh weights unless ``warm_start=True`` and the estimator is fitted.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
            Training data; images may be ``(n, H, W)`` or ``(n, C, H, W)``.
        y : array-like of shape (n_samples,)
            Class labels (integers, strings, ...); at least 2 classes.

        Returns
        -------
        self : object
            The fitted estimator.
        """
        continuing = self.warm_start and hasattr(self, "module_")
        return self._fit(X, y, continuing=continuing, max_iter=self.max_iter, partial=False)

    def partial_fit(self, X, y):
        """Train for one epoch on ``X``, ``y``, continuing from the current weights.

        The first call initialises the estimator. Early stopping and the learning-rate
        schedule do not apply; the optimiser state carries over between calls.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
        y : array-like of shape (n_samples,)

        Returns
        -------
        self : object
        """
        continuing = hasattr(self, "module_")
        if not continuing:
            self._validate_params()
        return self._fit(X, y, continuing=continuing, max_iter=1, partial=True)

    def transform(self, X):
        """Embed ``X``.

        Runs in eval mode without gradients, in fixed-size chunks on ``device``: each row's
        embedding does not depend on the other rows passed with it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_components), dtype float32
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        device = resolve_device(self.device)
        with torch_threads(self._threads(device)):
            self.module_.to(device)
            return embed(self.module_, torch.from_numpy(X), device)

    def score(self, X, y):
        """MAP@R of the embedding of ``X``, leave-one-out, with cosine similarity.

        Each sample queries all the others; see
        :func:`sk_deepmetric.metrics.mean_average_precision_at_r`. Higher is better, so
        ``GridSearchCV`` can use it without ``scoring=``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        score : float
            In ``[0, 1]``.
        """
        embedding = self.transform(X)
        labels = np.unique(np.asarray(y), return_inverse=True)[1].ravel()
        return float(
            mean_average_precision_at_r(embedding, labels, distance="cosine", device="cpu")
        )

    # ----------------------------------------------------------------- pickling
    def __getstate__(self):
        """Store the network, loss and optimiser state on the CPU (loadable without a GPU)."""
        state = super().__getstate__()
        for name in ("module_", "loss_"):
            module = state.get(name)
            if module is not None and any(p.device.type != "cpu" for p in _tensors(module)):
                state[name] = copy.deepcopy(module).to("cpu")
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
    def _fit(self, X, y, *, continuing, max_iter, partial):
        X, y_encoded = self._validate_data_and_target(X, y, reset=not continuing)
        validation = None
        if not partial:
            validation = holdout_plan(
                y_encoded, self.early_stopping, self.validation_holdout, self.validation_fraction
            )
        if max_iter is None:
            max_iter = AUTO_MAX_ITER[validation is not None]
        device = resolve_device(self.device)
        if not continuing:
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            seed = broadcast_object(seed)  # under torchrun: rank 0's, so all ranks agree
            self._rng = np.random.default_rng(seed)
            self.history_, self.n_iter_ = [], 0
            self._optimizer_state = None
        with torch_threads(self._threads(device)):
            result = self._train(X, y_encoded, device, continuing, max_iter, partial, validation)
        if result.interrupted or partial:
            return self
        # Convergence is judged over `n_iter_no_change` epochs: a shorter budget is a choice,
        # not a failure, unless early stopping was asked for explicitly.
        judged = self.early_stopping is True or max_iter >= self.n_iter_no_change
        if judged and not result.converged and result.n_epochs == max_iter:
            self._warn_unconverged(max_iter, result.stalled, validated=validation is not None)
        return self

    def _warn_unconverged(self, max_iter, stalled, validated):
        """Say that ``max_iter`` ended the fit, and whether the watched value still improved."""
        watched = "validation score" if validated else "training loss"
        advice = "" if validated else ", or set early_stopping=True"
        if stalled == 0:
            state = f"while its {watched} was still improving"
        else:  # it had flattened; only the patience had not run out
            when = (
                "never improved on the starting weights' score"
                if stalled >= max_iter
                else f"last improved in epoch {self.history_[-1]['epoch'] - stalled}"
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
        torch_gen = torch.Generator().manual_seed(int(self._rng.integers(2**62)))
        if not continuing:
            self.module_ = self._init_module(X, torch_gen).to(device)
            self.loss_ = self._init_loss(torch_gen).to(device)
            self._init_loss_from_data(X, y, device)
        train, validation = holdout_split(
            y, validation_plan, self.validation_holdout, self.validation_fraction, self._rng
        )
        training = self._init_training(device, max_iter, schedule=not partial)
        X_t = place_data(self._as_network_input(X), device)  # on the device if it fits
        y_t = torch.from_numpy(y).to(device)
        sampler = self._sampler(y[train])
        X_t, y_t, validation_score = self._hold_out(X_t, y_t, y, train, validation, device)
        try:
            result = fit_loop(
                training,
                X_t,
                y_t,
                lambda: iter(sampler),
                max_iter=max_iter,
                history=self.history_,
                seed=int(self._rng.integers(2**62)),
                validation_score=validation_score,
                n_iter_no_change=self.n_iter_no_change,
                tol=self.tol,
                verbose=self.verbose,
                description=type(self).__name__,
            )
        except _NonFiniteLoss as exc:
            self.n_iter_ = len(self.history_)
            raise FloatingPointError(
                f"The training loss of {type(self).__name__} became {exc.args[0]} in epoch "
                f"{exc.epoch}; training stopped and the model keeps the weights of epoch "
                f"{exc.epoch - 1}. Try a lower `learning_rate_init` (currently "
                f"{self._learning_rate()})."
            ) from None
        self.n_iter_ = len(self.history_)
        self._optimizer_state = training.optimizer.state_dict()
        return result

    def _hold_out(self, X_t, y_t, y, train, validation, device):
        """The training rows of ``X_t``, ``y_t``, and the score of the held-out ones (or None).

        The score is MAP@R of the current network's embedding of the ``validation`` rows.
        """
        if validation is None:
            return X_t, y_t, None
        X_val, y_val = X_t[torch.from_numpy(validation).to(X_t.device)], y[validation]

        def validation_score():
            val_embedding = embed(self.module_, X_val, device)
            return mean_average_precision_at_r(val_embedding, y_val, distance="cosine")

        X_t, y_t = X_t[torch.from_numpy(train).to(X_t.device)], y_t[torch.from_numpy(train)]
        return X_t, y_t, validation_score

    def _init_module(self, X, generator: torch.Generator) -> nn.Module:
        """The network, built from the data's shape and initialised from ``generator``."""
        if isinstance(self.network, nn.Module):
            module = copy.deepcopy(self.network)
            module = nn.Sequential(module, L2Normalize()) if self.normalize else module
            self._check_output_width(module, X)
            return module  # a user's module keeps its own (maybe pre-trained) weights
        with forked_rng(int(torch.randint(2**62, (1,), generator=generator))):
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

    def _check_output_width(self, module, X):
        sample = torch.from_numpy(self._as_network_input(X[:2]))
        was_training = module.training
        module.eval()
        with torch.no_grad():
            out = module(sample)
        module.train(was_training)
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
        raise NotImplementedError

    def _init_loss_from_data(self, X, y, device) -> None:
        """Set the new loss's parameters from the data and the initial network (default: keep)."""

    def _init_training(self, device, max_iter, schedule) -> Training:
        parameters = list(self.module_.parameters()) + list(self.loss_.parameters())
        optimizer = init_optimizer(
            self.optimizer, parameters, self._learning_rate(), self.weight_decay
        )
        if self._optimizer_state is not None:
            optimizer.load_state_dict(self._optimizer_state)
            for group in optimizer.param_groups:  # a schedule may have decayed it
                group["lr"] = self._learning_rate()
        scheduler = init_scheduler(self.lr_schedule, optimizer, max_iter) if schedule else None
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
        )

    def _learning_rate(self) -> float:
        """``learning_rate_init``, with "auto" resolved for the network."""
        if self.learning_rate_init != "auto":
            return self.learning_rate_init
        return AUTO_LEARNING_RATE[self.network in ("cnn", "cnn1d")]

    def _sampler(self, y):
        if self._batching == "balanced":
            if y.size < 2 * self.samples_per_class:  # the batch size is capped at y.size
                raise ValueError(
                    f"{type(self).__name__} needs at least 2 x `samples_per_class` "
                    f"({self.samples_per_class}) = {2 * self.samples_per_class} training "
                    f"samples, so that a batch holds two classes; got {y.size}. Lower "
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
