"""Write ``legacy_models.pkl``: small fitted models as a given commit of sk_deepmetric pickles
them, with the data and the embeddings that commit's ``transform`` gave.

``tests/test_pickle_compat.py`` checks that the current code loads them and gives the same
embeddings. Run from a checkout of the commit to freeze (it is recorded in the file), e.g.::

    git worktree add /tmp/old <commit> && cd /tmp/old
    PYTHONPATH=. python /path/to/tests/data/make_legacy_models.py /path/to/tests/data
"""

import copy
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import sklearn
import torch

import sk_deepmetric
from sk_deepmetric import embedders as E
from sk_deepmetric.datasets import make_signals

SMALL = {"n_components": 4, "max_iter": 2, "random_state": 0}


def network_in_float64(model, X) -> np.ndarray:
    """The fitted network's output for ``X`` computed in float64 (a copy of the network)."""
    module = copy.deepcopy(model.module_).double().eval()
    with torch.no_grad():
        inputs = torch.from_numpy(model._as_network_input(X).astype(np.float64))
        return module(inputs).numpy()


def main(out: Path) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8)).astype(np.float32)
    y = np.repeat(np.arange(6), 10)
    signals, signal_labels = make_signals(24, 3, length=32, random_state=0)
    models = {
        "triplet_mlp": (E.TripletEmbedder(hidden_layer_sizes=(8,), **SMALL), X, y),
        "arcface_mlp": (E.ArcFaceEmbedder(hidden_layer_sizes=(8,), **SMALL), X, y),
        "center_mlp": (E.CenterLossEmbedder(hidden_layer_sizes=(8,), **SMALL), X, y),
        "triplet_cnn1d": (
            E.TripletEmbedder(network="cnn1d", conv_channels=(4,), **SMALL),
            signals.astype(np.float32),
            signal_labels,
        ),
    }
    frozen = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, (model, data, labels) in models.items():
            model.fit(data, labels)
            frozen[name] = {
                "model": model,
                "X": data,
                "embedding": model.transform(data),
                "embedding64": network_in_float64(model, data),
            }
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    frozen["_made_by"] = {
        "commit": commit,
        "sk_deepmetric": sk_deepmetric.__version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
    }
    with open(out / "legacy_models.pkl", "wb") as f:
        pickle.dump(frozen, f, protocol=4)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
