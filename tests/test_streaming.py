"""Data larger than memory: arrays on disk and torch Datasets, read batch by batch.

A streamed fit must be the in-memory fit, bit for bit (same batches, same float32 values),
whatever reads the rows; bad samples are errors that name their index; nothing is written to
the user's data.
"""

import hashlib
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from torch.utils.data import Dataset, TensorDataset

from sk_deepmetric import (
    ArcFaceEmbedder,
    ContrastivePairsEmbedder,
    EmbeddingKNeighborsClassifier,
    SoftmaxEmbedder,
    TripletEmbedder,
)
from sk_deepmetric._streaming import BadSample, RowSource, is_streamed, make_source
from sk_deepmetric.embedders import _base


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16).astype(np.float32)[:600], y[:600]


def _memmap(path, X, dtype=np.float32, mode="r"):
    m = np.memmap(path, dtype=dtype, mode="w+", shape=X.shape)
    m[:] = X
    m.flush()
    del m
    return np.memmap(path, dtype=dtype, mode=mode, shape=X.shape)


def _saved_npy(path, X):
    np.save(path, X)
    return np.load(path, mmap_mode="r")


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


class PairDataset(Dataset):
    """``(x, label)`` items from arrays, counting the reads; ``bad`` maps an index to what
    item it returns instead."""

    def __init__(self, X, y, bad=None, targets=False):
        self.X, self.y, self.bad, self.reads = X, y, bad or {}, 0
        if targets:
            self.targets = list(y)

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        self.reads += 1
        if i in self.bad:
            return self.bad[i]
        return torch.from_numpy(self.X[i]), int(self.y[i])


class SamplesDataset(Dataset):
    """The items of ``X`` (an array of samples, or a list of any items), as they are."""

    def __init__(self, X):
        self.X = X

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i]


def _escaped(message):
    return "^" + message.replace("(", "[(]").replace(")", "[)]").replace(".", "[.]") + "$"


class SlicesOnly:
    """An array-like on disk that, like some zarr versions, takes slices but no index
    arrays: the source must read it by runs of consecutive rows."""

    def __init__(self, X):
        self._X = X
        self.shape, self.dtype = X.shape, X.dtype

    def __len__(self):
        return len(self._X)

    def __getitem__(self, key):
        if not isinstance(key, slice):
            raise TypeError("only slices")
        return self._X[key].copy()


def _fit_pair(cls, X_memory, X_stream, y, y_stream="same", **params):
    params = {"random_state": 0, "max_iter": 3, **params}
    a = cls(**params).fit(X_memory, y)
    b = cls(**params).fit(X_stream, y if y_stream == "same" else y_stream)
    return a, b


# ------------------------------------------------------------------ what streams
def test_is_streamed_tells_disk_and_datasets_from_memory(tmp_path, digits):
    import pandas as pd

    X, _ = digits
    assert is_streamed(_memmap(tmp_path / "x.dat", X))
    assert is_streamed(TensorDataset(torch.from_numpy(X)))
    assert is_streamed(SlicesOnly(X))
    for in_memory in (X, X.tolist(), pd.DataFrame(X), torch.from_numpy(X)):
        assert not is_streamed(in_memory)


# ------------------------------------------------------------------ same fit as in memory
@pytest.mark.parametrize("cls", [TripletEmbedder, ArcFaceEmbedder])
def test_memmap_fit_is_the_in_memory_fit_bit_for_bit(tmp_path, digits, cls):
    X, y = digits
    path = tmp_path / "x.dat"
    X_disk = _memmap(path, X)
    before = _digest(path)
    a, b = _fit_pair(cls, X, X_disk, y)  # 10 classes: early stopping on held-out samples
    assert [h["loss"] for h in a.history_] == [h["loss"] for h in b.history_]
    assert [h["score"] for h in a.history_] == [h["score"] for h in b.history_]
    np.testing.assert_array_equal(a.transform(X), b.transform(X_disk))
    assert a.score(X, y) == b.score(X_disk, y)
    assert _digest(path) == before  # opened read-only, never written


