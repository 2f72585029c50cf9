"""The `docs` extra installs everything the API reference imports.

`pip install -e ".[docs]"` and the README's sphinx command must build the site in a venv
that has nothing else (CI builds it so). This checks the same thing without a venv: every
third-party module that a module of the API reference imports when it is imported belongs
to a distribution that the core dependencies or the `docs` extra install.
"""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")
from packaging.requirements import Requirement  # noqa: E402  (pytest's own dependency)

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fastmlp"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed_by_docs_extra() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *project["optional-dependencies"]["docs"]]
    return {_canonical(Requirement(line).name) for line in requirements}


def _documented_modules() -> set[str]:
    """The fastmlp modules docs/api/index.rst documents (autosummary entries, automodule)."""
    text = (ROOT / "docs" / "api" / "index.rst").read_text()
    modules = {"fastmlp"}
    modules |= {f"fastmlp.{name}" for name in re.findall(r"^ {3}(\w+)\.\w", text, re.M)}
    modules |= set(re.findall(r"^\.\. automodule:: (fastmlp[\w.]*)", text, re.M))
    return modules


def _file(module: str) -> Path:
    parts = module.split(".")[1:]
    candidate = PACKAGE.joinpath(*parts)
    return candidate / "__init__.py" if candidate.is_dir() else candidate.with_suffix(".py")


def _module_level_imports(path: Path) -> set[str]:
    """Top-level names of the modules ``path`` imports when it is imported: at module level
    and in class bodies, not in functions (which import optional extras when called)."""
    tree = ast.parse(path.read_text())
    names = set()
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        stack.extend(ast.iter_child_nodes(node))
    return names


def test_the_docs_extra_installs_what_the_api_reference_imports():
    distributions = packages_distributions()
    allowed = _installed_by_docs_extra()
    missing = {}
    for module in sorted(_documented_modules()):
        for name in _module_level_imports(_file(module)):
            if name in sys.stdlib_module_names or name == "fastmlp" or name == "__future__":
                continue
            providers = {_canonical(d) for d in distributions.get(name, [name])}
            if not providers & allowed:
                missing.setdefault(module, []).append(name)
    assert missing == {}, f"imported by the API reference, not installed by [docs]: {missing}"


def test_the_check_reads_the_api_reference():
    assert {"fastmlp.sklearn", "fastmlp.datasets", "fastmlp.checkpoint"} <= _documented_modules()
    assert "sklearn" in _module_level_imports(_file("fastmlp.sklearn"))
