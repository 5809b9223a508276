"""The ``*Embedder`` estimators: scikit-learn transformers that learn a deep metric embedding.

Each estimator trains a torch network (an MLP, a small CNN or the user's module) with one
metric-learning loss and maps ``X`` to embeddings of shape ``(n_samples, n_components)``,
ready for :class:`~sklearn.neighbors.KNeighborsClassifier` or retrieval. One private base class
holds everything; each public class adds its loss's parameters, their constraints, its
docstring and :meth:`_build_loss`.

The ``__init__`` of every class is generated from its parameter table (``_loss_params`` plus
:data:`_COMMON_PARAMS`) with an explicit signature: it only stores its keyword arguments, as
scikit-learn requires, without repeating 25 parameters in 11 classes.
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
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from ._training import (
    OPTIMIZERS,
    Training,
    broadcast_object,
    embed,
    fit_loop,
    init_optimizer,
    init_scheduler,
    place_data,
    resolve_device,
    shard,
    torch_threads,
)
from ._training import NonFiniteLoss as _NonFiniteLoss
from ._validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    _fit_context,
    did_you_mean,
)
from .distances import DISTANCES
from .losses._center import CenterLoss
from .losses._margin_softmax import (
    ArcFaceLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    SoftmaxLoss,
    SphereFaceLoss,
)
from .losses._pair import (
    NPAIRS_DISTANCES,
    TRIPLET_MINERS,
    AngularLoss,
    ContrastiveLoss,
    NPairsLoss,
    TripletMarginLoss,
)
from .metrics import mean_average_precision_at_r
from .networks import ACTIVATIONS, MLP, ConvNet, L2Normalize, forked_rng, reset_parameters
from .samplers import ClassBalancedBatchSampler, ShuffledBatchSampler

__all__ = [
    "AngularEmbedder",
    "ArcFaceEmbedder",
    "CenterLossEmbedder",
    "ContrastiveEmbedder",
    "CosFaceEmbedder",
    "LargeMarginSoftmaxEmbedder",
    "MetricEmbedder",
    "NPairsEmbedder",
    "SoftmaxEmbedder",
    "SphereFaceEmbedder",
    "TripletEmbedder",
]

#: ``max_iter=None``: epochs without early stopping (a short budget, [False]), and the cap
#: with it ([True]); the ``max_iter`` and ``early_stopping`` docstrings give the numbers.
AUTO_MAX_ITER = (5, 200)

#: Parameters every embedder shares, in signature order, with their defaults.
_COMMON_PARAMS = {
    "n_components": 128,
    "network": "mlp",
    "hidden_layer_sizes": (256,),
    "activation": "relu",
    "dropout": 0.0,
    "batch_norm": True,
    "skip_connection": True,
    "input_shape": None,
    "normalize": True,
    "batch_size": 128,
    "max_iter": None,
    "optimizer": "adam",
    "learning_rate_init": 1e-4,
    "weight_decay": 0.0,
    "lr_schedule": None,
    "early_stopping": "auto",
    "validation_fraction": 0.2,
    "validation_holdout": "classes",
    "n_iter_no_change": 20,
    "tol": 1e-4,
    "warm_start": False,
    "device": "auto",
    "precision": "32",
    "compile": False,
    "n_threads": None,
    "random_state": None,
    "verbose": 0,
}


def _make_init(params: dict) -> callable:
    """An ``__init__`` with keyword-only ``params`` (name -> default) that only stores them."""
    signature = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
            for name, default in params.items()
        ]
    )

    def __init__(self, **kwargs):
        bound = signature.bind(self, **kwargs)
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature
    return __init__


class _BaseEmbedder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Everything the embedders share: validation, network, batching, training, transform."""

    #: Loss parameters of the subclass (name -> default); they come first in the signature.
    _loss_params: ClassVar[dict] = {}
    #: Defaults of common parameters that differ for this loss (e.g. ``normalize``).
    _default_overrides: ClassVar[dict] = {}
    #: "balanced" (P x K batches, tuple losses) or "shuffled" (classifier-style losses).
    _batching = "balanced"

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "network": [StrOptions({"mlp", "cnn"}), nn.Module],
        "hidden_layer_sizes": [tuple, list],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "batch_norm": ["boolean"],
        "skip_connection": ["boolean"],
        "input_shape": [None, tuple, list],
        "normalize": ["boolean"],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "lr_schedule": [None, StrOptions({"cosine", "step"})],
        "early_stopping": ["boolean", StrOptions({"auto"})],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "validation_holdout": [StrOptions({"classes", "samples"})],
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
            common = {k: cls._default_overrides.get(k, v) for k, v in _COMMON_PARAMS.items()}
            cls.__init__ = _make_init({**cls._loss_params, **common})

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
        if any(
            isinstance(h, bool) or not isinstance(h, numbers.Integral) or h < 1
            for h in self.hidden_layer_sizes
        ):
            raise ValueError(
                "`hidden_layer_sizes` must be a tuple of positive integers, got "
                f"{self.hidden_layer_sizes!r}."
            )
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

    # ----------------------------------------------------------------- steps of fit
    def _fit(self, X, y, *, continuing, max_iter, partial):
        X, y_encoded = self._validate_data_and_target(X, y, reset=not continuing)
        validation = None if partial else self._validation_plan(y_encoded)
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
            validated = validation is not None
            watched = "validation score" if validated else "training loss"
            advice = "" if validated else ", or set early_stopping=True"
            warnings.warn(
                f"{type(self).__name__} reached max_iter={max_iter} epochs while its "
                f"{watched} was still improving. Increase max_iter{advice}.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _train(self, X, y, device, continuing, max_iter, partial, validation_plan):
        torch_gen = torch.Generator().manual_seed(int(self._rng.integers(2**62)))
        if not continuing:
            self.module_ = self._init_module(X, torch_gen).to(device)
            self.loss_ = self._init_loss(torch_gen).to(device)
            self._init_loss_from_data(X, y, device)
        train, validation = self._split(y, validation_plan)
        training = self._init_training(device, max_iter, schedule=not partial)
        X_t = place_data(self._as_network_input(X), device)  # on the device if it fits
        y_t = torch.from_numpy(y).to(device)
        sampler = self._sampler(y[train])
        validation_score = None
        if validation is not None:
            X_val, y_val = X_t[torch.from_numpy(validation).to(X_t.device)], y[validation]
            X_t, y_t = X_t[torch.from_numpy(train).to(X_t.device)], y_t[torch.from_numpy(train)]

            def validation_score():
                val_embedding = embed(self.module_, X_val, device)
                return mean_average_precision_at_r(val_embedding, y_val, distance="cosine")

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
                f"{self.learning_rate_init})."
            ) from None
        self.n_iter_ = len(self.history_)
        self._optimizer_state = training.optimizer.state_dict()
        return result

    def _init_module(self, X, generator: torch.Generator) -> nn.Module:
        """The network, built from the data's shape and initialised from ``generator``."""
        if isinstance(self.network, nn.Module):
            module = copy.deepcopy(self.network)
            module = nn.Sequential(module, L2Normalize()) if self.normalize else module
            self._check_output_width(module, X)
            return module  # a user's module keeps its own (maybe pre-trained) weights
        with forked_rng(int(torch.randint(2**62, (1,), generator=generator))):
            if self.network == "cnn":
                module = ConvNet(
                    self.input_shape_,
                    self.n_components,
                    activation=self.activation,
                    dropout=self.dropout,
                    normalize=self.normalize,
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
            self.optimizer, parameters, self.learning_rate_init, self.weight_decay
        )
        if self._optimizer_state is not None:
            optimizer.load_state_dict(self._optimizer_state)
            for group in optimizer.param_groups:  # a schedule may have decayed it
                group["lr"] = self.learning_rate_init
        scheduler = init_scheduler(self.lr_schedule, optimizer, max_iter) if schedule else None
        scaler = torch.amp.GradScaler(device.type) if self.precision == "fp16" else None
        return Training(
            self.module_,
            self.loss_,
            optimizer,
            scheduler,
            device,
            self.precision,
            scaler,
            compile=self.compile,
        )

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

    def _validation_plan(self, y) -> str | None:
        """How early stopping validates: on held-out "classes", "samples", or None (off).

        ``validation_holdout="classes"`` holds out ``validation_fraction`` of the classes, so
        that the score measures retrieval among classes the network was not trained on.
        ``"auto"`` validates only when that fraction is at least 2 classes and leaves 2 to
        train on: with fewer classes, MAP@R on 1 or 2 held-out classes is too noisy a guide
        (see the ``early_stopping`` parameter). ``True`` then holds out 2 classes anyway,
        and with 3 classes or fewer, samples of each class. ``"samples"`` holds out samples
        of every class with 4 or more; ``"auto"`` needs 2 such classes.
        """
        if not self.early_stopping:
            return None
        classes, counts = np.unique(y, return_counts=True)
        fallback = "samples" if self.early_stopping is True else None
        if self.validation_holdout == "samples":
            return "samples" if np.sum(counts >= 4) >= 2 else fallback
        n_val = round(self.validation_fraction * classes.size)
        if self.early_stopping is True:
            n_val = max(2, n_val)
        if n_val >= 2 and classes.size - n_val >= 2 and np.sum(counts >= 2) >= n_val:
            return "classes"
        return fallback

    def _split(self, y, plan):
        """Indices of the training and validation samples (validation: None when unused)."""
        everything = np.arange(y.size)
        if plan is None:
            return everything, None
        classes, counts = np.unique(y, return_counts=True)
        if plan == "classes":
            n_val = max(2, round(self.validation_fraction * classes.size))
            held_out = self._rng.choice(classes[counts >= 2], n_val, replace=False)
            validation = np.isin(y, held_out)
        else:  # too few classes to hold some out: hold out samples of each class
            validation = np.zeros(y.size, dtype=bool)
            for c in classes[counts >= 4]:
                members = self._rng.permutation(np.flatnonzero(y == c))
                n = min(max(2, round(self.validation_fraction * members.size)), members.size - 2)
                validation[members[:n]] = True
        if self.validation_holdout == "samples" and np.unique(y[validation]).size < 2:
            raise ValueError(
                "`early_stopping=True` with `validation_holdout`='samples' needs at least 2 "
                f"classes with 4 or more samples, got {np.sum(counts >= 4)}. Set "
                "early_stopping=False or give more data."
            )
        if np.unique(y[validation]).size < 2 or np.unique(y[~validation]).size < 2:
            raise ValueError(
                f"`early_stopping=True` needs a validation set: with {classes.size} classes "
                f"and `validation_fraction`={self.validation_fraction}, no class-disjoint split "
                "(2+ classes on each side) nor a split of the samples of classes with 4+ "
                "samples leaves 2 classes on each side. Set early_stopping=False or give "
                "more data."
            )
        return everything[~validation], everything[validation]

    # ----------------------------------------------------------------- input checks
    def _threads(self, device):
        if self.n_threads == -1 or device.type != "cpu":
            return None
        return 1 if self.n_threads is None else self.n_threads

    def _validate_data_and_target(self, X, y, reset):
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
        target = type_of_target(y, input_name="y", raise_unknown=True)
        if target not in ("binary", "multiclass"):
            raise ValueError(
                f"Unknown label type {target!r} for `y`: {type(self).__name__} needs class "
                f"labels (binary or multiclass), e.g. {y[:3].tolist()}."
            )
        self._set_shape(X, reset)
        return X, self._encode(y, reset)

    def _encode(self, y, reset):
        if reset:
            self.classes_ = np.unique(y)
        else:
            unseen = np.setdiff1d(y, self.classes_)
            if unseen.size and self._batching != "balanced":
                raise ValueError(
                    f"`y` holds classes {unseen[:5].tolist()} that were not in the first "
                    f"fit; {type(self).__name__}'s loss has one weight per class in "
                    f"{self.classes_[:5].tolist()}... ({len(self.classes_)} classes)."
                )
            self.classes_ = np.union1d(self.classes_, unseen)
        encoded = np.searchsorted(self.classes_, y).astype(np.int64)
        counts = np.bincount(encoded)
        counts = counts[counts > 0]
        if counts.size < 2:
            raise ValueError(
                f"{type(self).__name__} needs at least 2 classes in `y`, got 1 class ({y[0]!r})."
            )
        self._check_class_sizes(counts)
        return encoded

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
                stacklevel=5,
            )

    def _set_shape(self, X, reset):
        """Record (at fit) or check (later) the shape of one sample as the network sees it."""
        sample_shape = tuple(int(d) for d in X.shape[1:])
        if not reset:
            if sample_shape != self._sample_shape:
                raise ValueError(
                    f"X has shape {sample_shape} per sample, but {type(self).__name__} was "
                    f"fitted on samples of shape {self._sample_shape}."
                )
            return
        shape = sample_shape
        if self.input_shape is not None:
            shape = tuple(int(d) for d in self.input_shape)
            if int(np.prod(sample_shape)) != int(np.prod(shape)):
                raise ValueError(
                    f"`input_shape` {shape} holds {int(np.prod(shape))} values per sample, but "
                    f"X has shape {sample_shape} per sample ({int(np.prod(sample_shape))} "
                    "values)."
                )
        if self.network == "cnn":
            shape = (1, *shape) if len(shape) == 2 else shape
            if len(shape) != 3:
                raise ValueError(
                    "network='cnn' needs images: X of shape (n_samples, height, width) or "
                    "(n_samples, channels, height, width), or flat X with "
                    f"input_shape=(channels, height, width); got X of shape {X.shape}."
                )
        self._sample_shape = sample_shape
        self.input_shape_ = shape

    def _validate_X(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=np.float32, allow_nd=True)
        self._set_shape(X, reset)
        return self._as_network_input(X)

    def _as_network_input(self, X):
        return np.ascontiguousarray(X.reshape(X.shape[0], *self.input_shape_))


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


