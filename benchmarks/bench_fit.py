"""Training throughput: the estimators' ``fit`` against a hand-written torch loop.

Prints a markdown table of samples per second (median of ``--repeats`` rounds in which the
loops take turns, after a warm-up round) for :class:`~sk_deepmetric.TripletEmbedder` and
:class:`~sk_deepmetric.ArcFaceEmbedder` against a minimal loop with the same network, loss,
optimiser, batches (the same sampler, seeded alike) and precision, in the same process, and,
when installed, skorch with pytorch-metric-learning's loss and miner. The last column is how
much longer each takes per sample than the hand-written loop; the target for ours is at most
10% at batch 256.

``--network`` picks the network and its data: "mlp" (64 features), "cnn1d" (signals of one
channel and length 128, :class:`~sk_deepmetric.networks.SignalResNet`) or "cnn" (16 x 16
images of one channel, :class:`~sk_deepmetric.networks.ImageResNet`); ``--precision bf16``
and ``--compile`` apply to both loops alike.

    python benchmarks/bench_fit.py                    # MLP, 16k samples x 3 epochs, batch 256
    python benchmarks/bench_fit.py --network cnn1d --n-samples 4096 --epochs 1
    python benchmarks/bench_fit.py --quick            # CI smoke run, < 30 s
    python benchmarks/bench_fit.py --device cuda --batch-size 1024
"""

from __future__ import annotations

import argparse
import copy
import functools
import platform
import statistics
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from sk_deepmetric.embedders import ArcFaceEmbedder, TripletEmbedder
from sk_deepmetric.losses import ArcFaceLoss, TripletMarginLoss
from sk_deepmetric.samplers import ClassBalancedBatchSampler, ShuffledBatchSampler

N_COMPONENTS, HIDDEN, N_CLASSES, SAMPLES_PER_CLASS = 64, (256,), 64, 4
#: One sample's shape for each ``--network``.
SAMPLE_SHAPES = {"mlp": (64,), "cnn1d": (1, 128), "cnn": (1, 16, 16)}


def make_data(n_samples: int, network: str = "mlp", seed: int = 0):
    """Gaussian blobs, one per class, of one sample's shape for ``network``."""
    rng = np.random.default_rng(seed)
    shape = SAMPLE_SHAPES[network]
    centres = rng.normal(size=(N_CLASSES, *shape))
    y = rng.integers(N_CLASSES, size=n_samples)
    X = centres[y] + rng.normal(scale=2.0, size=(n_samples, *shape))
    return X.astype(np.float32), y.astype(np.int64)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


_PER_EPOCH: dict[tuple, int] = {}


def _samples_per_epoch(kind: str, y: np.ndarray, batch_size: int) -> int:
    """Samples in one epoch of the sampler, counted once (drawing batches takes time too)."""
    key = (kind, batch_size, y.size)
    if key not in _PER_EPOCH:
        _PER_EPOCH[key] = sum(len(b) for b in _sampler(kind, y, batch_size, seed=0))
    return _PER_EPOCH[key]


def _sampler(kind: str, y: np.ndarray, batch_size: int, seed: int):
    rng = np.random.default_rng(seed)
    if kind == "triplet":
        return ClassBalancedBatchSampler(y, batch_size, SAMPLES_PER_CLASS, rng=rng)
    return ShuffledBatchSampler(y.size, batch_size, rng=rng)


def _make_estimator(kind: str, batch_size: int, epochs: int, device: torch.device, setup):
    cls = TripletEmbedder if kind == "triplet" else ArcFaceEmbedder
    batching = {"samples_per_class": SAMPLES_PER_CLASS} if kind == "triplet" else {}
    return cls(
        **batching,
        network=setup.network,
        precision=setup.precision,
        compile=setup.compile,
        n_components=N_COMPONENTS,
        hidden_layer_sizes=HIDDEN,
        batch_size=batch_size,
        max_iter=epochs,
        early_stopping=False,  # the hand-written loop has no validation to match
        n_iter_no_change=epochs + 1,  # run every epoch
        device=device,
        n_threads=-1,  # the benchmark fixes torch's thread count for every row
        random_state=0,
    )


@dataclass(frozen=True)
class Setup:
    """What both loops share: the network kind and how it runs."""

    network: str = "mlp"
    precision: str = "32"
    compile: bool = False


@functools.cache
def _estimator_network(kind: str, setup: Setup) -> torch.nn.Module:
    """The network the estimator builds with its defaults (fitted briefly on a few rows)."""
    X, y = make_data(512, setup.network, seed=1)
    model = _make_estimator(kind, 64, 1, torch.device("cpu"), Setup(setup.network))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y).module_


def _network_and_loss(kind: str, device: torch.device, setup: Setup):
    torch.manual_seed(0)
    network = copy.deepcopy(_estimator_network(kind, setup))
    loss = (
        TripletMarginLoss(margin=0.2, miner="semihard")
        if kind == "triplet"
        else ArcFaceLoss(N_CLASSES, N_COMPONENTS)
    )
    return network.to(device), loss.to(device)


