"""``ContrastivePairsEmbedder``: an embedding learned from pairs labelled similar or not.

Weak supervision, when no class labels exist: ``X`` holds pairs of samples, shape
``(n_pairs, 2, n_features)`` (or ``(n_pairs, 2, *input_shape)``), and ``y`` says for each
pair whether its two samples are alike, metric-learn's pairs convention. The network embeds
single samples; training runs it on both samples of each pair and applies the contrastive
loss to the pair's distance. A distance threshold, calibrated on held-out pairs, turns the
embedding into a pair classifier.

The base class validates and trains on samples with class labels; this class overrides the
steps that differ: checking pairs, the split into training and held-out pairs (the base's
early stopping holds out classes or samples of classes), the network run on pairs, and the
validation score (ROC AUC of the held-out pairs instead of MAP@R).
"""

from __future__ import annotations

import dataclasses
from numbers import Real
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse
from sklearn.base import ClassifierMixin
from torch import Tensor, nn
from torch.utils.data import Dataset

from .._devices import broadcast_object, check_same_data, resolve_device, torch_threads
from .._retrieval import check_pair_labels, pair_threshold
from .._streaming import RowSource
from .._training import embed
from .._validation import (
    Interval,
    StrOptions,
    as_host_tensor,
    check_consistent_length,
    check_is_fitted,
    check_random_state,
    check_real,
    column_or_1d,
    output_container,
    validate_data,
)
from ..distances import DISTANCES, paired_distances
from ..losses._blockwise import mean_nonzero
from ._base import BaseEmbedder
from ._params import AUTO_MAX_ITER, COMMON_PARAMS, store_routed

__all__ = ["ContrastivePairsEmbedder"]


