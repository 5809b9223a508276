"""Every public estimator's docstring documents exactly its signature, in order, with the
defaults it really has, and its parameter constraints cover every parameter (in the style of
scikit-learn's ``test_docstring_parameters``)."""

import ast
import inspect
import re
import textwrap

import jedi
import pytest
from numpydoc.docscrape import ClassDoc, NumpyDocString
from sklearn.base import clone

from sk_deepmetric import embedders
from sk_deepmetric.embedders import _params
from sk_deepmetric.embedders._params import COMMON_PARAMS
from sk_deepmetric.neighbors import EmbeddingKNeighborsClassifier

ESTIMATORS = [getattr(embedders, name) for name in embedders.__all__]
ESTIMATORS.append(EmbeddingKNeighborsClassifier)


def _read(text):
    """The value a numpydoc type line's ``default=...`` shows (a literal, or its text)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_docstring_documents_the_signature(cls):
    signature = inspect.signature(cls).parameters
    documented = ClassDoc(cls)["Parameters"]
    assert [p.name for p in documented] == list(signature)
    for parameter in documented:
        assert " ".join(parameter.desc).strip(), f"{parameter.name} has no description"
        match = re.search(r"default=(.+)$", parameter.type)
        assert match, f"{parameter.name}: the type line names no default"
        default = signature[parameter.name].default
        assert _read(match.group(1)) == default, f"{parameter.name}: documented {match.group(1)}"


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_constraints_cover_every_parameter(cls):
    assert set(cls._parameter_constraints) == set(inspect.signature(cls).parameters)


WITH_LOSS = [cls for cls in ESTIMATORS if getattr(cls, "_loss_class", None) is not None]


@pytest.mark.parametrize("cls", WITH_LOSS, ids=lambda cls: cls.__name__)
def test_loss_defaults_have_one_source(cls):
    """An estimator's loss parameter defaults to the loss's own default, unless it is one of
    the estimator's tuned defaults, whose docstring then gives the loss's value too."""
    loss = inspect.signature(cls._loss_class).parameters
    estimator = inspect.signature(cls).parameters
    documented = {p.name: " ".join(p.desc) for p in ClassDoc(cls)["Parameters"]}
    shared = [name for name in cls._loss_params if name in loss]
    assert set(cls._tuned_defaults) <= set(shared)
    for name in shared:
        if name not in cls._tuned_defaults:
            assert estimator[name].default == loss[name].default, name
            continue
        assert estimator[name].default == cls._tuned_defaults[name] != loss[name].default
        paper = loss[name].default
        shown = f'"{paper}"' if isinstance(paper, str) else f"{paper:g}"
        assert re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d])", documented[name]), (
            f"{name}: the docstring does not give the loss's default {shown}"
        )


EMBEDDERS = [cls for cls in ESTIMATORS if issubclass(cls, embedders._base.BaseEmbedder)]


@pytest.mark.parametrize("cls", EMBEDDERS, ids=lambda cls: cls.__name__)
def test_signature_follows_the_tables(cls):
    """The written-out ``__init__`` takes the loss's parameters, then the shared ones in the
    shared order, with the defaults of ``COMMON_PARAMS`` (or the class's overrides) and of
    the loss (``_loss_params``)."""
    signature = inspect.signature(cls).parameters
    common = [name for name in signature if name in COMMON_PARAMS]
    own = [name for name in signature if name not in COMMON_PARAMS]
    assert list(signature) == own + common
    assert common == [name for name in COMMON_PARAMS if name in signature]
    expected = {**COMMON_PARAMS, **cls._default_overrides, **cls._loss_params}
    if cls._loss_params:
        assert own == list(cls._loss_params)
    for name in common + list(cls._loss_params):
        assert signature[name].default == expected[name], name
        assert signature[name].kind == inspect.Parameter.KEYWORD_ONLY, name


def shared_docs(cls: type) -> dict:
    """name -> (type line, description with whitespace collapsed) of the parameters every
    embedder documents alike (``_params._COMMON_DOC``), with ``cls``'s defaults filled in;
    ``normalize``'s is its first sentence, which each class follows with why its default is
    what it is."""
    defaults = {**COMMON_PARAMS, **cls._default_overrides, **cls._loss_params}
    text = _params._COMMON_DOC.format(
        normalize=defaults["normalize"],
        normalize_why="",
        conv_channels=_params.DEFAULT_CONV_CHANNELS,
        auto_budget=_params.AUTO_MAX_ITER[True],
        short_budget=_params.AUTO_MAX_ITER[False],
    )
    if "samples_per_class" in defaults:
        balanced = _params._BALANCED_DOC.format(k=defaults["samples_per_class"])
        text = "    " + balanced.rstrip(" ") + text
    if "memory_size" in defaults:
        text = "    " + _params._MEMORY_DOC.rstrip(" ") + text
    doc = NumpyDocString(textwrap.dedent("Parameters\n----------\n" + text))
    return {p.name: (p.type, " ".join(" ".join(p.desc).split())) for p in doc["Parameters"]}


@pytest.mark.parametrize("cls", EMBEDDERS, ids=lambda cls: cls.__name__)
def test_shared_parameters_are_documented_alike(cls):
    """Each shared parameter's entry is the shared text (``_params._COMMON_DOC``) with the
    class's defaults; a class may replace the entries it lists in ``_own_docs``, and follows
    ``normalize``'s first sentence with why its default is what it is."""
    documented = {p.name: p for p in ClassDoc(cls)["Parameters"]}
    for name, (type_line, text) in shared_docs(cls).items():
        if name not in documented or name in getattr(cls, "_own_docs", ()):
            continue
        entry = documented[name]
        assert entry.type == type_line, name
        description = " ".join(" ".join(entry.desc).split())
        if name == "normalize":
            assert description.startswith(text) and len(description) > len(text), description
        else:
            assert description == text, f"{cls.__name__}.{name}: {description!r}"


def test_pairs_embedder_says_what_its_early_stopping_monitors():
    """ContrastivePairsEmbedder's early stopping monitors the held-out pairs' ROC AUC, not
    MAP@R: its entries that name the monitored value say so."""
    cls = embedders.ContrastivePairsEmbedder
    documented = {p.name: " ".join(p.desc) for p in ClassDoc(cls)["Parameters"]}
    for name in ("early_stopping", "tol"):
        assert "ROC AUC" in documented[name] and "MAP@R" not in documented[name], name


def test_the_shared_text_says_what_a_module_you_pass_must_do():
    """``transform`` pads its fixed-size chunks with rows of zeros: a module must embed each
    row on its own in eval mode; ``warm_start`` compares modules by identity; and "sgd"
    drops the default Nesterov where the routed options rule it out."""
    docs = {name: text for name, (_, text) in shared_docs(embedders.TripletEmbedder).items()}
    assert "in eval mode embed each row independently of the others" in docs["network"]
    assert "padded with rows of zeros" in docs["network"]
    assert "``BatchNorm1d(..., track_running_stats=False)``" in docs["network"]
    assert "``network`` or ``loss`` must stay the same object" in docs["warm_start"]
    assert "(unless ``optimizer__nesterov`` is given)" in docs["optimizer"]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda cls: cls.__name__)
