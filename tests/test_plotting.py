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
    with pytest.raises(
        ValueError, match=r"`y` must be 1-D with one label per row of `embedder_or_array` \(3\)"
    ):
        plot_embedding(np.zeros((3, 2)), y=[0, 1])
    with pytest.raises(ValueError, match=r"`method` must be one of \['pca', 'tsne'\], got 'umap'"):
        plot_embedding(np.zeros((3, 2)), method="umap")


RNG = np.random.default_rng(0)

# Each bad input: the call, the error, the message. Every one is refused before a figure opens.
BAD_INPUTS = {
    "retrieval, y shorter than X": (
        lambda X, y, pca: plot_retrieval(pca, X, y[:10], image_shape=(8, 8)),
        ValueError,
        r"`y` must be 1-D with one label per row of `X` \(200\), got shape \(10,\)\.",
    ),
    "retrieval, embeddings for an embedder": (
        lambda X, y, pca: plot_retrieval(pca.transform(X), X, y, image_shape=(8, 8)),
        TypeError,
        r"`embedder` must be a fitted estimator with a `transform` method, got an object of "
        r"type ndarray\.",
    ),
    "embedding, labels of mixed types": (
        lambda X, y, pca: plot_embedding(
            RNG.random((6, 3)), y=np.array(["a", 1, None] * 2, dtype=object)
        ),
        ValueError,
        r"`y` must hold labels that sort against each other \(numbers, or strings\), got "
        r"values of types NoneType, int, str\.",
    ),
    "embedding, labels of mixed types from an embedder": (
        lambda X, y, pca: plot_embedding(pca, X, np.array([None, *y[1:]], dtype=object)),
        ValueError,
        r"`y` must hold labels that sort against each other",
    ),
    "embedding, one sample for PCA": (
        lambda X, y, pca: plot_embedding(RNG.random((1, 5))),
        ValueError,
        r"plot_embedding brings embeddings of 5 components to 2-D with method='pca', which "
        r"needs at least 2 samples, got 1\.",
    ),
    "embedding, two samples for t-SNE": (
        lambda X, y, pca: plot_embedding(RNG.random((2, 5)), method="tsne"),
        ValueError,
        r"with method='tsne', which needs at least 3 samples, got 2\.",
    ),
    "history of an array": (
        lambda X, y, pca: plotting.plot_history(RNG.random((3, 3))),
        TypeError,
        r"^`embedder` must be a fitted estimator, got an object of type ndarray\.$",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_refused_before_a_figure_opens(digits, case):
    import matplotlib.pyplot as plt

    call, error, message = BAD_INPUTS[case]
    X, y = digits
    pca = PCA(n_components=3, random_state=0).fit(X)
    before = plt.get_fignums()
    with pytest.raises(error, match=message):
        call(X, y, pca)
    assert plt.get_fignums() == before


def test_plot_embedding_of_few_samples():
    import matplotlib.pyplot as plt

    # as few samples as each method needs, and any number when no reduction is needed
    assert len(plot_embedding(RNG.random((2, 5))).collections) == 1
    assert len(plot_embedding(RNG.random((3, 5)), method="tsne").collections) == 1
    assert len(plot_embedding(RNG.random((1, 2))).collections) == 1
    plt.close("all")


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
    import matplotlib.pyplot as plt

    open_figures = plt.get_fignums()
    for image_shape, match in [
        ((8, 9), r"`image_shape` \(8, 9\) holds 72 values per sample, but X has shape \(64,\)"),
        ((8,), r"`image_shape` must be \(H, W\) or \(C, H, W\) of positive integers, got"),
        ((2, 4, 8), r"images of 1, 3 \(RGB\) or 4 \(RGBA\) channels, got 2"),
    ]:
        with pytest.raises(ValueError, match=match):
            plot_retrieval(pca, X, y, image_shape=image_shape)
    assert plt.get_fignums() == open_figures


def test_missing_matplotlib_names_the_extra(without_matplotlib):
    with pytest.raises(ImportError, match=r'pip install "sk_deepmetric\[plot\]"'):
        plotting.plot_embedding(np.zeros((3, 2)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3 epochs
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


# ---------------------------------------------------------------- verification curves


@pytest.fixture(scope="module")
def pair_scores_data():
    rng = np.random.default_rng(0)
    same = (rng.random(400) < 0.3).astype(int)
    return same, rng.normal(size=400) + 1.5 * same


def _marker(ax, label_start):
    (line,) = [line for line in ax.lines if line.get_label().startswith(label_start)]
    return float(line.get_xdata()[0]), float(line.get_ydata()[0])


@pytest.mark.parametrize("log_far", [False, True])
def test_roc_curve_marks_the_eer_and_the_threshold(pair_scores_data, log_far):
    from sk_deepmetric.metrics import equal_error_rate
    from sk_deepmetric.plotting import plot_roc_curve

    same, scores = pair_scores_data
    ax = plot_roc_curve(same, scores, threshold=0.5, name="model", log_far=log_far)
    eer = equal_error_rate(same, scores)
    assert _marker(ax, "EER") == pytest.approx((eer, 1 - eer), abs=1e-12)
    far = np.mean(scores[same == 0] >= 0.5)
    tar = np.mean(scores[same == 1] >= 0.5)
    assert _marker(ax, "threshold 0.5:") == pytest.approx((far, tar), abs=1e-12)
    assert ax.get_xscale() == ("log" if log_far else "linear")
    assert "model" in [t.get_text().split(" ")[0] for t in ax.get_legend().get_texts()]


def test_det_curve_marks_on_normal_deviates(pair_scores_data):
    from scipy.stats import norm

    from sk_deepmetric.metrics import equal_error_rate
    from sk_deepmetric.plotting import plot_det_curve

    same, scores = pair_scores_data
    ax = plot_det_curve(same, scores, threshold=0.5)
    eer = equal_error_rate(same, scores)
    assert _marker(ax, "EER") == pytest.approx((norm.ppf(eer), norm.ppf(eer)), abs=1e-12)
    far = np.mean(scores[same == 0] >= 0.5)
    frr = np.mean(scores[same == 1] < 0.5)
    assert _marker(ax, "threshold") == pytest.approx((norm.ppf(far), norm.ppf(frr)), abs=1e-12)
    # a rate of 0 sits at the edge of the axes, not at -inf
    ax = plot_det_curve(same, scores, threshold=100.0)
    assert _marker(ax, "threshold") == (-3.0, 3.0)


def test_det_curve_marks_a_far_below_the_default_axes_on_the_curve():
    # scikit-learn's DET axes end at 0.13% (-3 deviates): a threshold at FAR 1e-4, usual in
    # face verification, was drawn at the edge, off the curve
    from scipy.stats import norm

    from sk_deepmetric.metrics import select_threshold
    from sk_deepmetric.plotting import plot_det_curve

    rng = np.random.default_rng(0)
    same = np.r_[np.ones(500, int), np.zeros(20_000, int)]
    scores = rng.normal(size=same.size) + 3 * same
    threshold = select_threshold(same, scores, target_far=1e-4)
    ax = plot_det_curve(same, scores, threshold=threshold)
    far = np.mean(scores[same == 0] >= threshold)
    frr = np.mean(scores[same == 1] < threshold)
    assert far == 2 / 20_000
    x, y = _marker(ax, "threshold")
    assert (x, y) == pytest.approx((norm.ppf(far), norm.ppf(frr)), abs=1e-12)
    curve = ax.lines[0]
    on_curve = np.isclose(curve.get_xdata(), x) & np.isclose(curve.get_ydata(), y)
    assert on_curve.any()
    low, high = ax.get_xlim()
    assert low < x < -3.0 and high >= 3.0 and ax.get_ylim() == (low, high)
    labels = dict(zip([t.get_text() for t in ax.get_xticklabels()], ax.get_xticks()))
    assert labels["0.01%"] == pytest.approx(norm.ppf(1e-4))
    assert labels["1%"] == pytest.approx(norm.ppf(0.01))


def test_det_curves_drawn_on_one_ax_keep_each_others_range():
    # a second curve with a narrower range must not push the first one's marker off the axes;
    # rates inside -3..3 deviates keep scikit-learn's axes
    from sk_deepmetric.metrics import select_threshold
    from sk_deepmetric.plotting import plot_det_curve

    rng = np.random.default_rng(0)
    same = np.r_[np.ones(500, int), np.zeros(20_000, int)]
    scores = rng.normal(size=same.size) + 3 * same
    ax = plot_det_curve(same, scores, threshold=select_threshold(same, scores, target_far=1e-4))
    x, _ = _marker(ax, "threshold")
    narrow = np.r_[np.ones(100, int), np.zeros(100, int)]
    plot_det_curve(narrow, rng.normal(size=200) + narrow, ax=ax)
    assert ax.get_xlim()[0] < x
    alone = plot_det_curve(narrow, rng.normal(size=200) + narrow)
    assert alone.get_xlim() == (-3.0, 3.0) == alone.get_ylim()


def test_score_distributions_share_bins_and_mark_thresholds(pair_scores_data):
    from sk_deepmetric.metrics import equal_error_rate
    from sk_deepmetric.plotting import plot_score_distributions

    same, scores = pair_scores_data
    ax = plot_score_distributions(same, scores, threshold=0.5, bins=20)
    same_hist, other_hist = ax.patches[:2]
    assert same_hist.get_label() == f"same identity ({same.sum()} pairs)"
    assert other_hist.get_label() == f"different ({(1 - same).sum()} pairs)"
    x_same = same_hist.get_xy()[:, 0]
    x_other = other_hist.get_xy()[:, 0]
    np.testing.assert_allclose([x_same.min(), x_same.max()], [scores.min(), scores.max()])
    np.testing.assert_allclose([x_other.min(), x_other.max()], [scores.min(), scores.max()])
    _, eer_threshold = equal_error_rate(same, scores, return_threshold=True)
    lines = {line.get_label(): line.get_xdata()[0] for line in ax.lines}
    assert lines == {f"EER threshold {eer_threshold:.3g}": eer_threshold, "threshold 0.5": 0.5}


def test_verification_plots_check_their_input():
    from sk_deepmetric.plotting import plot_det_curve, plot_roc_curve, plot_score_distributions

    for plot in (plot_roc_curve, plot_det_curve, plot_score_distributions):
        with pytest.raises(ValueError, match=r"`y_true` must hold both same-identity"):
            plot([1, 1], [0.1, 0.2])
        with pytest.raises(ValueError, match=r"`y_score` must be finite"):
            plot([1, 0], [0.1, np.nan])
        with pytest.raises(ValueError, match=r"`threshold` must be a real number"):
            plot([1, 0], [0.1, 0.2], threshold="high")
    with pytest.raises(ValueError, match=r"`bins` must be in the range \[1, inf\], got 0"):
        plot_score_distributions([1, 0], [0.1, 0.2], bins=0)


def test_show_or_save_saves_without_a_display_and_shows_with_one(tmp_path, monkeypatch, capsys):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = plotting.show_or_save(fig, str(tmp_path / "figure.png"))  # Agg: nowhere to show
    assert path == str(tmp_path / "figure.png") and (tmp_path / "figure.png").stat().st_size
    assert f"saved to {path}" in capsys.readouterr().out
    shown = []
    monkeypatch.setattr(plt, "get_backend", lambda: "QtAgg")
    monkeypatch.setattr(plt, "show", lambda: shown.append(True))
    assert plotting.show_or_save(fig, str(tmp_path / "other.png")) is None
    assert shown == [True] and not (tmp_path / "other.png").exists()
    plt.close(fig)