_COMMON_DOC = """    n_components : int, default=128
        Embedding size: ``transform`` returns ``(n_samples, n_components)``. 128 rather
        than 64: with the skip connection the embedding starts as a rotation of the input,
        which keeps all its distances only when ``n_components >= n_features``; on digits
        with 64 noise features (128 inputs) MAP@R on unseen classes was 0.45 with 128
        against 0.35 with 64 (TripletEmbedder, 3 seeds, benchmarks/bench_quality.py).
    network : {{"mlp", "cnn"}} or torch.nn.Module, default="mlp"
        ``"mlp"``: :class:`~sk_deepmetric.networks.MLP` on the flattened input.
        ``"cnn"``: :class:`~sk_deepmetric.networks.ConvNet` (3 conv stages, 32-64-128
        channels, global average pooling) for images ``(n, H, W)`` or ``(n, C, H, W)``, or
        flat X with ``input_shape``. A module is deep-copied at fit and trained from its
        own weights (so a pre-trained network is fine-tuned; ``random_state`` does not
        re-initialise it, only batches, splits and dropout); it must map a batch to
        ``(batch_size, n_components)``.
    hidden_layer_sizes : tuple of int, default=(256,)
        Hidden layers of the MLP.
    activation : {{"relu", "gelu", "tanh", "leaky_relu"}}, default="relu"
    dropout : float, default=0.0
        Dropout after each hidden layer (MLP) or before the last layer (CNN).
    batch_norm : bool, default=True
        Batch normalisation in the MLP's hidden layers (the CNN always uses it).
    skip_connection : bool, default=True
        MLP only: the embedding is ``W x + mlp(x)``, with ``W`` initialised (semi-)orthogonal
        and the MLP's last layer at zero, so training starts from the input's own geometry
        and learns corrections to it. On by default because a plain MLP trained on few
        classes forgets what separates the others: on digits (train 0-4, evaluate 5-9),
        TripletEmbedder's MAP@R was 0.546 with it and 0.496 without (raw pixels: 0.541),
        0.45 and 0.31 with 64 noise features added (3 seeds).
    input_shape : tuple of int, default=None
        Shape of one sample as the network sees it, e.g. ``(1, 8, 8)``: flat rows are
        reshaped to it, so a CNN works after a scikit-learn transformer. ``None``: the
        shape of ``X``'s rows.
    normalize : bool, default={normalize}
        L2-normalise the embedding (in training and in ``transform``). {normalize_why}
    {batching_doc}batch_size : int, default=128
        Samples per training batch (capped at ``n_samples``).
    max_iter : int or None, default=None
        Maximum number of epochs (passes over the training data). None: 200 when early
        stopping runs (a cap, rarely reached: validation decides), 5 when it does not. Few
        then, because with nothing to tell when the network starts to overfit the training
        classes, it stays close to the input's geometry: on unseen digits (train on 0-4,
        evaluate on 5-9) MAP@R peaked within 1 to 5 epochs and fell steadily after (0.55
        at 5 epochs, 0.50 at 30, learning rate 1e-4). Without early stopping, training also
        stops once the training loss stops improving (``n_iter_no_change``, ``tol``). A
        ``ConvergenceWarning`` says that ``max_iter`` ended the fit while the monitored
        value was still improving; it is not raised when ``max_iter < n_iter_no_change``
        unless ``early_stopping=True`` (a budget too short to judge convergence, taken as
        deliberate).
    optimizer : {{"adam", "adamw", "sgd"}}, default="adam"
        It trains the network's parameters and the loss's own (class weights, centres);
        "sgd" uses Nesterov momentum 0.9.
    learning_rate_init : float, default=1e-4
        Adam's step size. 1e-3 moved the embedding away from the input's geometry within
        one or two epochs on small data and lost MAP@R on unseen classes; 1e-4 gives a
        gentle correction. With early stopping, 1e-4, 3e-4 and 1e-3 reach the same MAP@R
        on 100 classes of ``make_classification`` (0.16), and 1e-4 the best on digits with
        64 noise features when 2 of the 5 training digits were held out (0.446, against
        0.415 and 0.418; TripletEmbedder, 2 seeds).
    weight_decay : float, default=0.0
    lr_schedule : {{None, "cosine", "step"}}, default=None
        Per-epoch learning-rate schedule over ``max_iter`` epochs: cosine decay to zero, or
        divided by 10 at 50% and 75% of them. ``partial_fit`` uses a constant rate.
    early_stopping : "auto" or bool, default="auto"
        Hold out ``validation_fraction`` of the classes (class-disjoint, because an
        embedding is for classes it was not trained on), compute MAP@R on them before
        training and after each epoch, stop after ``n_iter_no_change`` epochs without
        improvement by ``tol``, and restore the best weights: the initial ones if no epoch
        beat them. "auto" does this when ``validation_fraction`` of the classes is at least
        2 classes and leaves at least 2 (8 classes or more at the default 0.2), and
        otherwise trains for a short fixed budget (see ``max_iter``). With fewer classes
        the held-out score is a poor guide: holding out 2 of the 5 training digits, it
        stopped where MAP@R on the unseen digits was 0.421 +- 0.021 with 64 noise features
        (raw features: 0.438; 5 epochs: 0.451). With many, it is what makes the defaults
        work: on 100 classes of ``make_classification`` (train on 50, evaluate on 50), 5
        epochs gave MAP@R 0.086 and early stopping 0.16 (NCA: 0.127), stopping on its own
        after about 90 epochs (TripletEmbedder, 3 seeds). True validates whatever the
        number of classes: on 2 held-out classes from 4 classes on, and on held-out samples
        of each class below that.
    validation_fraction : float, default=0.2
        Fraction of the classes (or, with ``validation_holdout="samples"``, of each class's
        samples) held out for early stopping.
    validation_holdout : {{"classes", "samples"}}, default="classes"
        What early stopping holds out. "classes": whole classes, to judge retrieval among
        classes never trained on (open set: new identities, new products). "samples": a
        fraction of every class's samples (at least 2 of each class with 4 or more, keeping
        2 to train on), to judge how well the known classes are separated (closed set: a
        KNN classifier over the training classes). For closed-set use it is the right
        guide: on all ten digits (a stratified half to train, the other half to evaluate,
        3 seeds), TripletEmbedder reached MAP@R 0.895 +- 0.007 and 5-NN accuracy
        0.975 +- 0.002 with "samples", against 0.563 +- 0.071 and 0.961 +- 0.009 with
        "classes" (NCA: 0.522 and 0.965). With "samples", "auto" early stopping runs
        whenever at least 2 classes have 4 samples or more.
    n_iter_no_change : int, default=20
        Epochs without improvement before stopping. 10 stopped some runs while a loss
        with a large scale (CosFace, ``scale=64``) was still on its first plateau: on the
        100-class task above, MAP@R 0.095 +- 0.040 with 10, 0.147 +- 0.005 with 20
        (3 seeds).
    tol : float, default=1e-4
    warm_start : bool, default=False
        ``fit`` continues from the current weights and optimiser state.
    device : str or torch.device, default="auto"
        "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    precision : {{"32", "bf16", "fp16"}}, default="32"
        Mixed precision for the network's forward pass during training (the loss stays in
        float32). "fp16" (with gradient scaling) needs CUDA; "bf16" works on CPU too.
        ``transform`` always runs in float32.
    compile : bool, default=False
        Train the network through :func:`torch.compile` (``transform`` does not use it).
        Compiling takes seconds to minutes at the first epoch, so it pays off on long runs
        on a GPU; it is off by default.
    n_threads : int, default=None
        Torch intra-op threads during ``fit`` and ``transform`` on CPU, restored afterwards.
        ``None`` means 1: on a shared 2-core machine, fitting digits with 1 thread was 5 to
        25 times faster than with torch's default of 2 (batches of 64 and 256, MLP and
        CNN); -1 keeps torch's setting (better on a large dedicated CPU).
    random_state : int, RandomState instance or None, default=None
        Seeds a local ``torch.Generator`` and ``numpy.random.Generator`` for the weights,
        batches, validation split and dropout; torch's global RNG is left untouched. The
        same seed and data give bit-identical embeddings on CPU.
    verbose : int, default=0
        1 shows a progress bar with the loss and validation score per epoch.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network.
    loss_ : torch.nn.Module
        The loss module, with its trained parameters (if any).
    classes_ : ndarray of shape (n_classes,)
        Class labels seen in ``fit``.
    input_shape_ : tuple of int
        Shape of one sample as fed to the network.
    n_iter_ : int
        Number of epochs run.
    history_ : list of dict
        One record per epoch: ``epoch``, ``loss`` (mean training loss), ``score`` (validation
        MAP@R, or None) and ``time`` (seconds); ``pandas.DataFrame(history_)`` tabulates it.
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``, when ``X`` has string column names.
"""

