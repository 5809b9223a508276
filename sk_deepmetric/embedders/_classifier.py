"""Embedders trained as the penultimate layer of a classifier: the softmax family, centre
loss, Proxy-Anchor.

The loss owns one weight vector per class (and the centre loss one centre, sub-centre ArcFace
several sub-centres, Proxy-Anchor one proxy), trained with the network on shuffled batches and
discarded at ``transform``. The class weights start at the centred class-mean directions of the
initial embedding ("imprinting").
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
import torch

from .._validation import Interval
from ..losses import (
    ArcFaceLoss,
    CenterLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    ProxyAnchorLoss,
    SoftmaxLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
)
from ._base import BaseEmbedder
from ._params import loss_params, store_routed

__all__ = [
    "ArcFaceEmbedder",
    "CenterLossEmbedder",
    "CosFaceEmbedder",
    "LargeMarginSoftmaxEmbedder",
    "ProxyAnchorEmbedder",
    "SoftmaxEmbedder",
    "SphereFaceEmbedder",
    "SubCenterArcFaceEmbedder",
]


#: Norm of the imprinted class weights, hence the initial logit scale, of a loss that keeps
#: the weights' norm on normalised embeddings (see ``SoftmaxEmbedder``'s ``normalize``).
IMPRINT_LOGIT_SCALE = 4.0


class _ClassifierEmbedder(BaseEmbedder):
    """Losses with one learnable weight vector per class: shuffled batches, labels 0..C-1."""

    _batching = "shuffled"
    _default_overrides: ClassVar[dict] = {"normalize": False}
    _loss_class = SoftmaxLoss

    def _build_loss(self, n_classes, n_components):
        return self._loss_class(n_classes, n_components, **self._loss_kwargs())

    def _init_loss_from_data(self, X, y, device):
        """Start the class weights at the centred class-mean directions of the initial
        embedding, with the loss's public ``imprint_`` ("imprinting": random weights barely
        move in a short budget); ``docs/benchmarks.md`` has the measurements."""
        means, overall = self._initial_class_means(X, y, device)
        with warnings.catch_warnings():
            # a class whose mean is the overall one keeps its random start: nothing to say
            warnings.filterwarnings("ignore", "(?s).*class means equal `center`", UserWarning)
            self.loss_.imprint_(means, center=overall, norm=self._imprint_norm())

    def _imprint_norm(self) -> float | None:
        """Norm of the imprinted class weights (None: the random initialisation's).

        On unit-norm embeddings, a loss that keeps the weights' norm (softmax, center loss,
        L-Softmax) takes it as its logit scale: the random initialisation's norm (about 0.6,
        nn.Linear's) leaves the softmax nearly uniform and its gradients weak, and with
        Adam the norm grows by about ``learning_rate_init`` per step. It starts at
        :data:`IMPRINT_LOGIT_SCALE` instead. Otherwise (the norm is irrelevant, or the
        embedding's own norm scales the logits) the random initialisation's norm is kept.
        """
        if self.normalize and not self.loss_.normalizes_class_weights:
            return IMPRINT_LOGIT_SCALE
        return None

    def _initial_class_means(self, X, y, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean initial embedding of each class, (n_classes, d), and of all samples, (d,)."""
        Z = torch.from_numpy(self._embed_input(self._as_network_input(X), device))
        labels = torch.from_numpy(y).long()
        sums = torch.zeros(len(self.classes_), Z.shape[1]).index_add_(0, labels, Z)
        counts = torch.bincount(labels, minlength=len(self.classes_))[:, None]
        return sums / counts, Z.mean(dim=0)


class SoftmaxEmbedder(_ClassifierEmbedder):
    """Embedding trained as the penultimate layer of a softmax classifier.

    A linear classifier (one weight vector and bias per class) on the embedding, trained with
    cross-entropy and discarded at ``transform``; see
    :class:`~sk_deepmetric.losses.SoftmaxLoss`. The class weights start at the centred
    class-mean directions of the initial embedding ("imprinting"), as in every
    classifier-based embedder; on normalised embeddings (the default) their norm, the logit
    scale, starts at 4 and is learnt.

    Parameters
    ----------
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
        L2-normalise the embedding (in training and in ``transform``). On: the logits are ``W_j x /
        ||x|| + b_j``, so the class weights' norm is the logit scale, which imprinting starts at 4
        and training learns (the benchmarks page compares it with the unnormalised softmax).
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
        Maximum number of epochs (passes over the training data). None means
        500 epochs when early stopping runs (a cap: validation decides) and
        5 when it does not, a short budget that stays close to the starting
        point when nothing tells when training starts to overfit. Without early stopping,
        training also stops once the training loss stops improving (``n_iter_no_change``,
        ``tol``). A ``ConvergenceWarning`` says when ``max_iter`` ended the fit first.
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
        Score MAP@R on held-out data (see ``validation_holdout``) before training and after
        each epoch, stop after ``n_iter_no_change`` epochs without an improvement by
        ``tol``, and restore the best weights (the starting ones if no epoch beat them).
        "auto" does this when the labels allow a validation set and otherwise trains for
        the short budget of ``max_iter=None``; True validates whatever the labels.
    validation_fraction : float, default=0.2
        Fraction of the classes, and of the samples of each remaining class, held out for
        early stopping. Classes of a single sample are never held out and do not count
        here (they train only as negatives): the fraction is of the classes with 2 or more
        samples, at least 2 of which always stay in training.
    validation_holdout : {"auto", "classes", "samples", "both"}, default="auto"
        What early stopping holds out. "classes": whole classes, to judge retrieval among
        classes never trained on (open set: new identities, new products). "samples": a
        fraction of every class's samples (at least 2 of each class with 4 or more), to
        judge how well the known classes are separated (closed set: a KNN classifier over
        the training classes). "both": classes, and samples of the others, scored together
        as one retrieval set (a compromise that costs some of each). "auto": classes when
        at least 4 classes can be held out (18 classes at the default
        ``validation_fraction``), and samples otherwise: with fewer classes held out, their
        MAP@R is a noisy guide.
    n_iter_no_change : int, default=20
        Epochs without an improvement by more than ``tol`` before training stops. An epoch
        is one pass over the training samples: with up to ``batch_size`` of them (fewer than
        1.5 x ``batch_size`` in class-balanced batches) it is a single optimiser step. On
        60-150 training samples (iris, wine, digits), ``early_stopping=False`` with
        ``max_iter=200`` beat the defaults' test MAP@R in 23 of 24 measured cases, by up to
        0.24.
    tol : float, default=1e-4
        Smallest improvement of the monitored value (validation MAP@R, or the training
        loss without early stopping) that counts.
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

    Notes
    -----
    The measurements behind these defaults are in the benchmarks page of the user guide.

    References
    ----------
    .. [1] K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning Reality
       Check", ECCV 2020 (the softmax baseline is competitive with tuple losses).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import SoftmaxEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), SoftmaxEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _default_overrides: ClassVar[dict] = {"normalize": True}
    _loss_class = SoftmaxLoss

    def __init__(
        self,
        *,
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
        validation_holdout="auto",
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
        self.validation_holdout = validation_holdout
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


class CenterLossEmbedder(_ClassifierEmbedder):
    """Embedding trained with softmax cross-entropy plus the center loss.

    Adds ``center_weight`` times the mean squared distance of each sample to its class's
    learnable centre, making classes compact; see :class:`~sk_deepmetric.losses.CenterLoss`.
    The centres start at the class means of the initial embedding, the classifier's weights at
    their centred directions.

    Parameters
    ----------
    center_weight : float, default=0.01
        Weight of the centre term (the paper's lambda; its face experiments use 0.003).
        The larger default makes the training classes more compact, which carried over to
        unseen classes in the benchmarks; much larger values pull noise dimensions in too.
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
    normalize : bool, default=False
        L2-normalise the embedding (in training and in ``transform``). Off: the classifier's logits
        need the features' norm; ``transform`` output is usually compared by cosine similarity (as
        ``score`` does).
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
        Maximum number of epochs (passes over the training data). None means
        500 epochs when early stopping runs (a cap: validation decides) and
        5 when it does not, a short budget that stays close to the starting
        point when nothing tells when training starts to overfit. Without early stopping,
        training also stops once the training loss stops improving (``n_iter_no_change``,
        ``tol``). A ``ConvergenceWarning`` says when ``max_iter`` ended the fit first.
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
        Score MAP@R on held-out data (see ``validation_holdout``) before training and after
        each epoch, stop after ``n_iter_no_change`` epochs without an improvement by
        ``tol``, and restore the best weights (the starting ones if no epoch beat them).
        "auto" does this when the labels allow a validation set and otherwise trains for
        the short budget of ``max_iter=None``; True validates whatever the labels.
    validation_fraction : float, default=0.2
        Fraction of the classes, and of the samples of each remaining class, held out for
        early stopping. Classes of a single sample are never held out and do not count
        here (they train only as negatives): the fraction is of the classes with 2 or more
        samples, at least 2 of which always stay in training.
    validation_holdout : {"auto", "classes", "samples", "both"}, default="auto"
        What early stopping holds out. "classes": whole classes, to judge retrieval among
        classes never trained on (open set: new identities, new products). "samples": a
        fraction of every class's samples (at least 2 of each class with 4 or more), to
        judge how well the known classes are separated (closed set: a KNN classifier over
        the training classes). "both": classes, and samples of the others, scored together
        as one retrieval set (a compromise that costs some of each). "auto": classes when
        at least 4 classes can be held out (18 classes at the default
        ``validation_fraction``), and samples otherwise: with fewer classes held out, their
        MAP@R is a noisy guide.
    n_iter_no_change : int, default=20
        Epochs without an improvement by more than ``tol`` before training stops. An epoch
        is one pass over the training samples: with up to ``batch_size`` of them (fewer than
        1.5 x ``batch_size`` in class-balanced batches) it is a single optimiser step. On
        60-150 training samples (iris, wine, digits), ``early_stopping=False`` with
        ``max_iter=200`` beat the defaults' test MAP@R in 23 of 24 measured cases, by up to
        0.24.
    tol : float, default=1e-4
        Smallest improvement of the monitored value (validation MAP@R, or the training
        loss without early stopping) that counts.
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

    Notes
    -----
    The measurements behind these defaults are in the benchmarks page of the user guide.

    References
    ----------
    .. [1] Y. Wen, K. Zhang, Z. Li, Y. Qiao, "A Discriminative Feature Learning Approach
       for Deep Face Recognition", ECCV 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import CenterLossEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), CenterLossEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = CenterLoss
    _tuned_defaults: ClassVar[dict] = {"center_weight": 0.01}
    _loss_params: ClassVar[dict] = loss_params(
        CenterLoss, ("center_weight",), tuned=_tuned_defaults
    )
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "center_weight": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        center_weight=0.01,
        n_components=128,
        network="mlp",
        hidden_layer_sizes=(256,),
        conv_channels=None,
        activation="relu",
        dropout=0.0,
        batch_norm=True,
        skip_connection=True,
        input_shape=None,
        normalize=False,
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
        validation_holdout="auto",
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
        self.center_weight = center_weight
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
        self.validation_holdout = validation_holdout
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


class LargeMarginSoftmaxEmbedder(_ClassifierEmbedder):
    """Embedding trained with the large-margin softmax (L-Softmax) loss.

    Softmax whose target logit uses ``cos(m * theta)`` instead of ``cos(theta)``; see
    :class:`~sk_deepmetric.losses.LargeMarginSoftmaxLoss`.

    Parameters
    ----------
    margin : int, default=4
        Integer angle multiplier ``m``: the target class's angle counts ``m`` times (1: no
        margin). A float such as 4.0 is an error, not silently truncated.
        4 (the paper's default is 2): with ``softmax_weight=1`` a larger, less diluted
        margin makes the training classes compact, which carried over to unseen classes in
        the benchmarks.
    softmax_weight : float, default=1.0
        ``lambda`` blending in the plain logit, ``(lambda cos + psi) / (1 + lambda)``; a
        large value early in training eases optimisation, and 0 is the loss as the papers
        define it. With 0 the margin barely trained on the benchmarks' 100-class task;
        1 rather than SphereFace's 5: see ``margin``.
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
    normalize : bool, default=False
        L2-normalise the embedding (in training and in ``transform``). Off: the classifier's logits
        need the features' norm; ``transform`` output is usually compared by cosine similarity (as
        ``score`` does).
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
        Maximum number of epochs (passes over the training data). None means
        500 epochs when early stopping runs (a cap: validation decides) and
        5 when it does not, a short budget that stays close to the starting
        point when nothing tells when training starts to overfit. Without early stopping,
        training also stops once the training loss stops improving (``n_iter_no_change``,
        ``tol``). A ``ConvergenceWarning`` says when ``max_iter`` ended the fit first.
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
        Score MAP@R on held-out data (see ``validation_holdout``) before training and after
        each epoch, stop after ``n_iter_no_change`` epochs without an improvement by
        ``tol``, and restore the best weights (the starting ones if no epoch beat them).
        "auto" does this when the labels allow a validation set and otherwise trains for
        the short budget of ``max_iter=None``; True validates whatever the labels.
    validation_fraction : float, default=0.2
        Fraction of the classes, and of the samples of each remaining class, held out for
        early stopping. Classes of a single sample are never held out and do not count
        here (they train only as negatives): the fraction is of the classes with 2 or more
        samples, at least 2 of which always stay in training.
    validation_holdout : {"auto", "classes", "samples", "both"}, default="auto"
        What early stopping holds out. "classes": whole classes, to judge retrieval among
        classes never trained on (open set: new identities, new products). "samples": a
        fraction of every class's samples (at least 2 of each class with 4 or more), to
        judge how well the known classes are separated (closed set: a KNN classifier over
        the training classes). "both": classes, and samples of the others, scored together
        as one retrieval set (a compromise that costs some of each). "auto": classes when
        at least 4 classes can be held out (18 classes at the default
        ``validation_fraction``), and samples otherwise: with fewer classes held out, their
        MAP@R is a noisy guide.
    n_iter_no_change : int, default=20
        Epochs without an improvement by more than ``tol`` before training stops. An epoch
        is one pass over the training samples: with up to ``batch_size`` of them (fewer than
        1.5 x ``batch_size`` in class-balanced batches) it is a single optimiser step. On
        60-150 training samples (iris, wine, digits), ``early_stopping=False`` with
        ``max_iter=200`` beat the defaults' test MAP@R in 23 of 24 measured cases, by up to
        0.24.
    tol : float, default=1e-4
        Smallest improvement of the monitored value (validation MAP@R, or the training
        loss without early stopping) that counts.
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

    Notes
    -----
    The measurements behind these defaults are in the benchmarks page of the user guide.

    References
    ----------
    .. [1] W. Liu, Y. Wen, Z. Yu, M. Yang, "Large-Margin Softmax Loss for Convolutional
       Neural Networks", ICML 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import LargeMarginSoftmaxEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(
    ...     StandardScaler(), LargeMarginSoftmaxEmbedder(max_iter=2, random_state=0)
    ... )
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = LargeMarginSoftmaxLoss
    _tuned_defaults: ClassVar[dict] = {"margin": 4, "softmax_weight": 1.0}
    _loss_params: ClassVar[dict] = loss_params(
        LargeMarginSoftmaxLoss, ("margin", "softmax_weight"), tuned=_tuned_defaults
    )
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "margin": [Interval(Integral, 1, None, closed="left")],
        "softmax_weight": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        margin=4,
        softmax_weight=1.0,
        n_components=128,
        network="mlp",
        hidden_layer_sizes=(256,),
        conv_channels=None,
        activation="relu",
        dropout=0.0,
        batch_norm=True,
        skip_connection=True,
        input_shape=None,
        normalize=False,
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
        validation_holdout="auto",
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
        self.margin = margin
        self.softmax_weight = softmax_weight
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
        self.validation_holdout = validation_holdout
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


class SphereFaceEmbedder(_ClassifierEmbedder):
    """Embedding trained with SphereFace's angular softmax (A-Softmax).

    L-Softmax with unit-norm class weights and no bias: the margin is purely angular; see
    :class:`~sk_deepmetric.losses.SphereFaceLoss`.

    Parameters
    ----------
    margin : int, default=4
        Integer angle multiplier ``m``: the target class's angle counts ``m`` times (1: no
        margin). A float such as 4.0 is an error, not silently truncated.
    softmax_weight : float, default=5.0
        ``lambda`` blending in the plain logit, ``(lambda cos + psi) / (1 + lambda)``; a
        large value early in training eases optimisation, and 0 is the loss as the papers
        define it. 5, the floor SphereFace's authors anneal it
        to: with 0 the margin barely trained on the benchmarks' 100-class task.
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
    normalize : bool, default=False
        L2-normalise the embedding (in training and in ``transform``). Off: the classifier's logits
        need the features' norm; ``transform`` output is usually compared by cosine similarity (as
        ``score`` does).
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
        Maximum number of epochs (passes over the training data). None means
        500 epochs when early stopping runs (a cap: validation decides) and
        5 when it does not, a short budget that stays close to the starting
        point when nothing tells when training starts to overfit. Without early stopping,
        training also stops once the training loss stops improving (``n_iter_no_change``,
        ``tol``). A ``ConvergenceWarning`` says when ``max_iter`` ended the fit first.
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
        Score MAP@R on held-out data (see ``validation_holdout``) before training and after
        each epoch, stop after ``n_iter_no_change`` epochs without an improvement by
        ``tol``, and restore the best weights (the starting ones if no epoch beat them).
        "auto" does this when the labels allow a validation set and otherwise trains for
        the short budget of ``max_iter=None``; True validates whatever the labels.
    validation_fraction : float, default=0.2
        Fraction of the classes, and of the samples of each remaining class, held out for
        early stopping. Classes of a single sample are never held out and do not count
        here (they train only as negatives): the fraction is of the classes with 2 or more
        samples, at least 2 of which always stay in training.
    validation_holdout : {"auto", "classes", "samples", "both"}, default="auto"
        What early stopping holds out. "classes": whole classes, to judge retrieval among
        classes never trained on (open set: new identities, new products). "samples": a
        fraction of every class's samples (at least 2 of each class with 4 or more), to
        judge how well the known classes are separated (closed set: a KNN classifier over
        the training classes). "both": classes, and samples of the others, scored together
        as one retrieval set (a compromise that costs some of each). "auto": classes when
        at least 4 classes can be held out (18 classes at the default
        ``validation_fraction``), and samples otherwise: with fewer classes held out, their
        MAP@R is a noisy guide.
    n_iter_no_change : int, default=20
        Epochs without an improvement by more than ``tol`` before training stops. An epoch
        is one pass over the training samples: with up to ``batch_size`` of them (fewer than
        1.5 x ``batch_size`` in class-balanced batches) it is a single optimiser step. On
        60-150 training samples (iris, wine, digits), ``early_stopping=False`` with
        ``max_iter=200`` beat the defaults' test MAP@R in 23 of 24 measured cases, by up to
        0.24.
    tol : float, default=1e-4
        Smallest improvement of the monitored value (validation MAP@R, or the training
        loss without early stopping) that counts.
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

    Notes
    -----
    The measurements behind these defaults are in the benchmarks page of the user guide.

    References
    ----------
    .. [1] W. Liu, Y. Wen, Z. Yu, M. Li, B. Raj, L. Song, "SphereFace: Deep Hypersphere
       Embedding for Face Recognition", CVPR 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import SphereFaceEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), SphereFaceEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = SphereFaceLoss
    _tuned_defaults: ClassVar[dict] = {"softmax_weight": 5.0}
    _loss_params: ClassVar[dict] = loss_params(
        SphereFaceLoss, ("margin", "softmax_weight"), tuned=_tuned_defaults
    )
    _parameter_constraints: ClassVar[dict] = LargeMarginSoftmaxEmbedder._parameter_constraints

    def __init__(
        self,
        *,
        margin=4,
        softmax_weight=5.0,
        n_components=128,
        network="mlp",
        hidden_layer_sizes=(256,),
        conv_channels=None,
        activation="relu",
        dropout=0.0,
        batch_norm=True,
        skip_connection=True,
        input_shape=None,
        normalize=False,
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
        validation_holdout="auto",
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
        self.margin = margin
        self.softmax_weight = softmax_weight
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
        self.validation_holdout = validation_holdout
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


class CosFaceEmbedder(_ClassifierEmbedder):
    """Embedding trained with CosFace (large-margin cosine loss).

    Softmax over ``scale * cos(theta_j)`` with ``margin`` subtracted from the target class's
    cosine; see :class:`~sk_deepmetric.losses.CosFaceLoss`. Class weights start at the
    centred class-mean directions of the initial embedding, as in every classifier-based
    embedder.

    Parameters
    ----------
    margin : float, default=0.35
        Additive margin on the cosine, in [0, 1).
    scale : float, default=64.0
        Radius of the hypersphere the logits live on.
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
        L2-normalise the embedding (in training and in ``transform``). On: the loss compares
        directions only (cosine of the angle to each class).
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
        Maximum number of epochs (passes over the training data). None means
        500 epochs when early stopping runs (a cap: validation decides) and
        5 when it does not, a short budget that stays close to the starting
        point when nothing tells when training starts to overfit. Without early stopping,
        training also stops once the training loss stops improving (``n_iter_no_change``,
        ``tol``). A ``ConvergenceWarning`` says when ``max_iter`` ended the fit first.
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
        Score MAP@R on held-out data (see ``validation_holdout``) before training and after
        each epoch, stop after ``n_iter_no_change`` epochs without an improvement by
        ``tol``, and restore the best weights (the starting ones if no epoch beat them).
        "auto" does this when the labels allow a validation set and otherwise trains for
        the short budget of ``max_iter=None``; True validates whatever the labels.
    validation_fraction : float, default=0.2
        Fraction of the classes, and of the samples of each remaining class, held out for
        early stopping. Classes of a single sample are never held out and do not count
        here (they train only as negatives): the fraction is of the classes with 2 or more
        samples, at least 2 of which always stay in training.
    validation_holdout : {"auto", "classes", "samples", "both"}, default="auto"
        What early stopping holds out. "classes": whole classes, to judge retrieval among
        classes never trained on (open set: new identities, new products). "samples": a
        fraction of every class's samples (at least 2 of each class with 4 or more), to
        judge how well the known classes are separated (closed set: a KNN classifier over
        the training classes). "both": classes, and samples of the others, scored together
        as one retrieval set (a compromise that costs some of each). "auto": classes when
        at least 4 classes can be held out (18 classes at the default
        ``validation_fraction``), and samples otherwise: with fewer classes held out, their
        MAP@R is a noisy guide.
    n_iter_no_change : int, default=20
        Epochs without an improvement by more than ``tol`` before training stops. An epoch
        is one pass over the training samples: with up to ``batch_size`` of them (fewer than
        1.5 x ``batch_size`` in class-balanced batches) it is a single optimiser step. On
        60-150 training samples (iris, wine, digits), ``early_stopping=False`` with
        ``max_iter=200`` beat the defaults' test MAP@R in 23 of 24 measured cases, by up to
        0.24.
    tol : float, default=1e-4
        Smallest improvement of the monitored value (validation MAP@R, or the training
        loss without early stopping) that counts.
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

    Notes
    -----
    The measurements behind these defaults are in the benchmarks page of the user guide.

    References
    ----------
    .. [1] H. Wang et al., "CosFace: Large Margin Cosine Loss for Deep Face Recognition",
       CVPR 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import CosFaceEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), CosFaceEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = CosFaceLoss
    _loss_params: ClassVar[dict] = loss_params(CosFaceLoss, ("margin", "scale"))
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, 1, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        margin=0.35,
        scale=64.0,
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
        validation_holdout="auto",
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
        self.margin = margin
        self.scale = scale
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
        self.validation_holdout = validation_holdout
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


class ArcFaceEmbedder(_ClassifierEmbedder):
    """Embedding trained with ArcFace (additive angular margin loss).

    Softmax over ``scale * cos(theta_j)`` with ``margin`` radians added to the target class's
    angle; see :class:`~sk_deepmetric.losses.ArcFaceLoss`. Each class's weight starts at the
    direction of the class's mean embedding under the initial network, centred on the mean of
    all ("imprinting"), not at random, as in every classifier-based embedder.

    Parameters
    ----------
    margin : float, default=0.5
        Additive angular margin in radians (0.5 is about 28.6 degrees), in [0, pi/2).
    scale : float, default=64.0
        Radius of the hypersphere the logits live on.
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
        L2-normalise the embedding (in training and in ``transform``). On: the loss compares
        directions only (cosine of the angle to each class).
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
        Maximum number of epochs (passes over the training data). None means
        500 epochs when early stopping runs (a cap: validation decides) and
        5 when it does not, a short budget that stays close to the starting
        point when nothing tells when training starts to overfit. Without early stopping,
        training also stops once the training loss stops improving (``n_iter_no_change``,
        ``tol``). A ``ConvergenceWarning`` says when ``max_iter`` ended the fit first.
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
        Score MAP@R on held-out data (see ``validation_holdout``) before training and after
        each epoch, stop after ``n_iter_no_change`` epochs without an improvement by
        ``tol``, and restore the best weights (the starting ones if no epoch beat them).
        "auto" does this when the labels allow a validation set and otherwise trains for
        the short budget of ``max_iter=None``; True validates whatever the labels.
    validation_fraction : float, default=0.2
        Fraction of the classes, and of the samples of each remaining class, held out for
        early stopping. Classes of a single sample are never held out and do not count
        here (they train only as negatives): the fraction is of the classes with 2 or more
        samples, at least 2 of which always stay in training.
    validation_holdout : {"auto", "classes", "samples", "both"}, default="auto"
        What early stopping holds out. "classes": whole classes, to judge retrieval among
        classes never trained on (open set: new identities, new products). "samples": a
        fraction of every class's samples (at least 2 of each class with 4 or more), to
        judge how well the known classes are separated (closed set: a KNN classifier over
        the training classes). "both": classes, and samples of the others, scored together
        as one retrieval set (a compromise that costs some of each). "auto": classes when
        at least 4 classes can be held out (18 classes at the default
        ``validation_fraction``), and samples otherwise: with fewer classes held out, their
        MAP@R is a noisy guide.
    n_iter_no_change : int, default=20
        Epochs without an improvement by more than ``tol`` before training stops. An epoch
        is one pass over the training samples: with up to ``batch_size`` of them (fewer than
        1.5 x ``batch_size`` in class-balanced batches) it is a single optimiser step. On
        60-150 training samples (iris, wine, digits), ``early_stopping=False`` with
        ``max_iter=200`` beat the defaults' test MAP@R in 23 of 24 measured cases, by up to
        0.24.
    tol : float, default=1e-4
        Smallest improvement of the monitored value (validation MAP@R, or the training
        loss without early stopping) that counts.
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

    Notes
    -----
    The measurements behind these defaults are in the benchmarks page of the user guide.

    References
    ----------
    .. [1] J. Deng, J. Guo, N. Xue, S. Zafeiriou, "ArcFace: Additive Angular Margin Loss
       for Deep Face Recognition", CVPR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import ArcFaceEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), ArcFaceEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = ArcFaceLoss
    _loss_params: ClassVar[dict] = loss_params(ArcFaceLoss, ("margin", "scale"))
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, np.pi / 2, closed="left")],
        "scale": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        margin=0.5,
        scale=64.0,
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
        validation_holdout="auto",
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
        self.margin = margin
        self.scale = scale
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
        self.validation_holdout = validation_holdout
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


