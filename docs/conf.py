"""Sphinx configuration for the sk_deepmetric documentation.

Build (warnings are errors, as in CI)::

    python -m pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

Besides the usual extensions, this file does two small jobs itself, so that the site needs no
network and no sphinx-gallery:

* ``builder-inited``: turns every script in ``examples/`` into a page under
  ``docs/auto_examples/`` (its docstring, its figures, its printed output and its source).
  Scripts named ``plot_*.py`` are run to make the figures; set ``SK_DEEPMETRIC_DOCS_RUN=0`` to
  skip running them (pages then show the source only).
* ``build-finished``: crawls the built HTML and reports every relative link or image whose
  target file or anchor does not exist, as a warning (so ``-W`` fails the build on it).
"""

from __future__ import annotations

import ast
import html.parser
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sphinx.util import logging

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import sk_deepmetric  # noqa: E402

logger = logging.getLogger("sk_deepmetric.docs")

# -- Project ----------------------------------------------------------------------------------

project = "sk_deepmetric"
author = "The sk_deepmetric developers"
copyright = author
release = sk_deepmetric.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions -------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",  # benchmarks.md is Markdown
    # MathJax 3 copied into _static/, so formulas render without network access.
    "sphinx-mathjax-offline",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]
default_role = "literal"  # `margin` in prose renders as code, never as a broken reference
pygments_style = "sphinx"

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {
    "members": True,
    # Inherited members too (an embedder's fit may live in a private base class), but only
    # those defined in sk_deepmetric: see skip_foreign_member.
    "inherited-members": True,
}
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autoclass_content = "class"
autodoc_member_order = "bysource"

numpydoc_show_class_members = False  # autodoc lists members; avoids duplicate stubs
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

mathjax3_config = {"tex": {"macros": {"R": r"\mathbb{R}"}}}

# -- HTML -------------------------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"sk_deepmetric {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_show_sourcelink = False
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_align": "left",
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
    # No external icons or version switcher: the site builds and reads offline.
}
html_sidebars = {"install": [], "benchmarks": []}

# -- Examples: docs/auto_examples/ from examples/*.py ------------------------------------------

EXAMPLES_SRC = ROOT / "examples"
EXAMPLES_OUT = DOCS / "auto_examples"
EXAMPLE_TIMEOUT_S = int(os.environ.get("SK_DEEPMETRIC_DOCS_TIMEOUT", "600"))

# Run inside a fresh interpreter: execute the script as __main__ with the Agg backend, save
# every figure it leaves open or shows (plt.show is replaced by "save and close").
_RUNNER = r"""
import runpy, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
out_stem, script = sys.argv[1], sys.argv[2]
count = [0]
def save_all(*args, **kwargs):
    for num in plt.get_fignums():
        count[0] += 1
        plt.figure(num).savefig(f"{out_stem}_{count[0]:02d}.png", dpi=90, bbox_inches="tight")
    plt.close("all")
plt.show = save_all
import sk_deepmetric.plotting
sk_deepmetric.plotting.show_or_save = lambda fig, filename: plt.show()  # figures go on the page
sys.argv = [script]
runpy.run_path(script, run_name="__main__")
save_all()
"""


def _title_from(doc: str, stem: str) -> tuple[str, str]:
    """The page title (the docstring's first reST title, or one made from the file name)."""
    lines = doc.splitlines()
    for i in range(len(lines) - 1):
        underline = lines[i + 1].strip()
        if lines[i].strip() and len(set(underline)) == 1 and underline[0] in "=-~#*^":
            if len(underline) >= len(lines[i].strip()):
                rest = "\n".join(lines[:i] + lines[i + 2 :]).strip()
                return lines[i].strip(), rest
    name = stem.removeprefix("plot_").replace("_", " ").strip().capitalize()
    return name or stem, doc