def test_memmap_of_other_dtypes_is_converted_per_batch(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(200, 12)).astype(np.uint8)
    y = np.repeat(np.arange(10), 20)
    for dtype in (np.uint8, np.float64):
        X_disk = _memmap(tmp_path / f"x{np.dtype(dtype).name}.dat", X.astype(dtype), dtype)
        a, b = _fit_pair(TripletEmbedder, X.astype(dtype), X_disk, y)
        np.testing.assert_array_equal(a.transform(X.astype(dtype)), b.transform(X_disk))


def test_partial_fit_streams_too(tmp_path, digits):
    X, y = digits
    X_disk = _memmap(tmp_path / "x.dat", X)
    a = TripletEmbedder(random_state=0)
    b = TripletEmbedder(random_state=0)
    for _ in range(2):
        a.partial_fit(X, y)
        b.partial_fit(X_disk, y)
    np.testing.assert_array_equal(a.transform(X), b.transform(X_disk))


def test_array_without_index_arrays_is_read_by_slices(digits):
    X, y = digits
    a, b = _fit_pair(SoftmaxEmbedder, X, SlicesOnly(X), y)
    np.testing.assert_array_equal(a.transform(X), b.transform(SlicesOnly(X)))


@pytest.mark.parametrize("num_workers", [0, 2])
def test_dataset_of_pairs_is_the_in_memory_fit(digits, num_workers):
    X, y = digits
    a, b = _fit_pair(
        TripletEmbedder, X, PairDataset(X, y), y, y_stream=None, num_workers=num_workers
    )
    np.testing.assert_array_equal(a.transform(X), b.transform(PairDataset(X, y)))
    assert a.score(X, y) == b.score(PairDataset(X, y))  # labels from the Dataset
    assert a.score(X, y) == b.score(SamplesDataset(X), y)


def test_dataset_of_samples_takes_y(digits):
    X, y = digits
    a, b = _fit_pair(TripletEmbedder, X, SamplesDataset(X), y)
    np.testing.assert_array_equal(a.transform(X), b.transform(SamplesDataset(X)))


def test_targets_give_the_labels_without_reading_samples(digits):
    X, y = digits
    dataset = PairDataset(X, y, targets=True)
    _, labels = make_source(dataset)
    np.testing.assert_array_equal(labels, y)
    assert dataset.reads == 1  # the first sample, for the shape
    dataset.target_transform = lambda t: t  # targets no longer say what items hold
    dataset.reads = 0
    make_source(dataset)
    assert dataset.reads == 1 + len(X)


def test_transform_reads_each_sample_once(digits):
    """transform needs no labels: a Dataset of pairs without ``targets`` is not scanned for
    them (the first item, for the shape, then each once)."""
    X, y = digits
    model = TripletEmbedder(random_state=0, max_iter=1).fit(X, y)
    dataset = PairDataset(X, y)
    model.transform(dataset)
    assert dataset.reads == 1 + len(X)


