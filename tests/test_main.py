import re
from dataclasses import replace

import pytest

from sk_deepmetric import __main__ as demo_module
from sk_deepmetric import embedders
from sk_deepmetric.__main__ import LOSSES, MAX_SEED, build_parser, main, reading
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


def _no_work(*args):
    raise AssertionError("the demo started work before checking its options")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], r"argument --epochs: expected a positive integer, got '0'$"),
        (["--epochs", "1.5"], r"argument --epochs: expected a positive integer, got '1.5'$"),
        (
            ["--seed", "-1"],
            r"argument --seed: expected an integer from 0 to 4294967295, got '-1'$",
        ),
        (["--seed", str(2**32)], r"argument --seed: expected an integer from 0 to 4294967295"),
        (
            ["--device", "foo"],
            r"argument --device: `device` must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or a "
            r"torch.device, got 'foo'\.$",
        ),
        (
            ["--device", "cuda:99"],
            r"argument --device: `device`='cuda:99' but this machine has \d+ CUDA device\(s\)",
        ),
        (
            ["--plot", "out.xyz"],
            r"argument --plot: expected a file name ending in one of the extensions matplotlib "
            r"saves to \(.*\.pdf, .*\.png, .*\), got 'out.xyz'$",
        ),
        (["--plot", "out"], r"argument --plot: expected a file name ending in .*, got 'out'$"),
    ],
)
def test_bad_options_are_usage_errors_before_any_work(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(demo_module, "tasks", _no_work)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: sk-deepmetric demo")
    assert re.search(r"sk-deepmetric demo: error: " + message, err.strip(), flags=re.MULTILINE)


def test_plot_needs_an_existing_folder(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(demo_module, "tasks", _no_work)
    path = tmp_path / "missing" / "out.png"
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--plot", str(path)])
    assert exit_info.value.code == 2
    assert (
        f"argument --plot: expected a file in an existing folder, got '{path}': there is no "
        f"folder '{path.parent}'" in capsys.readouterr().err
    )


def test_plot_needs_matplotlib(monkeypatch, capsys, tmp_path, without_matplotlib):
    monkeypatch.setattr(demo_module, "tasks", _no_work)
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--plot", str(tmp_path / "out.png")])
    assert exit_info.value.code == 2
    assert (
        "argument --plot: needs matplotlib, which is not installed; install it with: pip install "
        '"sk_deepmetric[plot]"' in capsys.readouterr().err
    )


def test_good_options_are_parsed(tmp_path):
    plot = str(tmp_path / "map.PDF")  # matplotlib takes the extension in any case
    args = build_parser().parse_args(
        ["demo", "--epochs", "3", "--seed", str(MAX_SEED), "--device", "cpu", "--plot", plot]
    )
    assert (args.epochs, args.seed, args.device, args.plot) == (3, MAX_SEED, "cpu", plot)
    defaults = build_parser().parse_args(["demo"])
    assert (defaults.epochs, defaults.seed, defaults.device, defaults.plot) == (
        None, 0, "auto", None
    )  # fmt: skip


def test_the_largest_seed_makes_every_task():
    for network in ("mlp", "cnn", "cnn1d"):
        assert len(demo_module.tasks(network, MAX_SEED)) == 2


def test_plot_must_not_be_a_folder(monkeypatch, capsys, tmp_path):
    # caught with the other option errors, not by a traceback once both tasks have trained
    monkeypatch.setattr(demo_module, "tasks", _no_work)
    folder = tmp_path / "pictures.png"
    folder.mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--plot", str(folder)])
    assert exit_info.value.code == 2
    assert f"argument --plot: expected a file name, got '{folder}': it is a folder" in (
        capsys.readouterr().err
    )


class _CtrlC:
    """Ctrl-C as the second epoch of the first fit ends."""

    def on_epoch_end(self, estimator, record):
        if len(estimator.history_) == 2:
            raise KeyboardInterrupt


def test_ctrl_c_stops_the_demo_without_scoring_the_unfinished_fit(monkeypatch, capsys):
    # fit keeps the finished epochs and returns, as in a notebook; the command must not print
    # that model's scores as the demo's result, nor train the next task, and exits with 130
    made, real = [], demo_module.make_embedder

    def interrupted(args, task):
        made.append(real(args, task).set_params(callbacks=[_CtrlC()]))
        return made[-1]

    monkeypatch.setattr(demo_module, "make_embedder", interrupted)
    with pytest.warns(RuntimeWarning, match="Training interrupted during epoch"):
        assert main(["demo", "--epochs", "5"]) == 130
    out, err = capsys.readouterr()
    assert len(made) == 1 and made[0].n_iter_ <= 2  # the next task was never built
    assert "TripletEmbedder" not in out  # no row for the unfinished fit
    assert "Interrupted: no scores for a fit that did not finish." in err


def test_ctrl_c_outside_a_fit_exits_130_without_a_traceback(monkeypatch, capsys):
    def stopped(network, seed):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_module, "tasks", stopped)
    assert main(["demo"]) == 130
    assert capsys.readouterr().err.strip() == "Interrupted."
