"""numba's on-disk cache, lacking or damaged: fastmlp runs uncached or recompiles, with one
notice, never a traceback (fastmlp.backends.numba._cache)."""

import logging
import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

from numba.core.caching import CacheImpl, IndexDataCacheFile, NullCache  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp.backends.numba import _cache  # noqa: E402

PACKAGE = Path(fastmlp.__file__).resolve().parent

# A module of one kernel made by cached_njit; run in a fresh process, it prints the
# kernel's result. Its cache goes to $NUMBA_CACHE_DIR.
KERNEL_MODULE = textwrap.dedent("""
    import numpy as np
    from fastmlp.backends.numba._cache import cached_njit

    @cached_njit(nogil=True)
    def weighted_sum(x):
        total = 0.0
        for i in range(x.size):
            total += (i + 1) * x[i]
        return total

    print(weighted_sum(np.arange(10.0)))
""")
KERNEL_RESULT = sum((i + 1) * i for i in range(10))


@pytest.fixture
def told_nothing(monkeypatch):
    """A process in which no cache notice has been given yet."""
    monkeypatch.setattr(_cache, "_told", set())


def run_kernel_module(directory: Path, cache: Path):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, str(directory / "kernel_module.py")],
                          capture_output=True, text=True, env=env, cwd=directory)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path: Path) -> None:
    path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8)))


@pytest.mark.parametrize("suffix, damage", [(".nbi", truncate), (".nbi", garbage),
                                            (".nbc", truncate), (".nbc", garbage),
                                            (".nbc", lambda path: path.write_bytes(b""))])
def test_a_damaged_cache_entry_is_dropped_and_compiled_again(tmp_path, suffix, damage):
    (tmp_path / "kernel_module.py").write_text(KERNEL_MODULE)
    cache = tmp_path / "cache"
    first = run_kernel_module(tmp_path, cache)
    assert first.returncode == 0, first.stderr
    assert float(first.stdout) == KERNEL_RESULT and first.stderr == ""
    (entry,) = cache.rglob(f"kernel_module.weighted_sum-*{suffix}")
    damage(entry)

    damaged = run_kernel_module(tmp_path, cache)
    assert damaged.returncode == 0, damaged.stderr
    assert float(damaged.stdout) == KERNEL_RESULT
    (notice,) = damaged.stderr.splitlines()
    assert notice.startswith(f"numba's cache in {entry.parent} held a damaged entry (")
    assert notice.endswith("dropped it, compiling the kernels again")

    again = run_kernel_module(tmp_path, cache)  # cached anew: loads, silently
    assert again.returncode == 0 and float(again.stdout) == KERNEL_RESULT
    assert again.stderr == ""


def test_nowhere_to_cache_runs_uncached_with_one_notice(monkeypatch, told_nothing, caplog):
    # numba's locators all fail when it can write neither beside the source nor under HOME
    monkeypatch.setattr(CacheImpl, "_locator_classes", [])
    monkeypatch.delenv("NUMBA_CONFIG_CACHE_LOCATOR_CLASSES", raising=False)
    caplog.set_level(logging.DEBUG, logger=_cache.__name__)

    def plus_one(x):
        return x + 1

    kernels = [_cache.cached_njit(nogil=True)(plus_one) for _ in range(3)]
    assert [kernel(np.float64(2.0)) for kernel in kernels] == [3.0, 3.0, 3.0]
    assert all(isinstance(kernel._cache, NullCache) for kernel in kernels)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    (notice,) = warnings
    assert "every run compiles them again" in notice.getMessage()
    assert "set NUMBA_CACHE_DIR to a writable directory" in notice.getMessage()
    assert notice.name.startswith("fastmlp.")