def test_dataset_of_image_files(tmp_path):
    """Images read lazily from PNG files, as an ImageFolder with a transform would."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:120], y[:120]
    paths = []
    for i, image in enumerate(X.reshape(-1, 8, 8)):
        path = tmp_path / f"{i}.png"
        Image.fromarray((image * 15).astype(np.uint8), mode="L").save(path)
        paths.append(path)

    class Files(Dataset):
        targets = list(y)

        def __len__(self):
            return len(paths)

        def __getitem__(self, i):
            with Image.open(paths[i]) as image:
                return np.asarray(image, dtype=np.float32)[None] / 255, int(y[i])

    images = (X.reshape(-1, 1, 8, 8) * 15).astype(np.uint8).astype(np.float32) / 255
    a, b = _fit_pair(TripletEmbedder, images, Files(), y, y_stream=None, network="cnn")
    np.testing.assert_array_equal(a.transform(images), b.transform(Files()))


def test_validation_scores_a_bounded_subsample(digits, monkeypatch):
    X, y = digits
    monkeypatch.setattr(_base, "MAX_SCORED_SAMPLES", 40)
    sizes = []
    real_embed = _base.embed

    def spy(module, X, device, **kwargs):
        sizes.append(len(X.source) if hasattr(X, "source") else len(X))
        return real_embed(module, X, device, **kwargs)

    monkeypatch.setattr(_base, "embed", spy)
    with pytest.warns(ConvergenceWarning):  # two epochs are not enough to converge
        model = TripletEmbedder(random_state=0, max_iter=2, early_stopping=True).fit(X, y)
    assert sizes and set(sizes) == {40}  # the start and every epoch, 40 of the ~120 held out
    assert len(model.history_) == 2


# ------------------------------------------------------------------ transform's output
def test_transform_writes_to_out(tmp_path, digits):
    X, y = digits
    model = TripletEmbedder(random_state=0, max_iter=1).fit(X, y)
    out = np.memmap(tmp_path / "z.dat", dtype=np.float32, mode="w+", shape=(len(X), 128))
    result = model.transform(_memmap(tmp_path / "x.dat", X), out=out)
    assert result is out
    np.testing.assert_array_equal(out, model.transform(X))


@pytest.mark.parametrize(
    "out, given",
    [
        (np.zeros((600, 64), np.float32), "ndarray of shape (600, 64), dtype float32"),
        (np.zeros((600, 128)), "ndarray of shape (600, 128), dtype float64"),
        ([[0.0] * 128] * 600, "list"),
    ],
)
def test_transform_rejects_a_bad_out(digits, out, given):
    X, y = digits
    model = TripletEmbedder(random_state=0, max_iter=1).fit(X, y)
    message = (
        "`out` must be a writeable float32 NumPy array of shape (600, 128) (n_samples, "
        f"n_components), got a {given}."
    )
    with pytest.raises(ValueError, match=f"^{message.replace('(', '[(]').replace(')', '[)]')}$"):
        model.transform(X, out=out)


def test_transform_rejects_a_read_only_out(digits):
    X, y = digits
    model = TripletEmbedder(random_state=0, max_iter=1).fit(X, y)
    out = np.zeros((600, 128), np.float32)
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"dtype float32, read-only\.$"):
        model.transform(X, out=out)


# ------------------------------------------------------------------ errors
def _unfitted(model):
    return not hasattr(model, "module_") and not hasattr(model, "history_")


@pytest.mark.parametrize("num_workers", [0, 1])
def test_nan_on_disk_names_the_sample_and_leaves_the_model_unfitted(tmp_path, digits, num_workers):
    X, y = digits
    X = X.copy()
    X[417, 5] = np.nan
    model = TripletEmbedder(random_state=0, max_iter=2, num_workers=num_workers)
    message = (
        "Input X contains NaN: sample 417 (data read batch by batch are checked as they are read)."
    )
    with pytest.raises(ValueError, match=f"^{message.replace('(', '[(]').replace(')', '[)]')}$"):
        model.fit(_memmap(tmp_path / "x.dat", X), y)
    assert _unfitted(model)


def test_infinity_on_disk_names_the_sample(tmp_path, digits):
    X, y = digits
    X = X.astype(np.float64)
    X[3, 0] = 1e300  # finite in float64, infinite in float32
    model = TripletEmbedder(random_state=0, max_iter=1).fit(digits[0], y)
    with pytest.raises(
        ValueError,
        match=r"^Input X contains infinity or a value too large for dtype\('float32'\): sample 3 ",
    ):
        model.transform(_memmap(tmp_path / "x.dat", X, np.float64))


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            (torch.zeros(3), 1),
            "Sample 7 of the Dataset has shape (3,), but sample 0 has shape (64,): every "
            "sample must have the same shape (resize or crop in the Dataset's transform).",
        ),
        ("a string", "Sample 7 of the Dataset is a str, but with y=None its items must be"),
        (("text", 1), "Sample 7 of the Dataset is a str that is not an array of numbers"),
    ],
)
def test_bad_dataset_sample_is_an_error_naming_it(digits, bad, message):
    X, y = digits
    model = TripletEmbedder(random_state=0, max_iter=1)
    with pytest.raises(ValueError, match="^" + message.replace("(", "[(]").replace(")", "[)]")):
        model.fit(PairDataset(X, y, bad={7: bad}))
    assert _unfitted(model)


def test_dataset_sample_without_label(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"^Sample 9 of the Dataset has no label \(None\)\.$"):
        TripletEmbedder().fit(PairDataset(X, y, bad={9: (torch.from_numpy(X[9]), None)}))


def test_dataset_and_y_must_agree(digits):
    X, y = digits
    message = (
        "Sample 0 of the Dataset is a tuple of 2, but y was given, so its items must be samples "
        "x or 1-tuples (x,); pass y=None to use the Dataset's own labels."
    )
    with pytest.raises(BadSample, match=_escaped(message)):
        TripletEmbedder(max_iter=1).fit(PairDataset(X, y), y)
    with pytest.raises(ValueError, match=r"^TripletEmbedder requires y to be passed"):
        TripletEmbedder(max_iter=1).fit(SamplesDataset(X))
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[600, 599\]"):
        TripletEmbedder(max_iter=1).fit(SamplesDataset(X), y[:-1])
    model = TripletEmbedder(random_state=0, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=r"^TripletEmbedder\.score needs class labels"):
        model.score(SamplesDataset(X))


def test_tensor_dataset_of_samples_is_the_in_memory_data(digits):
    """``TensorDataset(X)`` items are 1-tuples ``(x,)``: samples without labels, in fit with
    y, transform, score with y and the classifier's predict."""
    X, y = digits
    samples = TensorDataset(torch.from_numpy(X))
    a, b = _fit_pair(TripletEmbedder, X, samples, y)
    np.testing.assert_array_equal(a.transform(X), b.transform(samples))
    np.testing.assert_array_equal(a.transform(X), a.transform(samples))
    assert a.score(X, y) == a.score(samples, y)
    knn = EmbeddingKNeighborsClassifier(TripletEmbedder(random_state=0, max_iter=1)).fit(X, y)
    np.testing.assert_array_equal(knn.predict(samples), knn.predict(X))
    one_lists = SamplesDataset([[torch.from_numpy(x)] for x in X])  # 1-lists as 1-tuples
    np.testing.assert_array_equal(a.transform(one_lists), a.transform(X))


