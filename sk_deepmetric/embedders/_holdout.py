"""What early stopping holds out: whole classes (open set) or samples of each class (closed set).

:func:`holdout_plan` decides from the labels and the estimator's settings whether ``fit``
validates at all, and on what; :func:`holdout_split` draws the split. The ``early_stopping``
and ``validation_holdout`` docstrings in :mod:`._params` give the measurements behind the
thresholds.
"""

from __future__ import annotations

import numpy as np


def holdout_plan(
    y: np.ndarray, early_stopping: bool | str, holdout: str, fraction: float
) -> str | None:
    """How early stopping validates: on held-out "classes", "samples", or None (off).

    ``holdout="classes"`` holds out ``fraction`` of the classes, so that the score measures
    retrieval among classes the network was not trained on. ``early_stopping="auto"``
    validates only when that fraction is at least 2 classes and leaves 2 to train on: with
    fewer classes, MAP@R on 1 or 2 held-out classes is too noisy a guide. ``True`` then holds
    out 2 classes anyway, and with 3 classes or fewer, samples of each class.
    ``holdout="samples"`` holds out samples of every class with 4 or more; ``"auto"`` needs 2
    such classes.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Encoded class labels.
    early_stopping : bool or "auto"
    holdout : {"classes", "samples"}
    fraction : float
        ``validation_fraction``.

    Returns
    -------
    plan : {"classes", "samples"} or None
    """
    if not early_stopping:
        return None
    classes, counts = np.unique(y, return_counts=True)
    fallback = "samples" if early_stopping is True else None
    if holdout == "samples":
        return "samples" if np.sum(counts >= 4) >= 2 else fallback
    n_val = round(fraction * classes.size)
    if early_stopping is True:
        n_val = max(2, n_val)
    if n_val >= 2 and classes.size - n_val >= 2 and np.sum(counts >= 2) >= n_val:
        return "classes"
    return fallback


def holdout_split(
    y: np.ndarray, plan: str | None, holdout: str, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Indices of the training and validation samples (validation: None when ``plan`` is).

    Raises a ``ValueError`` naming the parameters when the plan leaves fewer than 2 classes
    on either side, which only ``early_stopping=True`` can ask for.
    """
    everything = np.arange(y.size)
    if plan is None:
        return everything, None
    classes, counts = np.unique(y, return_counts=True)
    if plan == "classes":
        n_val = max(2, round(fraction * classes.size))
        held_out = rng.choice(classes[counts >= 2], n_val, replace=False)
        validation = np.isin(y, held_out)
    else:  # hold out samples of each class with enough of them
        validation = np.zeros(y.size, dtype=bool)
        for c in classes[counts >= 4]:
            members = rng.permutation(np.flatnonzero(y == c))
            n = min(max(2, round(fraction * members.size)), members.size - 2)
            validation[members[:n]] = True
    if holdout == "samples" and np.unique(y[validation]).size < 2:
        raise ValueError(
            "`early_stopping=True` with `validation_holdout`='samples' needs at least 2 "
            f"classes with 4 or more samples, got {np.sum(counts >= 4)}. Set "
            "early_stopping=False or give more data."
        )
    if np.unique(y[validation]).size < 2 or np.unique(y[~validation]).size < 2:
        raise ValueError(
            f"`early_stopping=True` needs a validation set: with {classes.size} classes "
            f"and `validation_fraction`={fraction}, no class-disjoint split "
            "(2+ classes on each side) nor a split of the samples of classes with 4+ "
            "samples leaves 2 classes on each side. Set early_stopping=False or give "
            "more data."
        )
    return everything[~validation], everything[validation]