class SubCenterArcFaceEmbedder(_ClassifierEmbedder):
    """Embedding trained with sub-centre ArcFace.

    ArcFace with ``sub_centers`` weight vectors per class, of which the one nearest to a
    sample counts: a class's atypical or mislabelled samples can gather around a sub-centre
    of their own instead of pulling the dominant one; see
    :class:`~sk_deepmetric.losses.SubCenterArcFaceLoss`. The first sub-centre of each class
    starts at the direction of the class's mean embedding under the initial network
    (centred, as in every classifier-based embedder), the others at random directions. The
    paper's second stage (drop the samples far from their dominant sub-centre, retrain) is
    not done.

    Parameters
    ----------
    margin : float, default=0.5
        Additive angular margin in radians (0.5 is about 28.6 degrees), in [0, pi/2).
    scale : float, default=64.0
        Radius of the hypersphere the logits live on.
    sub_centers : int, default=3
        Sub-centres per class (>= 1; 1 is ArcFace), the paper's 3.
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
        L2-normalise the embedding (in training and in ``transform``). On: the loss compares
        directions only (cosine of the angle to each class).
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
        Maximum number of epochs (passes over the training data). None means
        500 epochs when early stopping runs (a cap: validation decides) and
        5 when it does not, a short budget that stays close to the starting
        point when nothing tells when training starts to overfit. Without early stopping,
        training also stops once the training loss stops improving (``n_iter_no_change``,
        ``tol``). A ``ConvergenceWarning`` says when ``max_iter`` ended the fit first.
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
        Score MAP@R on held-out data (see ``validation_holdout``) before training and after
        each epoch, stop after ``n_iter_no_change`` epochs without an improvement by
        ``tol``, and restore the best weights (the starting ones if no epoch beat them).
        "auto" does this when the labels allow a validation set and otherwise trains for
        the short budget of ``max_iter=None``; True validates whatever the labels.
    validation_fraction : float, default=0.2
        Fraction of the classes, and of the samples of each remaining class, held out for
        early stopping. Classes of a single sample are never held out and do not count
        here (they train only as negatives): the fraction is of the classes with 2 or more
        samples, at least 2 of which always stay in training.
    validation_holdout : {"auto", "classes", "samples", "both"}, default="auto"
        What early stopping holds out. "classes": whole classes, to judge retrieval among
        classes never trained on (open set: new identities, new products). "samples": a
        fraction of every class's samples (at least 2 of each class with 4 or more), to
        judge how well the known classes are separated (closed set: a KNN classifier over
        the training classes). "both": classes, and samples of the others, scored together
        as one retrieval set (a compromise that costs some of each). "auto": classes when
        at least 4 classes can be held out (18 classes at the default
        ``validation_fraction``), and samples otherwise: with fewer classes held out, their
        MAP@R is a noisy guide.
    n_iter_no_change : int, default=20
        Epochs without an improvement by more than ``tol`` before training stops. An epoch
        is one pass over the training samples: with up to ``batch_size`` of them (fewer than
        1.5 x ``batch_size`` in class-balanced batches) it is a single optimiser step. On
        60-150 training samples (iris, wine, digits), ``early_stopping=False`` with
        ``max_iter=200`` beat the defaults' test MAP@R in 23 of 24 measured cases, by up to
        0.24.
    tol : float, default=1e-4
        Smallest improvement of the monitored value (validation MAP@R, or the training
        loss without early stopping) that counts.
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

    Notes
    -----
    The measurements behind these defaults are in the benchmarks page of the user guide.

    References
    ----------
    .. [1] J. Deng, J. Guo, T. Liu, M. Gong, S. Zafeiriou, "Sub-center ArcFace: Boosting
       Face Recognition by Large-Scale Noisy Web Faces", ECCV 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import SubCenterArcFaceEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(
    ...     StandardScaler(), SubCenterArcFaceEmbedder(max_iter=2, random_state=0)
    ... )
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = SubCenterArcFaceLoss
    _loss_params: ClassVar[dict] = loss_params(
        SubCenterArcFaceLoss, ("margin", "scale", "sub_centers")
    )
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _parameter_constraints: ClassVar[dict] = {
        **ArcFaceEmbedder._parameter_constraints,
        "sub_centers": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        *,
        margin=0.5,
        scale=64.0,
        sub_centers=3,
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
        validation_holdout="auto",
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
        self.margin = margin
        self.scale = scale
        self.sub_centers = sub_centers
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
        self.validation_holdout = validation_holdout
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


class ProxyAnchorEmbedder(_ClassifierEmbedder):
    """Embedding trained with the Proxy-Anchor loss.

    One learnable proxy per class serves as an anchor: it pulls its class's embeddings of
    the batch and pushes the others, each weighted by its hardness through a soft maximum of
    cosine similarities; see :class:`~sk_deepmetric.losses.ProxyAnchorLoss`. The proxies
    train at ``proxy_lr_multiplier`` times the network's learning rate, as in the paper, and
    start at the centred class-mean directions of the initial embedding ("imprinting"), as
    every classifier-based embedder's class weights do (the paper starts them at random).

    Parameters
    ----------
    margin : float, default=0.1
        Margin in cosine units, in [0, 1): positives are pulled above it, negatives pushed
        below its negative.
    alpha : float, default=4.0
        Scale (> 0) of the soft maximum: larger values weigh each proxy's hardest
        embeddings more. The paper's 32 (pre-trained image backbones) left the default MLP
        untrained on 5 of the benchmarks' 9 tasks (no epoch beat the start) and trained it
        worse than 4 on 3 of the others: faces MAP@R 0.865 with 4 against 0.501, all digits
        0.938 against 0.498. 8 or 16 did better than 4 on 5 tasks, by 0.004-0.05, and on the
        two 5-class digit tasks, where training costs every loss on the new classes, the
        untrained start stayed 0.12-0.18 above it (the benchmarks page has the table).
    proxy_lr_multiplier : float, default=100.0
        The proxies' learning rate over the network's (> 0), the paper's 100; with
        ``lr_schedule`` both decay together. Weight decay applies to both.
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
        L2-normalise the embedding (in training and in ``transform``). On: the loss compares
        directions only (cosine of the angle to each class).
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
        Maximum number of epochs (passes over the training data). None means
        500 epochs when early stopping runs (a cap: validation decides) and
        5 when it does not, a short budget that stays close to the starting
        point when nothing tells when training starts to overfit. Without early stopping,
        training also stops once the training loss stops improving (``n_iter_no_change``,
        ``tol``). A ``ConvergenceWarning`` says when ``max_iter`` ended the fit first.
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
        Score MAP@R on held-out data (see ``validation_holdout``) before training and after
        each epoch, stop after ``n_iter_no_change`` epochs without an improvement by
        ``tol``, and restore the best weights (the starting ones if no epoch beat them).
        "auto" does this when the labels allow a validation set and otherwise trains for
        the short budget of ``max_iter=None``; True validates whatever the labels.
    validation_fraction : float, default=0.2
        Fraction of the classes, and of the samples of each remaining class, held out for
        early stopping. Classes of a single sample are never held out and do not count
        here (they train only as negatives): the fraction is of the classes with 2 or more
        samples, at least 2 of which always stay in training.
    validation_holdout : {"auto", "classes", "samples", "both"}, default="auto"
        What early stopping holds out. "classes": whole classes, to judge retrieval among
        classes never trained on (open set: new identities, new products). "samples": a
        fraction of every class's samples (at least 2 of each class with 4 or more), to
        judge how well the known classes are separated (closed set: a KNN classifier over
        the training classes). "both": classes, and samples of the others, scored together
        as one retrieval set (a compromise that costs some of each). "auto": classes when
        at least 4 classes can be held out (18 classes at the default
        ``validation_fraction``), and samples otherwise: with fewer classes held out, their
        MAP@R is a noisy guide.
    n_iter_no_change : int, default=20
        Epochs without an improvement by more than ``tol`` before training stops. An epoch
        is one pass over the training samples: with up to ``batch_size`` of them (fewer than
        1.5 x ``batch_size`` in class-balanced batches) it is a single optimiser step. On
        60-150 training samples (iris, wine, digits), ``early_stopping=False`` with
        ``max_iter=200`` beat the defaults' test MAP@R in 23 of 24 measured cases, by up to
        0.24.
    tol : float, default=1e-4
        Smallest improvement of the monitored value (validation MAP@R, or the training
        loss without early stopping) that counts.
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

    Notes
    -----
    The measurements behind these defaults are in the benchmarks page of the user guide.

    References
    ----------
    .. [1] S. Kim, D. Kim, M. Cho, S. Kwak, "Proxy Anchor Loss for Deep Metric Learning",
       CVPR 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import ProxyAnchorEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), ProxyAnchorEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = ProxyAnchorLoss
    _tuned_defaults: ClassVar[dict] = {"alpha": 4.0}
    _loss_params: ClassVar[dict] = loss_params(
        ProxyAnchorLoss, ("margin", "alpha"), tuned=_tuned_defaults, proxy_lr_multiplier=100.0
    )
    _default_overrides: ClassVar[dict] = {"normalize": True}
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, 1, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "proxy_lr_multiplier": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        margin=0.1,
        alpha=4.0,
        proxy_lr_multiplier=100.0,
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
        validation_holdout="auto",
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
        self.margin = margin
        self.alpha = alpha
        self.proxy_lr_multiplier = proxy_lr_multiplier
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
        self.validation_holdout = validation_holdout
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

    def _default_parameter_groups(self, learning_rate):
        return [
            {"params": list(self.module_.parameters()), "lr": learning_rate},
            {
                "params": list(self.loss_.parameters()),
                "lr": learning_rate * self.proxy_lr_multiplier,
            },
        ]
