"""torch.distributed on the CPU: two gloo processes spawned by each test.

Two ranks with local batches B0 and B1 must train like one process with the concatenated
batch: the same loss and, after DDP's averaging, the same gradients. A 2-process ``fit`` must
give a working estimator whose weights are identical on both ranks.
"""

from __future__ import annotations

import copy
import datetime
import os
import socket
import time
import warnings

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sk_deepmetric._devices import is_distributed, shard
from sk_deepmetric._training import Training, init_optimizer
from sk_deepmetric.losses import ArcFaceLoss, ContrastiveLoss, TripletMarginLoss
from sk_deepmetric.networks import MLP

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (dist.is_available() and dist.is_gloo_available()), reason="needs torch.distributed"
    ),
]

WORLD_SIZE = 2
TIMEOUT_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, port, out, fn, *args):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        fn(rank, out, *args)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _spawn(fn, out, *args):
    """Run ``fn(rank, out, *args)`` on 2 gloo ranks; a failure on a rank fails the test."""
    context = mp.start_processes(
        _entry,
        args=(_free_port(), str(out), fn, *args),
        nprocs=WORLD_SIZE,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=5):
            if time.monotonic() > deadline:
                pytest.fail(f"the {WORLD_SIZE} ranks did not finish in {TIMEOUT_S} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


# --------------------------------------------------------------------- loss and gradient
def _make_loss(name):
    if name == "arcface":
        return ArcFaceLoss(4, 8, scale=8.0)
    if name == "contrastive":
        return ContrastiveLoss()
    return TripletMarginLoss(margin=0.5, miner=name)


def _gathered_equals_concatenated(rank, out):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for loss_name in ("semihard", "all", "contrastive", "arcface"):
            _check_one_loss(rank, loss_name)
    # the gather is torch's supported API: no rank prints a deprecation warning
    deprecated = [w for w in caught if issubclass(w.category, (FutureWarning, DeprecationWarning))]
    assert not deprecated, [f"{w.filename}:{w.lineno}: {w.message}" for w in deprecated]


def _check_one_loss(rank, loss_name):
    generator = torch.Generator().manual_seed(0)
    sizes = (10, 14)  # unequal local batches: the gather pads and trims
    X = torch.randn(sum(sizes), 16, generator=generator)
    y = torch.arange(sum(sizes)) % 4
    torch.manual_seed(0)
    network = MLP(16, 8, hidden_layer_sizes=(32,), batch_norm=False, normalize=True)
    loss = _make_loss(loss_name)
    reference_net, reference_loss = copy.deepcopy(network), copy.deepcopy(loss)
    reference = reference_loss(reference_net(X), y)
    reference.backward()

    params = [*network.parameters(), *loss.parameters()]
    optimizer = init_optimizer("sgd", params, 0.0, 0.0)
    t = Training(network, loss, optimizer, None, torch.device("cpu"))
    assert is_distributed() and shard() == {"world_size": 2, "rank": rank}
    assert isinstance(t.step, torch.nn.parallel.DistributedDataParallel)
    rows = slice(0, sizes[0]) if rank == 0 else slice(sizes[0], None)
    value = t.step(X[rows], y[rows])
    value.backward()
    torch.testing.assert_close(value, reference, rtol=1e-5, atol=1e-6, msg=loss_name)
    reference_params = [*reference_net.parameters(), *reference_loss.parameters()]
    for p, q in zip(params, reference_params, strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-6, msg=loss_name)
    assert reference.item() > 0


def test_gathered_loss_and_gradient_equal_the_concatenated_batch(tmp_path):
    """Semi-hard and batch-all triplets, contrastive pairs, ArcFace (with class weights)."""
    _spawn(_gathered_equals_concatenated, tmp_path)


# --------------------------------------------------------------------- a 2-process fit
RUNS = {
    # early stopping: rank 0's validation score decides for both ranks
    "TripletEmbedder": {"early_stopping": True, "n_iter_no_change": 3, "random_state": 0},
    # random_state=None: the ranks must still agree on one seed (rank 0's)
    "ArcFaceEmbedder": {"random_state": None},
    # a cross-batch memory: every rank queues the batches of both, so the queues agree
    "ContrastiveEmbedder": {"memory_size": 512, "random_state": 0},
}


def _fit(name, batch_size, **params):
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler

    from sk_deepmetric import embedders

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype(np.float32)
    common = {"hidden_layer_sizes": (64,), "n_components": 16, "max_iter": 8}
    model = getattr(embedders, name)(**common, **params, batch_size=batch_size)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:1000], y[:1000])
    return model, model.score(X[1000:], y[1000:]), model.transform(X[1000:])