def test_a_cache_that_cannot_be_written_costs_a_notice_not_the_result(
        tmp_path, monkeypatch, told_nothing, caplog):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr("numba.core.config.CACHE_DIR", str(tmp_path))

    def disk_full(self, name, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(IndexDataCacheFile, "_save_data", disk_full)

    def times_three(x):
        return 3 * x

    kernel = _cache.cached_njit()(times_three)
    assert kernel(np.int64(5)) == 15
    (notice,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "cannot write numba's cache" in notice.getMessage()
    assert "No space left on device" in notice.getMessage()


def test_cached_njit_refuses_a_cache_option():
    with pytest.raises(TypeError, match="pass no 'cache' option"):
        _cache.cached_njit(cache=False)


# --- the whole command line ------------------------------------------------------------


def _train(data, *, env, cwd=None, user=None, prefix=()):
    data = [] if data is None else ["--data-dir", str(data)]
    command = [*prefix, sys.executable, "-m", "fastmlp", "train", *data,
               "--epochs", "1", "--hidden", "8", "--backend", "numba", "--seed", "0"]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd,
                          user=user, timeout=600)


def test_fastmlp_train_recovers_from_a_damaged_kernel_cache(tmp_path, small_idx):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    first = _train(small_idx, env=env)
    assert first.returncode == 0, first.stderr
    indexes = sorted((tmp_path / "numba").rglob("_kernels.*.nbi"))
    data = sorted((tmp_path / "numba").rglob("_kernels.*.nbc"))
    stamps = sorted((tmp_path / "numba").rglob("*simd-stamp"))
    assert indexes and data and stamps
    stamp = stamps[0].read_bytes()
    for path in indexes[::2]:
        truncate(path)
    for path in data[1::2]:
        garbage(path)

    damaged = _train(small_idx, env=env)
    assert damaged.returncode == 0, damaged.stderr
    assert "Traceback" not in damaged.stderr
    notices = [line for line in damaged.stderr.splitlines() if "damaged entry" in line]
    assert len(notices) == 1
    assert stamps[0].read_bytes() == stamp  # fastmlp's own stamp was intact, and stays
    # the same training, to the digit
    assert damaged.stdout.splitlines()[-1].split("  ")[:4] == \
        first.stdout.splitlines()[-1].split("  ")[:4]


def _no_home_env(home: str) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "FASTMLP_CACHE")}
    return {**env, "HOME": home}


def _read_only_mount(probe: bool):
    """The command prefix that runs a command with PACKAGE mounted read-only, or why not."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None, "no unshare command (util-linux) to mount the install read-only"
    prefix = [unshare, "--mount", "--", "sh", "-c",
              'mount --bind -o ro "$0" "$0" && exec "$@"', str(PACKAGE)]
    if probe:
        tried = subprocess.run([*prefix, "true"], capture_output=True, text=True)
        if tried.returncode != 0:
            return None, f"cannot mount the install read-only here: {tried.stderr.strip()}"
    return prefix, None


def _unprivileged_user():
    """A user id that cannot write the install but can run it, or why there is none."""
    if os.geteuid() != 0:
        return None, "not root: cannot run a command as another user"
    import pwd

    try:
        user = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        return None, "no user 'nobody' on this machine"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", "import os, fastmlp; "
             "print(os.access(os.path.dirname(fastmlp.__file__), os.W_OK))"],
            capture_output=True, text=True, user=user, cwd="/")
    except OSError as error:
        return None, f"user 'nobody' cannot run {sys.executable}: {error.strerror}"
    if probe.returncode != 0:
        return None, (f"user 'nobody' cannot run this Python and fastmlp: "
                      f"{probe.stderr.strip().splitlines()[-1:]}")
    if probe.stdout.strip() != "False":
        return None, "user 'nobody' can write the install"
    return user, None


@pytest.mark.parametrize("way", ["read-only mount", "unprivileged user"])
def test_fastmlp_train_without_a_home_or_a_writable_install(mnist_dir, way):
    """A service account: an install it cannot write, a HOME that does not exist, no
    NUMBA_CACHE_DIR: training works, uncached, saying so once."""
    if way == "read-only mount":
        prefix, why = _read_only_mount(probe=True)
        user, home = None, str(PACKAGE / "no-such-home")  # on the read-only mount
    else:
        user, why = _unprivileged_user()
        prefix, home = (), "/nonexistent/fastmlp-no-such-home"
    if why is not None:
        pytest.skip(why)
    # (absolute: the run starts in /, and CI names the data relative to the clone)
    env = {**_no_home_env(home), "FASTMLP_DATA": str(Path(mnist_dir).resolve())}
    result = _train(None, env=env, cwd="/", user=user, prefix=prefix)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines()[-1].startswith("final  test acc ")
    notices = [line for line in result.stderr.splitlines() if "NUMBA_CACHE_DIR" in line]
    assert len(notices) == 1 and "every run compiles them again" in notices[0]
    # and the compile notice does not promise a cache
    assert "fastmlp: compiling the numba kernels (uncached: every run compiles them) ..." \
        in result.stderr.splitlines()
    assert "first run only" not in result.stderr
    assert not os.path.exists(home)


def test_an_index_of_another_numba_version_is_not_damage(tmp_path):
    # numba's own rule, kept: an index written by another numba version is ignored quietly
    (tmp_path / "kernel_module.py").write_text(KERNEL_MODULE)
    cache = tmp_path / "cache"
    assert run_kernel_module(tmp_path, cache).returncode == 0
    (index,) = cache.rglob("kernel_module.weighted_sum-*.nbi")
    with open(index, "rb") as file:
        pickle.load(file)
        rest = file.read()
    index.write_bytes(pickle.dumps("0.0.0-other") + rest)
    result = run_kernel_module(tmp_path, cache)
    assert result.returncode == 0 and float(result.stdout) == KERNEL_RESULT
    assert result.stderr == ""
