import re

import pytest

from sk_deepmetric import embedders
from sk_deepmetric.__main__ import LOSSES, build_parser, main
from sk_deepmetric.embedders._base import _BaseEmbedder


def test_every_loss_option_names_an_embedder():
    assert len(LOSSES) == 10
    for class_name in LOSSES.values():
        assert issubclass(getattr(embedders, class_name), _BaseEmbedder)


def test_demo_prints_the_retrieval_table_and_saves_the_plot(tmp_path, capsys):
    plot = tmp_path / "demo.png"
    assert main(["demo", "--epochs", "2", "--quiet", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if re.match(r"\| (raw|PCA|TripletEmbedder)", line)]
    assert len(rows) == 3
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        scores = [float(c) for c in cells[1:4]]
        assert all(0.0 <= s <= 1.0 for s in scores)
    assert re.search(r"TripletEmbedder \(mlp\).*\| +\d+\.\d \|$", out, re.MULTILINE)
    assert plot.stat().st_size > 10_000


def test_demo_cnn_with_another_loss(capsys):
    assert main(["demo", "--loss", "cosface", "--network", "cnn", "--epochs", "1", "--quiet"]) == 0
    assert "CosFaceEmbedder (cnn)" in capsys.readouterr().out


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["demo", "--help"])
    assert exit_info.value.code == 0
    help_text = capsys.readouterr().out
    for option in ("--loss", "--network", "--epochs", "--device", "--seed", "--plot", "--quiet"):
        assert option in help_text


def test_unknown_loss_is_rejected_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--loss", "tripplet"])
    assert "invalid choice: 'tripplet'" in capsys.readouterr().err