def _run_example(script: Path, image_dir: Path) -> tuple[list[Path], str, float]:
    """Run ``script``; return its figures, its stdout and its run time."""
    stem = image_dir / script.stem
    for old in image_dir.glob(f"{script.stem}_*.png"):
        old.unlink()
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONHASHSEED="0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:  # whatever the script writes goes here
        proc = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(stem.resolve()), str(script.resolve())],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=EXAMPLE_TIMEOUT_S,
            check=False,
        )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        logger.warning(
            "example %s failed (exit %d):\n%s",
            script.name,
            proc.returncode,
            proc.stderr[-3000:],
            type="sk_deepmetric",
            subtype="example",
        )
    return sorted(image_dir.glob(f"{script.stem}_*.png")), proc.stdout, elapsed


def _cells(source: str) -> list[tuple[str, str]]:
    """The script after its docstring as (text, code) cells, split at ``# %%`` lines.

    A cell's leading comment lines are its text (reST, ``# `` stripped), the rest its
    code, in the format sphinx-gallery reads.
    """
    tree = ast.parse(source)
    body = tree.body
    start = body[1].lineno - 1 if body and ast.get_docstring(tree) and len(body) > 1 else 0
    if body and ast.get_docstring(tree) and len(body) == 1:
        return []
    cells, text, code, in_text = [], [], [], False
    for line in source.splitlines()[start:]:
        if line.startswith("# %%"):
            if text or code:
                cells.append(("\n".join(text), "\n".join(code).strip("\n")))
            text, code, in_text = [], [], True
            continue
        if in_text and (line.startswith("#") or not line.strip()) and not code:
            if line.startswith("#"):
                text.append(line[2:] if line.startswith("# ") else line[1:])
                continue
            in_text = False
            continue
        in_text = False
        code.append(line)
    if text or code:
        cells.append(("\n".join(text), "\n".join(code).strip("\n")))
    return cells


def _example_page(script: Path, image_dir: Path, run: bool) -> tuple[str, str]:
    """The reST page for one example script, and its title: the docstring, then each cell's
    text and code, then the figures and output of a run."""
    source = script.read_text(encoding="utf-8")
    doc = ast.get_docstring(ast.parse(source), clean=True) or ""
    title, intro = _title_from(doc, script.stem)
    parts = [f".. _example_{script.stem}:", "", title, "=" * len(title), "", intro, ""]
    for text, code in _cells(source):
        if text.strip():
            parts += [text, ""]
        if code.strip():
            parts += [".. code-block:: python", "", textwrap.indent(code, "   "), ""]
    if run:
        figures, stdout, elapsed = _run_example(script, image_dir)
        if stdout.strip() or figures:
            parts += ["What it printed and drew", "-" * 24, ""]
        if stdout.strip():
            parts += [".. code-block:: text", "", textwrap.indent(stdout.rstrip(), "   "), ""]
        for fig in figures:
            parts += [f".. image:: images/{fig.name}", "   :alt: figure made by " + script.name]
            parts += ["   :class: example-figure", ""]
        parts += [f"*Run time of this script when the docs were built: {elapsed:.0f} s.*", ""]
    parts += [f"Run it with ``python examples/{script.name}``.", ""]
    return "\n".join(parts), title


def generate_examples(app) -> None:
    """Write docs/auto_examples/index.rst and one page per examples/*.py."""
    run_all = os.environ.get("SK_DEEPMETRIC_DOCS_RUN", "1") != "0"
    image_dir = EXAMPLES_OUT / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    scripts = sorted(EXAMPLES_SRC.glob("*.py")) if EXAMPLES_SRC.is_dir() else []
    entries = []
    for script in scripts:
        if script.name.startswith("_"):
            continue
        run = run_all and script.name.startswith("plot_")
        logger.info("[examples] %s%s", script.name, " (running)" if run else "")
        page, title = _example_page(script, image_dir, run)
        _write_if_changed(EXAMPLES_OUT / f"{script.stem}.rst", page)
        entries.append((script.stem, title))
    index = [
        ".. _examples:",
        "",
        "Examples",
        "========",
        "",
        "Runnable scripts from the ``examples/`` folder of the repository, each a short story "
        "with comments. Every page shows the script's figures and printed output, as made "
        "when this documentation was built, followed by the full source. Each runs in about "
        "a minute on a laptop CPU; run one with ``python examples/<name>.py``.",
        "",
    ]
    if entries:
        index += [".. toctree::", "   :maxdepth: 1", ""]
        index += [f"   {title} <{stem}>" for stem, title in entries]
    else:
        index += ["*No example scripts were found when this documentation was built.*"]
    _write_if_changed(EXAMPLES_OUT / "index.rst", "\n".join(index) + "\n")


