"""The package's import rules, read from the source.

Imports run one way, from the tensor helpers up to the estimators and the metrics, and no
module imports another's private (underscored) names: a helper that several modules use
has one home, a private module, where its name is public.
"""

import ast
import pathlib

import pytest

import sk_deepmetric

ROOT = pathlib.Path(sk_deepmetric.__file__).parent

#: Each module's layer; a module imports from lower layers only (and, inside ``losses`` and
#: ``embedders``, from its own package). ``_retrieval`` holds the metrics that training
#: validates with, below the estimators; ``metrics`` and ``neighbors`` sit above them.
LAYERS = {
    "_validation": 0,
    "_devices": 0,
    "_blocks": 0,
    "_mining": 0,
    "networks": 1,
    "distances": 1,
    "_streaming": 1,
    "augment": 1,
    "datasets": 1,
    "samplers": 1,
    "miners": 2,
    "_retrieval": 2,
    "_search": 2,
    "losses": 3,
    "_training": 4,
    "embedders": 5,
    "metrics": 6,
    "neighbors": 6,
    "plotting": 7,
    "__main__": 8,
    "": 8,  # the package's __init__
}

#: Private names imported across modules on purpose. The search backends are pickled with a
#: fitted ``EmbeddingKNeighborsClassifier`` under these names; older pickles name them in
#: ``neighbors``, so they keep their names and that import.
PICKLED_NAMES = {
    ("neighbors", "_search", name)
    for name in ("_BruteSearch", "_FaissFlatSearch", "_FaissIVFSearch")
}


def _module_name(path):
    parts = list(path.with_suffix("").relative_to(ROOT).parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path):
    """``(imported module, names)`` of each ``from ... import`` of the package in ``path``."""
    module = _module_name(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").startswith("sk_deepmetric"):
                target = node.module.removeprefix("sk_deepmetric").lstrip(".")
            else:
                continue
            yield target, [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sk_deepmetric."):
                    yield alias.name.removeprefix("sk_deepmetric."), []


MODULES = sorted(ROOT.rglob("*.py"))


def _layer(module):
    top = module.split(".")[0]
    return top, LAYERS[top]


def test_every_module_has_a_layer():
    assert {_module_name(p).split(".")[0] for p in MODULES} == set(LAYERS)


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_imports_run_one_way(path):
    group, layer = _layer(_module_name(path))
    for target, names in _imports(path):
        if target == "" and names:  # ``from sk_deepmetric import x``: the submodule x
            targets = [name for name in names if name in LAYERS]
            targets = targets or [""]
        else:
            targets = [target]
        for imported in targets:
            other, other_layer = _layer(imported)
            if other == group:
                continue
            assert other_layer < layer, (
                f"{_module_name(path)} (layer {layer}) imports {imported} (layer {other_layer})"
            )


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_no_module_imports_another_modules_private_names(path):
    module = _module_name(path)
    for target, names in _imports(path):
        for name in names:
            if name.startswith("_") and (module, target, name) not in PICKLED_NAMES:
                pytest.fail(
                    f"{module} imports the private name {name} from {target}: give the helper "
                    "one home (a private module, where its name is public)."
                )
