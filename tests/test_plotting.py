import builtins

import matplotlib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA

from sk_deepmetric import plotting
from sk_deepmetric.plotting import plot_embedding, plot_retrieval

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:200], y[:200]


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_plot_embedding_from_transformer(digits, method):
    X, y = digits
    pca = PCA(n_components=5, random_state=0).fit(X)
    ax = plot_embedding(pca, X, y, method=method)
    assert len(ax.collections) == len(np.unique(y))
    assert sum(len(c.get_offsets()) for c in ax.collections) == len(X)
    assert method.upper() in ax.get_title()


def test_plot_embedding_from_array_with_string_labels():
    emb = np.random.default_rng(0).normal(size=(30, 2))
    y = np.array(["cat", "dog", "eel"] * 10)
    ax = plot_embedding(emb, y=y)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cat", "dog", "eel"]
    # 2-D embeddings are drawn as they are
    np.testing.assert_allclose(ax.collections[0].get_offsets(), emb[y == "cat"])


def test_plot_embedding_errors(digits):
    X, y = digits
    with pytest.raises(ValueError, match=r"given an embedder, so it needs `X`"):
        plot_embedding(PCA(2).fit(X), y=y)
    with pytest.raises(ValueError, match=r"so `X` must be None, got an object of type ndarray"):
        plot_embedding(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=r"`y` must have one label per sample \(3\)"):
        plot_embedding(np.zeros((3, 2)), y=[0, 1])
    with pytest.raises(ValueError, match=r"`method` must be one of \['pca', 'tsne'\], got 'umap'"):
        plot_embedding(np.zeros((3, 2)), method="umap")


def test_plot_retrieval_marks_correct_neighbours(digits):
    X, y = digits
    pca = PCA(n_components=10, random_state=0).fit(X)
    fig = plot_retrieval(pca, X, y, n_queries=3, n_neighbors=4, image_shape=(8, 8))
    axes = np.array(fig.axes).reshape(3, 5)
    emb = pca.transform(X)
    for row in axes:
        q_label = int(row[0].get_title().split(": ")[1])
        for ax in row[1:]:
            shown = ax.images[0].get_array().ravel()
            j = int(np.flatnonzero((X == shown).all(axis=1))[0])
            colour = ax.spines["left"].get_edgecolor()
            want = "tab:green" if y[j] == q_label else "tab:red"
            assert colour == matplotlib.colors.to_rgba(want)
    assert emb.shape == (200, 10)


def test_plot_retrieval_needs_images(digits):
    X, y = digits
    pca = PCA(n_components=3).fit(X)
    with pytest.raises(ValueError, match=r"plot_retrieval needs images"):
        plot_retrieval(pca, X, y)
    with pytest.raises(ValueError, match=r"`n_queries` must be in the range \[1, 200\], got 0"):
        plot_retrieval(pca, X, y, n_queries=0, image_shape=(8, 8))


def test_missing_matplotlib_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r'pip install "sk_deepmetric\[plot\]"'):
        plotting.plot_embedding(np.zeros((3, 2)))


@pytest.mark.parametrize("early_stopping", [True, False])
def test_plot_history_draws_loss_and_validation_score(digits, early_stopping):
    from sk_deepmetric import TripletEmbedder
    from sk_deepmetric.plotting import plot_history

    X, y = digits
    model = TripletEmbedder(
        hidden_layer_sizes=(16,), n_components=8, max_iter=3, early_stopping=early_stopping,
        n_iter_no_change=5, random_state=0,
    )  # fmt: skip
    model.fit(X, y)
    ax = plot_history(model)
    epochs = len(model.history_)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [h["loss"] for h in model.history_])
    twins = [a for a in ax.figure.axes if a is not ax]
    if early_stopping:
        assert len(twins) == 1
        np.testing.assert_allclose(
            twins[0].lines[0].get_ydata(), [h["score"] for h in model.history_]
        )
        assert len(twins[0].lines[0].get_xdata()) == epochs
    else:
        assert twins == []


def test_plot_history_needs_a_fitted_embedder():
    from sklearn.exceptions import NotFittedError

    from sk_deepmetric import TripletEmbedder
    from sk_deepmetric.plotting import plot_history

    with pytest.raises(NotFittedError):
        plot_history(TripletEmbedder())
