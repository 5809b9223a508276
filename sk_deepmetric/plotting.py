"""Pictures of a learned embedding: a 2-D map, the training curves, retrieval examples, and
the verification curves (ROC, DET, score distributions of same- and different-identity pairs).

matplotlib is an optional dependency (``pip install "sk_deepmetric[plot]"``); every function
raises a clear ImportError without it.
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from ._retrieval import as_labels, check_pair_labels, check_scores
from ._validation import check_int, check_is_fitted, check_option, check_real, check_reshape
from .distances import topk_neighbors
from .metrics import equal_error_rate

__all__ = [
    "plot_det_curve",
    "plot_embedding",
    "plot_history",
    "plot_retrieval",
    "plot_roc_curve",
    "plot_score_distributions",
    "show_or_save",
]


def _pyplot(function: str):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{function} needs matplotlib, which is not installed. "
            'Install it with: pip install "sk_deepmetric[plot]"'
        ) from exc
    return plt


def _check_fitted(estimator, name: str, *, method: str | None = None, attributes=None) -> None:
    """scikit-learn's ``check_is_fitted``, for the parameter ``name``: an object that is no
    estimator (or lacks ``method``) is named by its type, where scikit-learn shows its repr
    (a whole array)."""
    if not hasattr(estimator, "fit") or (method is not None and not hasattr(estimator, method)):
        what = "a fitted estimator" + (f" with a `{method}` method" if method else "")
        raise TypeError(
            f"`{name}` must be {what}, got an object of type {type(estimator).__name__}."
        )
    check_is_fitted(estimator, attributes)


def _embed(embedder_or_array, X, function: str) -> np.ndarray:
    """The embeddings to plot: ``embedder.transform(X)``, or the array itself."""
    if hasattr(embedder_or_array, "transform"):
        if X is None:
            raise ValueError(f"{function} was given an embedder, so it needs `X` to transform.")
        _check_fitted(embedder_or_array, "embedder_or_array")
        emb = embedder_or_array.transform(X)
    else:
        if X is not None:
            raise ValueError(
                f"{function} was given an array of embeddings, so `X` must be None, got an "
                f"object of type {type(X).__name__}. Pass the labels as `y=`."
            )
        emb = embedder_or_array
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(
            f"The embeddings must be 2-D (n_samples, n_components), got shape {emb.shape}."
        )
    return emb


#: Samples that PCA and t-SNE need to bring embeddings to 2-D: two components need two samples,
#: and t-SNE's perplexity (at least 2, see ``_to_2d``) must be below the number of samples.
_MIN_SAMPLES = {"pca": 2, "tsne": 3}


def _to_2d(emb: np.ndarray, method: str, random_state) -> np.ndarray:
    if emb.shape[1] == 2:
        return emb
    if emb.shape[1] == 1:
        return np.hstack([emb, np.zeros_like(emb)])
    if emb.shape[0] < _MIN_SAMPLES[method]:
        raise ValueError(
            f"plot_embedding brings embeddings of {emb.shape[1]} components to 2-D with "
            f"method={method!r}, which needs at least {_MIN_SAMPLES[method]} samples, got "
            f"{emb.shape[0]}."
        )
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=random_state).fit_transform(emb)
    from sklearn.manifold import TSNE

    perplexity = min(30.0, max(2.0, (emb.shape[0] - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, random_state=random_state).fit_transform(
        emb
    )


def plot_embedding(
    embedder_or_array,
    X=None,
    y=None,
    *,
    ax=None,
    method: str = "pca",
    random_state=0,
    title: str | None = None,
):
    """Scatter plot of an embedding in 2-D, coloured by class.

    Parameters
    ----------
    embedder_or_array : fitted transformer or array-like of shape (n_samples, n_components)
        A fitted embedder (or any fitted transformer), whose ``transform(X)`` is plotted, or
        the embeddings themselves.
    X : array-like of shape (n_samples, n_features), default=None
        The samples to embed; must be None when embeddings are given.
    y : array-like of shape (n_samples,), default=None
        Class labels for the colours (any hashable values); None draws one colour.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    method : {"pca", "tsne"}, default="pca"
        How embeddings with more than two components are brought to 2-D.
    random_state : int, default=0
        Seed of the PCA solver / t-SNE.
    title : str, default=None

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import numpy as np
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sk_deepmetric.plotting import plot_embedding
    >>> ax = plot_embedding(np.random.rand(20, 5), y=np.arange(20) % 2)
    >>> len(ax.collections)
    2
    """
    plt = _pyplot("plot_embedding")
    check_option(method, ["pca", "tsne"], "method")
    emb = _embed(embedder_or_array, X, "plot_embedding")
    if y is None:
        labels = np.zeros(emb.shape[0], dtype=int)
    else:
        labels = as_labels(y, "y", emb.shape[0], "embedder_or_array" if X is None else "X")
    classes = np.unique(labels)
    emb = _to_2d(emb, method, random_state)
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    for i, cls in enumerate(classes):
        pts = emb[labels == cls]
        ax.scatter(pts[:, 0], pts[:, 1], s=8, color=cmap(i % cmap.N), label=str(cls))
    if y is not None and len(classes) <= 20:
        ax.legend(title="class", fontsize="small", markerscale=2, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title if title is not None else f"embedding ({method.upper()} to 2-D)")
    return ax


def plot_history(embedder, *, ax=None):
    """Training loss and validation score per epoch of a fitted embedder.

    Parameters
    ----------
    embedder : fitted embedder
        Anything with a ``history_`` attribute: a list with one dict per epoch holding
        ``"loss"`` and ``"score"`` (the validation MAP@R when early stopping ran, else None).
    ax : matplotlib Axes, default=None
        Axes for the loss; the validation score goes on a twin axis.

    Returns
    -------
    ax : matplotlib Axes
    """
    plt = _pyplot("plot_history")
    _check_fitted(embedder, "embedder", attributes="history_")
    history = list(embedder.history_)
    if not history:
        raise ValueError("The embedder's `history_` is empty: it was fitted for zero epochs.")
    epochs = np.arange(1, len(history) + 1)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [h["loss"] for h in history], "o-", color="C0", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color="C0")
    scores = [h.get("score") for h in history]
    if any(s is not None for s in scores):
        twin = ax.twinx()
        twin.plot(epochs, [np.nan if s is None else s for s in scores], "s--", color="C1")
        twin.set_ylabel("validation MAP@R", color="C1")
    ax.set_title(type(embedder).__name__)
    return ax


def _as_images(X: np.ndarray, image_shape) -> np.ndarray:
    """Images as (n, H, W) or (n, H, W, C) for imshow."""
    if image_shape is not None:
        shape = tuple(image_shape) if isinstance(image_shape, tuple | list) else image_shape
        if not (
            isinstance(shape, tuple)
            and len(shape) in (2, 3)
            and all(isinstance(d, numbers.Integral) and d >= 1 for d in shape)
        ):
            raise ValueError(
                f"`image_shape` must be (H, W) or (C, H, W) of positive integers, got "
                f"{image_shape!r}."
            )
        check_reshape(X.shape[1:], shape, "image_shape")
        X = X.reshape((X.shape[0], *shape))
    if X.ndim == 4:  # (n, C, H, W) -> (n, H, W, C); one channel -> grey
        X = X[:, 0] if X.shape[1] == 1 else np.moveaxis(X, 1, -1)
    if X.ndim not in (3, 4):
        raise ValueError(
            "plot_retrieval needs images: X of shape (n, H, W) or (n, C, H, W), or flat X with "
            f"`image_shape`, got X of shape {X.shape} and image_shape={image_shape}."
        )
    if X.ndim == 4 and X.shape[-1] not in (3, 4):
        raise ValueError(
            f"plot_retrieval draws images of 1, 3 (RGB) or 4 (RGBA) channels, got {X.shape[-1]}."
        )
    return X


def plot_retrieval(
    embedder,
    X,
    y,
    n_queries: int = 5,
    *,
    n_neighbors: int = 5,
    image_shape: tuple[int, ...] | None = None,
    distance: str = "euclidean",
    random_state=0,
):
    """Query images with their nearest neighbours in the learned space.

    Each row shows one query (leave-one-out among ``X``) and its ``n_neighbors`` nearest
    samples; neighbours of the query's class are framed in green, others in red.

    Parameters
    ----------
    embedder : fitted embedder
    X : array-like of shape (n_samples, H, W), (n_samples, C, H, W) or (n_samples, n_features)
        Images; flat rows need ``image_shape``.
    y : array-like of shape (n_samples,)
    n_queries : int, default=5
        Number of queries (rows), drawn at random without replacement.
    n_neighbors : int, default=5
    image_shape : tuple of int, default=None
        ``(H, W)`` or ``(C, H, W)`` to reshape flat rows into images.
    distance : {"euclidean", "squared_euclidean", "cosine"}, default="euclidean"
    random_state : int, default=0
        Seed for choosing the queries.

    Returns
    -------
    fig : matplotlib Figure
    """
    plt = _pyplot("plot_retrieval")
    _check_fitted(embedder, "embedder", method="transform")
    X = np.asarray(X)
    n = X.shape[0]
    y = as_labels(y, "y", n, "X")
    n_queries = check_int(n_queries, "n_queries", min_value=1, max_value=n)
    n_neighbors = check_int(n_neighbors, "n_neighbors", min_value=1, max_value=n - 1)
    images = _as_images(X, image_shape)
    emb = torch.as_tensor(_embed(embedder, X, "plot_retrieval"))
    queries = np.random.default_rng(random_state).choice(n, size=n_queries, replace=False)
    _, idx = topk_neighbors(emb, emb, n_neighbors, distance, exclude_self=True)
    fig, axes = plt.subplots(
        n_queries, n_neighbors + 1, figsize=(1.3 * (n_neighbors + 1), 1.4 * n_queries)
    )
    axes = np.atleast_2d(axes)
    cmap = "gray_r" if images.ndim == 3 else None
    for row, q in enumerate(queries):
        axes[row, 0].imshow(images[q], cmap=cmap)
        axes[row, 0].set_title(f"query: {y[q]}", fontsize=8)
        for col, j in enumerate(idx[q].tolist(), start=1):
            ax = axes[row, col]
            ax.imshow(images[j], cmap=cmap)
            colour = "tab:green" if y[j] == y[q] else "tab:red"
            for spine in ax.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(3)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ verification
def _pairs(y_true, y_score, threshold):
    """Checked ``(same, scores, threshold)`` and the EER with its threshold."""
    same = check_pair_labels(y_true)
    scores = check_scores(y_score, same.size)
    if threshold is not None:
        threshold = check_real(threshold, "threshold")
    eer, eer_threshold = equal_error_rate(same, scores, return_threshold=True)
    return same, scores, threshold, eer, eer_threshold


def _rates(same, scores, threshold):
    """(false-accept rate, false-reject rate) of accepting ``score >= threshold``."""
    accepted = scores >= threshold
    return float(accepted[~same].mean()), float((~accepted[same]).mean())


def _legend_entry(threshold, far, frr):
    return f"threshold {threshold:.3g}: FAR {far:.3g}, FRR {frr:.3g}"


def plot_roc_curve(y_true, y_score, *, threshold=None, ax=None, name=None, log_far=False):
    """ROC curve of pair scores, with the equal error rate and an operating threshold marked.

    Drawn by scikit-learn's :class:`~sklearn.metrics.RocCurveDisplay` (true-accept rate
    against false-accept rate); a circle marks the EER, where the curve crosses
    ``TAR = 1 - FAR``, and a square the rates of ``threshold``.

    Parameters
    ----------
    y_true : array-like of shape (n_pairs,)
        1 for a same-identity pair, 0 or -1 for a different-identity pair.
    y_score : array-like of shape (n_pairs,)
        Similarity of each pair, higher meaning more alike.
    threshold : float, default=None
        An operating threshold to mark (pairs with a score at least it are accepted).
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    name : str, default=None
        Legend name of the curve.
    log_far : bool, default=False
        A logarithmic false-accept axis, as face verification plots them (from a tenth of
        the smallest non-zero rate).

    Returns
    -------
    ax : matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sk_deepmetric.plotting import plot_roc_curve
    >>> ax = plot_roc_curve([1, 1, 0, 1, 0, 0], [0.9, 0.8, 0.7, 0.6, 0.3, 0.2], threshold=0.65)
    >>> [line.get_label() for line in ax.lines][1:]
    ['EER 0.333', 'threshold 0.65: FAR 0.333, FRR 0.333']
    """
    _pyplot("plot_roc_curve")
    from sklearn.metrics import RocCurveDisplay

    same, scores, threshold, eer, _ = _pairs(y_true, y_score, threshold)
    display = RocCurveDisplay.from_predictions(
        same, scores, drop_intermediate=False, ax=ax, name=name
    )
    ax = display.ax_
    ax.plot([eer], [1.0 - eer], "o", color="C3", label=f"EER {eer:.3g}")
    if threshold is not None:
        far, frr = _rates(same, scores, threshold)
        ax.plot([far], [1.0 - frr], "s", color="C2", label=_legend_entry(threshold, far, frr))
    ax.set_xlabel("false-accept rate")
    ax.set_ylabel("true-accept rate")
    if log_far:
        positive = display.fpr[display.fpr > 0]
        ax.set_xscale("log")
        ax.set_xlim(positive.min() / 10 if positive.size else 1e-3, 1.0)
    ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_det_curve(y_true, y_score, *, threshold=None, ax=None, name=None):
    """DET curve of pair scores (false-reject against false-accept rate on normal-deviate
    axes), with the equal error rate and an operating threshold marked.

    Drawn by scikit-learn's :class:`~sklearn.metrics.DetCurveDisplay`, the speaker-
    verification picture: a circle marks the EER on the diagonal, a square the rates of
    ``threshold``. The axes span 0.13% to 99.87% (-3 to 3 normal deviates, as scikit-learn
    draws them), widened to take in every rate of the curve and the markers other than 0 and
    1 (and, on an ``ax`` with curves already drawn, their range), and labelled 0.1%, 0.01%,
    ... as far as they reach (leaving out a decade too near the last one labelled): a
    false-accept rate of 1e-4 (-3.7) is drawn where it is, on the curve. Rates of 0 or 1 sit
    at the edge of the axes.

    Parameters
    ----------
    y_true : array-like of shape (n_pairs,)
        1 for a same-identity pair, 0 or -1 for a different-identity pair.
    y_score : array-like of shape (n_pairs,)
        Similarity of each pair, higher meaning more alike.
    threshold : float, default=None
        An operating threshold to mark.
    ax : matplotlib Axes, default=None
    name : str, default=None
        Legend name of the curve.

    Returns
    -------
    ax : matplotlib Axes
    """
    _pyplot("plot_det_curve")
    from scipy.stats import norm
    from sklearn.metrics import DetCurveDisplay

    same, scores, threshold, eer, _ = _pairs(y_true, y_score, threshold)
    # a curve drawn over others on ``ax`` keeps their range as well as its own
    earlier = ax.get_xlim() + ax.get_ylim() if ax is not None and ax.lines else None
    display = DetCurveDisplay.from_predictions(same, scores, ax=ax, name=name)
    ax = display.ax_
    points = [(eer, eer)]
    if threshold is not None:
        far, frr = _rates(same, scores, threshold)
        points.append((far, frr))
    # the display clips rates of 0 and 1 to eps and 1 - eps (deviates of about -8 and 8) and
    # shows -3 to 3 deviates (0.13% to 99.87%); widen that to every other rate drawn, so that
    # a marker at a rate of 1e-4 sits on the curve, not at the edge
    eps = np.finfo(display.fpr.dtype).eps
    rates = np.concatenate([display.fpr, display.fnr, np.ravel(points)])
    inner = norm.ppf(rates[(rates > eps) & (rates < 1 - eps)])
    margin = 0.2  # deviates: a marker beyond -3 or 3 is not cut by the edge
    low = inner.min() - margin if inner.size and inner.min() < -3.0 else -3.0
    high = inner.max() + margin if inner.size and inner.max() > 3.0 else 3.0
    if earlier is not None:
        low, high = min(low, *earlier), max(high, *earlier)
    ticks = _det_ticks(low, high)
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_ticks(norm.ppf(ticks), labels=[_percent(rate) for rate in ticks])
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)

    def deviate(rate):  # a rate of 0 or 1 at the edge of the axes
        return float(np.clip(norm.ppf(rate), low, high))

    ax.plot([deviate(eer)], [deviate(eer)], "o", color="C3", label=f"EER {eer:.3g}")
    if threshold is not None:
        label = _legend_entry(threshold, far, frr)
        ax.plot([deviate(far)], [deviate(frr)], "s", color="C2", label=label)
    ax.set_xlabel("false-accept rate")
    ax.set_ylabel("false-reject rate")
    ax.legend(loc="upper right", fontsize="small")
    return ax


def _det_ticks(low, high):
    """Rates to label on DET axes from ``low`` to ``high`` normal deviates: scikit-learn's
    1% to 99%, then 0.1%, 0.01%, ... and 99.9%, 99.99%, ... as far as the axes go, leaving
    out those nearer than a twelfth of the axis to the last one kept (the decades crowd
    together in the tails)."""
    from scipy.stats import norm

    rates = [0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99]
    decades = [10.0**-k for k in range(3, 16)]
    for start, tail in ((0.01, decades), (0.99, [1.0 - rate for rate in decades])):
        last = norm.ppf(start)
        for rate in tail:
            position = norm.ppf(rate)
            if not low <= position <= high:
                break
            if abs(position - last) >= (high - low) / 12:
                rates.append(rate)
                last = position
    return np.sort([rate for rate in rates if low <= norm.ppf(rate) <= high])


def _percent(rate):
    """``rate`` as a percentage with the digits it needs: 0.01%, 5%, 99.99%."""
    return f"{100 * rate:.13f}".rstrip("0").rstrip(".") + "%"


def plot_score_distributions(y_true, y_score, *, threshold=None, ax=None, bins=50):
    """Histograms of the scores of same- and different-identity pairs, with thresholds.

    Both histograms share their bins and are normalised to unit area, so that classes of
    very different sizes compare; a dashed line marks the EER threshold, a solid one
    ``threshold``.

    Parameters
    ----------
    y_true : array-like of shape (n_pairs,)
        1 for a same-identity pair, 0 or -1 for a different-identity pair.
    y_score : array-like of shape (n_pairs,)
        Similarity of each pair, higher meaning more alike.
    threshold : float, default=None
        An operating threshold to mark.
    ax : matplotlib Axes, default=None
    bins : int, default=50
        Number of bins, spanning all the scores.

    Returns
    -------
    ax : matplotlib Axes
    """
    plt = _pyplot("plot_score_distributions")
    same, scores, threshold, _, eer_threshold = _pairs(y_true, y_score, threshold)
    bins = check_int(bins, "bins", min_value=1)
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    edges = np.histogram_bin_edges(scores, bins=bins)
    for mask, label, colour in ((same, "same identity", "C0"), (~same, "different", "C1")):
        ax.hist(scores[mask], bins=edges, density=True, histtype="step", color=colour,
                label=f"{label} ({int(mask.sum())} pairs)")  # fmt: skip
    ax.axvline(
        eer_threshold, color="C3", linestyle="--", label=f"EER threshold {eer_threshold:.3g}"
    )
    if threshold is not None:
        ax.axvline(threshold, color="C2", label=f"threshold {threshold:.3g}")
    ax.set_xlabel("score (higher: more alike)")
    ax.set_ylabel("density")
    ax.legend(fontsize="small")
    return ax


#: matplotlib backends that draw to files only (no window to show a figure in).
_FILE_BACKENDS = {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}


def show_or_save(fig, filename: str) -> str | None:
    """Show ``fig`` in a window, or save it when matplotlib has nowhere to show it.

    For scripts that run both on a desktop and on a machine without a display (a server,
    CI): with an interactive backend this is ``plt.show()``; with a file-only backend
    (Agg, the default without a display) it saves ``fig`` to ``filename`` and prints the
    path instead of showing nothing.

    Parameters
    ----------
    fig : matplotlib Figure
    filename : str
        Where to save the figure when it cannot be shown (PNG by its extension).

    Returns
    -------
    path : str or None
        The absolute path of the saved file, or None when the figure was shown.
    """
    import os

    plt = _pyplot("show_or_save")
    backend = plt.get_backend().lower()
    if backend not in _FILE_BACKENDS:
        plt.show()
        return None
    fig.savefig(filename, dpi=100, bbox_inches="tight")
    path = os.path.abspath(filename)
    print(f"No display to show the figure on (matplotlib backend {backend!r}): saved to {path}")
    return path
