"""Embedders trained with tuple and pair losses on class-balanced ``P x K`` batches.

Triplet (with its miners), contrastive, N-pairs, angular, multi-similarity and supervised
contrastive: each loss compares embeddings of the same batch, so every batch holds
``samples_per_class`` samples of several classes.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import ClassVar

from .._validation import Interval, StrOptions
from ..distances import DISTANCES
from ..losses import (
    AngularLoss,
    ContrastiveLoss,
    CrossBatchMemory,
    MultiSimilarityLoss,
    NPairsLoss,
    SupConLoss,
    TripletMarginLoss,
)
from ..losses._pair import NPAIRS_DISTANCES, TRIPLET_MINERS
from ._base import BaseEmbedder
from ._params import loss_params, store_routed

__all__ = [
    "AngularEmbedder",
    "ContrastiveEmbedder",
    "MultiSimilarityEmbedder",
    "NPairsEmbedder",
    "SupConEmbedder",
    "TripletEmbedder",
]


class _MemoryEmbedder(BaseEmbedder):
    """Tuple-loss embedders with a cross-batch memory (``memory_size > 0``)."""

    def _build_loss(self, n_classes, n_components):
        loss = super()._build_loss(n_classes, n_components)
        if not self.memory_size:
            return loss
        return CrossBatchMemory(loss, n_components, self.memory_size)

    def _init_loss_from_data(self, X, y, device):
        """A warm-up of about one epoch (every sample, the held-out ones included, once):
        the paper's 1,000 iterations were about one epoch of its largest dataset."""
        if self.memory_size:
            self.loss_.warmup = math.ceil(len(y) / self.batch_size)


