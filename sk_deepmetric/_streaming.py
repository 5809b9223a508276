"""Data that stay where they are: arrays on disk and torch Datasets, read batch by batch.

In-memory ``X`` (a NumPy array, a list, a DataFrame) is checked whole by scikit-learn and
becomes one float32 tensor. Data larger than memory come instead as

- an **array on disk**: a ``numpy.memmap``, or any array-like indexed by rows that has
  ``shape`` and ``dtype`` without being an in-memory array (an h5py ``Dataset``, a zarr
  ``Array``);
- a **torch Dataset** (``torch.utils.data.Dataset`` with ``__len__``) whose items are
  ``(x, label)`` pairs, or samples ``x`` (alone or as 1-tuples ``(x,)``, as in a
  ``TensorDataset(X)``) with the labels given as ``y``.

:class:`RowSource` reads rows of either as float32 and checks them as they are read (every
sample the shape of the first, finite values: scikit-learn's messages, with the sample's
index); it never writes to the user's data. :class:`Stream` gathers batches of row indices
with a ``DataLoader`` (in ``num_workers`` background processes when > 0, pinned for
asynchronous copies to a GPU), so that memory holds a few batches whatever the number of
samples.
"""

from __future__ import annotations

import mmap
import numbers
import pickle
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from scipy import sparse
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from ._validation import check_array, check_consistent_length, column_or_1d

__all__ = [
    "BadSample",
    "RowSource",
    "Stream",
    "chunks",
    "is_streamed",
    "make_source",
]


class BadSample(ValueError):
    """A sample read batch by batch failed a check (shape, finite values, label), or reading
    it raised (the Dataset's exception is the ``__cause__``).

    Raised in the fitting process even when a background worker read the sample, with the
    message alone (not the worker's traceback). A fresh fit that meets one is left unfitted,
    as one whose data scikit-learn rejects up front.
    """


def is_streamed(X: object) -> bool:
    """Whether ``X`` is read batch by batch (see the module's docstring) rather than loaded.

    A ``DataLoader`` is refused by name: the estimators make their own batches from its
    Dataset.
    """
    if isinstance(X, DataLoader):
        raise ValueError(
            "X is a torch DataLoader, but the estimators read samples from a Dataset and make "
            "their own batches (class-balanced for the tuple losses): pass X=loader.dataset, "
            "and set batch_size and num_workers on the estimator."
        )
    if isinstance(X, RowSource | np.memmap | Dataset):
        return True
    if isinstance(X, np.ndarray | Tensor | list | tuple) or sparse.issparse(X):
        return False
    if hasattr(X, "iloc") or hasattr(X, "__dataframe__") or hasattr(X, "__array_namespace__"):
        return False  # data frames and array-API arrays live in memory: scikit-learn checks them
    return all(hasattr(X, name) for name in ("shape", "dtype", "__getitem__", "__len__"))


def make_source(
    X: object, y: object = None, labels: bool = True
) -> tuple[RowSource, np.ndarray | None]:
    """``X`` as a :class:`RowSource`, and the labels: ``y`` checked, or the Dataset's own
    (None with ``labels=False``: a Dataset without ``targets`` is then not read for them).

    Raises the errors of a bad ``X`` or ``y`` that can be found without reading every sample.
    """
    if isinstance(X, RowSource):
        source = X
    elif isinstance(X, Dataset):
        source = _DatasetSource(X, y_given=y is not None)
    else:
        source = _ArraySource(X)
    if y is None:
        return source, source.labels() if labels else None
    y = column_or_1d(check_array(y, ensure_2d=False, dtype=None, input_name="y"), warn=True)
    check_consistent_length(source, y)
    return source, y


