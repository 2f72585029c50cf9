"""What the package declares and ships: one version source, read from the installed metadata."""

import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import fastmlp

ROOT = Path(fastmlp.__file__).resolve().parent.parent  # the source tree under test


def run_python(*args, path):
    """Run Python with ``path`` ahead of this source tree on its import path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), str(ROOT)])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          check=True)


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

    monkeypatch.setattr(fastmlp._metadata, "version", not_installed)
    assert fastmlp._installed_version() == "0+unknown"