class TripletEmbedder(_MemoryEmbedder):
    """Embedding trained with the triplet margin loss.

    For mined triplets (anchor, positive of its class, negative of another class) the loss is
    ``relu(d(a, p) - d(a, n) + margin)``; see :class:`~sk_deepmetric.losses.TripletMarginLoss`.
    The defaults are FaceNet's: semi-hard mining, margin 0.2 on L2-normalised embeddings.

    Parameters
    ----------
    margin : float, default=0.2
        Margin between positive and negative distances, in units of ``distance`` (Euclidean
        distances between unit vectors lie in ``[0, 2]``).
    miner : {"semihard", "batch_hard", "all", "hard"}, callable or None, default="semihard"
        Which triplets of a batch the loss uses; ``None`` or "all": every valid triplet.
        The loss's ``"easy"`` (triplets that already satisfy the margin, whose loss is
        zero) would train nothing and is refused here.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        Distance between embeddings in the loss and the miner; ``margin`` is in its units.
    samples_per_class : int, default=4
        ``K`` in the class-balanced ``P x K`` batches: ``P = batch_size // K`` classes of
        ``K`` samples each. With fewer than ``P`` classes, every batch holds all classes
        with ``batch_size // n_classes`` samples each; classes with a single sample serve
        only as negatives (a warning says how many).
    memory_size : int, default=0
        Cross-batch memory (XBM): the number of recent training embeddings that every
        anchor also meets as positives and negatives, so that small batches mine like large
        ones; 0 turns it off. Used after a warm-up of about one epoch; costs
        ``memory_size x n_components`` floats and distance blocks of
        ``batch_size x (batch_size + memory_size)``. See
        :class:`~sk_deepmetric.losses.CrossBatchMemory`.
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
        L2-normalise the embedding (in training and in ``transform``). The margin is then on a
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
    .. [1] F. Schroff, D. Kalenichenko, J. Philbin, "FaceNet: A Unified Embedding for Face
       Recognition and Clustering", CVPR 2015.
    .. [2] A. Hermans, L. Beyer, B. Leibe, "In Defense of the Triplet Loss for Person
       Re-Identification", arXiv:1703.07737, 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import TripletEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), TripletEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = TripletMarginLoss
    _loss_params: ClassVar[dict] = loss_params(
        TripletMarginLoss, ("margin", "miner", "distance"), samples_per_class=4, memory_size=0
    )
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "margin": [Interval(Real, 0, None, closed="left")],
        "miner": [StrOptions({m for m in TRIPLET_MINERS if m}), None, callable],
        "distance": [StrOptions(set(DISTANCES))],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
        "memory_size": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        margin=0.2,
        miner="semihard",
        distance="euclidean",
        samples_per_class=4,
        memory_size=0,
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
        self.miner = miner
        self.distance = distance
        self.samples_per_class = samples_per_class
        self.memory_size = memory_size
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

    def _check_loss_params(self):
        if isinstance(self.miner, str) and self.miner == "easy":
            raise ValueError(
                "TripletEmbedder's `miner` must not be 'easy': easy triplets already satisfy "
                "the margin, so their loss and its gradient are zero and the network would "
                "not train. Use 'semihard', 'batch_hard', 'all' or 'hard'."
            )
        super()._check_loss_params()


class ContrastiveEmbedder(_MemoryEmbedder):
    """Embedding trained with the contrastive (pair) loss.

    Pulls pairs of one class closer than ``pos_margin`` and pushes pairs of different classes
    beyond ``neg_margin``; see :class:`~sk_deepmetric.losses.ContrastiveLoss`.

    Parameters
    ----------
    pos_margin : float, default=0.0
        Distance below which a positive pair costs nothing.
    neg_margin : float, default=1.0
        Distance beyond which a negative pair costs nothing (unit vectors: at most 2).
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        Distance between the embeddings of a pair; both margins are in its units.
    samples_per_class : int, default=4
        ``K`` in the class-balanced ``P x K`` batches: ``P = batch_size // K`` classes of
        ``K`` samples each. With fewer than ``P`` classes, every batch holds all classes
        with ``batch_size // n_classes`` samples each; classes with a single sample serve
        only as negatives (a warning says how many).
    memory_size : int, default=0
        Cross-batch memory (XBM): the number of recent training embeddings that every
        anchor also meets as positives and negatives, so that small batches mine like large
        ones; 0 turns it off. Used after a warm-up of about one epoch; costs
        ``memory_size x n_components`` floats and distance blocks of
        ``batch_size x (batch_size + memory_size)``. See
        :class:`~sk_deepmetric.losses.CrossBatchMemory`.
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
    .. [1] R. Hadsell, S. Chopra, Y. LeCun, "Dimensionality Reduction by Learning an
       Invariant Mapping", CVPR 2006.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import ContrastiveEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), ContrastiveEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = ContrastiveLoss
    _loss_params: ClassVar[dict] = loss_params(
        ContrastiveLoss,
        ("pos_margin", "neg_margin", "distance"),
        samples_per_class=4,
        memory_size=0,
    )
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "pos_margin": [Interval(Real, 0, None, closed="left")],
        "neg_margin": [Interval(Real, 0, None, closed="left")],
        "distance": [StrOptions(set(DISTANCES))],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
        "memory_size": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        pos_margin=0.0,
        neg_margin=1.0,
        distance="euclidean",
        samples_per_class=4,
        memory_size=0,
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
        self.pos_margin = pos_margin
        self.neg_margin = neg_margin
        self.distance = distance
        self.samples_per_class = samples_per_class
        self.memory_size = memory_size
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