_BALANCED_DOC = """samples_per_class : int, default={k}
        ``K`` in the class-balanced ``P x K`` batches: ``P = batch_size // K`` classes of
        ``K`` samples each. With fewer than ``P`` classes, every batch holds all classes
        with ``batch_size // n_classes`` samples each; classes with a single sample serve
        only as negatives (a warning says how many).
    """


def _document(cls, summary, loss_doc, references, example, normalize_why):
    defaults = {**_COMMON_PARAMS, **cls._default_overrides, **cls._loss_params}
    batching_doc = (
        _BALANCED_DOC.format(k=defaults["samples_per_class"])
        if "samples_per_class" in defaults
        else ""
    )
    common = _COMMON_DOC.format(
        normalize=defaults["normalize"], normalize_why=normalize_why, batching_doc=batching_doc
    )
    cls.__doc__ = (
        f"{summary}\n\n    Parameters\n    ----------\n{loss_doc}{common}\n"
        f"    References\n    ----------\n{references}\n    Examples\n    --------\n{example}"
    )
    return cls


def _example(name, params=""):
    return f"""    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import {name}
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), {name}({params}max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
"""


class TripletEmbedder(_BaseEmbedder):
    _loss_params: ClassVar[dict] = {
        "margin": 0.2,
        "miner": "semihard",
        "distance": "euclidean",
        "samples_per_class": 4,
    }
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, None, closed="left")],
        "miner": [StrOptions({m for m in TRIPLET_MINERS if m}), None, callable],
        "distance": [StrOptions(set(DISTANCES))],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }

    def _build_loss(self, n_classes, n_components):
        return TripletMarginLoss(margin=self.margin, miner=self.miner, distance=self.distance)