class RowSource:
    """Rows of some data, read as float32 NumPy arrays and checked as they are read.

    ``shape`` is ``(n_samples, *sample_shape)``; :meth:`reshaped` gives a view whose rows come
    in another shape of as many values (the network's input shape); :meth:`subset` a view on
    some rows, whose errors still name the sample's index in the whole data.
    """

    def __init__(self, n: int, sample_shape: tuple[int, ...]) -> None:
        self._n = n
        self.sample_shape = sample_shape

    def __len__(self) -> int:
        return self._n

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._n, *self.sample_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.sample_shape)

    def read(self, index: np.ndarray) -> np.ndarray:
        """Rows ``index`` (an integer array), float32, C-contiguous, finite."""
        index = np.asarray(index, dtype=np.int64)
        rows = self._read(index)
        check_finite(rows, index)
        return rows

    def _read(self, index: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def labels(self) -> np.ndarray | None:
        """The labels the data carry (a Dataset of ``(x, label)`` pairs), else None."""
        return None

    def reshaped(self, shape: Sequence[int]) -> RowSource:
        return _View(self, np.arange(len(self)), tuple(int(d) for d in shape))

    def subset(self, index: np.ndarray) -> RowSource:
        return _View(self, np.asarray(index, dtype=np.int64), self.sample_shape)


class _View(RowSource):
    def __init__(self, parent: RowSource, rows: np.ndarray, shape: tuple[int, ...]) -> None:
        super().__init__(len(rows), shape)
        self.parent, self.rows = parent, rows

    def read(self, index: np.ndarray) -> np.ndarray:
        rows = self.parent.read(self.rows[np.asarray(index, dtype=np.int64)])
        return rows.reshape(len(rows), *self.sample_shape)

    def subset(self, index: np.ndarray) -> RowSource:
        return _View(self.parent, self.rows[np.asarray(index, dtype=np.int64)], self.sample_shape)

    def reshaped(self, shape: Sequence[int]) -> RowSource:
        return _View(self.parent, self.rows, tuple(int(d) for d in shape))


class _ArraySource(RowSource):
    """A ``numpy.memmap``, h5py or zarr array: rows read by index, converted per batch."""

    def __init__(self, X: object) -> None:
        if any(not isinstance(d, numbers.Integral) and d != d for d in X.shape):  # NaN
            raise ValueError(
                f"X has unknown dimensions, shape {tuple(X.shape)} (a dask array after boolean "
                "indexing?): compute them first, e.g. X.compute_chunk_sizes() for dask."
            )
        shape = tuple(int(d) for d in X.shape)
        if len(shape) < 2:
            raise ValueError(
                f"Expected a 2D array or one with more dimensions, got an array on disk of "
                f"shape {shape}: reshape it to (n_samples, n_features)."
            )
        try:
            dtype = np.dtype(X.dtype)
        except TypeError:
            raise ValueError(
                f"X on disk must have a NumPy dtype (numbers: integers or floats), got dtype "
                f"{X.dtype!r} of type {type(X.dtype).__name__}: wrap it so that `dtype` is a "
                "NumPy dtype and rows read as NumPy arrays, or pass a torch Dataset."
            ) from None
        if dtype.kind not in "biuf":
            raise ValueError(
                f"X on disk must hold numbers (integers or floats), got dtype {dtype}."
            )
        super().__init__(shape[0], shape[1:])
        self.X = X
        self._fancy = isinstance(X, np.ndarray) or _takes_index_arrays(X, shape[0])

    def __getstate__(self) -> dict:
        """A memmap travels as its file name and where in the file its rows are (a worker
        process started by spawn reopens the file read-only), also a view of one (a row
        slice, a reshape); pickled as an array, it would be read whole."""
        state = self.__dict__.copy()
        X = self.X
        root = X  # the memmap that maps the file: a slice's or reshape's base, or X itself
        while isinstance(root, np.ndarray) and not isinstance(root.base, mmap.mmap):
            root = root.base
        if (
            isinstance(X, np.memmap)
            and isinstance(root, np.memmap)
            and root.filename
            and all(stride >= 0 for stride in X.strides)
        ):
            order = "C" if root.flags.c_contiguous else "F"
            start = X.__array_interface__["data"][0] - root.__array_interface__["data"][0]
            file = (root.filename, root.dtype, root.shape, root.offset, order)
            state["X"] = (file, (X.dtype, X.shape, X.strides, start))
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state["X"], tuple):
            (filename, dtype, shape, offset, order), (view_dtype, view_shape, strides, start) = (
                state["X"]
            )
            root = np.memmap(
                filename, dtype=dtype, mode="r", shape=shape, offset=offset, order=order
            )
            state["X"] = np.ndarray(
                view_shape, dtype=view_dtype, buffer=root, offset=start, strides=strides
            )
        self.__dict__.update(state)

    def _read(self, index: np.ndarray) -> np.ndarray:
        if index.size == 0:
            return np.empty((0, *self.sample_shape), dtype=np.float32)
        # increasing unique rows, as h5py requires and as a disk reads best; then reordered
        wanted, inverse = np.unique(index, return_inverse=True)
        if wanted[0] < 0 or wanted[-1] >= len(self):
            raise IndexError(f"row index out of range for X with {len(self)} samples")
        if self._fancy:
            rows = np.asarray(self.X[wanted])
        else:  # read contiguous runs as slices: every array-like takes those
            breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
            runs = np.split(wanted, breaks)
            rows = np.concatenate([np.asarray(self.X[r[0] : r[-1] + 1]) for r in runs])
        with np.errstate(over="ignore"):  # too large for float32: check_finite says so
            rows = rows.astype(np.float32, copy=False)  # a fresh array: no second copy
        return np.ascontiguousarray(rows[inverse])


