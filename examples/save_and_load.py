"""
Saving and loading a fitted embedder
====================================

A fitted embedder is a scikit-learn estimator, so it is saved like one: with ``pickle`` or
``joblib``, network weights, loss parameters and preprocessing included. For torch users,
the network is also a plain ``torch.nn.Module`` whose ``state_dict`` can be saved alone.
"""

import os
import pickle
import shutil
import tempfile
import warnings
from pathlib import Path

import joblib
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_deepmetric import TripletEmbedder
from sk_deepmetric.networks import MLP

FAST = os.environ.get("SK_DEEPMETRIC_EXAMPLES_FAST") == "1"  # the test suite's quick run
EPOCHS = 2 if FAST else 30
warnings.filterwarnings("ignore", category=ConvergenceWarning)  # fixed epochs, on purpose

X, y = load_digits(return_X_y=True)
model = make_pipeline(
    StandardScaler(), TripletEmbedder(n_components=32, max_iter=EPOCHS, random_state=0)
)
model.fit(X[y < 5], y[y < 5])
X_new = X[y >= 5]
expected = model.transform(X_new)

folder = Path(tempfile.mkdtemp())  # a real project would use its own models/ folder

# %%
# 1. joblib (or pickle): the whole fitted pipeline
# -------------------------------------------------
# One file, loaded back into a ready-to-use estimator. As with any pickle, only load files
# you trust, and load with the same versions of sk_deepmetric, torch and scikit-learn.
joblib.dump(model, folder / "embedder.joblib")
loaded = joblib.load(folder / "embedder.joblib")
same = np.array_equal(loaded.transform(X_new), expected)
print(
    f"joblib: {(folder / 'embedder.joblib').stat().st_size / 1e3:.0f} kB, transform equal: {same}"
)

restored = pickle.loads(pickle.dumps(model))
print(f"pickle: transform equal: {np.array_equal(restored.transform(X_new), expected)}")

# %%
# Trained on a GPU, loaded on a CPU
# ---------------------------------
# The embedders pickle their network and loss on the CPU, so a model fitted with
# ``device="cuda"`` loads on a machine without a GPU. Its ``device`` parameter is still what
# it was fitted with: with ``"auto"`` (the default) it runs wherever it is loaded; after
# ``device="cuda"``, set it before use::
#
#     loaded = joblib.load("embedder.joblib")
#     loaded.set_params(tripletembedder__device="cpu")  # or "auto"
#
# (for a bare embedder, ``loaded.set_params(device="cpu")``).

# %%
# 2. torch: the network's weights alone
# -------------------------------------
# ``module_`` is the trained ``nn.Module``. Save its ``state_dict`` to use the network
# without scikit-learn, e.g. in a torch serving stack. To load it, build the same
# architecture: here the estimator's MLP, with the same arguments it was fitted with.
embedder = model[-1]
torch.save(embedder.module_.state_dict(), folder / "network.pt")

network = MLP(
    n_features=embedder.n_features_in_,
    n_components=embedder.n_components,
    hidden_layer_sizes=embedder.hidden_layer_sizes,
    activation=embedder.activation,
    dropout=embedder.dropout,
    batch_norm=embedder.batch_norm,
    normalize=embedder.normalize,
    skip=embedder.skip_connection,
)
network.load_state_dict(torch.load(folder / "network.pt", map_location="cpu"))
network.eval()  # batch normalisation uses its running statistics, as in transform
with torch.no_grad():
    scaled = torch.as_tensor(model[0].transform(X_new), dtype=torch.float32)
    from_torch = network(scaled).numpy()
print(f"torch state_dict: max difference to transform {np.abs(from_torch - expected).max():.1e}")
# ``map_location="cpu"`` is what loads GPU-saved weights on a CPU-only machine.

shutil.rmtree(folder)