class NPairsEmbedder(BaseEmbedder):
    """Embedding trained with the multi-class N-pair loss.

    Each class in a batch contributes one (anchor, positive) pair; every anchor is classified
    against the positives of all classes by a softmax over (negated) Euclidean distances, the
    source articles' form ``log(1 + sum_j exp(D_ap - D_an))``, or over inner products as in
    the paper (``distance="dot"``); see :class:`~sk_deepmetric.losses.NPairsLoss`. Hence
    ``samples_per_class=2`` by default.

    Parameters
    ----------
    l2_reg : float, default=0.002
        Penalty on squared embedding norms (the inner product is unbounded without it).
    distance : {"dot", "euclidean", "squared_euclidean", "cosine"}, default="euclidean"
        The score compared across classes: the source articles' Euclidean form by
        default, which learned more than the paper's inner product ("dot") on the
        benchmarks' harder tasks.
    samples_per_class : int, default=2
        ``K`` in the class-balanced ``P x K`` batches: ``P = batch_size // K`` classes of
        ``K`` samples each. With fewer than ``P`` classes, every batch holds all classes
        with ``batch_size // n_classes`` samples each; classes with a single sample serve
        only as negatives (a warning says how many).
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
        L2-normalise the embedding (in training and in ``transform``). Off as in the paper, which
        regularises the norms with ``l2_reg`` instead.
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
    .. [1] K. Sohn, "Improved Deep Metric Learning with Multi-class N-pair Loss
       Objective", NeurIPS 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import NPairsEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), NPairsEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = NPairsLoss
    _tuned_defaults: ClassVar[dict] = {"distance": "euclidean"}
    _loss_params: ClassVar[dict] = loss_params(
        NPairsLoss, ("l2_reg", "distance"), tuned=_tuned_defaults, samples_per_class=2
    )
    _default_overrides: ClassVar[dict] = {"normalize": False}
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "l2_reg": [Interval(Real, 0, None, closed="left")],
        "distance": [StrOptions(set(NPAIRS_DISTANCES))],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(
        self,
        *,
        l2_reg=0.002,
        distance="euclidean",
        samples_per_class=2,
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
        self.l2_reg = l2_reg
        self.distance = distance
        self.samples_per_class = samples_per_class
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


class AngularEmbedder(BaseEmbedder):
    """Embedding trained with the angular loss.

    Bounds the angle at the negative of each (anchor, positive, negative) triangle by
    ``alpha``, a scale-invariant third-order constraint; see
    :class:`~sk_deepmetric.losses.AngularLoss`.

    Parameters
    ----------
    alpha : float, default=40.0
        Angle bound at the negative, in degrees, in (0, 90); the paper's best values are
        36 to 55.
    samples_per_class : int, default=4
        ``K`` in the class-balanced ``P x K`` batches: ``P = batch_size // K`` classes of
        ``K`` samples each. With fewer than ``P`` classes, every batch holds all classes
        with ``batch_size // n_classes`` samples each; classes with a single sample serve
        only as negatives (a warning says how many).
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
        L2-normalise the embedding (in training and in ``transform``). The loss works on unit
        vectors, as in the paper.
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
    .. [1] J. Wang, F. Zhou, S. Wen, X. Liu, Y. Lin, "Deep Metric Learning with Angular
       Loss", ICCV 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import AngularEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), AngularEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = AngularLoss
    _loss_params: ClassVar[dict] = loss_params(AngularLoss, ("alpha",), samples_per_class=4)
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "alpha": [Interval(Real, 0, 90, closed="neither")],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }

    def __init__(
        self,
        *,
        alpha=40.0,
        samples_per_class=4,
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
        self.alpha = alpha
        self.samples_per_class = samples_per_class
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


class MultiSimilarityEmbedder(_MemoryEmbedder):
    """Embedding trained with the multi-similarity loss and its pair mining.

    Every anchor keeps the positive and negative pairs that break, or come within
    ``epsilon`` of breaking, "every positive more similar than every negative", and weighs
    them by a soft maximum of their cosine similarities: a pair counts by its own similarity
    and relative to the anchor's other pairs; see
    :class:`~sk_deepmetric.losses.MultiSimilarityLoss`. The defaults are the paper's.

    Parameters
    ----------
    alpha : float, default=2.0
        Sharpness (> 0) of the soft maximum over an anchor's positive pairs.
    beta : float, default=50.0
        Sharpness (> 0) of the soft maximum over its negative pairs; large values push the
        most similar negatives hardest.
    base : float, default=0.5
        Cosine similarity in [-1, 1] that the weights are measured from: positives less
        similar and negatives more similar than it weigh most.
    epsilon : float or None, default=0.1
        Mining slack in cosine-similarity units (>= 0); None trains on every pair.
    samples_per_class : int, default=4
        ``K`` in the class-balanced ``P x K`` batches: ``P = batch_size // K`` classes of
        ``K`` samples each. With fewer than ``P`` classes, every batch holds all classes
        with ``batch_size // n_classes`` samples each; classes with a single sample serve
        only as negatives (a warning says how many).
    memory_size : int, default=0
        Cross-batch memory (XBM): the number of recent training embeddings that every
        anchor also meets as positives and negatives, so that small batches mine like large
        ones; 0 turns it off. Used after a warm-up of about one epoch; costs
        ``memory_size x n_components`` floats and distance blocks of
        ``batch_size x (batch_size + memory_size)``. See
        :class:`~sk_deepmetric.losses.CrossBatchMemory`.
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
        L2-normalise the embedding (in training and in ``transform``). The loss compares cosine
        similarities, which the norm does not change; on, ``transform``'s output lies on the unit
        sphere, as the loss sees it.
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
    .. [1] X. Wang, X. Han, W. Huang, D. Dong, M. R. Scott, "Multi-Similarity Loss with
       General Pair Weighting for Deep Metric Learning", CVPR 2019.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import MultiSimilarityEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(
    ...     StandardScaler(), MultiSimilarityEmbedder(max_iter=2, random_state=0)
    ... )
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = MultiSimilarityLoss
    _loss_params: ClassVar[dict] = loss_params(
        MultiSimilarityLoss,
        ("alpha", "beta", "base", "epsilon"),
        samples_per_class=4,
        memory_size=0,
    )
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="neither")],
        "beta": [Interval(Real, 0, None, closed="neither")],
        "base": [Interval(Real, -1, 1, closed="both")],
        "epsilon": [Interval(Real, 0, None, closed="left"), None],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
        "memory_size": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        alpha=2.0,
        beta=50.0,
        base=0.5,
        epsilon=0.1,
        samples_per_class=4,
        memory_size=0,
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
        self.alpha = alpha
        self.beta = beta
        self.base = base
        self.epsilon = epsilon
        self.samples_per_class = samples_per_class
        self.memory_size = memory_size
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


class SupConEmbedder(_MemoryEmbedder):
    """Embedding trained with the supervised contrastive (SupCon) loss.

    Each sample is classified among all the others of its batch by a softmax over cosine
    similarities divided by ``temperature``, with every sample of its class as a correct
    answer; see :class:`~sk_deepmetric.losses.SupConLoss`. Without mining, the softmax
    weighs hard negatives most. The paper trains on two augmented views of each image; here
    the positives are the batch's other samples of the class (give ``augment`` for views).

    Parameters
    ----------
    temperature : float, default=0.1
        Divides the cosine similarities (> 0); lower values concentrate the gradient on the
        hardest pairs.
    samples_per_class : int, default=4
        ``K`` in the class-balanced ``P x K`` batches: ``P = batch_size // K`` classes of
        ``K`` samples each. With fewer than ``P`` classes, every batch holds all classes
        with ``batch_size // n_classes`` samples each; classes with a single sample serve
        only as negatives (a warning says how many).
    memory_size : int, default=0
        Cross-batch memory (XBM): the number of recent training embeddings that every
        anchor also meets as positives and negatives, so that small batches mine like large
        ones; 0 turns it off. Used after a warm-up of about one epoch; costs
        ``memory_size x n_components`` floats and distance blocks of
        ``batch_size x (batch_size + memory_size)``. See
        :class:`~sk_deepmetric.losses.CrossBatchMemory`.
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
        L2-normalise the embedding (in training and in ``transform``). The loss compares cosine
        similarities, which the norm does not change; on, ``transform``'s output lies on the unit
        sphere, as the loss sees it.
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
    .. [1] P. Khosla et al., "Supervised Contrastive Learning", NeurIPS 2020.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import SupConEmbedder
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), SupConEmbedder(max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
    """

    _loss_class = SupConLoss
    _loss_params: ClassVar[dict] = loss_params(
        SupConLoss, ("temperature",), samples_per_class=4, memory_size=0
    )
    _parameter_constraints: ClassVar[dict] = {
        **BaseEmbedder._parameter_constraints,
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
        "memory_size": [Interval(Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        *,
        temperature=0.1,
        samples_per_class=4,
        memory_size=0,
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
        self.temperature = temperature
        self.samples_per_class = samples_per_class
        self.memory_size = memory_size
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