def _takes_index_arrays(X: object, n: int) -> bool:
    """Whether ``X[[i, j]]`` gives rows i and j (h5py, zarr 3); otherwise slices are used."""
    probe = np.array([0, n - 1]) if n > 1 else np.array([0])
    try:
        return np.asarray(X[probe]).shape[0] == probe.size
    except (TypeError, IndexError, ValueError, KeyError, NotImplementedError):
        return False


class _DatasetSource(RowSource):
    """A torch Dataset: samples read one by one (``dataset[i]``) and stacked per batch.

    An item is a sample ``x``, a 1-tuple ``(x,)`` (a ``TensorDataset`` of samples) or an
    ``(x, label)`` pair; with ``y`` given, it must not be a pair. Without ``y``, the first
    item says which of these the Dataset holds.
    """

    def __init__(self, dataset: Dataset, y_given: bool) -> None:
        try:
            n = len(dataset)
        except TypeError:
            raise ValueError(
                "X is a torch Dataset without a length (an IterableDataset?); a Dataset "
                "indexed by sample with __len__ is needed."
            ) from None
        if n < 1:
            raise ValueError("X is a torch Dataset with 0 samples.")
        item = dataset[0]
        self.dataset, self.y_given, self._first = dataset, y_given, _describe(item)
        self.labelled = not y_given and _length(item) == 2
        first = _as_array(self._split(item, 0)[0], 0)
        super().__init__(n, tuple(first.shape))
        self._labels = None

    def _item(self, i: int) -> tuple[object, object]:
        try:
            item = self.dataset[int(i)]
        except Exception as exc:  # a file that cannot be read is bad data, like a NaN in it
            raise BadSample(
                f"Reading sample {i} of the Dataset raised {type(exc).__name__}: {exc}"
            ) from exc
        return self._split(item, i)

    def _split(self, item: object, i: int) -> tuple[object, object]:
        """``(x, label)`` of item ``i``: label None for a Dataset of samples."""
        length = _length(item)
        if self.labelled:
            if length != 2:
                raise BadSample(
                    f"Sample {i} of the Dataset is {_describe(item)}, but with y=None its "
                    "items must be (x, label) pairs, as sample 0 is; pass the labels as y "
                    "otherwise."
                )
            return item[0], item[1]
        if length is None:
            return item, None
        if length == 1:
            return item[0], None
        if self.y_given:
            advice = "; pass y=None to use the Dataset's own labels" if length == 2 else ""
            rule = f"y was given, so its items must be samples x or 1-tuples (x,){advice}"
        elif i == 0:
            rule = "its items must be samples x, 1-tuples (x,) or (x, label) pairs"
        else:
            rule = (
                f"sample 0 is {self._first} without a label, so every item must be a sample x "
                "or a 1-tuple (x,), with the labels, if any, given as y"
            )
        raise BadSample(f"Sample {i} of the Dataset is {_describe(item)}, but {rule}.")

    def _sample(self, i: int) -> np.ndarray:
        x = _as_array(self._item(i)[0], i)
        if i and x.shape != self.sample_shape:
            raise BadSample(
                f"Sample {i} of the Dataset has shape {x.shape}, but sample 0 has shape "
                f"{self.sample_shape}: every sample must have the same shape (resize or crop "
                "in the Dataset's transform)."
            )
        return x

    def _read(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((index.size, *self.sample_shape), dtype=np.float32)
        for row, i in enumerate(index):
            if not 0 <= i < len(self):
                raise IndexError(f"sample index {i} out of range for a Dataset of {len(self)}")
            out[row] = self._sample(int(i))
        return out

    def labels(self) -> np.ndarray | None:
        """``targets`` when the Dataset has them (torchvision's datasets) and no
        ``target_transform`` changes them; otherwise every item is read once."""
        if not self.labelled:
            return None
        if self._labels is None:
            targets = getattr(self.dataset, "targets", None)
            if targets is not None and getattr(self.dataset, "target_transform", None) is None:
                if isinstance(targets, list | tuple) and (i := _mixed_label(targets)) is not None:
                    raise ValueError(
                        f"The Dataset's `targets` holds at index {i} a label of type "
                        + _mixed_types(targets, i, "the one at index 0")
                    )
                labels = np.asarray(targets.cpu() if isinstance(targets, Tensor) else targets)
            else:
                labels = [_label(self._item(i)[1], i) for i in range(len(self))]
                if (i := _mixed_label(labels)) is not None:
                    raise BadSample(
                        f"Sample {i} of the Dataset has a label of type "
                        + _mixed_types(labels, i, "sample 0's")
                    )
                labels = np.array(labels)
            if labels.shape != (len(self),):
                raise ValueError(
                    f"The Dataset's `targets` has shape {labels.shape}, but it holds "
                    f"{len(self)} samples: one label per sample is needed."
                )
            self._labels = labels
        return self._labels


def _length(item: object) -> int | None:
    """The number of parts of a tuple or list item; None for a sample given alone."""
    return len(item) if isinstance(item, tuple | list) else None


def _describe(item: object) -> str:
    """``'a tuple of 3'``, ``'a Tensor'``: what an item is, for messages."""
    length = _length(item)
    return f"a {type(item).__name__}" + ("" if length is None else f" of {length}")


def _as_array(x: object, i: int) -> np.ndarray:
    try:
        if isinstance(x, Tensor):
            x = x.detach().cpu().numpy()
        array = np.asarray(x)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"dtype {array.dtype}")
        return array.astype(np.float32, copy=False)
    except (TypeError, ValueError) as exc:
        raise BadSample(
            f"Sample {i} of the Dataset is a {type(x).__name__} that is not an array of "
            f"numbers ({exc}); give the Dataset a transform to a tensor (e.g. torchvision's "
            "ToTensor for images)."
        ) from None


