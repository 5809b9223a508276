"""K-nearest-neighbour classification in a learned embedding, with exact and approximate search.

:class:`EmbeddingKNeighborsClassifier` fits an embedder, keeps the training set in the learned
space as a searchable reference set, and classifies queries by the votes of their nearest
references. The search itself is one of the small backends in ``sk_deepmetric._search``
(torch brute force, faiss flat, faiss IVF), chosen by ``algorithm``. With ``target_far`` it
identifies in an open set: a query too far from every training class is rejected, at a
distance threshold calibrated on held-out training classes.
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from scipy import sparse
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags

# The backends lived in this module before _search: pickles of a fitted classifier from then
# name sk_deepmetric.neighbors._BruteSearch (or a faiss class), found here by this import.
from ._devices import resolve_device
from ._retrieval import far_threshold, representable
from ._search import (
    _BruteSearch,
    _FaissFlatSearch,
    _FaissIVFSearch,
    faiss_flat_speedup,
    faiss_installed,
    faster_exact_backend,
)
from ._validation import (
    HasMethods,
    Interval,
    StrOptions,
    check_array,
    check_classification_targets,
    check_consistent_length,
    check_feature_names,
    check_int,
    check_is_fitted,
    check_option,
    check_random_state,
    column_or_1d,
    discard_fit,
    external_stacklevel,
    fit_context,
    label_kind,
    safe_indexing,
    validate_data,
)

__all__ = ["EmbeddingKNeighborsClassifier"]

# what a fit sets besides the public attributes (ending in "_")
_FIT_STATE = ("_y", "_index", "_calibrated_far", "_rows_of_features")

# predict's unknown_label=None: one of the kind of the class labels, so that scikit-learn's
# metrics can compare predictions with true labels (they refuse a mix of numbers and strings)
DEFAULT_UNKNOWN_LABELS = {"number": -1, "string": "unknown"}
# the largest squared norm of an embedded row that the float32 searches take (_check_searchable)
_LARGEST_SQUARED_NORM = float(np.finfo(np.float32).max) / 16
# the warnings a check of the feature names gives, which the embedder would give again
_FEATURE_NAME_WARNINGS = r"X (does not have valid|has) feature names"

ALGORITHMS = ("auto", "brute", "faiss", "faiss_ivf")
METRICS = ("euclidean", "cosine")
WEIGHTS = ("uniform", "distance")
CALIBRATIONS = ("cross_fit", "leave_class_out")

# algorithm="auto" considers faiss flat from this many reference samples on, and picks it only
# where a calibration on this machine finds it faster (`_search.faiss_flat_speedup`). Both are
# exact and return the same neighbours; which is faster depends on the BLAS kernels each
# library runs on the CPU: faiss flat was 1.6-2.4x faster than torch brute force on a 2-core
# AMD EPYC (Zen 5), and 2x slower on an AVX-512 Intel Xeon where faiss-cpu's bundled OpenBLAS
# fell back to generic SSE3 kernels. Below this size a search takes well under a second
# either way, less than the calibration would. Timings: docs/benchmarks.md.
AUTO_FAISS_MIN_SAMPLES = 50_000


class EmbeddingKNeighborsClassifier(ClassifierMixin, BaseEstimator):
    """K-nearest-neighbour vote in the space learned by an embedder.

    ``fit`` clones and fits ``embedder`` on ``(X, y)``, embeds the training set once and keeps
    it as a searchable reference set. ``predict`` embeds the queries, finds their
    ``n_neighbors`` nearest training samples in the learned space and lets them vote.

    Parameters
    ----------
    embedder : transformer, default=None
        Any scikit-learn transformer fitted as ``fit(X, y)`` whose ``transform(X)`` returns
        ``(n_samples, n_components)`` embeddings: a ``TripletEmbedder`` or any other
        embedder of this package, ``NeighborhoodComponentsAnalysis``, a ``Pipeline``. It is
        cloned in ``fit``. ``None`` means
        ``sk_deepmetric.embedders.TripletEmbedder(validation_holdout="samples")``: this
        classifier only predicts the classes it was fitted on, so early stopping validates on
        held-out samples of every class, the right guide for a closed set (measured in the
        benchmarks page). Pass the embedder explicitly to tune its parameters
        (``embedder__margin``) in a search.
    n_neighbors : int, default=5
        Number of neighbours that vote (and the default ``n_neighbors`` of
        :meth:`kneighbors`).
    weights : {"uniform", "distance"}, default="uniform"
        ``"uniform"``: one vote per neighbour. ``"distance"``: votes weighted by the inverse
        distance; a query at distance zero from some references takes only their votes.
    metric : {"euclidean", "cosine"}, default="euclidean"
        Distance in the learned space; ``"cosine"`` is the cosine distance ``1 - cos``.
        Match the embedder's training distance (an embedder trained with ``distance="cosine"``
        or an angular-margin loss is searched with ``"cosine"``).
    algorithm : {"auto", "brute", "faiss", "faiss_ivf"}, default="auto"
        Search backend.

        - ``"brute"``: exact, chunked torch matrix product + top-k on ``device``; the
          neighbours its float32 products cannot order (vectors closer together than about
          1e-3 of their norms) are searched again in float64 (see
          :func:`~sk_deepmetric.distances.topk_neighbors`).
        - ``"faiss"``: exact up to float32 rounding, a faiss flat index (CPU). Same
          neighbours as ``"brute"``, except among neighbours at distances that tie
          (duplicated or integer-valued embeddings under the cosine distance), which the
          two round differently in the last float32 bit, and among near-duplicates that
          faiss's float32 products cannot order (under the cosine distance, vectors within
          about 1e-3 of each other's direction).
        - ``"faiss_ivf"``: approximate, a faiss inverted-file index with ``n_lists`` cells,
          ``n_probe`` of which are scanned per query. For reference sets of millions.
        - ``"auto"``: the faster of the two exact backends on this machine. ``"faiss"`` when
          faiss is installed, the search runs on the CPU, the training set has at least
          ``AUTO_FAISS_MIN_SAMPLES`` (50,000) samples and a short calibration finds faiss
          at least 1.25x faster than ``"brute"`` (both searching the same synthetic 20,000
          vectors of the embedding's dimension for ``n_neighbors`` neighbours, rounded to a
          power of two, with the thread counts in force; 0.2-1 s, once per process and
          power of two, in ``fit``); else ``"brute"``. Where faiss wins that and
          ``"brute"`` would find its candidates from bfloat16 products (CPUs with fast
          bfloat16 arithmetic, 100,000+ samples, few neighbours), which 20,000 vectors are
          too few to show, a second calibration at 100,000 vectors and 1,024 queries
          decides (1-2 s more, once). faiss's lead grows with the number
          of neighbours, so the choice can differ between ``n_neighbors`` values;
          ``kneighbors`` with another ``n_neighbors`` uses the backend chosen in ``fit``.
          Never the approximate ``"faiss_ivf"``. Results do not depend on the choice,
          but for ties as above.

        The faiss backends need ``pip install sk_deepmetric[faiss]``.
    n_lists : int, default=None
        Number of IVF cells (``"faiss_ivf"`` only); ``None`` means ``round(sqrt(n_samples))``.
        At most the number of training samples.
    n_probe : int, default=8
        Cells scanned per query (``"faiss_ivf"`` only), capped at ``n_lists``. Larger is
        slower and closer to exact; ``n_probe >= n_lists`` is exact.
    chunk_size : int, default=None
        Queries per chunk of the ``"brute"`` search; ``None`` bounds each chunk's distance
        matrix to ~32 MiB. Does not change the results.
    device : str or torch.device, default=None
        Device of the ``"brute"`` search: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``
        (CUDA when available). ``None`` follows the embedder's own ``device`` parameter
        when it has one (the embedders of this package do), else the CPU.
    target_far : float, default=None
        ``None``: a closed set, every query gets one of the training classes. A rate in
        ``(0, 1)``: open-set identification. A query whose distance to its predicted class
        (the nearest of its ``n_neighbors`` neighbours of that class) exceeds
        ``threshold_`` is rejected: ``predict`` returns ``unknown_label``. ``fit``
        calibrates ``threshold_`` so that a query of a class absent from the training data
        is accepted with probability about ``target_far``: each training class in turn
        plays the unknown class, its samples searched against the other classes' (see
        ``calibration``; when fewer than ``n_neighbors`` samples are left, all of them
        vote), and the threshold is that quantile of their distances. It needs
        at least ``1 / target_far`` training samples, preferably many more, and classes
        like those it will meet.

        ``fit`` calibrates ``threshold_`` for this rate, and ``predict`` uses it: to change
        the rate of a fitted classifier call :meth:`set_target_far` (no refit), not
        ``set_params``. A ``target_far`` set after fit to another value than the one
        ``threshold_`` was calibrated for (``None`` included) makes ``predict`` raise a
        ``NotFittedError`` until ``fit`` or :meth:`set_target_far` is called.
    unknown_label : int, float, str or None, default=None
        What ``predict`` returns for a rejected query (with ``target_far`` only). ``None``
        means ``"unknown"`` for string class labels and, for numeric ones, a value of their
        dtype: ``-1`` (one less than the smallest label where -1 is a training label), and
        for unsigned integer labels, which cannot hold -1, one more than the largest (where
        the dtype holds neither, the smallest value it holds that is not a label). A value
        given must not be a training label and must be of the training labels' kind, a
        finite number for numeric labels and a string for string labels: ``score``,
        ``cross_val_score`` and ``GridSearchCV`` compare predictions with true labels
        through scikit-learn's metrics, which refuse a mix of numbers and strings, so a
        mixed ``predict`` would fail every score that meets a rejection. For integer
        labels it must be an integer that their dtype holds, or that an integer dtype holds
        together with them (``predict`` then returns that dtype, e.g. int64 for uint8
        labels and -1); any other value (``0.5``, or ``-1`` for uint64 labels, which NumPy
        would cast with them to float64, merging ids above 2**53) raises a ValueError.
        ``fit`` checks it against the labels, and so does ``predict``, which reads it: it
        may be changed with ``set_params`` after fit.
    calibration : {"cross_fit", "leave_class_out"}, default="cross_fit"
        How ``target_far`` is calibrated (with ``target_far`` only).
        ``"cross_fit"``: the training classes are split into ``calibration_folds`` folds;
        for each fold a clone of ``embedder`` is fitted on the other folds' classes, and
        each held-out class's samples are searched, in that clone's space, against all the
        training samples of the other classes. The unknown classes are then truly unseen
        by the embedding that measures them, as they will be at prediction time; the cost
        is ``calibration_folds`` more fits of the embedder. The final embedder, fitted on
        all classes, is another space: each clone's distances are carried over to it by the
        ratio of the two spaces' within-class scales (the median distance of a training
        sample to the nearest other sample of its class), since embedders trained for
        different numbers of epochs gather their classes more or less tightly (without the
        ratio, the realised false-accept rate varied several-fold across seeds in the
        benchmarks).
        ``"leave_class_out"``: the same searches in the final embedder's own space, without
        another fit. Only right for an embedder that did not learn the training classes (a
        ``FrozenEstimator`` over an embedder trained on other classes, or an unsupervised
        transformer): one that did has pulled each class together and away from the
        others, so unseen classes land closer than its training classes did and the
        realised false-accept rate exceeds ``target_far``.
    calibration_folds : int, default=5
        Class folds of ``calibration="cross_fit"`` (at most one per class).
    random_state : int, RandomState instance or None, default=None
        Seeds the class folds of ``calibration="cross_fit"``, and is passed on to the
        default embedder (``embedder=None``); an embedder you pass keeps its own
        ``random_state``. An int makes ``fit`` reproducible.

    Attributes
    ----------
    embedder_ : transformer
        The fitted clone of ``embedder``.
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted.
    n_samples_fit_ : int
        Number of training samples: the reference set searched by :meth:`kneighbors`.
    algorithm_ : str
        The backend used: ``"brute"``, ``"faiss"`` or ``"faiss_ivf"`` (``"auto"`` resolved).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during ``fit``, when ``X`` has string column names.
    threshold_ : float
        With ``target_far``: the largest distance to the predicted class at which a query
        is accepted, in the units of ``metric``.
    calibration_distances_ : ndarray of shape (n_samples,)
        With ``target_far``: each training sample's distance to its predicted class when
        its own class was held out (with ``"cross_fit"``, rescaled to the final embedding),
        the sample from which ``threshold_`` is read.
    unknown_label_ : int, float or str
        With ``target_far``: the label ``predict`` gives a rejected query, ``unknown_label``
        with ``None`` resolved for ``classes_`` (``"unknown"``, ``-1``, one less than the
        smallest label, or for unsigned integers one more than the largest; see
        ``unknown_label``), an int for integer labels. Read from ``unknown_label`` when
        asked, so it follows a ``set_params`` after fit.

    See Also
    --------
    sklearn.neighbors.KNeighborsClassifier : The same vote on features given as they are.
    sk_deepmetric.metrics.verification_report : Verification metrics of pairs of samples.

    Notes
    -----
    **This class or** ``make_pipeline(TripletEmbedder(), KNeighborsClassifier())``? Both
    classify by a k-nearest-neighbour vote in the learned space, with the same votes and
    tie rules. The pipeline is plain scikit-learn: use it when that is all you need, or to
    use ``KNeighborsClassifier``'s other options (tree indexes, ``radius``, custom
    metrics). Use this class to *search* the learned space: :meth:`kneighbors` returns
    indices into the training set in the learned space (leave-one-out with ``X=None``),
    and the search runs in torch on the embedder's device (a GPU) or in faiss, exact or
    approximate, for reference sets of millions.

    **A gallery of new classes** (re-identification: enrol identities never seen in
    training): train the embedder once, then wrap it in scikit-learn's
    ``sklearn.frozen.FrozenEstimator`` so that ``fit`` only embeds and stores the gallery,
    ``EmbeddingKNeighborsClassifier(FrozenEstimator(embedder)).fit(X_gallery, y_gallery)``;
    without it ``fit`` clones and retrains the embedder on whatever it is given. With one
    sample per identity, set ``n_neighbors=1``: the default 5 uniform votes would all go to
    different identities and tie (a warning says so).

    Ties: among neighbours at equal distance the lower training index comes first (exact
    backends); among classes with equal votes the first in ``classes_`` wins, as in
    scikit-learn.

    **Open set** (``target_far``): ``predict`` returns ``unknown_label`` for a rejected
    query; ``predict_proba`` still returns its neighbours' vote over ``classes_`` (rows sum
    to one whether the query is accepted or not, so it says which known class a query is
    most like, not whether it is known), and :meth:`score_samples` the negated distance to
    the predicted class, the score that is thresholded: a query is rejected where
    ``-score_samples(X) > threshold_``. There is no ``decision_function``: scikit-learn's
    is a per-class score whose argmax is ``predict``, which a rejection is not. ``score``
    is accuracy; with ``unknown_label`` as the true label of queries from unseen classes it
    counts correct rejections. The threshold is searched exactly even with
    ``algorithm="faiss_ivf"``, whose approximate search can only find neighbours farther
    away (and so reject more). :doc:`/user_guide/verification` shows the realised rates.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.decomposition import PCA
    >>> from sk_deepmetric.neighbors import EmbeddingKNeighborsClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = EmbeddingKNeighborsClassifier(PCA(n_components=2), n_neighbors=3).fit(X, y)
    >>> clf.predict(X[[0, 60, 120]])
    array([0, 1, 2])
    >>> clf.kneighbors(X[:1], n_neighbors=2, return_distance=False)
    array([[ 0, 17]])
    """

    _parameter_constraints: dict = {
        "embedder": [HasMethods(["fit", "transform"]), None],
        "n_neighbors": [Interval(numbers.Integral, 1, None, closed="left")],
        "weights": [StrOptions(set(WEIGHTS))],
        "metric": [StrOptions(set(METRICS))],
        "algorithm": [StrOptions(set(ALGORITHMS))],
        "n_lists": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "n_probe": [Interval(numbers.Integral, 1, None, closed="left")],
        "chunk_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
        "device": [str, torch.device, None],
        "target_far": [Interval(Real, 0, 1, closed="neither"), None],
        # checked against the labels in fit and predict
        "unknown_label": [Integral, Real, str, None],
        "calibration": [StrOptions(set(CALIBRATIONS))],
        "calibration_folds": [Interval(Integral, 2, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        embedder=None,
        *,
        n_neighbors=5,
        weights="uniform",
        metric="euclidean",
        algorithm="auto",
        n_lists=None,
        n_probe=8,
        chunk_size=None,
        device=None,
        target_far=None,
        unknown_label=None,
        calibration="cross_fit",
        calibration_folds=5,
        random_state=None,
    ):
        self.embedder = embedder
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.metric = metric
        self.algorithm = algorithm
        self.n_lists = n_lists
        self.n_probe = n_probe
        self.chunk_size = chunk_size
        self.device = device
        self.target_far = target_far
        self.unknown_label = unknown_label
        self.calibration = calibration
        self.calibration_folds = calibration_folds
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        if self.embedder is not None:
            # the embedder sees X: it decides which inputs are accepted, except NaN, which
            # must not reach the embedding that is searched
            try:
                tags.input_tags = get_tags(self.embedder).input_tags
            except (AttributeError, TypeError, ValueError):
                pass  # a transformer without scikit-learn's tags (duck-typed), as Pipeline's
            tags.input_tags.allow_nan = False
        return tags

    def _validate_params(self) -> None:
        """scikit-learn's checks, after the option names (with a "Did you mean ...?")."""
        check_option(self.algorithm, ALGORITHMS, "algorithm")
        check_option(self.metric, METRICS, "metric")
        check_option(self.weights, WEIGHTS, "weights")
        check_option(self.calibration, CALIBRATIONS, "calibration")
        super()._validate_params()

    def _make_embedder(self):
        if self.embedder is not None:
            return clone(self.embedder)
        from .embedders import TripletEmbedder  # embedders import this module's layers

        # a closed set, by construction
        return TripletEmbedder(validation_holdout="samples", random_state=self.random_state)

    # the embedder is the user's object: its own fit validates it (no nested skip)
    @fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y):
        """Fit the embedder and index the training set in the learned space.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, in whatever form the embedder accepts.
        y : array-like of shape (n_samples,)
            Class labels (integers or strings).

        Returns
        -------
        self : EmbeddingKNeighborsClassifier
            The fitted classifier.
        """
        try:
            return self._fit(X, y)
        except BaseException:
            # a fit that fails (bad input, the embedder's error, Ctrl-C) leaves no fitted
            # attribute behind, of this fit or of an earlier one
            discard_fit(self, _FIT_STATE)
            raise

    def _fit(self, X, y):
        if self.device is not None:  # before the embedder's fit, not after
            resolve_device(self.device)
        validate_data(self, X, y, skip_check_array=True)  # n_features_in_, feature names
        # n_features_in_ is X.shape[1]: the height of images, not a width to check queries by
        self._rows_of_features = _row_width(X) is not None
        y = column_or_1d(y, warn=True)
        # NaN or infinity first: check_classification_targets would cast them to integers
        # (a RuntimeWarning) before saying so
        check_array(y, ensure_2d=False, dtype=None, input_name="y")
        with warnings.catch_warnings():  # a gallery of identities has many classes of one or
            # two samples: not, as scikit-learn then suspects, a regression target
            warnings.filterwarnings("ignore", "The number of unique classes is greater than")
            check_classification_targets(y)
        check_consistent_length(X, y)
        self.classes_, self._y = np.unique(y, return_inverse=True)
        if self.target_far is not None:
            self._check_open_set()
        self._warn_if_votes_tie()

        self.embedder_ = self._make_embedder().fit(X, y)
        reference = self._embed(X)
        self.n_samples_fit_ = reference.shape[0]
        self.algorithm_ = self._resolve_algorithm(reference)
        self._index = self._make_backend(self.algorithm_).build(reference)
        self._calibrated_far = None
        if self.target_far is not None:
            if self.calibration == "cross_fit":
                distances = self._cross_fit_distances(X, y, reference)
            else:
                distances = self._held_out_class_distances(reference, range(len(self.classes_)))
            self.calibration_distances_ = distances
            self.set_target_far(self.target_far)
        return self

    def _warn_if_votes_tie(self) -> None:
        """Warn where half the classes or more have one sample (a gallery of one image per
        identity): ``n_neighbors`` > 1 uniform votes near them go to different classes and
        tie, and ties go to the first class in ``classes_``, not to the nearest."""
        single = int(np.sum(np.bincount(self._y) == 1))
        if self.n_neighbors > 1 and self.weights == "uniform" and single >= len(self.classes_) / 2:
            warnings.warn(
                f"{single} of {len(self.classes_)} classes have a single sample, so the "
                f"n_neighbors={self.n_neighbors} uniform votes of a query near one of them "
                "go to different classes and tie, won by the first class in classes_ rather "
                "than the nearest. Use n_neighbors=1 (or weights='distance').",
                UserWarning,
                stacklevel=external_stacklevel(),
            )

    def set_target_far(self, target_far: float):
        """Change ``target_far`` of a fitted open-set classifier without refitting.

        ``threshold_`` is read again from ``calibration_distances_``, as ``fit`` would with
        this ``target_far`` (the same ``random_state`` gives the same embedders), so that
        operating points can be compared at the cost of one fit.

        A rejected ``target_far`` leaves the classifier as it was.

        Parameters
        ----------
        target_far : float
            The new rate, in ``(0, 1)``.

        Returns
        -------
        self : EmbeddingKNeighborsClassifier
        """
        check_is_fitted(self)
        if not hasattr(self, "calibration_distances_"):
            raise ValueError(
                "set_target_far needs a classifier fitted with `target_far` (open set): this "
                "one was fitted without it, so nothing was calibrated. Fit it again with "
                "`target_far` set."
            )
        if target_far is None:
            raise ValueError(
                "set_target_far needs a rate `target_far` in (0, 1), got None. For a closed "
                "set (no rejection), fit a classifier with target_far=None."
            )
        # checked on a copy: a rejected rate must not stay in this classifier's parameters
        clone(self).set_params(target_far=target_far)._validate_params()
        scores = -self.calibration_distances_
        threshold = far_threshold(scores.astype(np.float64), target_far, "training samples")
        # predict compares float32 distances with threshold_ in float32
        self.threshold_ = -representable(threshold, scores.dtype)
        self.set_params(target_far=target_far)
        self._calibrated_far = target_far
        return self

    def _check_open_set(self) -> None:
        if len(self.classes_) < 2:
            raise ValueError(
                "`target_far` calibrates on held-out training classes, so it needs at least "
                "2 classes in `y`, got 1 class."
            )
        self._unknown_label()

    @property
    def unknown_label_(self):
        """The label ``predict`` gives a rejected query (see the class's Attributes)."""
        check_is_fitted(self)
        if self.target_far is None:
            raise AttributeError(
                "unknown_label_ exists only with `target_far`: without it predict rejects nothing."
            )
        return self._unknown_label(strict=False)

    def _unknown_label(self, strict: bool = True):
        """``unknown_label``, ``None`` resolved, checked against ``classes_``.

        ``strict=False`` (``predict``): a label of the other kind than the classes, which a
        classifier pickled by an earlier version may hold (its default was -1 whatever the
        labels), is used with a warning, as that version did, rather than refused.
        """
        label = self.unknown_label
        kind = label_kind(self.classes_)
        if label is None:
            if kind == "string":
                label = DEFAULT_UNKNOWN_LABELS[kind]
            else:
                label = _unused_number(self.classes_)
        if (kind == "string") != isinstance(label, str):
            if strict:
                raise ValueError(
                    f"`unknown_label` ({label!r}) must be a {kind}, as the training labels "
                    f"are: scikit-learn's metrics (score, cross_val_score, GridSearchCV) "
                    f"cannot compare a mix of numbers and strings. Pass a {kind} such as "
                    f"{DEFAULT_UNKNOWN_LABELS[kind]!r}, or None for that default."
                )
            warnings.warn(
                f"`unknown_label` ({label!r}) is not a {kind}, as the training labels are: "
                "predict returns an object array, which scikit-learn's metrics (score, "
                "cross_val_score) cannot compare with true labels. Set unknown_label=None "
                f"(or a {kind}) with set_params.",
                UserWarning,
                stacklevel=external_stacklevel(),
            )
            return label
        if kind == "number" and not math.isfinite(label):
            raise ValueError(
                f"`unknown_label` must be finite, got {label!r}: a rejection labelled NaN "
                "never equals a true label, so score could not count it as correct."
            )
        if any(label == c for c in self.classes_.tolist()):
            raise ValueError(
                f"`unknown_label` ({label!r}) is one of the training labels; predict could "
                "not tell a rejection from that class. Choose another value."
            )
        if self.classes_.dtype.kind in "iu":
            label = self._integer_unknown_label(label)
        return label

    def _integer_unknown_label(self, label) -> int:
        """``label`` as an int that an integer dtype holds together with the integer
        ``classes_`` (predict must not make integer ids floats: float64 merges those above
        2**53)."""
        dtype = self.classes_.dtype
        default = _unused_number(self.classes_)
        if isinstance(label, Real) and not isinstance(label, Integral):
            if not float(label).is_integer():
                raise ValueError(
                    f"`unknown_label` ({label!r}) must be an integer, as the training labels "
                    f"are (dtype {dtype}): predict would make the labels floats. Pass an "
                    f"integer such as {default!r}, or None for that default."
                )
        label = int(label)
        if _rejection_dtype(dtype, label).kind not in "iu":
            raise ValueError(
                f"`unknown_label` ({label!r}) does not fit the training labels' dtype "
                f"({dtype}), nor any integer dtype that holds them: predict would make the "
                "labels floats, which merge integer ids above 2**53. Pass an integer that "
                f"{dtype} holds, such as {default!r}, or None for that default."
            )
        return label

    def _check_target_far_fitted(self) -> None:
        """Raise unless ``target_far`` is the rate that ``threshold_`` was calibrated for."""
        # a model pickled before _calibrated_far existed: threshold_ as it was fitted
        default = self.target_far if hasattr(self, "threshold_") else None
        fitted = getattr(self, "_calibrated_far", default)
        if self.target_far == fitted:
            return
        name = type(self).__name__
        if fitted is None:
            raise NotFittedError(
                f"`target_far` was set to {self.target_far!r} after this {name} was fitted "
                "without it (closed set), so no threshold was calibrated. Call fit to "
                "calibrate it."
            )
        if self.target_far is None:
            raise NotFittedError(
                f"`target_far` was set to None after this {name} was fitted as an open set "
                f"with target_far={fitted!r}. Call fit to classify in a closed set, or set "
                f"target_far back to {fitted!r}."
            )
        raise NotFittedError(
            f"`target_far` was changed to {self.target_far!r} after fit, but `threshold_` "
            f"is calibrated for {fitted!r}. Call set_target_far({self.target_far!r}), which "
            "needs no refit, or fit."
        )

    def _cross_fit_distances(self, X, y, reference: np.ndarray) -> np.ndarray:
        """Each sample's distance to its predicted class, its class unseen by the embedder.

        One clone of the embedder per class fold, fitted on the other folds' classes; the
        fold's classes are then searched against the rest in that clone's space, and their
        distances rescaled to the final embedding ``reference`` by the ratio of the two
        spaces' within-class scales (:meth:`_within_class_scale`, over the classes each
        embedder was trained on).
        """
        if not hasattr(X, "__getitem__"):  # array-likes that only convert (__array__)
            X = np.asarray(X)
        n_classes = len(self.classes_)
        rng = check_random_state(self.random_state)
        folds = np.array_split(rng.permutation(n_classes), min(self.calibration_folds, n_classes))
        distances = np.empty(len(self._y), dtype=np.float32)
        final_scale = self._within_class_scale(reference, np.arange(len(self._y)))
        for i, fold in enumerate(folds):
            held_out = np.isin(self._y, fold)
            rows = np.flatnonzero(~held_out)
            try:
                embedder = self._make_embedder().fit(safe_indexing(X, rows), y[rows])
            except ValueError as exc:
                raise ValueError(
                    f"Calibrating `target_far` fits the embedder on the classes outside each "
                    f"of {len(folds)} class folds; on the {n_classes - fold.size} classes "
                    f"outside fold {i + 1} it failed: {exc} "
                    + (
                        f"Raise `calibration_folds` (up to {n_classes}: each fit then trains "
                        "on more classes), give"
                        if len(folds) < n_classes
                        else "Give"
                    )
                    + " more classes, or see `calibration`."
                ) from exc
            embedding = self._embed(X, embedder=embedder)
            scale = self._within_class_scale(embedding, rows)
            ratio = final_scale / scale if scale > 0 and final_scale > 0 else 1.0
            fold_distances = self._held_out_class_distances(embedding, fold)[held_out]
            distances[held_out] = fold_distances * ratio
        return distances

    def _within_class_scale(self, embedding: np.ndarray, rows: np.ndarray) -> float:
        """Median distance of the samples ``rows`` to the nearest other sample of their class.

        How tightly an embedding gathers the classes it was trained on: embedders fitted to
        different lengths (early stopping) gather them differently, and this ratio carries a
        threshold from one embedding to another. 1 when no class has two samples.
        """
        algorithm = "brute" if self.algorithm_ == "faiss_ivf" else self.algorithm_
        nearest = []
        for c in np.unique(self._y[rows]):
            members = rows[self._y[rows] == c]
            if members.size >= 2:
                index = self._make_backend(algorithm).build(embedding[members])
                nearest.append(index.search(None, 1, exclude_self=True)[0][:, 0])
        return float(np.median(np.concatenate(nearest))) if nearest else 1.0

    def _held_out_class_distances(self, embedding: np.ndarray, classes) -> np.ndarray:
        """For the samples of each of ``classes`` (codes), the distance to the class they are
        predicted, searched against the training samples of all the other classes (NaN for
        the samples of other classes)."""
        distances = np.full(len(self._y), np.nan, dtype=np.float32)
        algorithm = "brute" if self.algorithm_ == "faiss_ivf" else self.algorithm_
        for c in classes:
            own = self._y == c
            others = np.flatnonzero(~own)
            index = self._make_backend(algorithm).build(embedding[others])
            dist, ind = index.search(embedding[own], min(self.n_neighbors, others.size))
            distances[own] = self._predicted_class_distance(dist, others[ind])[2]
        return distances

    def _search_device(self) -> torch.device:
        device = (
            self.device if self.device is not None else getattr(self.embedder_, "device", None)
        )
        if device is None:
            return torch.device("cpu")
        if isinstance(device, str) and device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(device)  # checked by fit (resolve_device), or by the embedder's

    def _resolve_algorithm(self, reference: np.ndarray) -> str:
        if self.algorithm != "auto":
            return self.algorithm
        on_cpu = self._search_device().type == "cpu"
        if on_cpu and reference.shape[0] >= AUTO_FAISS_MIN_SAMPLES and faiss_installed():
            speedup = faiss_flat_speedup(
                reference.shape[1], self.metric, self.n_neighbors, reference.shape[0]
            )
            return faster_exact_backend(speedup)
        return "brute"

    def _make_backend(self, algorithm: str):
        if algorithm == "brute":
            return _BruteSearch(self.metric, self._search_device(), self.chunk_size)
        if algorithm == "faiss":
            return _FaissFlatSearch(self.metric)
        n_samples = self.n_samples_fit_
        n_lists = self.n_lists if self.n_lists is not None else max(1, round(math.sqrt(n_samples)))
        if n_lists > n_samples:
            raise ValueError(
                f"`n_lists` ({n_lists}) must not exceed the number of training samples "
                f"({n_samples}) for algorithm='faiss_ivf'."
            )
        return _FaissIVFSearch(self.metric, n_lists, self.n_probe)

    def _embed(self, X, check_input: bool = False, embedder=None) -> np.ndarray:
        """``embedder_.transform(X)`` (or ``embedder``'s) as C-contiguous float32, finite and
        searchable in float32 (:func:`_check_searchable`).

        ``check_input``: first check the queries ``X`` against what fit saw, as scikit-learn
        does, where the embedder might not: their feature names, and the width of rows of
        features (a 2-D array, or a list of rows). Other inputs (1-D, images, datasets) are
        the embedder's to check.
        """
        embedder = self.embedder_ if embedder is None else embedder
        if check_input:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                check_feature_names(self, X, reset=False)
            self._check_some_queries(X)
            self._check_width(X)
            for warning in caught:
                warnings.warn(warning.message, warning.category, stacklevel=external_stacklevel())
        with warnings.catch_warnings():
            if check_input and caught:  # the embedder's copy of the warning just given
                warnings.filterwarnings("ignore", _FEATURE_NAME_WARNINGS, UserWarning)
            embedding = embedder.transform(X)
        if sparse.issparse(embedding):
            embedding = embedding.toarray()
        embedding = np.ascontiguousarray(embedding, dtype=np.float32)
        if embedding.ndim != 2:
            raise ValueError(
                "The embedder must return a 2-D array of shape (n_samples, n_components), "
                f"got shape {embedding.shape}."
            )
        _check_searchable(embedding)
        return embedding

    def _check_some_queries(self, X) -> None:
        """scikit-learn's message for no query at all, naming this classifier (the embedder
        would name itself), for arrays in memory or on disk, lists and Datasets alike."""
        shape = getattr(X, "shape", None)
        try:
            n_queries = int(shape[0]) if shape is not None and len(shape) else len(X)
        except TypeError:  # no length (an IterableDataset): the embedder's to check
            return
        if n_queries < 1:
            found = f"array with 0 sample(s) (shape={tuple(shape)})" if shape else "0 samples"
            raise ValueError(
                f"Found {found} while a minimum of 1 is required by {type(self).__name__}."
            )

    def _check_width(self, X) -> None:
        """scikit-learn's message for rows of another width than fit's, for a 2-D array or a
        list (or tuple) of 1-D rows, where fit had rows of features too. Samples of another
        shape than fit's images or signals are the embedder's to name (as samples of that
        shape; ``n_features_in_`` would be their height)."""
        if not getattr(self, "_rows_of_features", True):  # True: pickled before it existed
            return
        width = _row_width(X)
        expected = getattr(self, "n_features_in_", None)
        if width is not None and expected is not None and width != expected:
            raise ValueError(
                f"X has {width} features, but {type(self).__name__} is expecting "
                f"{expected} features as input."
            )

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Nearest training samples of each query, in the learned space.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features), default=None
            Queries. ``None`` searches the training set against itself, leave-one-out: a
            sample is not its own neighbour.
        n_neighbors : int, default=None
            Number of neighbours; ``None`` means ``self.n_neighbors``.
        return_distance : bool, default=True
            Also return the distances.

        Returns
        -------
        neigh_dist : ndarray of shape (n_queries, n_neighbors), float32
            Distances in the learned space (euclidean, or cosine distance ``1 - cos``),
            ascending. Only when ``return_distance=True``.
        neigh_ind : ndarray of shape (n_queries, n_neighbors), int64
            Row indices into the training set.
        """
        check_is_fitted(self)
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        k = check_int(k, "n_neighbors", min_value=1)
        leave_one_out = X is None
        limit = self.n_samples_fit_ - int(leave_one_out)
        if k > limit:
            raise ValueError(
                f"`n_neighbors` ({k}) must not exceed the number of training samples"
                f"{' minus one (leave-one-out, X=None)' if leave_one_out else ''} ({limit})."
            )
        queries = None if leave_one_out else self._embed(X, check_input=True)
        dist, ind = self._index.search(queries, k, exclude_self=leave_one_out)
        return (dist, ind) if return_distance else ind

    def predict_proba(self, X):
        """Share of the (weighted) neighbour votes for each class.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        proba : ndarray of shape (n_queries, n_classes)
            Rows sum to one; columns in the order of ``classes_``. With ``target_far``, a
            rejected query's row is still its neighbours' vote (see Notes).
        """
        dist, ind = self.kneighbors(X)
        return self._vote(dist, ind)

    def predict(self, X):
        """Class with the most (weighted) neighbour votes; ties go to the first in ``classes_``.

        With ``target_far``, ``unknown_label`` for a query farther than ``threshold_`` from
        that class.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        y_pred : ndarray of shape (n_queries,)
            Predicted labels, of the dtype of ``classes_``, or with ``target_far`` of the
            dtype that holds both ``classes_`` and ``unknown_label_`` (never float for
            integer labels).
        """
        check_is_fitted(self)
        self._check_target_far_fitted()
        unknown = None if self.target_far is None else self._unknown_label(strict=False)
        dist, ind = self.kneighbors(X)
        predicted, _, distance = self._predicted_class_distance(dist, ind)
        labels = self.classes_[predicted]
        if self.target_far is None:
            return labels
        labels = labels.astype(_rejection_dtype(self.classes_.dtype, unknown))
        labels[distance > self.threshold_] = unknown
        return labels

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against ``y``, as scikit-learn's classifiers.

        A classifier names only the classes it was fitted on (and, with ``target_far``,
        ``unknown_label_``): when none of the labels of ``y`` is one of them -- the test
        fold of a class-disjoint split such as ``GroupKFold`` with ``groups=y`` -- every
        prediction is wrong, the accuracy is 0 whatever the embedding, and a warning says
        so. An embedding for classes never seen in training is scored by the embedder (its
        ``score`` is MAP@R) or :func:`~sk_deepmetric.metrics.make_retrieval_scorer`.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Queries.
        y : array-like of shape (n_queries,)
            Their true labels.
        sample_weight : array-like of shape (n_queries,), default=None
            Weights of the queries in the mean.

        Returns
        -------
        score : float
            Mean accuracy.
        """
        check_is_fitted(self)
        known = set(self.classes_.tolist())
        if self.target_far is not None:
            known.add(self._unknown_label(strict=False))
        labels = np.asarray(y, dtype=object).ravel()
        same_kind = labels.size and label_kind(np.asarray(y)) == label_kind(self.classes_)
        if same_kind and not any(label in known for label in labels.tolist()):
            warnings.warn(
                f"None of the {np.unique(labels.astype(str)).size} labels of y is a class "
                f"{type(self).__name__} was fitted on, so every prediction is wrong and the "
                "accuracy is 0. A classifier is scored on the classes it was trained on "
                "(stratified folds, not GroupKFold with groups=y); score an embedding for "
                "classes never seen in training with the embedder's score (MAP@R) or "
                "sk_deepmetric.metrics.make_retrieval_scorer.",
                UserWarning,
                stacklevel=external_stacklevel(),
            )
        return super().score(X, y, sample_weight=sample_weight)

    def score_samples(self, X):
        """Negated distance of each query to its predicted class: higher is more familiar.

        The distance to the nearest of the query's ``n_neighbors`` neighbours of the class
        that ``predict`` gives it (before any rejection). With ``target_far``, a query is
        rejected where this score is below ``-threshold_``; as a score of known against
        unknown queries it gives their ROC curve and AUROC.

        Parameters
        ----------
        X : array-like of shape (n_queries, n_features)
            Queries.

        Returns
        -------
        scores : ndarray of shape (n_queries,), float32
        """
        dist, ind = self.kneighbors(X)
        return -self._predicted_class_distance(dist, ind)[2]

    def _predicted_class_distance(self, dist: np.ndarray, ind: np.ndarray):
        """``(predicted class codes, vote shares, distance to the predicted class)``."""
        proba = self._vote(dist, ind)
        predicted = np.argmax(proba, axis=1)
        of_predicted = self._y[ind] == predicted[:, None]
        return predicted, proba, np.where(of_predicted, dist, np.inf).min(axis=1)

    def _vote(self, dist: np.ndarray, ind: np.ndarray) -> np.ndarray:
        n_queries, n_classes = ind.shape[0], len(self.classes_)
        weights = _neighbor_weights(dist, self.weights)
        rows = np.repeat(np.arange(n_queries), ind.shape[1])
        flat = rows * n_classes + self._y[ind].ravel()
        votes = np.bincount(flat, weights=weights.ravel(), minlength=n_queries * n_classes)
        votes = votes.reshape(n_queries, n_classes)
        total = votes.sum(axis=1, keepdims=True)
        return votes / np.where(total > 0, total, 1.0)