def test_tensor_dataset_of_samples_and_labels_needs_no_y(digits):
    X, y = digits
    pairs = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    a, b = _fit_pair(TripletEmbedder, X, pairs, y, y_stream=None)
    np.testing.assert_array_equal(a.transform(X), b.transform(pairs))
    assert a.score(X, y) == a.score(pairs)


def test_tensor_dataset_of_samples_without_y_asks_for_labels(digits):
    X, y = digits
    samples = TensorDataset(torch.from_numpy(X))
    with pytest.raises(ValueError, match=r"^TripletEmbedder requires y to be passed, but the"):
        TripletEmbedder(max_iter=1).fit(samples)
    model = TripletEmbedder(random_state=0, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match=r"^TripletEmbedder\.score needs class labels: pass y"):
        model.score(samples)


@pytest.mark.parametrize(
    "items, calls, message",
    [
        (
            "triples",
            ("fit", "transform"),
            "Sample 0 of the Dataset is a tuple of 3, but its items must be samples x, 1-tuples "
            "(x,) or (x, label) pairs.",
        ),
        (
            "triples",
            ("fit with y",),
            "Sample 0 of the Dataset is a tuple of 3, but y was given, so its items must be "
            "samples x or 1-tuples (x,).",
        ),
        (
            "empty",
            ("fit", "transform"),
            "Sample 0 of the Dataset is a tuple of 0, but its items must be samples x, 1-tuples "
            "(x,) or (x, label) pairs.",
        ),
        (
            "pair at 7",
            ("transform",),  # a fit without y stops first: sample 0 brings no label
            "Sample 7 of the Dataset is a tuple of 2, but sample 0 is a Tensor without a label, "
            "so every item must be a sample x or a 1-tuple (x,), with the labels, if any, given "
            "as y.",
        ),
        (
            "1-tuple at 7",
            ("fit", "transform"),
            "Sample 7 of the Dataset is a tuple of 1, but with y=None its items must be (x, "
            "label) pairs, as sample 0 is; pass the labels as y otherwise.",
        ),
    ],
)
def test_dataset_items_of_another_form_are_named_accurately(digits, items, calls, message):
    """No message says that y was given when it was not."""
    X, y = digits
    T = torch.from_numpy(X)
    make = {
        "triples": lambda i: (T[i], 0, 0),
        "empty": lambda i: (),
        "pair at 7": lambda i: (T[i], int(y[i])) if i == 7 else T[i],
        "1-tuple at 7": lambda i: (T[i],) if i == 7 else (T[i], int(y[i])),
    }[items]
    dataset = SamplesDataset([make(i) for i in range(len(X))])
    model = TripletEmbedder(random_state=0, max_iter=1).fit(X, y)
    run = {
        "fit": lambda: TripletEmbedder(max_iter=1).fit(dataset),
        "fit with y": lambda: TripletEmbedder(max_iter=1).fit(dataset, y),
        "transform": lambda: model.transform(dataset),
    }
    for call in calls:
        with pytest.raises(BadSample, match=_escaped(message)):
            run[call]()