def test_editors_see_signature_and_docstring(cls):
    """What an editor shows comes from the source, not from run time: Jedi (the engine of
    several editors' completion) completes every keyword and shows the whole docstring."""
    code = f"from sk_deepmetric import {cls.__name__}\n{cls.__name__}("
    script = jedi.Script(code)
    line, column = 2, len(cls.__name__) + 1
    completed = {c.name.rstrip("=") for c in script.complete(line, column) if c.type == "param"}
    assert set(inspect.signature(cls).parameters) <= completed
    (name,) = script.infer(2, 1)
    assert name.docstring(raw=True).strip() == inspect.getdoc(cls).strip()


def test_subclass_forwarding_kwargs_keeps_the_inherited_parameters():
    """A user's subclass that adds a parameter and forwards the rest keeps them all."""

    class Extended(embedders.TripletEmbedder):
        def __init__(self, extra=1, **kwargs):
            super().__init__(**kwargs)
            self.extra = extra

    model = Extended(extra=3, margin=0.5, optimizer__momentum=0.8)
    params = clone(model).get_params()
    assert params["extra"] == 3 and params["margin"] == 0.5
    assert params["optimizer__momentum"] == 0.8
    assert list(inspect.signature(Extended).parameters)[:2] == ["extra", "margin"]
    with pytest.raises(
        TypeError, match=r"Extended\(\) got an unexpected keyword argument 'margn'"
    ):
        Extended(margn=0.5)


def test_api_page_lists_every_estimator_and_loss():
    """Adding a loss or an estimator without its line on the API page fails here."""
    from pathlib import Path

    from sk_deepmetric import losses

    page = (Path(__file__).parents[1] / "docs" / "api.rst").read_text()
    listed = set(re.findall(r"^   (\w+)$", page, flags=re.MULTILINE))
    assert set(embedders.__all__) | set(losses.__all__) <= listed


def test_user_guide_on_a_network_you_pass():
    """The from-scratch backbone recipe trains at 1e-3 (as examples/custom_backbone.py),
    not at the 1e-4 "auto" gives a module that may be pre-trained; torch.rst says that
    MetricEmbedder does not imprint a loss= object, and what a network= module must do."""
    from pathlib import Path

    guide = Path(__file__).parents[1] / "docs" / "user_guide"
    images = (guide / "signals_images.rst").read_text()
    recipe = images[images.index("# random weights: train from scratch") :].split("\n\n")[0]
    assert "learning_rate_init=1e-3" in recipe
    torch_page = " ".join((guide / "torch.rst").read_text().split())
    assert ":class:`~sk_deepmetric.embedders.MetricEmbedder` does not" in torch_page
    assert "loss_fn.imprint_(means, center=Z.mean(0)) embedder = MetricEmbedder(" in torch_page
    assert "embed each row independently of the others in eval mode" in torch_page


def test_examples_import_public_paths_only():
    """Doctests, examples and the user guide teach the public import paths, never a private
    module (``sk_deepmetric.losses._pair``)."""
    from pathlib import Path

    root = Path(__file__).parents[1]
    files = [*root.glob("sk_deepmetric/**/*.py"), *root.glob("examples/*.py")]
    files += [*root.glob("docs/**/*.rst"), root / "README.md"]
    private = re.compile(r"(?:>>> )?(?:from|import) sk_deepmetric(?:\.\w+)*\._\w+")
    offenders = []
    for path in files:
        for line in path.read_text().splitlines():
            stripped = line.strip()
            taught = stripped.startswith(">>>") or path.suffix != ".py" or "examples" in path.parts
            if taught and private.search(stripped):
                offenders.append(f"{path.relative_to(root)}: {stripped}")
    assert not offenders, offenders