def _row_width(X) -> int | None:
    """The number of features of ``X`` if it is rows of features: a 2-D array, or a
    list (or tuple) of 1-D rows; else None."""
    shape = getattr(X, "shape", None)
    if shape is not None:
        return shape[1] if len(shape) == 2 else None
    if isinstance(X, (list, tuple)) and len(X) and np.ndim(X[0]) == 1:
        return len(X[0])
    return None


def _unused_number(classes: np.ndarray):
    """``unknown_label=None`` for numeric ``classes``: -1, or where -1 is a label one less
    than the smallest; for unsigned integers (which cannot hold -1), one more than the
    largest. A value ``classes``' dtype holds where one of these does not: else the smallest
    value it holds that is no label (a full uint8 needs a wider dtype for max + 1)."""
    values = classes.tolist()
    low, high = min(values), max(values)
    if classes.dtype.kind == "u":
        candidates = [high + 1]
    elif classes.dtype.kind == "i":
        candidates = [-1, low - 1, high + 1]
    else:  # floats, booleans, numbers in an object array
        candidates = [-1, low - 1]
        if classes.dtype.kind == "f":
            candidates.append(np.nextafter(low, -np.inf).item())  # low - 1 == low past 2**53
    taken = set(values)
    for candidate in candidates:
        if candidate not in taken and _holds(classes.dtype, candidate):
            return candidate
    if classes.dtype.kind in "iu":
        info = np.iinfo(classes.dtype)
        if low > info.min:
            return low - 1
        for before, after in itertools.pairwise(values):  # classes_ is sorted and unique
            if after - before > 1:
                return before + 1
    return high + 1