class _PairNetwork(nn.Module):
    """The sample network run on both samples of each pair: (B, 2, ...) -> (B, 2, d)."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, pairs: Tensor) -> Tensor:
        return self.network(pairs.flatten(0, 1)).unflatten(0, (pairs.shape[0], 2))


class _GivenPairsContrastiveLoss(nn.Module):
    """Contrastive loss on given pairs: ``loss(embeddings (B, 2, d), same (B,))``.

    ``mean relu(d - pos_margin)`` over the similar pairs with a non-zero term plus ``mean
    relu(neg_margin - d)`` over the dissimilar ones, as
    :class:`~sk_deepmetric.losses.ContrastiveLoss` does over all the pairs of a batch.
    """

    def __init__(self, pos_margin: float, neg_margin: float, distance: str) -> None:
        super().__init__()
        self.pos_margin, self.neg_margin, self.distance = pos_margin, neg_margin, distance

    def forward(self, embeddings: Tensor, same: Tensor) -> Tensor:
        if embeddings.ndim != 3 or embeddings.shape[1] != 2 or same.shape != (len(embeddings),):
            raise ValueError(
                "`embeddings` must have shape (n_pairs, 2, n_components) and `labels` one "
                f"label per pair, got {tuple(embeddings.shape)} and {tuple(same.shape)}."
            )
        d = paired_distances(embeddings[:, 0], embeddings[:, 1], self.distance)
        same = same.bool()
        return mean_nonzero(F.relu(d - self.pos_margin), same) + mean_nonzero(
            F.relu(self.neg_margin - d), ~same
        )


# a pair's two samples are what is held out, not classes or samples of classes
_PARAMS = {k: v for k, v in COMMON_PARAMS.items() if k != "validation_holdout"}


class ContrastivePairsEmbedder(ClassifierMixin, BaseEmbedder):
    """Embedding learned from pairs labelled similar or dissimilar, with a pair classifier.

    For weak supervision, when there are no class labels, only pairs known to be alike or
    not (metric-learn's pairs convention): ``X`` holds the two samples of each pair,
    ``(n_pairs, 2, n_features)``, and ``y`` is 1 for a similar pair, 0 or -1 for a
    dissimilar one. The network embeds single samples, and is trained on both samples of
    each pair with the contrastive loss of the pair's distance ``d``: ``relu(d -
    pos_margin)`` for a similar pair, ``relu(neg_margin - d)`` for a dissimilar one, each
    averaged over the pairs of a batch with a non-zero term (as
    :class:`~sk_deepmetric.losses.ContrastiveLoss` over all pairs of a labelled batch).

    ``fit`` holds out the pairs of ``validation_fraction`` of the groups of samples that the
    similar pairs link (the identities, as far as the pairs know them), stops early on their
    ROC AUC and then calibrates ``threshold_``, a distance, on them (their accuracy weighted
    to the share of similar pairs in ``y``).
    ``predict`` says whether pairs are similar, ``decision_function`` is ``threshold_``
    minus their distance, ``score`` is the accuracy of ``predict``; ``transform`` embeds
    single samples ``(n_samples, n_features)``.

    Parameters
    ----------
    pos_margin : float, default=0.0
        Distance below which a similar pair costs nothing, in the units of ``distance``.
    neg_margin : float, default=1.0
        Distance beyond which a dissimilar pair costs nothing (unit vectors are at most 2
        apart in Euclidean distance).
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        Distance between the two embeddings of a pair, in training and in ``predict``.
    target_far : float, default=None
        How ``threshold_`` is calibrated. ``None``: the distance of best accuracy on the
        held-out pairs, weighted to the share of similar pairs in ``y`` (whole groups held
        out keep a similar pair about ``1 / validation_fraction`` times as often as a
        dissimilar one, whose two samples must both fall in held-out groups). A rate in
        ``(0, 1)``: the largest distance at which at most that fraction of the held-out
        dissimilar pairs is accepted (a false-accept rate), so it needs well over
        ``1 / target_far`` of them.
    n_components : int, default=128
        Embedding size: ``transform`` returns ``(n_samples, n_components)``. With the skip
        connection, the untrained embedding is a rotation of the input when
        ``n_components >= n_features`` (a projection otherwise); ``normalize=True`` then keeps
        each sample's direction only, which on a few features can lose what the norms told
        apart (try ``normalize=False`` there).
    network : {"mlp", "cnn", "cnn1d"} or torch.nn.Module, default="mlp"
        ``"mlp"``: :class:`~sk_deepmetric.networks.MLP` on the flattened input, for tabular
        features. ``"cnn"``: :class:`~sk_deepmetric.networks.ImageResNet`, a residual 2-D
        CNN for images ``(n, H, W)`` or ``(n, C, H, W)``. ``"cnn1d"``:
        :class:`~sk_deepmetric.networks.SignalResNet`, a residual 1-D CNN for signals
        ``(n, length)`` or ``(n, C, length)``. Both CNNs also take flat rows with
        ``input_shape``. A module is deep-copied at fit and trained from its own weights (a
        pre-trained network is fine-tuned; ``random_state`` does not re-initialise it). It
        must map a batch to a floating-point tensor of shape ``(batch_size, n_components)``
        in training and in eval mode, and in eval mode embed each row independently of the
        others, since ``transform`` embeds fixed-size chunks padded with rows of zeros: a
        ``BatchNorm1d(..., track_running_stats=False)``, which uses the batch's statistics
        in eval mode too, does not.
    hidden_layer_sizes : tuple of int, default=(256,)
        Width of each hidden layer of the MLP; ``()`` for a linear map.
    conv_channels : tuple of int, default=None
        Output channels of each residual stage of the built-in CNNs (its length is their
        depth). None means (32, 64, 128).
    activation : {"relu", "gelu", "tanh", "leaky_relu"}, default="relu"
        Activation of the hidden layers of the built-in networks.
    dropout : float, default=0.0
        Dropout probability after each hidden layer (MLP) or before the last layer (CNNs).
    batch_norm : bool, default=True
        Batch normalisation in the MLP's hidden layers (the CNNs always use it).
    skip_connection : bool, default=True
        MLP only: the embedding is ``W x + mlp(x)``, with ``W`` (semi-)orthogonal and the
        MLP's last layer at zero, so that training starts from a rotation of the input and
        learns corrections to it.
    input_shape : tuple of int, default=None
        Shape of one sample as the network sees it, e.g. ``(1, 8, 8)`` for images or
        ``(3, 500)`` for 3-channel signals: flat rows are reshaped to it, so a CNN works
        after a scikit-learn transformer. ``None``: the shape of ``X``'s rows.
    normalize : bool, default=True
        L2-normalise the embedding (in training and in ``transform``). The margins are then on a
        fixed scale.
    augment : str, list of str, dict, callable or None, default=None
        Random transforms of each training batch, drawn per sample on the training device
        from ``random_state``; never applied in ``transform``, ``score`` or validation.
        Signals: "shift", "crop", "scale", "jitter", "time_mask", "time_warp"; images:
        "shift", "crop", "flip", "rotate", "erase", "scale", "jitter"; tabular rows:
        "scale", "jitter". Samples of two axes are signals (channels, length), of three
        images (channels, height, width): give one-channel images to a network of your own
        as (n, 1, height, width), not (n, height, width). A list applies several in order;
        a dict maps names to strengths (see :mod:`sk_deepmetric.augment`); a callable is
        called as ``augment(batch, generator)`` (or ``augment(batch)``) and returns a batch
        of the same shape.
    batch_size : int, default=128
        Samples per training batch (capped at ``n_samples``).
    max_iter : int or None, default=None
        Maximum number of epochs (passes over the training pairs). None: 500 when early
        stopping runs (a cap: the held-out pairs decide), 5 when it does not.
    optimizer : {"adam", "adamw", "sgd"} or torch.optim.Optimizer subclass, default="adam"
        Trains the network's parameters and the loss's own (class weights, centres); "sgd"
        uses Nesterov momentum 0.9, without Nesterov where ``optimizer__momentum=0`` or a
        nonzero ``optimizer__dampening`` rules it out (unless ``optimizer__nesterov`` is
        given). A class, e.g. ``torch.optim.RMSprop``, is built with
        ``lr=learning_rate_init`` and ``weight_decay``. Its other arguments are routed
        keywords of the estimator, ``optimizer__NAME=value`` (``optimizer__momentum=0.8``,
        for a string too): parameters like any other, for ``clone`` and grid search.
        ``optimizer__param_groups=[(pattern, options), ...]`` gives the parameters whose
        names match a glob pattern (``"module_.NAME"`` for the network's, named as the
        network names them; ``"loss_.NAME"`` for the loss's) options of their own, e.g.
        ``{"lr_multiplier": 0.1}`` for a pre-trained backbone or
        ``{"lr_multiplier": 10}`` for class weights.
    learning_rate_init : float or "auto", default="auto"
        The optimiser's step size. "auto" means 1e-3 for the built-in CNNs, which train
        from random weights, and 1e-4 otherwise: the MLP starts from the input's geometry
        and a gentle correction keeps what it already separates, and a module you pass may
        be pre-trained.
    weight_decay : float, default=0.0
        The optimiser's weight decay (L2 penalty; decoupled for "adamw").
    lr_schedule : {None, "cosine", "step"} or LRScheduler subclass, default=None
        Per-epoch learning-rate schedule over ``max_iter`` epochs: cosine decay to zero, or
        divided by 10 at 50% and 75% of them. Under early stopping, ``max_iter=None`` makes
        that the cap of 500 epochs, which early stopping rarely reaches: "cosine" then
        barely decays and "step" never fires, so set ``max_iter`` with a schedule. A
        ``torch.optim.lr_scheduler`` class is built on the optimiser with the routed
        keywords ``lr_schedule__NAME=value`` (e.g. ``lr_schedule=StepLR``,
        ``lr_schedule__step_size=10``) and stepped after every epoch; ``ReduceLROnPlateau``
        is stepped with the monitored value as a loss (the training loss, or minus the
        validation score). ``partial_fit`` uses a constant rate.
    max_grad_norm : float, default=None
        Clip the gradient of all trained parameters to this total L2 norm before each
        update (:func:`torch.nn.utils.clip_grad_norm_`; after unscaling with "fp16"). None
        does not clip.
    callbacks : list of objects, default=None
        Called during ``fit`` and ``partial_fit``, each through whichever of these methods
        it has: ``on_train_begin(estimator)`` once the network and loss are built,
        ``on_epoch_end(estimator, record)`` after each epoch (``record`` is that epoch's
        ``history_`` entry; returning True stops training, as a converged fit) and
        ``on_train_end(estimator)`` when training ends without an error. Callbacks run
        inside the fit: an exception from one ends it like any other fault.
    early_stopping : "auto" or bool, default="auto"
        Hold out whole groups of samples, compute the ROC AUC of the distances of the pairs
        inside them before training and after each epoch, stop after ``n_iter_no_change``
        epochs without an improvement by ``tol``, restore the best weights, and calibrate
        ``threshold_`` on the same pairs. A group is a set of samples linked by similar
        pairs (samples are told apart by their values): the identities, as far as the
        pairs know them. ``validation_fraction`` of the groups are held out with the pairs
        inside them, and the pairs between held-out and kept groups are not used, so that
        the score is that of identities the network did not train on, as the other
        embedders' class-disjoint early stopping. Pairs held out at random share their
        samples with the training pairs and reward memorising them (the benchmarks page
        measures the difference). "auto" validates when at least 2 groups fall on either
        side (8 groups or more at the default fraction) with pairs of both kinds, and
        otherwise trains for a short fixed budget (``max_iter``); True requires a split,
        False trains on every pair for ``max_iter`` epochs. Without a split, ``threshold_``
        is calibrated on the training pairs. The held-out pairs are few and mostly similar,
        so the threshold read from them varies from fit to fit:
        :meth:`calibrate_threshold` on representative pairs of your own does better.
    validation_fraction : float, default=0.2
        Fraction of the groups of linked samples held out for early stopping.
    n_iter_no_change : int, default=20
        Epochs without an improvement by more than ``tol`` before training stops. An epoch
        is one pass over the training samples: with up to ``batch_size`` of them (fewer than
        1.5 x ``batch_size`` in class-balanced batches) it is a single optimiser step. On
        60-150 training samples (iris, wine, digits), ``early_stopping=False`` with
        ``max_iter=200`` beat the defaults' test MAP@R in 23 of 24 measured cases, by up to
        0.24.
    tol : float, default=1e-4
        Smallest improvement of the monitored value (the ROC AUC of the held-out pairs, or
        the training loss without early stopping) that counts.
    warm_start : bool, default=False
        ``fit`` continues from the current weights and optimiser state (Adam's moments,
        SGD's momentum) under the current training parameters: ``learning_rate_init``,
        ``weight_decay`` and every ``optimizer__*`` value replace the saved ones. If
        ``optimizer`` is another class than the last fit's, or its settings need state the
        saved one lacks (``optimizer__amsgrad=True`` after a fit without), it starts with a
        fresh state. The parameters that build the network and the loss cannot change (a
        module given as ``network`` or ``loss`` must stay the same object).
    device : str or torch.device, default="auto"
        "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    precision : {"32", "bf16", "fp16"}, default="32"
        Mixed precision for the network's forward pass during training (the loss stays in
        float32). "fp16" (with gradient scaling) needs CUDA; "bf16" works on CPU too.
        ``transform`` always runs in float32.
    compile : bool, default=False
        Train the network through :func:`torch.compile` (``transform`` does not use it).
        Compiling takes seconds to minutes at the first epoch: worth it on long GPU runs.
    n_threads : int, default=None
        Torch intra-op threads during ``fit`` and ``transform`` on CPU, restored afterwards.
        None means 1, which suits small networks and a shared machine; -1 keeps torch's
        setting (better for a CNN on a large dedicated CPU).
    num_workers : int, default=0
        Background processes that read the batches of an array on disk (``numpy.memmap``,
        h5py, zarr) or a torch ``Dataset``, two batches ahead each (a ``DataLoader``'s
        ``num_workers``); 0 reads them in the fitting process. Helps when reading or
        decoding a batch (image files) takes as long as training on it; in-memory arrays do
        not use it.
    random_state : int, RandomState instance or None, default=None
        Seeds a local ``torch.Generator`` and ``numpy.random.Generator`` for the weights,
        batches, validation split, augmentation and dropout; torch's global RNG is left
        untouched. The same seed, data and thread count give bit-identical embeddings on
        CPU.
    verbose : int, default=0
        1 shows a progress bar with the loss and validation score per epoch, and prints
        which epoch's weights early stopping kept when they are not the last epoch's.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network.
    loss_ : torch.nn.Module
        The loss module, with its trained parameters (if any).
    classes_ : ndarray of shape (2,)
        The pair labels, ``[0, 1]``, ``[-1, 1]`` or ``[False, True]`` as in ``y``:
        ``predict`` returns ``classes_[1]`` for the pairs it finds similar.
    threshold_ : float
        The largest distance at which ``predict`` finds a pair similar.
    input_shape_ : tuple of int
        Shape of one sample as fed to the network.
    n_iter_ : int
        Number of epochs run.
    history_ : list of dict
        One record per epoch: ``epoch``, ``loss`` (mean training loss), ``score`` (ROC AUC
        of the held-out pairs, or None) and ``time`` (seconds).
    n_features_in_ : int
        Number of features of one sample (``X.shape[2]`` for flat samples).

    Notes
    -----
    The measurements behind these defaults are in the benchmarks page of the user guide.

    References
    ----------
    .. [1] R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality Reduction by Learning an
       Invariant Mapping", CVPR 2006.
    .. [2] W. de Vazelhes, C. J. Carey, Y. Tang, N. Vauquier, A. Bellet, "metric-learn:
       Metric Learning Algorithms in Python", JMLR 21(138), 2020 (the pairs convention and
       ``calibrate_threshold``).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_deepmetric.embedders import ContrastivePairsEmbedder
    >>> from sk_deepmetric.metrics import make_pairs
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X[:300] / 16.0
    >>> index, same = make_pairs(y[:300], n_pairs=600, random_state=0)
    >>> pairs = X[index]  # (600, 2, 64): the two samples of each pair
    >>> model = ContrastivePairsEmbedder(max_iter=3, random_state=0).fit(pairs, same)
    >>> model.predict(pairs[:5]).shape, model.transform(X[:3]).shape
    ((5,), (3, 128))
    """

    _batching = "shuffled"
    #: Shared parameters whose documentation here differs from the other embedders': epochs
    #: and early stopping are over pairs, and monitor the held-out pairs' ROC AUC.
    _own_docs = ("max_iter", "early_stopping", "validation_fraction", "tol")
    # Read by BaseEmbedder._train, which this class calls with its own split done (no plan):
    # not a parameter. (A base hook for the validation split would make it unnecessary.)
    validation_holdout = None

    _parameter_constraints: ClassVar[dict] = {
        **{k: v for k, v in BaseEmbedder._parameter_constraints.items() if k in _PARAMS},
        "pos_margin": [Interval(Real, 0, None, closed="left")],
        "neg_margin": [Interval(Real, 0, None, closed="left")],
        "distance": [StrOptions(set(DISTANCES))],
        "target_far": [Interval(Real, 0, 1, closed="neither"), None],
    }

    def __init__(
        self,
        *,
        pos_margin=0.0,
        neg_margin=1.0,
        distance="euclidean",
        target_far=None,
        n_components=128,
        network="mlp",
        hidden_layer_sizes=(256,),
        conv_channels=None,
        activation="relu",
        dropout=0.0,
        batch_norm=True,
        skip_connection=True,
        input_shape=None,
        normalize=True,
        augment=None,
        batch_size=128,
        max_iter=None,
        optimizer="adam",
        learning_rate_init="auto",
        weight_decay=0.0,
        lr_schedule=None,
        max_grad_norm=None,
        callbacks=None,
        early_stopping="auto",
        validation_fraction=0.2,
        n_iter_no_change=20,
        tol=1e-4,
        warm_start=False,
        device="auto",
        precision="32",
        compile=False,
        n_threads=None,
        num_workers=0,
        random_state=None,
        verbose=0,
        **routed,
    ):
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin
        self.distance = distance
        self.target_far = target_far
        self.n_components = n_components
        self.network = network
        self.hidden_layer_sizes = hidden_layer_sizes
        self.conv_channels = conv_channels
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.skip_connection = skip_connection
        self.input_shape = input_shape
        self.normalize = normalize
        self.augment = augment
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.optimizer = optimizer
        self.learning_rate_init = learning_rate_init
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.max_grad_norm = max_grad_norm
        self.callbacks = callbacks
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.precision = precision
        self.compile = compile
        self.n_threads = n_threads
        self.num_workers = num_workers
        self.random_state = random_state
        self.verbose = verbose
        store_routed(self, routed)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False  # X holds pairs: (n_pairs, 2, n_features)
        tags.input_tags.three_d_array = True
        tags.classifier_tags.multi_class = False  # same identity or not
        return tags

    def _build_loss(self, n_classes, n_components):
        return _GivenPairsContrastiveLoss(self.pos_margin, self.neg_margin, self.distance)

    # ------------------------------------------------------------- the pairs API
    def fit(self, X, y):
        """Train the embedding on pairs, then calibrate ``threshold_`` on held-out pairs.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2, *input_shape)
            The two samples of each pair.
        y : array-like of shape (n_pairs,)
            1 for a pair of similar samples, 0 or -1 for a dissimilar one (or booleans);
            both kinds must be present.

        Returns
        -------
        self : ContrastivePairsEmbedder
        """
        return super().fit(X, y)

    def partial_fit(self, X, y):
        """Train for one epoch on the pairs ``X``, ``y``, and calibrate on them.

        Nothing is held out: ``threshold_`` is read from these training pairs (optimistic;
        :meth:`calibrate_threshold` on other pairs does better).

        Parameters
        ----------
        X : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2, *input_shape)
        y : array-like of shape (n_pairs,)

        Returns
        -------
        self : ContrastivePairsEmbedder
        """
        return super().partial_fit(X, y)

    def fit_transform(self, X, y):
        """Fit on the pairs ``X``, ``y`` and return the embeddings of their samples.

        Under ``set_output(transform="pandas")`` (or "polars"), whose tables have two axes,
        the embeddings are returned as :meth:`transform` returns those of the samples
        ``X.reshape(2 * n_pairs, -1)``: one row per sample, pair ``i``'s in rows ``2 * i``
        and ``2 * i + 1``, with transform's column names.

        Returns
        -------
        X_new : ndarray of shape (n_pairs, 2, n_components), float32
            Or a table of shape (2 * n_pairs, n_components) under ``set_output``.
        """
        self.fit(X, y)
        pairs = self._validate_pairs(X, reset=False)
        samples = self._embed(pairs.reshape(-1, *self.input_shape_))
        if output_container(self) != "default":
            return samples  # scikit-learn's set_output wraps it as transform's output
        return samples.reshape(len(pairs), 2, -1)

    def _other_sample_shape(self, sample: tuple) -> ValueError:
        error = super()._other_sample_shape(sample)
        if sample != (2, *self._sample_shape):
            return error
        return ValueError(
            f"{error} transform embeds single samples: pass the pairs' first and second "
            "samples (X[:, 0] and X[:, 1]) separately, or use pair_distance / predict, which "
            "take pairs."
        )

    def pair_distance(self, X):
        """Distance between the two samples of each pair in the learned space.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2, *input_shape)

        Returns
        -------
        distances : ndarray of shape (n_pairs,), float64
            In the units of ``distance``.
        """
        check_is_fitted(self)
        return self._distances(self._validate_pairs(X, reset=False))

    def pair_score(self, X):
        """Similarity of each pair, ``-pair_distance(X)``: higher is more alike.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2, *input_shape)

        Returns
        -------
        scores : ndarray of shape (n_pairs,), float64
        """
        return -self.pair_distance(X)

    def decision_function(self, X):
        """``threshold_ - pair_distance(X)``: positive for the pairs predicted similar.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2, *input_shape)

        Returns
        -------
        decision : ndarray of shape (n_pairs,), float64
        """
        distance = self.pair_distance(X)
        return self.threshold_ - distance

    def predict(self, X):
        """``classes_[1]`` (similar) for pairs closer than ``threshold_``, else ``classes_[0]``.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2, *input_shape)

        Returns
        -------
        y_pred : ndarray of shape (n_pairs,)
        """
        similar = self.decision_function(X) >= 0
        return self.classes_[similar.astype(int)]

    def score(self, X, y, sample_weight=None):
        """Accuracy of :meth:`predict`: the (weighted) fraction of pairs whose same-or-not
        prediction matches ``y``.

        ``y`` is read as ``fit`` reads it -- 1 (or True) for a similar pair, 0, -1 (or False)
        for a dissimilar one -- whichever of these conventions ``fit`` was given.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2, *input_shape)
        y : array-like of shape (n_pairs,)
            1 for a similar pair, 0 or -1 for a dissimilar one.
        sample_weight : array-like of shape (n_pairs,), default=None
            Weights of the pairs in the mean.

        Returns
        -------
        score : float
        """
        from sklearn.metrics import accuracy_score

        similar = self.decision_function(X) >= 0
        same = self._validate_pair_target(y, len(similar), reset=False)
        return float(accuracy_score(same, similar.astype(np.int64), sample_weight=sample_weight))

    def calibrate_threshold(self, X, y):
        """Set ``threshold_`` from the pairs ``X``, ``y``, with this estimator's ``target_far``.

        ``target_far=None``: the distance of best accuracy on these pairs; a rate: the
        largest distance at which at most that fraction of their dissimilar pairs is
        accepted. Both as :func:`sk_deepmetric.metrics.select_threshold` reads them (halfway
        between two pairs' distances). ``fit`` does this on its held-out pairs; call it on
        pairs of your own to choose another operating point without refitting.

        Parameters
        ----------
        X : array-like of shape (n_pairs, 2, n_features) or (n_pairs, 2, *input_shape)
        y : array-like of shape (n_pairs,)
            1 (or True) for similar, 0 or -1 (or False) for dissimilar; both kinds.

        Returns
        -------
        self : ContrastivePairsEmbedder
        """
        check_is_fitted(self)
        self._validate_params()
        pairs = self._validate_pairs(X, reset=False)
        same = self._validate_pair_target(y, len(pairs), reset=False)
        self._calibrate(pairs, same)
        return self

    def set_threshold(self, threshold):
        """Set ``threshold_`` by hand: pairs at most this far apart are predicted similar.

        Parameters
        ----------
        threshold : float
            A distance in the units of ``distance``.

        Returns
        -------
        self : ContrastivePairsEmbedder
        """
        check_is_fitted(self)
        self.threshold_ = check_real(threshold, "threshold")
        return self

    # ------------------------------------------------------------- checking pairs
    def _validate_pairs(self, X, reset):
        """Pairs as float32 ``(n_pairs, 2, *sample_shape)``; the samples set or are checked
        against ``n_features_in_`` and ``input_shape_``, as single samples would be."""
        if sparse.issparse(X):
            raise TypeError(f"{type(self).__name__} takes dense pairs, got a sparse matrix.")
        if isinstance(X, Dataset):
            raise TypeError(
                f"{type(self).__name__} takes pairs as an array of shape (n_pairs, 2, ...), "
                "got a torch Dataset; transform takes one of samples."
            )
        X = as_host_tensor(X)  # detached, on the CPU, bfloat16 as float32 (NumPy has none)
        try:
            pairs = X if hasattr(X, "shape") and hasattr(X, "reshape") else np.asarray(X)
        except ValueError as exc:  # ragged: samples of different shapes
            raise ValueError(
                f"{type(self).__name__} takes pairs of samples of one shape, as an array of "
                f"shape (n_pairs, 2, ...); X could not be read as one: {exc}"
            ) from exc
        if pairs.ndim < 3 or pairs.shape[1] != 2:
            raise ValueError(
                f"{type(self).__name__} takes pairs: X of shape (n_pairs, 2, n_features), or "
                f"(n_pairs, 2, *input_shape), got shape {tuple(pairs.shape)}. "
                "np.stack([X_first, X_second], axis=1) makes pairs of two arrays of samples."
            )
        n_pairs = pairs.shape[0]
        samples = np.asarray(pairs).reshape(2 * n_pairs, *pairs.shape[2:])
        samples = validate_data(self, samples, reset=reset, dtype=np.float32, allow_nd=True)
        self._set_shape(samples, reset)
        return samples.reshape(n_pairs, 2, *samples.shape[1:])

    def _validate_pair_target(self, y, n_pairs, reset):
        """``y`` -> 0/1 int64 (1: similar); ``classes_`` set at fit from the labels' kind."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None: "
                "1 for a similar pair, 0 or -1 for a dissimilar one."
            )
        y = column_or_1d(y, warn=True)
        check_consistent_length(np.empty(n_pairs), y)
        same = check_pair_labels(y, "y")
        if reset:
            if y.dtype == bool:
                self.classes_ = np.array([False, True])
            else:
                self.classes_ = np.array([-1, 1] if (y == -1).any() else [0, 1], dtype=y.dtype)
        return same.astype(np.int64)

    def _validate_data_and_target(self, X, y, reset):
        pairs = self._validate_pairs(X, reset)
        return pairs, self._validate_pair_target(y, len(pairs), reset)

    def _as_network_input(self, X):
        if isinstance(X, RowSource):  # samples on disk (transform)
            return super()._as_network_input(X)
        # single samples (transform) or pairs of them (training), told apart by their rank
        leading = X.shape[:2] if X.ndim == len(self._sample_shape) + 2 else X.shape[:1]
        return np.ascontiguousarray(X.reshape(*leading, *self.input_shape_))

    def _check_output(self, module, X):
        super()._check_output(module, X[:, 0])  # a user's network sees samples

    # ------------------------------------------------------------- training
    def _fit_steps(self, X, y, continuing, max_iter, partial, classes):
        # the base class's _fit runs this and leaves a failed fresh fit unfitted
        if continuing:
            self._check_unchanged_architecture()
        pairs, same = self._validate_data_and_target(X, y, reset=not continuing)
        check_same_data(pairs.shape, same)  # under torchrun: a mismatch would hang
        if not continuing:
            self._warn_if_wide(pairs[:, 0])
            seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
            self._rng = np.random.default_rng(broadcast_object(seed))
            self._holdout_state = None
            self.history_, self.n_iter_ = [], 0
            self._optimizer_state = None
            self._architecture = self._architecture_params()
        train, held_out = self._split_pairs(pairs, same, partial, continuing)
        if max_iter is None:
            max_iter = AUTO_MAX_ITER[held_out is not None]
        device = resolve_device(self.device)
        self._held_out_pairs = None if held_out is None else (pairs[held_out], same[held_out])
        # the held-out groups keep a similar pair with about the fraction's probability, a
        # dissimilar one (two groups) with about its square: their accuracy is weighted back
        # to the balance of the pairs given
        calibration = (
            (pairs[train], same[train], None)
            if held_out is None
            else (pairs[held_out], same[held_out], float(same.mean()))
        )
        epochs_before = len(self.history_)
        try:
            with torch_threads(self._threads(device)):
                result, max_iter, _ = self._train(
                    pairs[train], same[train], device, continuing, max_iter, partial, None
                )
        except BaseException:
            # a fault after an epoch of this call: the weights of the last finished epoch are
            # kept, so threshold_ must be theirs, not the last fit's (or missing)
            if len(getattr(self, "history_", ())) > epochs_before:
                self._calibrate_kept(*calibration)
            raise
        finally:
            del self._held_out_pairs
        self._calibrate_kept(*calibration)
        if result.interrupted or partial:
            return self
        judged = self.early_stopping is True or max_iter >= self.n_iter_no_change
        if judged and not result.converged and result.n_epochs == max_iter:
            validated = held_out is not None
            self._warn_unconverged(max_iter, result.stalled, validated, result.best_epoch)
        elif result.best_epoch == -1 and result.n_epochs > 0:
            self._warn_untrained(result.n_epochs, len(same))
        return self

    def _split_pairs(self, pairs, same, partial, continuing=False):
        """Indices of the training pairs and of the held-out ones (None: nothing held out).

        Whole groups are held out (see :func:`_pair_groups`): ``validation_fraction`` of
        them, with the pairs inside them; pairs between a held-out and a kept group are
        dropped. As the class-disjoint split of the other embedders, this measures the
        embedding on identities it did not train on; with fewer than 2 groups on either side
        "auto" validates nothing. A warm start holds out the same groups of the same pairs
        (:meth:`_holdout_rng`).
        """
        everything = np.arange(same.size)
        if partial or not self.early_stopping:
            return everything, None
        groups = _pair_groups(pairs, same)
        n_groups = int(groups.max()) + 1
        n_val = round(self.validation_fraction * n_groups)
        if self.early_stopping is True:
            n_val = min(max(2, n_val), n_groups - 2)  # at most all but 2
        split = None
        if n_val >= 2 and n_groups - n_val >= 2:
            chosen = self._holdout_rng(continuing).choice(n_groups, n_val, replace=False)
            held_out = np.isin(groups, chosen)
            train, validation = ~held_out.any(axis=1), held_out.all(axis=1)
            if all(np.unique(same[part]).size == 2 for part in (train, validation)):
                split = everything[train], everything[validation]
        if split is None and self.early_stopping is True:
            raise ValueError(
                "`early_stopping=True` holds out whole groups of samples linked by similar "
                f"pairs ({n_groups} groups here), and needs at least 2 groups on each side "
                "with similar and dissimilar pairs in both; set early_stopping=False or give "
                "more pairs."
            )
        return split or (everything, None)

    def _init_training(self, device, max_iter, schedule):
        training = super()._init_training(device, max_iter, schedule)
        # the optimiser holds module_'s parameters, which the wrapper shares
        return dataclasses.replace(training, module=_PairNetwork(self.module_))

    def _hold_out(self, X_t, y_t, y, train, validation, device):
        """The training pairs, and the ROC AUC of the held-out pairs' similarities."""
        if self._held_out_pairs is None:
            return X_t, y_t, None
        from sklearn.metrics import roc_auc_score

        pairs, same = self._held_out_pairs
        pairs = self._as_network_input(pairs)

        def validation_score():
            return float(roc_auc_score(same, -self._distances(pairs, device)))

        return X_t, y_t, validation_score

    def _calibrate(self, pairs, same, prior=None):
        """Set ``threshold_`` from the pairs; ``prior`` (the fraction of similar pairs) weighs
        the accuracy, for pairs whose balance is not that of the data (None: theirs)."""
        distances = self._distances(pairs)
        self.threshold_ = -pair_threshold(same, -distances, self.target_far, prior)

    def _calibrate_kept(self, pairs, same, prior):
        """Calibrate the weights a fit keeps; if that fails (Ctrl-C, say), discard the fit:
        weights without their threshold are not a fitted model."""
        try:
            self._calibrate(pairs, same, prior)
        except BaseException:
            self._discard_fit()
            raise

    def _distances(self, pairs, device=None):
        """Distances of checked pairs ``(n_pairs, 2, ...)``, float64."""
        device = resolve_device(self.device) if device is None else device
        samples = torch.from_numpy(np.ascontiguousarray(pairs.reshape(-1, *self.input_shape_)))
        with torch_threads(self._threads(device)):
            embedding = torch.from_numpy(embed(self.module_, samples, device))
        d = paired_distances(embedding[0::2], embedding[1::2], self.distance)
        return d.double().numpy()

    def _embed(self, samples):
        return self._transform(samples)


def _pair_groups(pairs: np.ndarray, same: np.ndarray) -> np.ndarray:
    """The group of each sample of each pair, shape ``(n_pairs, 2)``.

    Samples are told apart by their values (a sample that appears in several pairs is one
    sample); the similar pairs link them, and a group is a connected set of links: the
    identities, as far as the pairs know them (a sample only in dissimilar pairs is a group
    of its own).
    """
    from scipy.sparse.csgraph import connected_components

    n_pairs = len(pairs)
    rows = np.ascontiguousarray(pairs.reshape(2 * n_pairs, -1))
    ids = np.unique(rows, axis=0, return_inverse=True)[1].reshape(n_pairs, 2)
    linked = ids[same == 1]
    n_samples = int(ids.max()) + 1
    graph = sparse.coo_matrix(
        (np.ones(len(linked)), (linked[:, 0], linked[:, 1])), shape=(n_samples, n_samples)
    )
    return connected_components(graph, directed=False)[1][ids]
