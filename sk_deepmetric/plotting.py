"""Pictures of a learned embedding: a 2-D map, the training curves, and retrieval examples.

matplotlib is an optional dependency (``pip install "sk_deepmetric[plot]"``); every function
raises a clear ImportError without it.
"""

from __future__ import annotations

import numpy as np
import torch

from ._validation import check_int, check_is_fitted, check_option
from .distances import topk_neighbors

__all__ = ["plot_embedding", "plot_history", "plot_retrieval"]


def _pyplot(function: str):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{function} needs matplotlib, which is not installed. "
            'Install it with: pip install "sk_deepmetric[plot]"'
        ) from exc
    return plt


def _embed(embedder_or_array, X, function: str) -> np.ndarray:
    """The embeddings to plot: ``embedder.transform(X)``, or the array itself."""
    if hasattr(embedder_or_array, "transform"):
        if X is None:
            raise ValueError(f"{function} was given an embedder, so it needs `X` to transform.")
        check_is_fitted(embedder_or_array)
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


def _to_2d(emb: np.ndarray, method: str, random_state) -> np.ndarray:
    if emb.shape[1] == 2:
        return emb
    if emb.shape[1] == 1:
        return np.hstack([emb, np.zeros_like(emb)])
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
    emb = _to_2d(_embed(embedder_or_array, X, "plot_embedding"), method, random_state)
    labels = np.zeros(emb.shape[0], dtype=int) if y is None else np.asarray(y)
    if labels.shape != (emb.shape[0],):
        raise ValueError(
            f"`y` must have one label per sample ({emb.shape[0]}), got shape {labels.shape}."
        )
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 5))
    classes = np.unique(labels)
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
    check_is_fitted(embedder, "history_")
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
        X = X.reshape((X.shape[0], *image_shape))
    if X.ndim == 4:  # (n, C, H, W) -> (n, H, W, C); one channel -> grey
        X = X[:, 0] if X.shape[1] == 1 else np.moveaxis(X, 1, -1)
    if X.ndim not in (3, 4):
        raise ValueError(
            "plot_retrieval needs images: X of shape (n, H, W) or (n, C, H, W), or flat X with "
            f"`image_shape`, got X of shape {X.shape} and image_shape={image_shape}."
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
    X = np.asarray(X)
    y = np.asarray(y)
    n = X.shape[0]
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