_document(
    TripletEmbedder,
    """Embedding trained with the triplet margin loss.

    For mined triplets (anchor, positive of its class, negative of another class) the loss is
    ``relu(d(a, p) - d(a, n) + margin)``; see :class:`~sk_deepmetric.losses.TripletMarginLoss`.
    The defaults are FaceNet's: semi-hard mining, margin 0.2 on L2-normalised embeddings.""",
    """    margin : float, default=0.2
        Margin between positive and negative distances, in units of ``distance`` (Euclidean
        distances between unit vectors lie in ``[0, 2]``).
    miner : {"semihard", "batch_hard", "all", "hard", "easy"}, callable or None, \
default="semihard"
        Which triplets of a batch the loss uses; ``None`` or "all": every valid triplet.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
""",
    """    .. [1] F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet: A Unified Embedding for Face
       Recognition and Clustering", CVPR 2015.
    .. [2] A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
       Re-Identification", arXiv:1703.07737, 2017.
""",
    _example("TripletEmbedder"),
    "The margin is then on a fixed scale.",
)


class ContrastiveEmbedder(_BaseEmbedder):
    _loss_params: ClassVar[dict] = {
        "pos_margin": 0.0,
        "neg_margin": 1.0,
        "distance": "euclidean",
        "samples_per_class": 4,
    }
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "pos_margin": [Interval(Real, 0, None, closed="left")],
        "neg_margin": [Interval(Real, 0, None, closed="left")],
        "distance": [StrOptions(set(DISTANCES))],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }

    def _build_loss(self, n_classes, n_components):
        return ContrastiveLoss(
            pos_margin=self.pos_margin, neg_margin=self.neg_margin, distance=self.distance
        )


