"""What the package declares and ships: one version source, read from the installed metadata;
its licence and py.typed in the wheel."""

import email
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

import fastmlp

ROOT = Path(fastmlp.__file__).resolve().parent.parent  # the source tree under test


def run_python(*args, path):
    """Run Python in ``path``, with ``path`` ahead of this source tree on its import path.

    (Run from the source tree, Python would find the ``fastmlp.egg-info`` that an
    editable install leaves there first: the working directory leads the path.)
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), str(ROOT)])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          check=True, cwd=path)


def test_the_version_is_the_installed_distributions(tmp_path):
    assert fastmlp.__version__ == metadata.version("fastmlp")
    # Installed metadata of another version, first on the path: both read it.
    info = tmp_path / "fastmlp-9.8.7.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fastmlp\nVersion: 9.8.7\n")
    assert run_python("-c", "import fastmlp; print(fastmlp.__version__)",
                      path=tmp_path).stdout == "9.8.7\n"
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert run_python("-m", "fastmlp", "--version", path=tmp_path).stdout == (
        f"fastmlp 9.8.7 from {ROOT / 'fastmlp'} (python {python})\n")


def test_a_source_tree_not_installed_has_an_unknown_version(monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", not_installed)
    assert fastmlp.__version__ == "0+unknown"


def test_the_licence_is_mit_and_names_its_holder():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) 2026 the fastmlp developers\n")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND" in text


def test_py_typed_and_the_licence_are_declared():
    # PEP 639's license expression and license-files (setuptools 77 reads them; the older
    # table form is deprecated), and py.typed as package data, which setuptools before 69
    # did not ship unasked
    tomllib = pytest.importorskip("tomllib", reason="Python 3.11 reads TOML")
    with open(ROOT / "pyproject.toml", "rb") as file:
        config = tomllib.load(file)
    assert config["project"]["license"] == "MIT"
    assert config["project"]["license-files"] == ["LICENSE"]
    assert config["build-system"]["requires"] == ["setuptools>=77"]
    assert config["tool"]["setuptools"]["package-data"]["fastmlp"] == ["py.typed"]
    assert (ROOT / "fastmlp" / "py.typed").is_file()


def test_the_wheel_ships_py_typed_and_the_licence(tmp_path):
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools "
                                             "installed (the dev extra)")
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside it
    shutil.copytree(ROOT / "fastmlp", source / "fastmlp",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--wheel-dir", str(tmp_path / "dist"),
                    str(source)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("fastmlp-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        assert "fastmlp/py.typed" in names
        # setuptools>=77 keeps licence files in .dist-info/licenses/
        (licence,) = [name for name in names
                      if re.fullmatch(r"fastmlp-[^/]+\.dist-info/licenses/LICENSE", name)]
        assert archive.read(licence).decode() == (ROOT / "LICENSE").read_text()
        (info,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        fields = email.message_from_bytes(archive.read(info))
    assert fields["License-File"] == "LICENSE"
    assert fields["License-Expression"] == "MIT"  # PEP 639 (core metadata 2.4)


def test_the_fastmlp_script_runs_console():
    # console: main, then the ending process's objects left out of the collector's way
    (script,) = metadata.entry_points(group="console_scripts", name="fastmlp")
    assert script.value == "fastmlp.cli:console"