@pytest.mark.parametrize(
    "labels, classes",
    [
        ([0, 1, 2, 1], [0, 1, 2]),
        (["b", "a", "b", "a"], ["a", "b"]),
        ([0.5, 1.5, 0.5, 1.5], [0.5, 1.5]),
        ([True, False, True, False], [False, True]),
        ([np.int64(3), 1, torch.tensor(3), np.array(1)], [1, 3]),  # numbers of any origin
        ([np.str_("a"), "b", "a", "b"], ["a", "b"]),
        ([0, 1.0, True, np.float32(2)], [0.0, 1.0, 2.0]),  # as np.array([0, 1.0, ...]) is
    ],
)
def test_labels_of_one_kind_are_collected_from_items(digits, labels, classes):
    X, _ = digits
    dataset = SamplesDataset([(torch.from_numpy(x), label) for x, label in zip(X, labels)])
    _, collected = make_source(dataset)
    assert collected.shape == (4,)
    assert np.unique(collected).tolist() == classes


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            [0, 1, 2, "a"],
            "Sample 3 of the Dataset has a label of type str ('a'), but sample 0's is of type "
            "int (0): class labels must be all numbers or all strings, not a mix.",
        ),
        (
            ["a", "b", torch.tensor(1), "a"],
            "Sample 2 of the Dataset has a label of type int (1), but sample 0's is of type "
            "str ('a'): class labels must be all numbers or all strings, not a mix.",
        ),
        (
            [np.int64(0), np.str_("a"), 1, 1],
            f"Sample 1 of the Dataset has a label of type str_ ({np.str_('a')!r}), but sample "
            f"0's is of type int64 ({np.int64(0)!r}): class labels must be all numbers or all "
            "strings, not a mix.",  # reprs as NumPy writes them: np.int64(0) from NumPy 2
        ),
    ],
)
def test_labels_of_mixed_types_from_items_are_refused(digits, labels, message):
    X, _ = digits
    dataset = SamplesDataset([(torch.from_numpy(x), label) for x, label in zip(X, labels)])
    with pytest.raises(BadSample, match=_escaped(message)):
        make_source(dataset)


def test_one_string_label_among_numbers_fails_the_fit(digits):
    """It used to turn every label into a string, and the fit gained a class '1'."""
    X, y = digits
    labels = [int(label) for label in y]
    labels[100] = "1"
    dataset = SamplesDataset([(torch.from_numpy(x), label) for x, label in zip(X, labels)])
    model = TripletEmbedder(random_state=0, max_iter=1)
    with pytest.raises(BadSample, match=r"^Sample 100 of the Dataset has a label of type str "):
        model.fit(dataset)
    assert _unfitted(model)