def _label(label: object, i: int) -> object:
    """The label of sample ``i`` as a scalar: a tensor's or 0-d array's value."""
    if isinstance(label, Tensor):
        if label.numel() != 1:
            raise BadSample(
                f"Sample {i} of the Dataset has a label of shape "
                f"{tuple(label.shape)}; one class label per sample is needed."
            )
        label = label.item()
    elif isinstance(label, np.ndarray) and label.ndim == 0:
        label = label[()]
    if label is None or (isinstance(label, float | np.floating) and np.isnan(label)):
        raise BadSample(f"Sample {i} of the Dataset has no label ({label!r}).")
    if np.ndim(label) != 0:
        raise BadSample(
            f"Sample {i} of the Dataset has a label of shape {np.shape(label)}; one class "
            "label per sample is needed."
        )
    return label


def _label_family(cls: type) -> object:
    """``"number"`` (bools, integers, floats: Python's or NumPy's) or ``"string"``: labels
    of one family make a NumPy array of the same values. Any other type is its own family."""
    if issubclass(cls, str):
        return "string"
    if issubclass(cls, np.bool_ | numbers.Real):
        return "number"
    return cls


def _mixed_label(labels: Sequence[object]) -> int | None:
    """The index of the first label of another family than label 0's (None if there is none):
    ``np.array`` would silently turn ``[0, 'a']`` into ``['0', 'a']``, and scikit-learn
    refuses such a ``y``. The labels' types are gathered once; the index is looked for only
    when they are mixed."""
    if len({_label_family(cls) for cls in set(map(type, labels))}) < 2:
        return None
    first = _label_family(type(labels[0]))
    return next(i for i, label in enumerate(labels) if _label_family(type(label)) != first)


