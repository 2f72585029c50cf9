"""What benchmarks say they ran on, and the warning about a forced old OpenBLAS kernel."""

import json

from fastmlp.machine import (
    cpu_vector_level,
    describe,
    kernel_level,
    kernel_warnings,
    summary,
)

HASWELL = {"library": "openblas", "version": "0.3.31", "kernel": "Haswell", "threads": 2,
           "threading_layer": "pthreads", "file": "libscipy_openblas64_.so"}


def test_cpu_level_comes_from_the_widest_flag():
    assert cpu_vector_level({"sse2", "avx", "avx2", "fma", "avx512f"}) == "avx512"
    assert cpu_vector_level({"sse2", "avx", "avx2", "fma"}) == "avx2"
    assert cpu_vector_level({"sse2"}) == "sse"
    assert cpu_vector_level(set()) is None


def test_openblas_kernel_names_map_to_their_vector_level():
    assert kernel_level("Haswell") == "avx2"
    assert kernel_level("SkylakeX") == "avx512"
    assert kernel_level("Zen") == "avx2"
    assert kernel_level("Sandybridge") == "avx"
    assert kernel_level("Nehalem") == "sse"
    assert kernel_level(None) is None and kernel_level("NewCore2031") is None


def test_an_older_kernel_than_the_cpu_is_named_with_its_cause():
    [warning] = kernel_warnings([HASWELL], "avx512", "Haswell")
    assert "Haswell kernel (avx2) on a CPU with avx512" in warning
    assert "OPENBLAS_CORETYPE=Haswell forces it" in warning
    [warning] = kernel_warnings([HASWELL], "avx512", None)
    assert "may predate this CPU" in warning


def test_a_native_or_unknown_kernel_gives_no_warning():
    assert kernel_warnings([HASWELL], "avx2", "Haswell") == []
    assert kernel_warnings([{**HASWELL, "kernel": "SkylakeX"}], "avx512", None) == []
    assert kernel_warnings([{**HASWELL, "kernel": None}], "avx512", None) == []
    assert kernel_warnings([HASWELL], None, None) == []


def test_describe_is_json_ready_and_summary_names_each_blas_and_numba():
    info = describe()
    assert json.loads(json.dumps(info)) == info
    assert info["cpu"]["cores"] >= 1 and info["cpu"]["model"]
    text = summary(info)
    assert text.splitlines()[0].startswith(f"cpu {info['cpu']['model']}")
    for library in info["blas"]:
        assert f"kernel {library['kernel']}, {library['threads']} threads" in text
    if info["numba"]:
        assert f"numba {info['numba']['version']}" in text
    forced = summary({**info, "openblas_coretype": "Haswell",
                      "kernel_warnings": ["libx runs OpenBLAS's Haswell kernel"]})
    assert "OPENBLAS_CORETYPE=Haswell" in forced
    assert forced.splitlines()[-1] == "warning: libx runs OpenBLAS's Haswell kernel"
