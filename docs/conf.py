"""Sphinx configuration of fastmlp's documentation.

Build it with ``python -m sphinx -W --keep-going -b html docs docs/_build/html``
(the ``docs`` extra installs what it needs). The performance page's tables and
plot are made here, at build time, from the saved run in ``_data/bench.json``.
"""

import sys
from pathlib import Path

import fastmlp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import make_performance  # noqa: E402  (beside this file)

make_performance.main([])

project = "fastmlp"
author = "the fastmlp developers"
copyright = "the fastmlp developers"
version = release = fastmlp.__version__

extensions = [
    "myst_parser",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.doctest",
    "sphinx.ext.mathjax",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_data", "_generated/*.md"]
templates_path = ["_templates"]

# The API reference: one page per object, generated from the docstrings.
autosummary_generate = True
autodoc_typehints = "none"  # numpydoc's Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# The user guide's examples are ```{doctest}``` blocks, which `-b doctest` runs (they read
# MNIST from $FASTMLP_DATA). The docstrings' examples run under pytest --doctest-modules instead,
# where they see their module's names, so they are not run twice.
doctest_test_doctest_blocks = ""

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3


def _skip_member(app, what, name, obj, skip, options):
    """Leave out scikit-learn's generated ``set_*_request`` methods (metadata routing).

    Their docstrings point into scikit-learn's own documentation, which this build lacks.
    """
    if name.startswith("set_") and name.endswith("_request"):
        return True
    return None


def setup(app):
    app.connect("autodoc-skip-member", _skip_member)


html_theme = "pydata_sphinx_theme"
html_title = f"fastmlp {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
}