def _mixed_types(labels: Sequence[object], i: int, first: str) -> str:
    """The end of the message on a mixed label ``i``; ``first`` names label 0."""
    return (
        f"{type(labels[i]).__name__} ({labels[i]!r}), but {first} is of type "
        f"{type(labels[0]).__name__} ({labels[0]!r}): class labels must be all numbers or all "
        "strings, not a mix."
    )


def check_finite(rows: np.ndarray, index: np.ndarray) -> None:
    """scikit-learn's message for non-finite input, naming the first bad sample's index."""
    finite = np.isfinite(rows.reshape(len(rows), -1)).all(axis=1)
    if finite.all():
        return
    bad = int(np.flatnonzero(~finite)[0])
    if np.isnan(rows[bad]).any():
        what = "NaN"
    else:
        what = f"infinity or a value too large for {np.dtype(np.float32)!r}"
    raise BadSample(
        f"Input X contains {what}: sample {int(index[bad])} (data read batch by batch "
        "are checked as they are read)."
    )


class _Batches(Dataset):
    """Batches of a source for a ``DataLoader``: index array in, ``(x, index)`` out."""

    def __init__(self, source: RowSource) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: np.ndarray) -> tuple[Tensor, Tensor] | _Failed:
        index = np.asarray(index, dtype=np.int64)
        try:
            rows = self.source.read(index)
        except BadSample as exc:  # sent back as a value: raised again without the traceback
            return _Failed(str(exc), exc.__cause__)
        return torch.from_numpy(rows), torch.from_numpy(index)


class _Failed:
    """A :class:`BadSample`'s message, and the Dataset's exception behind it where that can
    come back from a background worker (one that does not pickle is left out)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        self.message, self.cause = message, cause
        if cause is not None and torch.utils.data.get_worker_info() is not None:
            try:
                pickle.dumps(cause)
            except Exception:
                self.cause = None


class Stream:
    """The rows of ``source`` for each index array of ``batches``, as ``(rows, index)`` with
    the rows on ``device``; iterate once per epoch.

    With ``num_workers > 0`` the rows are read in that many background processes, two
    batches ahead each, kept alive between epochs; on CUDA they come in pinned memory and
    are copied without blocking. ``batches`` is iterated afresh for each epoch (a sampler
    draws new batches).
    """

    def __init__(
        self,
        source: RowSource,
        batches: Iterable[np.ndarray],
        device: torch.device,
        num_workers: int = 0,
    ) -> None:
        self.source, self.device = source, device
        self.pin = device.type == "cuda"
        self.loader = DataLoader(
            _Batches(source),
            batch_size=None,
            sampler=batches,
            num_workers=num_workers,
            pin_memory=self.pin,
            prefetch_factor=2 if num_workers else None,
            persistent_workers=num_workers > 0,
        )

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for item in self.loader:
            if isinstance(item, _Failed):
                raise BadSample(item.message) from item.cause
            rows, index = item
            # a copy in torch's (aligned) memory, as an in-memory batch X[index] is: BLAS
            # kernels may round differently on differently aligned inputs
            yield rows.to(self.device, non_blocking=self.pin, copy=True), index


def chunks(n: int, size: int) -> list[np.ndarray]:
    """``range(n)`` in consecutive index arrays of ``size``: the reads of an ordered scan."""
    return [np.arange(start, min(start + size, n)) for start in range(0, n, size)]
