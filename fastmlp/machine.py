"""What a benchmark ran on: the CPU, each BLAS library and its kernel, numba and its threads.

Speed figures are only comparable between runs that say what they ran on.
:func:`describe` gathers it; :func:`kernel_warnings` says when OpenBLAS runs
an older kernel than the CPU supports, which happens when the environment
forces one with ``OPENBLAS_CORETYPE`` (some shared machines set it; users'
machines usually do not).

Examples
--------
>>> from fastmlp.machine import describe, summary
>>> info = describe()
>>> sorted(info)
['blas', 'cpu', 'kernel_warnings', 'numba', 'numpy', 'openblas_coretype', 'python']
>>> summary(info).startswith("cpu ")
True
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys

from ._words import count as _count

# OpenBLAS kernel names by the widest vector instructions they use; a CPU's
# level comes from its flags. Names are matched in lower case.
_KERNEL_LEVELS = {
    "avx512": ("skylakex", "cooperlake", "sapphirerapids", "zen4", "zen5"),
    "avx2": ("haswell", "zen", "excavator", "steamroller", "skylake", "cannonlake"),
    "avx": ("sandybridge", "bulldozer", "piledriver"),
}
_LEVEL_ORDER = ("sse", "avx", "avx2", "avx512")


def cpu_model() -> str:
    """The CPU's marketing name, or the platform's best guess."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if sys.platform == "darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"],
                                  capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cpus() -> int:
    """How many CPUs this process may run on: its affinity mask where the OS has one.

    Less than ``os.cpu_count()`` under ``taskset``, a batch scheduler or a
    container's CPU set; it is what numba and XLA size their thread pools by.
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity mask to read
        return os.cpu_count() or 1


def cpu_vector_level(flags: set[str] | None = None) -> str | None:
    """Widest x86 vector extension of the CPU: 'avx512', 'avx2', 'avx', 'sse'; None if unknown."""
    if flags is None:
        flags = _cpu_flags()
    if not flags:
        return None
    if "avx512f" in flags:
        return "avx512"
    if "avx2" in flags:
        return "avx2"
    if "avx" in flags:
        return "avx"
    return "sse"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def kernel_level(architecture: str | None) -> str | None:
    """Vector level of an OpenBLAS kernel name such as 'Haswell'; None if unknown."""
    if not architecture:
        return None
    name = architecture.lower()
    for level, names in _KERNEL_LEVELS.items():
        if name in names:
            return level
    if re.fullmatch(r"(prescott|core2|penryn|dunnington|nehalem|atom|barcelona|opteron.*)",
                    name):
        return "sse"
    return None


def blas_libraries() -> list[dict]:
    """Each BLAS library loaded in this process (NumPy's, SciPy's ...), from threadpoolctl."""
    import numpy  # noqa: F401  (loads NumPy's BLAS so threadpoolctl sees it)

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [{"library": pool.get("internal_api"), "version": pool.get("version"),
             "kernel": pool.get("architecture"), "threads": pool.get("num_threads"),
             "threading_layer": pool.get("threading_layer"),
             "file": os.path.basename(pool.get("filepath", ""))}
            for pool in threadpool_info() if pool.get("user_api") == "blas"]


def numba_info() -> dict | None:
    """numba's version, threads and threading layer (its configured choice until one has run)."""
    try:
        import numba
    except ImportError:
        return None
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel code has run yet: the configured choice
        layer = f"not yet chosen ({numba.config.THREADING_LAYER})"
    return {"version": numba.__version__, "threads": numba.get_num_threads(),
            "threading_layer": layer}


def kernel_warnings(blas: list[dict], cpu_level: str | None,
                    coretype: str | None) -> list[str]:
    """A warning per OpenBLAS library whose kernel is older than the CPU supports."""
    if cpu_level is None:
        return []
    warnings = []
    for library in blas:
        level = kernel_level(library.get("kernel"))
        if level is None or _LEVEL_ORDER.index(level) >= _LEVEL_ORDER.index(cpu_level):
            continue
        cause = (f"OPENBLAS_CORETYPE={coretype} forces it"
                 if coretype else "the library may predate this CPU")
        warnings.append(
            f"{library['file'] or library['library']} runs OpenBLAS's {library['kernel']} "
            f"kernel ({level}) on a CPU with {cpu_level}: {cause}; BLAS-bound figures "
            f"(matmul, einsum, torch, the GEMM peak) are lower than this CPU's native kernel "
            f"gives (unset OPENBLAS_CORETYPE for it)")
    return warnings


def describe() -> dict:
    """Everything above as one JSON-ready dict."""
    import numpy

    blas = blas_libraries()
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return {
        "cpu": {"model": cpu_model(), "vector_level": cpu_vector_level(),
                "cores": os.cpu_count()},
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "blas": blas,
        "numba": numba_info(),
        "openblas_coretype": coretype,
        "kernel_warnings": kernel_warnings(blas, cpu_vector_level(), coretype),
    }


def summary(info: dict) -> str:
    """A few human lines of :func:`describe`'s dict, warnings last."""
    cpu = info["cpu"]
    lines = [f"cpu {cpu['model']} ({cpu['cores']} cores, {cpu['vector_level'] or '?'}); "
             f"python {info['python']}, numpy {info['numpy']}"]
    for library in info["blas"]:
        lines.append(f"blas {library['library']} {library['version']}, kernel "
                     f"{library['kernel']}, {_count(library['threads'], 'thread')} "
                     f"({library['file']})")
    if info["numba"]:
        numba = info["numba"]
        lines.append(f"numba {numba['version']}, {_count(numba['threads'], 'thread')}, "
                     f"threading layer {numba['threading_layer']}")
    if info["openblas_coretype"]:
        lines.append(f"OPENBLAS_CORETYPE={info['openblas_coretype']}")
    lines += [f"warning: {warning}" for warning in info["kernel_warnings"]]
    return "\n".join(lines)