def _holds(dtype: np.dtype, value) -> bool:
    """Whether the number ``value`` is in the range of ``dtype`` (any, for a non-integer
    dtype)."""
    if dtype.kind not in "iu":
        return True
    info = np.iinfo(dtype)
    return info.min <= value <= info.max


def _rejection_dtype(classes_dtype: np.dtype, label) -> np.dtype:
    """The dtype of open-set predictions: the classes' where it holds ``label``, else the
    type NumPy promotes both to (an object array for a string among numbers, or the
    reverse). The caller refuses an integer ``label`` for which that is not an integer."""
    label_dtype = np.asarray(label).dtype
    if (label_dtype.kind in "US") != (classes_dtype.kind in "US"):
        return np.dtype(object)
    if classes_dtype.kind in "iu" and isinstance(label, Integral):
        if _holds(classes_dtype, label):
            return classes_dtype
        if label_dtype.kind not in "iu":  # beyond uint64 or int64
            return np.dtype(object)
    return np.result_type(classes_dtype, label_dtype)


def _check_searchable(embedding: np.ndarray) -> None:
    """Raise unless the embedding of ``X`` is finite and its distances fit in float32.

    The searches compute in float32, through squared norms and products of the rows, on
    rows centred on the reference's mean (:func:`~sk_deepmetric.distances.search_center`).
    With every row's norm at most ``M = sqrt(FLT_MAX) / 4``, a centred row is at most
    ``2 M`` long, and the largest term, ``|r - c|^2 + 2 |q - c| |r - c| <= 12 M^2``, is
    three quarters of the largest float32: no distance or score overflows (to infinity, or
    to faiss's cap).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        squared = np.einsum("ij,ij->i", embedding, embedding)
    if (squared <= _LARGEST_SQUARED_NORM).all():
        return
    if not np.isfinite(embedding).all():
        raise ValueError(
            "The embedding of X contains NaN or infinity: X probably has missing or "
            "infinite values. Impute or remove them first."
        )
    raise ValueError(
        f"The embedding of X has rows of norm above {math.sqrt(_LARGEST_SQUARED_NORM):.3g} "
        "(a quarter of the square root of the largest float32), whose distances would "
        "overflow float32 in the search. Scale X (or the embedder's output) down."
    )


def _neighbor_weights(dist: np.ndarray, weights: str) -> np.ndarray:
    """Vote weights, shape of ``dist``: ones, or ``1 / d`` with exact matches taking all
    (a distance at or below 0: the backends' distances are never negative, but a weight of
    ``1 / d`` must never be)."""
    if weights == "uniform":
        return np.ones(dist.shape, dtype=np.float64)
    dist = dist.astype(np.float64)
    zero = dist <= 0
    with np.errstate(divide="ignore"):
        inverse = 1.0 / dist
    exact_rows = zero.any(axis=1)
    inverse[exact_rows] = zero[exact_rows]
    return inverse