def test_targets_list_of_mixed_types_is_refused(digits):
    X, y = digits
    dataset = PairDataset(X, y, targets=True)  # targets: a list of np.int64, y[0] is 0
    dataset.targets[5] = "cat"
    message = (
        "The Dataset's `targets` holds at index 5 a label of type str ('cat'), but the one at "
        f"index 0 is of type int64 ({np.int64(0)!r}): class labels must be all numbers or all "
        "strings, not a mix."
    )
    with pytest.raises(ValueError, match=_escaped(message)):
        make_source(dataset)


@pytest.mark.parametrize(
    "nan, shown",
    [(torch.tensor(float("nan")), "nan"), (np.float32("nan"), repr(np.float32("nan")))],
)
def test_a_nan_label_of_a_tensor_or_numpy_float_is_missing(digits, nan, shown):
    X, y = digits
    dataset = PairDataset(X, y, bad={4: (torch.from_numpy(X[4]), nan)})
    with pytest.raises(
        BadSample, match=_escaped(f"Sample 4 of the Dataset has no label ({shown}).")
    ):
        make_source(dataset)


def test_arrays_on_disk_of_the_wrong_kind(tmp_path, digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"got an array on disk of shape \(600,\)"):
        TripletEmbedder().fit(_memmap(tmp_path / "a.dat", X[:, 0]), y)
    with pytest.raises(
        ValueError, match=r"X on disk must hold numbers \(integers or floats\), got dtype <U1\.$"
    ):
        TripletEmbedder().fit(SlicesOnly(np.full((600, 3), "a")), y)
    model = TripletEmbedder(random_state=0, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 10 features, but TripletEmbedder is expecting 64"):
        model.transform(_memmap(tmp_path / "b.dat", X[:, :10]))


def test_pairs_estimator_takes_pairs_in_memory_and_streams_transform(tmp_path, digits):
    X, y = digits
    pairs = np.stack([X[:-1:2], X[1::2]], axis=1)
    same = (y[:-1:2] == y[1::2]).astype(int)
    model = ContrastivePairsEmbedder(random_state=0, max_iter=1).fit(pairs, same)
    np.testing.assert_array_equal(model.transform(X), model.transform(_memmap(tmp_path / "x", X)))
    with pytest.raises(TypeError, match="takes pairs as an array of shape"):
        ContrastivePairsEmbedder().fit(SamplesDataset(pairs), same)


# ------------------------------------------------------------------ interruption
def test_ctrl_c_in_a_streamed_fit_keeps_the_last_finished_epoch(digits):
    X, y = digits

    class Interrupting(PairDataset):
        def __getitem__(self, i):
            if self.armed and self.reads >= self.armed:
                raise KeyboardInterrupt
            return super().__getitem__(i)

    dataset = Interrupting(X, y, targets=True)
    dataset.armed = 0

    class Arm:
        def on_epoch_end(self, estimator, record):
            dataset.armed = dataset.reads + 100  # interrupt the next epoch part-way

    model = TripletEmbedder(random_state=0, max_iter=5, early_stopping=False, callbacks=[Arm()])
    with pytest.warns(
        RuntimeWarning, match="interrupted during epoch 2; the model keeps the weights of epoch 1"
    ):
        model.fit(dataset)
    assert model.n_iter_ == 1
    dataset.armed = 0
    reference = TripletEmbedder(random_state=0, max_iter=1, early_stopping=False).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(model.transform(X), reference.transform(X))


def test_a_dataset_that_raises_in_a_later_epoch_leaves_a_fresh_fit_unfitted(digits):
    # a file that cannot be read is bad data, as a NaN in it is: nothing half-trained stays
    X, y = digits

    class Failing(PairDataset):
        def __getitem__(self, i):
            if self.armed and self.reads >= self.armed:
                raise OSError("read error on shard 3")
            return super().__getitem__(i)

    dataset = Failing(X, y, targets=True)
    dataset.armed = 0

    class Arm:
        def on_epoch_end(self, estimator, record):
            dataset.armed = dataset.reads + 100  # fail part-way through the next epoch

    model = TripletEmbedder(random_state=0, max_iter=5, early_stopping=False, callbacks=[Arm()])
    with pytest.raises(ValueError, match=r"Reading sample \d+ of the Dataset raised OSError: "):
        model.fit(dataset)
    assert not hasattr(model, "module_") and not hasattr(model, "n_iter_")
    with pytest.raises(NotFittedError):
        model.transform(X)
    # a warm start keeps the weights it had
    model = TripletEmbedder(random_state=0, max_iter=1, early_stopping=False).fit(X, y)
    before = model.transform(X)
    dataset.armed = dataset.reads + 100
    with pytest.raises(ValueError, match="read error on shard 3") as error:
        model.partial_fit(dataset)
    assert isinstance(error.value.__cause__, OSError)
    np.testing.assert_array_equal(model.transform(X), before)


def test_a_source_passed_twice_is_read_the_same(digits):
    X, y = digits
    source, _ = make_source(PairDataset(X, y))
    assert isinstance(source, RowSource) and source.shape == (600, 64)
    np.testing.assert_array_equal(source.read(np.array([5, 1, 5])), X[[5, 1, 5]])
    np.testing.assert_array_equal(
        source.reshaped((1, 8, 8)).subset(np.array([2, 0])).read(np.array([1])),
        X[[0]].reshape(1, 1, 8, 8),
    )


def test_a_memmap_pickles_as_its_file_name(tmp_path, digits):
    """What a worker started by spawn (macOS, Windows) receives: the file's name, reopened
    read-only, not the array's bytes."""
    import pickle

    X, y = digits
    source, _ = make_source(_memmap(tmp_path / "x.dat", X), y)
    view = source.reshaped((1, 8, 8)).subset(np.arange(100, 200))
    payload = pickle.dumps(view)
    assert len(payload) < X.nbytes / 10
    again = pickle.loads(payload)
    np.testing.assert_array_equal(again.read(np.array([3, 0])), X[[103, 100]].reshape(2, 1, 8, 8))
    assert not again.parent.X.flags.writeable


def test_a_view_of_a_memmap_pickles_as_its_file_name(tmp_path, digits):
    """A row slice, a strided slice, a column slice or a reshape of a memmap (a training
    split, images viewed from a flat file) also travels as the file's name and where the
    view's rows are, not as its bytes."""
    import pickle

    X, _ = digits
    X = np.asarray(X, dtype=np.float32)
    whole = _memmap(tmp_path / "x.dat", X)
    for view, expected in (
        (whole[50:], X[50:]),
        (whole[3::2], X[3::2]),
        (whole[:, 5:40], X[:, 5:40]),
        (whole[10:].reshape(-1, 1, 8, 8), X[10:].reshape(-1, 1, 8, 8)),
        (_saved_npy(tmp_path / "x.npy", X)[20:90], X[20:90]),
    ):
        source, _ = make_source(view)
        payload = pickle.dumps(source)
        assert len(payload) < 2048
        again = pickle.loads(payload)
        rows = np.array([0, 7, len(expected) - 1])
        np.testing.assert_array_equal(again.read(rows), expected[rows])
        assert not again.X.flags.writeable
    reversed_rows = whole[::-1]  # a negative stride: pickled as its bytes, still right
    again = pickle.loads(pickle.dumps(make_source(reversed_rows)[0]))
    np.testing.assert_array_equal(again.read(np.array([0, 1])), X[[-1, -2]])


def test_streamed_samples_get_the_per_sample_shape_rules_of_arrays_in_memory(tmp_path):
    # one channel with or without its axis is the same input; another shape is named as one
    from sk_deepmetric.datasets import make_signals

    X, y = make_signals(60, 3, length=32, random_state=0)
    X = X.astype(np.float32)  # (60, 1, 32)
    model = TripletEmbedder(network="cnn1d", max_iter=1, conv_channels=(4,), random_state=0)
    model.fit(X, y)
    flat = _memmap(tmp_path / "flat", X.reshape(60, 32))
    np.testing.assert_array_equal(model.transform(flat), model.transform(X))
    other = _memmap(tmp_path / "other", X.reshape(60, 2, 16))
    with pytest.raises(ValueError, match=r"X has shape \(2, 16\) per sample, but .* \(1, 32\)"):
        model.transform(other)
    with pytest.raises(ValueError, match=r"X has shape \(2, 16\) per sample"):
        model.transform(SamplesDataset(X.reshape(60, 2, 16)))


def test_a_single_streamed_sample_is_embedded_searched_and_predicted(tmp_path, digits):
    # fit's minimum of 2 samples applied to every call: one sample on disk or in a Dataset
    # was refused where the same sample in memory was embedded
    X, y = digits
    model = TripletEmbedder(random_state=0, max_iter=1).fit(X, y)
    on_disk = _memmap(tmp_path / "x", X)
    ones = [
        (on_disk[:1], X[:1]),
        (on_disk[-1:], X[-1:]),
        (SamplesDataset(X[:1]), X[:1]),
        (TensorDataset(torch.tensor(X[:1])), X[:1]),
    ]
    for one, in_memory in ones:
        np.testing.assert_array_equal(model.transform(one), model.transform(in_memory))
    knn = EmbeddingKNeighborsClassifier(model, n_neighbors=3).fit(X, y)
    for one, in_memory in ones:
        assert knn.predict(one).tolist() == knn.predict(in_memory).tolist()
        np.testing.assert_array_equal(knn.kneighbors(one)[1], knn.kneighbors(in_memory)[1])
    # fit still needs two samples; no sample at all is refused by the estimator called
    with pytest.raises(ValueError, match=r"minimum of 2 sample\(s\) and 1 feature is required"):
        TripletEmbedder().fit(on_disk[:1], y[:1])
    for empty, found in (
        (on_disk[:0], r"array with 0 sample\(s\) \(shape=\(0, 64\)\)"),
        (SamplesDataset(X[:0]), "0 samples"),
    ):
        msg = rf"Found {found} while a minimum of 1 is required by EmbeddingKNeighborsClassifier\."
        for method in ("predict", "kneighbors"):
            with pytest.raises(ValueError, match=msg):
                getattr(knn, method)(empty)


def test_a_dataloader_is_refused_by_name_and_its_dataset_suggested(digits):
    from torch.utils.data import DataLoader, TensorDataset

    X, y = digits
    loader = DataLoader(TensorDataset(torch.as_tensor(X, dtype=torch.float32)), batch_size=8)
    fitted = TripletEmbedder(max_iter=1, early_stopping=False, random_state=0).fit(X, y)
    for call in (
        lambda: TripletEmbedder().fit(loader),
        lambda: TripletEmbedder().fit(loader, y),
        lambda: fitted.transform(loader),
    ):
        with pytest.raises(ValueError, match=r"X is a torch DataLoader.*pass X=loader\.dataset"):
            call()


def test_a_dtype_that_is_not_numpy_s_is_named():
    class TorchStore:  # a lazy store of tensors: shape, dtype, rows
        shape, dtype = (10, 3), torch.float32

        def __len__(self):
            return 10

        def __getitem__(self, index):
            return torch.zeros(3)

    with pytest.raises(ValueError, match=r"X on disk must have a NumPy dtype .* got dtype "
                       r"torch\.float32 of type dtype"):  # fmt: skip
        make_source(TorchStore())


def test_a_read_only_array_fits_without_torch_s_not_writable_warning(digits):
    X, y = digits
    X = np.array(X, dtype=np.float32)
    X.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", "none of the")  # the untrained-start note
        TripletEmbedder(max_iter=1, early_stopping=False, random_state=0).fit(X, y)