def _write_if_changed(path: Path, text: str) -> None:
    """Write only on change, so that Sphinx's incremental builds stay incremental."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


# -- Docstring hooks --------------------------------------------------------------------------


def skip_foreign_member(app, what, name, obj, skip, options):
    """Skip class members defined outside sk_deepmetric (torch.nn.Module's, scikit-learn's).

    Their docstrings refer to labels of their own sites, which this one does not have; the
    API pages list what sk_deepmetric defines (scikit-learn's fit_transform, set_params, ...
    behave as documented by scikit-learn).
    """
    if what != "class" or skip:
        return None
    target = obj.fget if isinstance(obj, property) else obj
    module = getattr(target, "__module__", None)
    if module is not None and not module.startswith("sk_deepmetric"):
        return True
    return None


_SHAPE_NAME = re.compile(r"(?<![`\\\w])([A-Za-z]\w*)_(?=[,)\s])")  # n_features_in_
_SHAPE_STAR = re.compile(r"(?<![`\\])\*(?=\w)")  # *input_shape


def escape_shapes_in_types(app, what, name, obj, options, lines):
    """Escape reST markup in numpydoc type lines such as ``of shape (n_features_in_,)``.

    In a type, ``n_features_in_`` reads as a link to a target of that name and
    ``(n_samples, *input_shape)`` as the start of emphasis; both fail the build. The
    characters are backslash-escaped, so they render as written. Runs before numpydoc
    (priority 400), on ``name : type`` lines that give a shape, and only on unquoted text.
    """
    for i, line in enumerate(lines):
        head, sep, spec = line.partition(" : ")
        if not (sep and head.strip() and " " not in head.strip() and "shape" in spec):
            continue
        parts = spec.split("`")  # odd parts are quoted: leave them alone
        for j in range(0, len(parts), 2):
            parts[j] = _SHAPE_STAR.sub(r"\\*", _SHAPE_NAME.sub(r"\1\\_", parts[j]))
        lines[i] = head + sep + "`".join(parts)


# -- Link check of the built HTML (offline: relative links and anchors only) ------------------


class _LinkParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        target = attrs.get("href") if tag in ("a", "link") else None
        if tag in ("img", "script") and attrs.get("src"):
            target = attrs["src"]
        if target:
            self.links.append(target)


def check_links(app, exc) -> None:
    """Warn about each relative link in the built HTML whose file or #anchor is missing."""
    if exc is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    pages = {}
    for page in outdir.rglob("*.html"):
        if page.relative_to(outdir).parts[0] == "_static":  # theme templates, not pages
            continue
        parser = _LinkParser()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        pages[page.resolve()] = parser
    n_links = 0
    for page, parser in sorted(pages.items()):
        for link in parser.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("mailto:", "javascript:")):
                continue
            n_links += 1
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if target.is_dir():
                target = target / "index.html"
            where = page.relative_to(outdir.resolve())
            if not target.exists():
                logger.warning("broken link in %s: %s", where, link, type="sk_deepmetric")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else set()
                if unquote(parts.fragment) not in ids:
                    logger.warning("broken anchor in %s: %s", where, link, type="sk_deepmetric")
    logger.info("[links] checked %d relative links in %d pages", n_links, len(pages))


# -- Setup ------------------------------------------------------------------------------------


def setup(app):
    app.connect("builder-inited", generate_examples)
    app.connect("autodoc-skip-member", skip_foreign_member)
    app.connect("autodoc-process-docstring", escape_shapes_in_types, priority=400)
    app.connect("build-finished", check_links)
    return {"parallel_read_safe": True}