_document(
    ContrastiveEmbedder,
    """Embedding trained with the contrastive (pair) loss.

    Pulls pairs of one class closer than ``pos_margin`` and pushes pairs of different classes
    beyond ``neg_margin``; see :class:`~sk_deepmetric.losses.ContrastiveLoss`.""",
    """    pos_margin : float, default=0.0
        Distance below which a positive pair costs nothing.
    neg_margin : float, default=1.0
        Distance beyond which a negative pair costs nothing (unit vectors: at most 2).
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
""",
    """    .. [1] R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality Reduction by Learning an
       Invariant Mapping", CVPR 2006.
""",
    _example("ContrastiveEmbedder"),
    "The margins are then on a fixed scale.",
)


class NPairsEmbedder(_BaseEmbedder):
    _loss_params: ClassVar[dict] = {
        "l2_reg": 0.002,
        "distance": "euclidean",
        "samples_per_class": 2,
    }
    _default_overrides: ClassVar[dict] = {"normalize": False}
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "l2_reg": [Interval(Real, 0, None, closed="left")],
        "distance": [StrOptions(set(NPAIRS_DISTANCES))],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }

    def _build_loss(self, n_classes, n_components):
        return NPairsLoss(l2_reg=self.l2_reg, distance=self.distance)


_document(
    NPairsEmbedder,
    """Embedding trained with the multi-class N-pair loss.

    Each class in a batch contributes one (anchor, positive) pair; every anchor is classified
    against the positives of all classes by a softmax over (negated) Euclidean distances, the
    source articles' form ``log(1 + sum_j exp(D_ap - D_an))``, or over inner products as in
    the paper (``distance="dot"``); see :class:`~sk_deepmetric.losses.NPairsLoss`. Hence
    ``samples_per_class=2`` by default.""",
    """    l2_reg : float, default=0.002
        Penalty on squared embedding norms (the inner product is unbounded without it).
    distance : {"dot", "euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        The score compared across classes. "euclidean" learned more than the paper's inner
        product ("dot") from the same budget: MAP@R on unseen classes, 3 seeds, "dot" ->
        "euclidean": 100 classes of ``make_classification`` (train on 50) 0.128 -> 0.142
        (NCA: 0.127); digits 0-4 -> 5-9 with 64 noise features 0.437 -> 0.440 (raw
        features: 0.438); plain digits 0.542 -> 0.543. "cosine" (or ``normalize=True``)
        learned least on the first task (0.100).
""",
    """    .. [1] K. Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss
       Objective", NeurIPS 2016.
""",
    _example("NPairsEmbedder"),
    "Off as in the paper, which regularises the norms with ``l2_reg`` instead.",
)


