"""Device placement and mixed precision: CPU stand-ins here, the CUDA paths marked ``gpu``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from torch import nn

import sk_deepmetric._devices as devices
import sk_deepmetric._training as training
from sk_deepmetric.embedders import ArcFaceEmbedder, MetricEmbedder, TripletEmbedder
from sk_deepmetric.losses import ArcFaceLoss

FAST = {"max_iter": 2, "hidden_layer_sizes": (16,), "n_components": 8, "batch_size": 32}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:200] / 16).astype(np.float32), y[:200]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


class DtypeRecordingLoss(nn.Module):
    """ArcFace that notes the dtypes it computes with, and whether autocast was on."""

    def __init__(self):
        super().__init__()
        self.arcface = ArcFaceLoss(10, 8)
        self.seen = set()

    def forward(self, embeddings, labels):
        autocast_on = torch.is_autocast_enabled(embeddings.device.type)
        self.seen.add((embeddings.dtype, self.arcface.weight.dtype, autocast_on))
        return self.arcface(embeddings, labels)


def _precision_fit(X, y, device, precision):
    model = MetricEmbedder(
        loss=DtypeRecordingLoss(),
        batching="shuffled",
        precision=precision,
        device=device,
        random_state=0,
        **FAST,
    )
    return model.fit(X, y)


@pytest.mark.parametrize("precision", ["32", "bf16"])
def test_loss_runs_in_float32_outside_autocast_cpu(digits, precision):
    X, y = digits
    model = _precision_fit(X, y, "cpu", precision)
    assert model.loss_.seen == {(torch.float32, torch.float32, False)}
    assert model.loss_.arcface.weight.dtype == torch.float32
    assert np.isfinite(model.transform(X)).all()


def test_place_data_on_cpu_is_a_view_and_host_batches_are_copied(digits):
    X, _ = digits
    placed = devices.place_data(X, torch.device("cpu"))
    assert placed.data_ptr() == torch.from_numpy(X).data_ptr()  # no copy
    batch = devices.batch_to_device(placed, np.array([3, 1, 4]), torch.device("cpu"))
    torch.testing.assert_close(batch, torch.from_numpy(X[[3, 1, 4]]))


# --------------------------------------------------------------------- CUDA
@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_loss_runs_in_float32_outside_autocast_cuda(digits, precision):
    X, y = digits
    model = _precision_fit(X, y, "cuda", precision)
    assert model.loss_.seen == {(torch.float32, torch.float32, False)}
    assert np.isfinite(model.transform(X)).all()


@pytest.mark.gpu
@cuda
def test_fp16_uses_a_grad_scaler(digits, monkeypatch):
    X, y = digits
    scalers = []
    original = training.Training.__post_init__

    def spy(self):
        scalers.append(self.scaler)
        original(self)

    monkeypatch.setattr(training.Training, "__post_init__", spy)
    ArcFaceEmbedder(**FAST, device="cuda", precision="fp16", random_state=0).fit(X, y)
    assert isinstance(scalers[0], torch.amp.GradScaler)


@pytest.mark.gpu
@cuda
@pytest.mark.parametrize("fraction", [0.25, 0.0])  # 0: too large, stays on the host
def test_data_on_device_or_host_give_the_same_model(digits, monkeypatch, fraction):
    X, y = digits
    monkeypatch.setattr(devices, "DEVICE_DATA_FRACTION", fraction)
    placed = devices.place_data(X, torch.device("cuda"))
    assert placed.device.type == ("cuda" if fraction else "cpu")
    model = TripletEmbedder(**FAST, device="cuda", random_state=0).fit(X, y)
    monkeypatch.setattr(devices, "DEVICE_DATA_FRACTION", 0.25)
    reference = TripletEmbedder(**FAST, device="cuda", random_state=0).fit(X, y)
    np.testing.assert_allclose(model.transform(X), reference.transform(X), atol=1e-5)


@pytest.mark.gpu
@pytest.mark.slow
@cuda
def test_compile_on_cuda(digits):
    X, y = digits
    model = TripletEmbedder(**FAST, device="cuda", compile=True, random_state=0).fit(X, y)
    reference = TripletEmbedder(**FAST, device="cuda", random_state=0).fit(X, y)
    np.testing.assert_allclose(model.transform(X), reference.transform(X), atol=1e-4)


def test_on_device_copies_a_module_that_lives_elsewhere():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    assert devices.on_device(net, torch.device("cpu")) is net
    moved = devices.on_device(net, torch.device("meta"))  # a device without data: no copy
    assert moved is not net
    assert {t.device.type for t in [*moved.parameters(), *moved.buffers()]} == {"meta"}
    assert {t.device.type for t in [*net.parameters(), *net.buffers()]} == {"cpu"}


@cuda
@pytest.mark.gpu
def test_transform_on_the_cpu_keeps_a_cuda_model_on_cuda(digits):
    X, y = digits
    model = TripletEmbedder(device="cuda", random_state=0, **FAST).fit(X, y)
    on_cuda = model.transform(X)
    assert model.set_params(device="cpu").transform(X).shape == on_cuda.shape
    assert next(model.module_.parameters()).device.type == "cuda"
    np.testing.assert_array_equal(model.set_params(device="cuda").transform(X), on_cuda)
    model.set_params(device="cuda", warm_start=True, max_iter=1).fit(X, y)  # fits on cuda
    assert next(model.module_.parameters()).device.type == "cuda"


@pytest.mark.gpu
@cuda
def test_a_module_already_on_the_gpu_is_checked_there(digits):
    X, y = digits
    model = TripletEmbedder(network=nn.Linear(64, 8).cuda(), device="cuda", random_state=0, **FAST)
    assert model.fit(X, y).transform(X).shape == (200, 8)


@pytest.mark.gpu
@cuda
def test_network_and_loss_parameters_on_the_gpu_are_pickled_on_the_cpu(digits):
    import pickle

    X, y = digits
    loss, net = ArcFaceLoss(10, 8).cuda(), nn.Linear(64, 8).cuda()
    model = MetricEmbedder(
        loss=loss, network=net, batching="shuffled", device="cuda", random_state=0, **FAST
    ).fit(X, y)
    state = model.__getstate__()
    for name in ("network", "loss", "module_", "loss_"):
        assert all(t.device.type == "cpu" for t in state[name].state_dict().values()), name
    assert model.loss is loss and next(loss.parameters()).device.type == "cuda"
    loaded = pickle.loads(pickle.dumps(model))
    assert loaded._architecture["loss"] is loaded.loss
    loaded.set_params(warm_start=True, max_iter=1).fit(X, y)
