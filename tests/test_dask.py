"""Hyperparameter search on a dask.distributed cluster through joblib's dask backend."""

from __future__ import annotations

import logging
import os
import warnings

import dask
import distributed  # the [distributed] extra is in [test]: missing, it must fail, not skip
import joblib
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, cross_validate
from torch import nn

from sk_deepmetric.embedders import MetricEmbedder, TripletEmbedder
from sk_deepmetric.losses import TripletMarginLoss

pytestmark = pytest.mark.slow
FAST = {"max_iter": 2, "hidden_layer_sizes": (16,), "n_components": 8, "batch_size": 32}


class _Warnings(logging.Handler):
    """The messages of the warnings logged to a logger while attached."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def client():
    # the README's recipe: forkserver workers exit without tearing torch down, which on a small
    # machine outlasts the 4 s that closing the cluster waits before it kills them, logging
    # "Worker process still alive after 4.0 seconds, killing"
    nanny, logged = logging.getLogger("distributed.nanny"), _Warnings()
    nanny.addHandler(logged)
    try:
        with (
            dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}),
            distributed.LocalCluster(
                n_workers=2,
                processes=True,
                threads_per_worker=1,
                dashboard_address=None,
                worker_dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster, timeout=60) as client,
        ):
            client.wait_for_workers(2, timeout=60)
            yield client
    finally:
        nanny.removeHandler(logged)
    assert not logged.messages  # the cluster closed cleanly


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300].astype(np.float32) / 16, y[:300]


class ThreadRecordingLoss(nn.Module):
    """Triplet loss that notes the process and torch's thread count at each call."""

    def __init__(self):
        super().__init__()
        self.triplet = TripletMarginLoss()
        self.seen = set()

    def forward(self, embeddings, labels):
        self.seen.add((os.getpid(), torch.get_num_threads()))
        return self.triplet(embeddings, labels)


def _on_the_cluster(client, fn):
    with (
        distributed.get_task_stream(client) as stream,
        joblib.parallel_backend("dask", wait_for_workers_timeout=60),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = fn()
    return result, stream.data


def test_grid_search_over_margin_and_miner_on_a_cluster(client, digits):
    X, y = digits
    search = GridSearchCV(
        TripletEmbedder(**FAST, random_state=0),
        {"margin": [0.1, 0.3], "miner": ["semihard", "batch_hard"]},
        cv=2,
        n_jobs=-1,
    )
    search, tasks = _on_the_cluster(client, lambda: search.fit(X, y))
    assert len(tasks) >= 8  # 4 candidates x 2 folds ran as tasks on the workers
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 4 and np.isfinite(scores).all()
    assert search.best_params_["margin"] in (0.1, 0.3)
    assert search.best_estimator_.transform(X).shape == (300, 8)


@pytest.mark.parametrize(("n_threads", "expected"), [(None, 1), (2, 2)])
def test_workers_fit_with_the_estimators_thread_count(client, digits, n_threads, expected):
    X, y = digits
    model = MetricEmbedder(loss=ThreadRecordingLoss(), n_threads=n_threads, **FAST)
    result, _ = _on_the_cluster(
        client, lambda: cross_validate(model, X, y, cv=2, n_jobs=-1, return_estimator=True)
    )
    seen = set().union(*(fitted.loss_.seen for fitted in result["estimator"]))
    assert {threads for _, threads in seen} == {expected}
    assert os.getpid() not in {pid for pid, _ in seen}  # fitted in the workers
    # each fit restores the worker's setting afterwards
    assert set(client.run(torch.get_num_threads).values()) == {1}


def test_a_dask_array_of_unknown_length_is_an_error_saying_what_to_do():
    import dask.array as da

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(400, 64)).astype(np.float32), np.arange(400) % 10
    lazy = da.from_array(X, chunks=200)
    kept = lazy[da.from_array(y < 5, chunks=200)]  # boolean indexing: length unknown
    model = TripletEmbedder(max_iter=1, random_state=0)
    with pytest.raises(ValueError, match=r"X has unknown dimensions, shape \(nan, 64\)"):
        model.fit(kept, y[y < 5])
    kept.compute_chunk_sizes()  # as the message says
    model.fit(kept, y[y < 5])
    assert model.transform(kept).shape == (int((y < 5).sum()), model.n_components)