class AngularEmbedder(_BaseEmbedder):
    _loss_params: ClassVar[dict] = {"alpha": 40.0, "samples_per_class": 4}
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "alpha": [Interval(Real, 0, 90, closed="neither")],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }

    def _build_loss(self, n_classes, n_components):
        return AngularLoss(alpha=self.alpha)


_document(
    AngularEmbedder,
    """Embedding trained with the angular loss.

    Bounds the angle at the negative of each (anchor, positive, negative) triangle by
    ``alpha``, a scale-invariant third-order constraint; see
    :class:`~sk_deepmetric.losses.AngularLoss`.""",
    """    alpha : float, default=40.0
        Angle bound in degrees, in (0, 90); the paper finds 36 to 45 best.
""",
    """    .. [1] J. Wang, F. Zhou, S. Wen, X. Liu, Y. Lin, "Deep Metric Learning with Angular
       Loss", ICCV 2017.
""",
    _example("AngularEmbedder"),
    "The loss works on unit vectors, as in the paper.",
)


class _ClassifierEmbedder(_BaseEmbedder):
    """Losses with one learnable weight vector per class: shuffled batches, labels 0..C-1."""

    _batching = "shuffled"
    _default_overrides: ClassVar[dict] = {"normalize": False}
    _loss_class: type = SoftmaxLoss

    def _build_loss(self, n_classes, n_components):
        kwargs = {name: getattr(self, name) for name in self._loss_params}
        return self._loss_class(n_classes, n_components, **kwargs)

    def _init_loss_from_data(self, X, y, device):
        with torch.no_grad():
            self._imprint(*self._initial_class_means(X, y, device))

    def _imprint(self, means: torch.Tensor, overall: torch.Tensor) -> None:
        # Imprinting: class c's weight starts at the direction of its mean initial embedding,
        # less the mean of all (a ReLU CNN's raw class means are nearly collinear), with the
        # norm of the random initial weights (the logits keep their scale). Random weights
        # barely move in a short budget. MAP@R, 3 seeds, random -> imprinted (ArcFace, 5
        # epochs): digits 0-2 -> 3-4 0.926 -> 0.934 (+64 noise features 0.882 -> 0.901), 5-7
        # -> 8-9 0.579 -> 0.582; 0-4 -> 5-9 0.540 -> 0.546, noise 0.437 -> 0.449.
        weight = self._class_weight()
        direction = nn.functional.normalize(means - overall, dim=1)
        weight.copy_(direction.to(weight) * weight.norm(dim=1, keepdim=True).mean())

    def _class_weight(self) -> nn.Parameter:
        return self.loss_.weight

    def _initial_class_means(self, X, y, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean initial embedding of each class, (n_classes, d), and of all samples, (d,)."""
        Z = torch.from_numpy(
            embed(self.module_, place_data(self._as_network_input(X), device), device)
        )
        labels = torch.from_numpy(y).long()
        sums = torch.zeros(len(self.classes_), Z.shape[1]).index_add_(0, labels, Z)
        counts = torch.bincount(labels, minlength=len(self.classes_))[:, None]
        return sums / counts, Z.mean(dim=0)


_CLASSIFIER_REFS = {
    "softmax": """    .. [1] K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020 (the softmax baseline is competitive with tuple losses).
""",
}
_NORMALIZE_OFF = (
    "Off: the classifier's logits need the features' norm; ``transform`` output is usually "
    "compared by cosine similarity (as ``score`` does)."
)
_NORMALIZE_ON = "On: the loss compares directions only (cosine of the angle to each class)."


class SoftmaxEmbedder(_ClassifierEmbedder):
    _loss_class = SoftmaxLoss


_document(
    SoftmaxEmbedder,
    """Embedding trained as the penultimate layer of a softmax classifier.

    A linear classifier (one weight vector and bias per class) on the embedding, trained with
    cross-entropy and discarded at ``transform``; see
    :class:`~sk_deepmetric.losses.SoftmaxLoss`. The class weights start at the centred
    class-mean directions of the initial embedding ("imprinting"), with the norm of a random
    initialisation, as in every classifier-based embedder.""",
    "",
    _CLASSIFIER_REFS["softmax"],
    _example("SoftmaxEmbedder"),
    _NORMALIZE_OFF,
)


class CenterLossEmbedder(_ClassifierEmbedder):
    _loss_params: ClassVar[dict] = {"center_weight": 0.003}
    _loss_class = CenterLoss
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "center_weight": [Interval(Real, 0, None, closed="left")],
    }

    def _class_weight(self):
        return self.loss_.softmax.weight

    def _imprint(self, means, overall):
        super()._imprint(means, overall)
        self.loss_.centers.copy_(means)  # the centres start where the classes are


_document(
    CenterLossEmbedder,
    """Embedding trained with softmax cross-entropy plus the center loss.

    Adds ``center_weight`` times the mean squared distance of each sample to its class's
    learnable centre, making classes compact; see :class:`~sk_deepmetric.losses.CenterLoss`.
    The centres start at the class means of the initial embedding, the classifier's weights at
    their centred directions.""",
    """    center_weight : float, default=0.003
        Weight of the centre term (the paper's lambda).
""",
    """    .. [1] Y. Wen, K. Zhang, Z. Li, Y. Qiao, "A Discriminative Feature Learning Approach
       for Deep Face Recognition", ECCV 2016.
""",
    _example("CenterLossEmbedder"),
    _NORMALIZE_OFF,
)


class LargeMarginSoftmaxEmbedder(_ClassifierEmbedder):
    _loss_params: ClassVar[dict] = {"margin": 2, "softmax_weight": 5.0}
    _loss_class = LargeMarginSoftmaxLoss
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "margin": [Interval(Integral, 1, None, closed="left")],
        "softmax_weight": [Interval(Real, 0, None, closed="left")],
    }


_MULTIPLICATIVE_DOC = """    margin : int, default={m}
        Integer angle multiplier ``m``: the target class's angle counts ``m`` times (1: no
        margin). A float such as {m}.0 is an error, not silently truncated.
    softmax_weight : float, default=5.0
        ``lambda`` blending in the plain logit, ``(lambda cos + psi) / (1 + lambda)``; a
        large value early in training eases optimisation. 5 is the floor SphereFace's
        authors anneal it to. With 0, the pure margin barely trained: on 100 classes of
        ``make_classification`` (train 50, evaluate 50, 2 seeds), MAP@R 0.142 (L-Softmax)
        and 0.139 (SphereFace) with 0, 0.150 and 0.164 with 5.
"""

_document(
    LargeMarginSoftmaxEmbedder,
    """Embedding trained with the large-margin softmax (L-Softmax) loss.

    Softmax whose target logit uses ``cos(m * theta)`` instead of ``cos(theta)``; see
    :class:`~sk_deepmetric.losses.LargeMarginSoftmaxLoss`.""",
    _MULTIPLICATIVE_DOC.format(m=2),
    """    .. [1] W. Liu, Y. Wen, Z. Yu, M. Yang, "Large-Margin Softmax Loss for Convolutional
       Neural Networks", ICML 2016.
""",
    _example("LargeMarginSoftmaxEmbedder"),
    _NORMALIZE_OFF,
)


class SphereFaceEmbedder(_ClassifierEmbedder):
    _loss_params: ClassVar[dict] = {"margin": 4, "softmax_weight": 5.0}
    _loss_class = SphereFaceLoss
    _parameter_constraints: ClassVar[dict] = LargeMarginSoftmaxEmbedder._parameter_constraints


_document(
    SphereFaceEmbedder,
    """Embedding trained with SphereFace's angular softmax (A-Softmax).

    L-Softmax with unit-norm class weights and no bias: the margin is purely angular; see
    :class:`~sk_deepmetric.losses.SphereFaceLoss`.""",
    _MULTIPLICATIVE_DOC.format(m=4),
    """    .. [1] W. Liu, Y. Wen, Z. Yu, M. Li, B. Raj, L. Song, "SphereFace: Deep Hypersphere
       Embedding for Face Recognition", CVPR 2017.
""",
    _example("SphereFaceEmbedder"),
    _NORMALIZE_OFF,
)


class CosFaceEmbedder(_ClassifierEmbedder):
    _loss_params: ClassVar[dict] = {"margin": 0.35, "scale": 64.0}
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _loss_class = CosFaceLoss
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, 1, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
    }


_document(
    CosFaceEmbedder,
    """Embedding trained with CosFace (large-margin cosine loss).

    Softmax over ``scale * cos(theta_j)`` with ``margin`` subtracted from the target class's
    cosine; see :class:`~sk_deepmetric.losses.CosFaceLoss`. Class weights start at the
    centred class-mean directions of the initial embedding, as in every classifier-based
    embedder (MAP@R, 3 seeds, 5 epochs, random -> imprinted: digits 0-4 -> 5-9 0.540 ->
    0.545, with 64 noise features 0.436 -> 0.445).""",
    """    margin : float, default=0.35
        Additive margin on the cosine, in [0, 1).
    scale : float, default=64.0
        Radius of the hypersphere the logits live on.
""",
    """    .. [1] H. Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition",
       CVPR 2018.
""",
    _example("CosFaceEmbedder"),
    _NORMALIZE_ON,
)


class ArcFaceEmbedder(_ClassifierEmbedder):
    _loss_params: ClassVar[dict] = {"margin": 0.5, "scale": 64.0}
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _loss_class = ArcFaceLoss
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, np.pi / 2, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
    }


_document(
    ArcFaceEmbedder,
    """Embedding trained with ArcFace (additive angular margin loss).

    Softmax over ``scale * cos(theta_j)`` with ``margin`` radians added to the target class's
    angle; see :class:`~sk_deepmetric.losses.ArcFaceLoss`. Each class's weight starts at the
    direction of the class's mean embedding under the initial network, centred on the mean of
    all ("imprinting"), not at random, as in every classifier-based embedder.""",
    """    margin : float, default=0.5
        Additive angular margin in radians (0.5 is about 28.6 degrees), in [0, pi/2).
    scale : float, default=64.0
        Radius of the hypersphere the logits live on.
""",
    """    .. [1] J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive Angular Margin Loss
       for Deep Face Recognition", CVPR 2019.
""",
    _example("ArcFaceEmbedder"),
    _NORMALIZE_ON,
)


class MetricEmbedder(_BaseEmbedder):
    _loss_params: ClassVar[dict] = {"loss": None, "batching": "balanced", "samples_per_class": 4}
    _default_overrides: ClassVar[dict] = {"normalize": False}
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "loss": [None, nn.Module],
        "batching": [StrOptions({"balanced", "shuffled"})],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }

    @property
    def _batching(self):
        return self.batching

    def _check_loss_params(self):
        if self.loss is None:
            raise ValueError(
                "MetricEmbedder needs a `loss`: a torch module called as "
                "loss(embeddings, labels), e.g. sk_deepmetric.losses.TripletMarginLoss()."
            )
        super()._check_loss_params()

    def _build_loss(self, n_classes, n_components):
        return copy.deepcopy(self.loss)

    def _init_loss(self, generator):
        return self._build_loss(len(self.classes_), self.n_components)  # the user's weights


_document(
    MetricEmbedder,
    """Embedding trained with any loss module called as ``loss(embeddings, labels)``.

    The loss (one of :mod:`sk_deepmetric.losses`, one from pytorch-metric-learning, or your
    own) is deep-copied at fit, so the estimator's parameter stays untouched and ``clone``
    works; its parameters, if any, are trained with the network's. Labels reach it encoded
    as ``0 .. n_classes - 1``.""",
    """    loss : torch.nn.Module
        Required. Called as ``loss(embeddings, labels)`` and returning a scalar tensor.
    batching : {"balanced", "shuffled"}, default="balanced"
        Class-balanced ``P x K`` batches for tuple losses, or shuffled batches for
        classifier-style losses.
""",
    """    .. [1] K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning Reality Check",
       ECCV 2020.
""",
    _example("MetricEmbedder", "loss=TripletMarginLoss(), ").replace(
        "    >>> from sk_deepmetric.embedders import MetricEmbedder\n",
        "    >>> from sk_deepmetric.embedders import MetricEmbedder\n"
        "    >>> from sk_deepmetric.losses._pair import TripletMarginLoss\n",
    ),
    "Off by default: whether the loss wants unit vectors depends on the loss.",
)
