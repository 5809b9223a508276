"""Every script in examples/ runs to completion in fast mode and prints what it should.

The scripts are collected by glob, so a new example is tested without editing this file.
Each runs in this process (a fresh interpreter per script would spend more time importing
torch than running it) as ``__main__``, with ``SK_DEEPMETRIC_EXAMPLES_FAST=1`` (fewer
epochs), the Agg backend and ``plt.show`` replaced by a counter, so that ``plot_*.py``
scripts are also checked to draw at least one figure.
"""

import runpy
from pathlib import Path

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))

#: Lines a script must print (a table header, a check); scripts not listed must print something.
EXPECTED_OUTPUT = {
    "plot_triplet_mining.py": ["MAP@R", "miner='batch_hard'", "miner='semihard'", "miner='all'"],
    "plot_margin_softmax_cnn.py": ["MAP@R", "SphereFace", "CosFace", "ArcFace"],
    "plot_grid_search_margin_miner.py": ["margin", "best:", "stratified folds", "classes 60-99"],
    "custom_backbone.py": ["MAP@R", "MetricEmbedder(ArcFaceLoss)", "ResidualMLP"],
    "plot_open_set_retrieval.py": ["gallery:", "query 0", "MAP@R"],
    "save_and_load.py": [
        "joblib: ",
        "transform equal: True",
        "pickle: transform equal: True",
        "torch state_dict",
    ],
}


def test_examples_found():
    assert len(SCRIPTS) >= 6, f"expected the example scripts in {EXAMPLES}"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_example_runs_in_fast_mode(script, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SK_DEEPMETRIC_EXAMPLES_FAST", "1")
    monkeypatch.chdir(tmp_path)  # whatever a script writes lands here
    monkeypatch.setattr("sys.argv", [str(script)])
    shown = set()

    def show(*args, **kwargs):
        shown.update(plt.get_fignums())
        plt.close("all")

    monkeypatch.setattr(plt, "show", show)
    # as on a desktop: show_or_save shows (here: counts) instead of saving a file
    monkeypatch.setattr("sk_deepmetric.plotting.show_or_save", lambda fig, filename: plt.show())
    plt.close("all")
    try:
        with torch.random.fork_rng(devices=[]):  # a script may seed torch's global RNG
            runpy.run_path(str(script), run_name="__main__")
        shown.update(plt.get_fignums())
    finally:
        plt.close("all")
    stdout = capsys.readouterr().out
    assert stdout.strip(), f"{script.name} printed nothing"
    for expected in EXPECTED_OUTPUT.get(script.name, []):
        assert expected in stdout, f"{script.name} did not print {expected!r}"
    if script.name.startswith("plot_"):
        assert shown, f"{script.name} drew no figure"
    assert list(tmp_path.iterdir()) == [], f"{script.name} left files in its working folder"
