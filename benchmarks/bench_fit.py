"""Training throughput: the estimators' ``fit`` against a hand-written torch loop.

Prints a markdown table of samples per second (median of ``--repeats`` rounds in which the
loops take turns, after a warm-up round) for :class:`~sk_deepmetric.TripletEmbedder` and
:class:`~sk_deepmetric.ArcFaceEmbedder` against a minimal loop with the same network, loss,
optimiser and batches (the same sampler, seeded alike), in the same process, and, when
installed, skorch with pytorch-metric-learning's loss and miner. The last column is how much
longer each takes per sample than the hand-written loop; the target for ours is at most 15% at
batch 256.

    python benchmarks/bench_fit.py                    # 16k samples x 3 epochs, batch 256
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

import numpy as np
import torch

from sk_deepmetric.embedders import ArcFaceEmbedder, TripletEmbedder
from sk_deepmetric.losses import ArcFaceLoss, TripletMarginLoss
from sk_deepmetric.samplers import ClassBalancedBatchSampler, ShuffledBatchSampler

N_FEATURES, N_COMPONENTS, HIDDEN, N_CLASSES, SAMPLES_PER_CLASS = 64, 64, (256,), 64, 4


def make_data(n_samples: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs, one per class, in ``N_FEATURES`` dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(N_CLASSES, N_FEATURES))
    y = rng.integers(N_CLASSES, size=n_samples)
    X = centres[y] + rng.normal(scale=2.0, size=(n_samples, N_FEATURES))
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


def _make_estimator(kind: str, batch_size: int, epochs: int, device: torch.device):
    cls = TripletEmbedder if kind == "triplet" else ArcFaceEmbedder
    batching = {"samples_per_class": SAMPLES_PER_CLASS} if kind == "triplet" else {}
    return cls(
        **batching,
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


@functools.cache
def _estimator_network(kind: str) -> torch.nn.Module:
    """The network the estimator builds with its defaults (fitted briefly on a few rows)."""
    X, y = make_data(512, seed=1)
    model = _make_estimator(kind, 64, 1, torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y).module_


def _network_and_loss(kind: str, device: torch.device):
    torch.manual_seed(0)
    network = copy.deepcopy(_estimator_network(kind))
    loss = (
        TripletMarginLoss(margin=0.2, miner="semihard")
        if kind == "triplet"
        else ArcFaceLoss(N_CLASSES, N_COMPONENTS)
    )
    return network.to(device), loss.to(device)


def hand_loop(kind, X, y, batch_size, epochs, device) -> int:
    """The minimal loop: data on the device, index, forward, loss, backward, step.

    The network is a copy of the one the estimator builds (same layers and defaults).
    """
    network, loss_fn = _network_and_loss(kind, device)
    params = [*network.parameters(), *loss_fn.parameters()]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    X_t, y_t = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    sampler = _sampler(kind, y, batch_size, seed=0)
    seen = 0
    network.train()
    for _ in range(epochs):
        for batch in sampler:
            index = torch.as_tensor(batch, device=device)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(X_t[index]), y_t[index])
            loss.backward()
            optimizer.step()
            seen += len(batch)
    _sync(device)
    return seen


def estimator(kind, X, y, batch_size, epochs, device) -> int:
    model = _make_estimator(kind, batch_size, epochs, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    _sync(device)
    return epochs * _samples_per_epoch(kind, y, batch_size)


def skorch_pml(kind, X, y, batch_size, epochs, device) -> int:
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

    network, _ = _network_and_loss(kind, torch.device("cpu"))
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
    parser.add_argument("--no-skorch", action="store_true")
    args = parser.parse_args()
    n_samples = args.n_samples or (4096 if args.quick else 16384)
    epochs = args.epochs or (1 if args.quick else 3)
    repeats = args.repeats or (3 if args.quick else 5)
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    X, y = make_data(n_samples)

    runners = {"hand-written loop": hand_loop, "sk_deepmetric": estimator}
    if not args.no_skorch:
        try:
            import pytorch_metric_learning  # noqa: F401
            import skorch  # noqa: F401

            runners["skorch + pml"] = skorch_pml
        except ImportError:
            print("(skorch or pytorch-metric-learning not installed: no skorch row)\n")

    print(f"network: {_estimator_network('triplet')}\n".replace("\n", "\n    "))
    print(
        f"{n_samples} samples x {N_FEATURES} features, {N_CLASSES} classes, MLP {HIDDEN} -> "
        f"{N_COMPONENTS}, batch {args.batch_size}, {epochs} epoch(s), median of {repeats}; "
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{platform.processor() or platform.machine()}\n"
    )
    print("| loss | loop | samples/s | time vs hand-written |")
    print("|---|---|---:|---:|")
    for kind in ("triplet", "arcface"):
        rates = throughputs(runners, kind, X, y, args.batch_size, epochs, device, repeats=repeats)
        for name in runners:
            ratio = rates["hand-written loop"] / rates[name]
            print(f"| {kind} | {name} | {rates[name]:,.0f} | {ratio - 1:+.1%} |")


if __name__ == "__main__":
    main()