def hand_loop(kind, X, y, batch_size, epochs, device, setup) -> int:
    """The minimal loop: data on the device, index, forward, loss, backward, step.

    The network is a copy of the one the estimator builds (same layers and defaults), run
    in the same precision (the loss in float32, as the estimator does) and compiled alike.
    """
    network, loss_fn = _network_and_loss(kind, device, setup)
    params = [*network.parameters(), *loss_fn.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    forward = torch.compile(network) if setup.compile else network
    dtype = torch.bfloat16 if setup.precision == "bf16" else None
    X_t, y_t = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    sampler = _sampler(kind, y, batch_size, seed=0)
    seen = 0
    network.train()
    for _ in range(epochs):
        for batch in sampler:
            index = torch.as_tensor(batch, device=device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                embeddings = forward(X_t[index])
            loss = loss_fn(embeddings.float(), y_t[index])
            loss.backward()
            optimizer.step()
            seen += len(batch)
    _sync(device)
    return seen


def estimator(kind, X, y, batch_size, epochs, device, setup) -> int:
    model = _make_estimator(kind, batch_size, epochs, device, setup)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    _sync(device)
    return epochs * _samples_per_epoch(kind, y, batch_size)


def skorch_pml(kind, X, y, batch_size, epochs, device, setup) -> int:
    """skorch's NeuralNet with pytorch-metric-learning's loss (and miner), same batches."""
    from pytorch_metric_learning import losses, miners
    from skorch import NeuralNet

    class Criterion(torch.nn.Module):
        def __init__(self):
            super().__init__()
            if kind == "triplet":
                self.loss = losses.TripletMarginLoss(margin=0.2)
                self.miner = miners.TripletMarginMiner(margin=0.2, type_of_triplets="semihard")
            else:
                self.loss = losses.ArcFaceLoss(N_CLASSES, N_COMPONENTS)
                self.miner = None

        def forward(self, embeddings, labels):
            mined = self.miner(embeddings, labels) if self.miner is not None else None
            return self.loss(embeddings, labels, mined)

    network, _ = _network_and_loss(kind, torch.device("cpu"), setup)
    sampler = _sampler(kind, y, batch_size, seed=0)
    net = NeuralNet(
        network,
        Criterion,
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=epochs,
        train_split=None,
        device=str(device),
        verbose=0,
        iterator_train__batch_size=1,  # batches come from the batch sampler
        iterator_train__shuffle=False,
        iterator_train__batch_sampler=sampler,
    )
    net.fit(X, y)
    _sync(device)
    return epochs * _samples_per_epoch(kind, y, batch_size)


def throughputs(runners: dict, *args, repeats: int) -> dict[str, float]:
    """Median samples per second of each runner over ``repeats`` rounds, after a warm-up.

    The runners take turns within each round, so that a change in the machine's load (it
    may be shared) affects them alike rather than whichever ran last.
    """
    rates = {name: [] for name in runners}
    for round_ in range(repeats + 1):
        for name, run in runners.items():
            start = time.perf_counter()
            seen = run(*args)
            if round_:
                rates[name].append(seen / (time.perf_counter() - start))
    return {name: statistics.median(r) for name, r in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a CI smoke run")
    parser.add_argument("--n-samples", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--network", choices=sorted(SAMPLE_SHAPES), default="mlp")
    parser.add_argument("--precision", choices=["32", "bf16"], default="32")
    parser.add_argument("--compile", action="store_true", help="torch.compile both networks")
    parser.add_argument("--no-skorch", action="store_true")
    args = parser.parse_args()
    setup = Setup(args.network, args.precision, args.compile)
    n_samples = args.n_samples or (4096 if args.quick else 16384)
    epochs = args.epochs or (1 if args.quick else 3)
    repeats = args.repeats or (3 if args.quick else 5)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    X, y = make_data(n_samples, args.network)

    runners = {"hand-written loop": hand_loop, "sk_deepmetric": estimator}
    if not args.no_skorch and setup == Setup():
        try:
            import pytorch_metric_learning  # noqa: F401
            import skorch  # noqa: F401

            runners["skorch + pml"] = skorch_pml
        except ImportError:
            print("(skorch or pytorch-metric-learning not installed: no skorch row)\n")

    print(f"network: {_estimator_network('triplet', setup)}\n".replace("\n", "\n    "))
    print(
        f"{n_samples} samples of shape {SAMPLE_SHAPES[args.network]}, {N_CLASSES} classes, "
        f"network {args.network} -> {N_COMPONENTS}, precision {args.precision}"
        f"{', compiled' if args.compile else ''}, batch {args.batch_size}, {epochs} epoch(s), "
        f"median of {repeats}; device {device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}\n"
    )
    print("| loss | loop | samples/s | time vs hand-written |")
    print("|---|---|---:|---:|")
    for kind in ("triplet", "arcface"):
        rates = throughputs(
            runners, kind, X, y, args.batch_size, epochs, device, setup, repeats=repeats
        )
        for name in runners:
            ratio = rates["hand-written loop"] / rates[name]
            print(f"| {kind} | {name} | {rates[name]:,.0f} | {ratio - 1:+.1%} |")


if __name__ == "__main__":
    main()
