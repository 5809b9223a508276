import re
from dataclasses import replace

import pytest

from sk_deepmetric import __main__ as demo_module
from sk_deepmetric import embedders
from sk_deepmetric.__main__ import LOSSES, build_parser, main, reading
from sk_deepmetric.embedders._base import BaseEmbedder


@pytest.fixture(autouse=True)
def small_tasks(monkeypatch):
    """The demo's tasks cut to every 4th training and test sample: the same code, in seconds."""
    full = demo_module.tasks

    def small(network, seed):
        return [
            replace(
                t,
                X_train=t.X_train[::4],
                y_train=t.y_train[::4],
                X_test=t.X_test[::4],
                y_test=t.y_test[::4],
            )
            for t in full(network, seed)
        ]

    monkeypatch.setattr(demo_module, "tasks", small)


def test_every_loss_option_names_an_embedder():
    # the options are the one list of losses, EMBEDDERS_BY_LOSS, which holds every embedder
    # with a loss of its own: MetricEmbedder takes any loss and ContrastivePairsEmbedder
    # learns from pairs, not from the demo's labels
    own_loss = set(embedders.__all__) - {"MetricEmbedder", "ContrastivePairsEmbedder"}
    assert sorted(LOSSES.values()) == sorted(own_loss)
    for name, class_name in LOSSES.items():
        assert embedders.EMBEDDERS_BY_LOSS[name] is getattr(embedders, class_name)
        assert issubclass(getattr(embedders, class_name), BaseEmbedder)


def _tables(out):
    """Each printed table as a list of rows of cells."""
    tables, current = [], None
    for line in out.splitlines():
        if line.startswith("| embedding"):
            current = []
            tables.append(current)
        elif line.startswith("| ") and current is not None:
            current.append([c.strip() for c in line.strip("|").split("|")])
        elif not line.startswith("|"):
            current = None
    return tables


def test_demo_prints_a_closed_and_an_open_set_table_and_saves_the_plot(tmp_path, capsys):
    plot = tmp_path / "demo.png"
    assert main(["demo", "--epochs", "2", "--quiet", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    closed, open_set = _tables(out)
    names = ["raw features, as given", "raw features, standardised", "NCA (scikit-learn)"]
    assert [row[0] for row in closed] == [*names, "TripletEmbedder (mlp)"]
    assert [row[0] for row in open_set] == [*names, "TripletEmbedder (mlp)"]
    assert len(closed[0]) == 5 and len(open_set[0]) == 4  # 5-NN accuracy on the closed set
    for row in closed + open_set:
        assert all(0.0 <= float(c) <= 1.0 for c in row[1:-1])
    assert re.search(r"Reading: TripletEmbedder \(mlp\): MAP@R \d\.\d{3}, (ahead of|level with|"
                     r"behind) the best baseline", out)  # fmt: skip
    assert plot.stat().st_size > 10_000


def test_demo_cnn1d_runs_on_signals(capsys):
    assert (
        main(["demo", "--network", "cnn1d", "--loss", "arcface", "--epochs", "1", "--quiet"]) == 0
    )
    out = capsys.readouterr().out
    assert "signals" in out and "ArcFaceEmbedder (cnn1d)" in out


def test_demo_cnn_with_another_loss(capsys):
    assert main(["demo", "--loss", "cosface", "--network", "cnn", "--epochs", "1", "--quiet"]) == 0
    assert "CosFaceEmbedder (cnn)" in capsys.readouterr().out


def test_reading_compares_with_the_best_baseline_per_column():
    rows = {
        "raw": ({"MAP@R": 0.50, "5-NN acc": 0.980}, None),
        "NCA": ({"MAP@R": 0.52, "5-NN acc": 0.970}, 1.0),
        "ours": ({"MAP@R": 0.80, "5-NN acc": 0.978}, 2.0),
    }
    assert reading(rows) == (
        "Reading: ours: MAP@R 0.800, ahead of the best baseline (NCA, 0.520); 5-NN acc 0.978, "
        "level with the best baseline (raw, 0.980)."
    )


def test_help_documents_every_option_and_its_default(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["demo", "--help"])
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for option in ("--loss", "--network", "--epochs", "--device", "--seed", "--plot", "--quiet"):
        assert option in help_text
    assert "(default: triplet)" in help_text and "(default: mlp)" in help_text


def test_unknown_loss_is_rejected_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--loss", "tripplet"])
    assert "invalid choice: 'tripplet'" in capsys.readouterr().err
