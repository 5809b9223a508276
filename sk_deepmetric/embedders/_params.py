"""The parameters every embedder shares: defaults, the generated ``__init__``, the docstring.

Each estimator's signature is its loss's parameters followed by :data:`COMMON_PARAMS`, and its
``__init__`` is generated from that table with an explicit signature (:func:`make_init`): it
only stores its keyword arguments, as scikit-learn requires, without repeating 27 parameters
in 11 classes. :func:`document` assembles each class's numpydoc docstring from its own
sections and the shared ones here, with the defaults filled in from the same tables.
"""

from __future__ import annotations

import inspect

#: ``max_iter=None``: epochs without early stopping (a short budget, [False]), and the cap
#: with it ([True]); the ``max_iter`` and ``early_stopping`` docstrings give the numbers.
AUTO_MAX_ITER = (5, 500)

#: Parameters every embedder shares, in signature order, with their defaults.
COMMON_PARAMS = {
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


def make_init(params: dict) -> callable:
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
        Maximum number of epochs (passes over the training data). None: 500 when early
        stopping runs (a cap; validation decides: with 200, ContrastiveEmbedder hit it on 100
        classes of ``make_classification`` while still improving, and with 500 it stopped on
        its own after 265 to 272 epochs, MAP@R on the unseen classes 0.162 -> 0.170, 3 seeds;
        the score on held-out samples of known classes, ``validation_holdout="samples"``,
        can creep up for longer, and on the closed digits task Softmax and CosFace ran
        to 500 in 3 of their 6 fits), 5 when it does not. Few then, because
        with nothing to tell when the network starts to overfit the training classes, it
        stays close to the input's geometry: on unseen digits (train on 0-4, evaluate on
        5-9) MAP@R peaked within 1 to 5 epochs and fell steadily after (0.55 at 5 epochs,
        0.50 at 30, learning rate 1e-4); an epoch count chosen by class-disjoint
        cross-validation on the training classes did worse in 12 of 18 cases
        (``benchmarks/bench_budget.py``). Without early stopping, training also
        stops once the training loss stops improving (``n_iter_no_change``, ``tol``). A
        ``ConvergenceWarning`` says that ``max_iter`` ended the fit before
        ``n_iter_no_change`` epochs without improvement, and whether the monitored value was
        still improving or when it last did; it is not raised when
        ``max_iter < n_iter_no_change`` unless ``early_stopping=True`` (a budget too short to
        judge convergence, taken as deliberate).
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


def document(
    cls: type, summary: str, loss_doc: str, references: str, example: str, normalize_why: str
) -> type:
    """Set ``cls.__doc__``: summary, the loss's parameters, the shared ones, references, example.

    The defaults shown are the class's own (``_loss_params``, ``_default_overrides``).
    """
    defaults = {**COMMON_PARAMS, **cls._default_overrides, **cls._loss_params}
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


def doctest_example(name: str, params: str = "") -> str:
    """A doctest that fits ``name`` (with ``params``) in a pipeline on 300 digits."""
    return f"""    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sk_deepmetric.embedders import {name}
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), {name}({params}max_iter=2, random_state=0))
    >>> model.fit_transform(X[:300], y[:300]).shape
    (300, 128)
"""