def _fit_on_each_rank(rank, out):
    results = {}
    for name, params in RUNS.items():
        model, score, embedding = _fit(name, 64, **params)  # 64 per rank, 128 in all
        results[name] = {
            "state": {k: v.clone() for k, v in model.module_.state_dict().items()},
            "loss_state": {k: v.clone() for k, v in model.loss_.state_dict().items()},
            "history": model.history_,
            "embedding": embedding,
            "score": score,
            "warmup": getattr(model.loss_, "warmup", None),
        }
    torch.save(results, os.path.join(out, f"rank{rank}.pt"))


def test_two_process_fit_gives_one_working_model(tmp_path):
    _spawn(_fit_on_each_rank, tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    for name in RUNS:
        first, second = ranks[0][name], ranks[1][name]
        for key in ("state", "loss_state"):
            assert first[key].keys() == second[key].keys()
            for k in first[key]:
                assert torch.equal(first[key][k], second[key][k]), (name, k)
        np.testing.assert_array_equal(first["embedding"], second["embedding"])
        if "memory_size" in RUNS[name]:  # more than one rank's 64 per step reached the queue
            state = first["loss_state"]
            used = int(state["n_steps"]) - ranks[0][name]["warmup"]
            assert used > 0 and int(state["n_enqueued"]) > 64 * used, (name, state["n_enqueued"])
        agreed = [
            [(h["epoch"], h["loss"], h["score"]) for h in r["history"]] for r in (first, second)
        ]
        assert agreed[0] == agreed[1]  # the same epochs, mean losses and validation scores
        # as good as one process with the global batch (MAP@R on held-out rows)
        _, single, _ = _fit(name, 128, **{**RUNS[name], "random_state": 0})
        assert first["score"] > single - 0.1, (name, first["score"], single)


# --------------------------------------------------------------- different data per rank
def _fit_other_data_on_each_rank(rank, out):
    from sklearn.datasets import load_digits

    from sk_deepmetric import TripletEmbedder

    X, y = load_digits(return_X_y=True)
    cases = {  # what a user of DistributedSampler might pass: each rank its own rows
        "shape": (X[:200], y[:200]) if rank == 0 else (X[:150], y[:150]),
        "labels": (X[:200], y[:200]) if rank == 0 else (X[200:400], y[200:400]),
    }
    for what, (X_rank, y_rank) in cases.items():
        model = TripletEmbedder(max_iter=1, random_state=0)
        with pytest.raises(ValueError) as error:
            model.fit(X_rank, y_rank)
        message = str(error.value)
        assert message.startswith(
            "Under torch.distributed every rank must call fit with the same X and y"
        ), message
        other = "(150, 64)" if what == "shape" else "(200, 64)"
        shapes = f"(200, 64), rank 1 X of shape {other}"
        assert f"Rank 0 passed X of shape {shapes}" in message, message
        assert ("with other labels" in message) == (what == "labels"), message
        assert not hasattr(model, "module_")  # left unfitted, on both ranks


def test_ranks_with_other_data_are_an_error_on_every_rank_not_a_hang(tmp_path):
    _spawn(_fit_other_data_on_each_rank, tmp_path)
