"""What early stopping holds out: whole classes (open set), samples of each class (closed set),
or both.

:func:`holdout_plan` decides from the labels and the estimator's settings whether ``fit``
validates at all, and on what; :func:`holdout_split` draws the split. The ``early_stopping``
and ``validation_holdout`` docstrings in :mod:`._params` say what each plan is for; the
measurements behind the thresholds are in the user guide's benchmarks page.
"""

from __future__ import annotations

import numpy as np

#: Most held-out samples scored per epoch: MAP@R costs O(n_val^2), so beyond this many a
#: fixed, class-stratified subset of them is scored (the others are still not trained on
#: when they belong to held-out classes, and go back to training when they do not).
MAX_VALIDATION_SAMPLES = 4096


#: ``validation_holdout="auto"`` holds out whole classes only when at least this many can be
#: held out (from 18 classes of 2 or more samples at ``validation_fraction=0.2``, since
#: :func:`held_out_classes` rounds 0.2 x 18 = 3.6 to 4): MAP@R among 2 or 3 held-out classes
#: is too noisy a guide, and held-out samples of every class then serve both uses (the
#: measurements are in the user guide's benchmarks page).
AUTO_MIN_HELD_OUT_CLASSES = 4


def holdout_plan(
    y: np.ndarray, early_stopping: bool | str, holdout: str, fraction: float
) -> str | None:
    """How early stopping validates: on held-out "classes", "samples", "mixed" or None (off).

    ``holdout="classes"`` holds out ``fraction`` of the classes with 2 or more samples, so
    that the score measures retrieval among classes the network was not trained on.
    ``early_stopping="auto"`` validates only when that fraction is at least 2 classes and
    leaves 2 such classes to train on: with
    fewer classes, MAP@R on 1 or 2 held-out classes is too noisy a guide. ``True`` then holds
    out 2 classes anyway (and at most all but 2), and with 3 classes or fewer, samples of
    each class.
    ``holdout="samples"`` holds out samples of every class with 4 or more; ``"auto"`` needs 2
    such classes. ``holdout="auto"`` holds out classes where at least
    :data:`AUTO_MIN_HELD_OUT_CLASSES` can be held out, and samples otherwise.
    ``holdout="both"`` holds out classes and samples of the others ("mixed") where both
    can be, and samples otherwise.

    Parameters
    ----------
    y : ndarray of shape (n_samples,)
        Encoded class labels.
    early_stopping : bool or "auto"
    holdout : {"auto", "classes", "samples", "both"}
    fraction : float
        ``validation_fraction``.

    Returns
    -------
    plan : {"classes", "samples", "mixed"} or None
    """
    if not early_stopping:
        return None
    counts = np.unique(y, return_counts=True)[1]
    fallback = "samples" if early_stopping is True else None
    samples_ok = np.sum(counts >= 4) >= 2
    if holdout == "samples":
        return "samples" if samples_ok else fallback
    n_val = held_out_classes(counts, fraction)
    if early_stopping is True and holdout == "classes":
        n_val = _classes_to_hold_out(counts, fraction)
    # at least 2 classes of 2+ samples on each side: a class of one sample has no positive
    classes_ok = n_val >= 2 and np.sum(counts >= 2) - n_val >= 2
    if holdout == "classes":
        return "classes" if classes_ok else fallback
    if holdout == "auto" and classes_ok and n_val >= AUTO_MIN_HELD_OUT_CLASSES:
        return "classes"
    if holdout == "both" and classes_ok and np.sum(counts >= 4) - n_val >= 2:
        return "mixed"
    return "samples" if samples_ok else fallback


def held_out_classes(counts: np.ndarray, fraction: float) -> int:
    """How many classes a class hold-out takes: ``fraction`` of those with 2 or more samples
    (``counts``: samples per class). A class of one sample is never held out (it cannot be
    retrieved) and trains only as negatives, so it does not count: with many such classes a
    fraction of all classes could take every class that has a positive pair."""
    return round(fraction * int(np.sum(counts >= 2)))


def _classes_to_hold_out(counts: np.ndarray, fraction: float) -> int:
    """:func:`held_out_classes`, but at least 2 and leaving at least 2 to train on (the
    classes of ``early_stopping=True``'s class hold-out; a no-op where "auto" validates)."""
    return min(max(2, held_out_classes(counts, fraction)), int(np.sum(counts >= 2)) - 2)


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
    unseen = np.zeros(y.size, dtype=bool)  # samples of held-out classes
    if plan in ("classes", "mixed"):
        n_val = _classes_to_hold_out(counts, fraction)
        held_out = rng.choice(classes[counts >= 2], n_val, replace=False)
        unseen = np.isin(y, held_out)
    validation = unseen.copy()
    if plan in ("samples", "mixed"):  # samples of each remaining class with enough of them
        for c in classes[counts >= 4]:
            members = np.flatnonzero((y == c) & ~unseen)
            if members.size == 0:
                continue
            members = rng.permutation(members)
            n = min(max(2, round(fraction * members.size)), members.size - 2)
            validation[members[:n]] = True
    _check_split(y, validation, classes, counts, holdout, fraction)
    scored = _cap(np.flatnonzero(validation), y, rng)
    trained = ~validation
    trained[np.setdiff1d(np.flatnonzero(validation & ~unseen), scored)] = True
    return everything[trained], scored


def _cap(validation: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """At most :data:`MAX_VALIDATION_SAMPLES` of ``validation``, each class keeping its share
    (and at least 2 samples where it had them), in the original order."""
    if validation.size <= MAX_VALIDATION_SAMPLES:
        return validation
    share = MAX_VALIDATION_SAMPLES / validation.size
    kept = []
    for c in np.unique(y[validation]):
        members = rng.permutation(validation[y[validation] == c])
        kept.append(members[: max(min(2, members.size), int(share * members.size))])
    return np.sort(np.concatenate(kept))


def _check_split(y, validation, classes, counts, holdout, fraction) -> None:
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
