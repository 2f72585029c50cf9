"""The numba backend's table of tuning numbers (``_blocking``): the caches it reads, the
block sizes it derives from them, its overrides and what ``settings`` reports.

That the bits do not depend on any of these numbers is tested in
``test_simd.py``, which compiles other values in subprocesses.
"""

import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numba")
from fastmlp.backends.numba import _api, _blocking, _kernels  # noqa: E402
from fastmlp.backends.numba._simd import Tile  # noqa: E402

AVX512, AVX2, GENERIC = (_blocking.TILES[isa] for isa in ("avx512", "avx2", "generic"))


def _cache_dir(root, entries):
    # a fake /sys/devices/system/cpu/cpu0/cache: {index: {file: text}}
    for index, files in entries.items():
        folder = root / f"index{index}"
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text + "\n")
    return root


def _index(level, kind, size, ways=None):
    files = {"level": str(level), "type": kind, "size": size}
    if ways is not None:
        files["ways_of_associativity"] = str(ways)
    return files


def test_caches_are_read_from_sysfs(tmp_path):
    root = _cache_dir(tmp_path, {0: _index(1, "Data", "48K", 12),
                                 1: _index(1, "Instruction", "64K", 16),
                                 2: _index(2, "Unified", "2048K", 16),
                                 3: _index(3, "Unified", "491520K", 16)})
    assert _blocking.read_caches(root) == _blocking.Caches(48 << 10, 12, 2 << 20, "sysfs")
    assert str(_blocking.read_caches(root)) == "L1d 48 KiB 12-way, L2 2048 KiB (sysfs)"


def test_a_cache_without_its_ways_or_in_megabytes_is_read(tmp_path):
    root = _cache_dir(tmp_path, {0: _index(1, "Data", "32K"), 2: _index(2, "Unified", "1M")})
    assert _blocking.read_caches(root) == _blocking.Caches(32 << 10, 0, 1 << 20, "sysfs")


@pytest.mark.parametrize("entries", [
    {},                                                              # no sysfs at all
    {0: _index(1, "Data", "48K", 12)},                               # no L2
    {0: _index(1, "Data", "garbage", 12), 2: _index(2, "Unified", "2048K")},
    {0: _index(1, "Instruction", "32K"), 2: _index(2, "Unified", "2048K")},
])
def test_without_sysfs_the_caches_come_from_sysconf_or_are_assumed(entries, tmp_path,
                                                                    monkeypatch):
    root = _cache_dir(tmp_path / "cache", entries)
    from_sysconf = _blocking._from_sysconf()
    expected = from_sysconf or _blocking.ASSUMED_CACHES
    assert _blocking.read_caches(root) == expected
    monkeypatch.setattr(_blocking, "_from_sysconf", lambda: None)
    assert _blocking.read_caches(root) == _blocking.ASSUMED_CACHES
    assert _blocking.read_caches(tmp_path / "nowhere") == _blocking.ASSUMED_CACHES


def test_sysconf_reports_what_glibc_knows():
    if platform.libc_ver()[0] != "glibc":
        assert _blocking._from_sysconf() is None
        return
    caches = _blocking._from_sysconf()
    if caches is None:
        pytest.skip("this glibc's sysconf does not report cache sizes")
    assert caches.source == "sysconf" and caches.l1d >= 4096 and caches.l2 >= caches.l1d
    getconf = shutil.which("getconf")
    if getconf:
        reported = subprocess.run([getconf, "LEVEL1_DCACHE_SIZE"], capture_output=True,
                                  text=True).stdout.strip()
        assert reported == str(caches.l1d)


@pytest.mark.parametrize("caches, tile, k_block", [
    # 48 KiB 12-way (the project's Xeon), 256-byte panel rows: 10 ways of 4 KiB / 256
    (_blocking.Caches(48 << 10, 12, 2 << 20, "sysfs"), AVX512, 160),
    # 32 KiB 8-way (Skylake client), AVX-512's 256-byte rows: 6 ways of 4 KiB / 256 = 96
    (_blocking.Caches(32 << 10, 8, 1 << 20, "sysfs"), AVX512, 96),
    # the same cache, AVX2's 64-byte rows
    (_blocking.Caches(32 << 10, 8, 256 << 10, "sysfs"), AVX2, 384),
    # ways not reported: half the cache, 16 KiB / 64 = 256
    (_blocking.Caches(32 << 10, 0, 256 << 10, "sysfs"), AVX2, 256),
    # 16-byte vectors: 24 KiB / 32 = 768
    (_blocking.Caches(32 << 10, 8, 256 << 10, "sysfs"), GENERIC, 768),
    # rounded down to a multiple of 16, and kept between 16 and 1024
    (_blocking.Caches(48 << 10, 12, 2 << 20, "sysfs"), Tile(5, 3, 32), 416),
    (_blocking.Caches(1 << 10, 2, 2 << 20, "sysfs"), AVX512, 16),
    (_blocking.Caches(1 << 20, 16, 2 << 20, "sysfs"), GENERIC, 1024),
])
def test_the_k_block_follows_the_l1_data_cache(caches, tile, k_block):
    assert _blocking.k_block_for(caches, tile) == k_block


@pytest.mark.parametrize(("caches", "tile", "groups", "alias"), [
    # 32 rows 2 KiB apart share 2 of the 64 sets, 16 rows a set: more than 8 (or 12) ways
    (_blocking.Caches(32 << 10, 8, 1 << 20, "sysfs"), AVX512, 2, 512),
    (_blocking.Caches(48 << 10, 12, 2 << 20, "sysfs"), AVX512, 2, 512),
    (_blocking.Caches(32 << 10, 0, 1 << 20, "sysconf"), AVX512, 2, 512),  # taken as 8-way
    # 16 rows 2 KiB apart, 8 a set: they fit; 4 KiB apart, all 16 in one
    (_blocking.Caches(32 << 10, 8, 512 << 10, "sysfs"), AVX2, 2, 1024),
    (_blocking.Caches(32 << 10, 8, 1 << 20, "sysfs"), AVX512, 1, 1024),
    (_blocking.Caches(32 << 10, 8, 1 << 20, "sysfs"), AVX512, 3, 256),
    # 8 rows fit one set's 8 ways however far apart: never
    (_blocking.Caches(32 << 10, 8, 512 << 10, "sysfs"), AVX2, 1, _blocking.NO_ALIAS),
])
def test_predict_one_takes_one_vector_of_rows_where_its_rows_would_share_the_l1_sets(
        caches, tile, groups, alias):
    assert _blocking.rows_dot_alias_for(caches, tile, groups) == alias


def test_the_defaults_follow_the_tile():
    caches = _blocking.Caches(48 << 10, 12, 2 << 20, "sysfs")
    blocking = _blocking.default_blocking(AVX512, caches)
    assert blocking == _blocking.Blocking(tile=AVX512, k_block=160, row_tile=48, forward_tile=240,
                                          column_tile_rows=8, narrow_vectors=3,
                                          rows_dot_groups=2, rows_dot_alias=512, panel_tiles=1,
                                          gather_ahead=4, columns_from=384, column_rows=128,
                                          b_block=1 << 20, pack_rows=192, pack_stride=4096,
                                          refresh_bytes=16 << 10)
    assert blocking.panel_width(4) == 64 and blocking.panel_width(8) == 32
    assert _blocking.default_blocking(AVX2, caches).column_tile_rows == 8
    assert _blocking.default_blocking(AVX2, caches).narrow_vectors == 1
    assert _blocking.default_blocking(Tile(2, 3, 32), caches).column_tile_rows == 6
    assert _blocking.default_blocking(AVX2, caches)._replace(panel_tiles=3).panel_width(4) == 48


def test_an_override_replaces_only_the_numbers_it_names():
    caches = _blocking.Caches(48 << 10, 12, 2 << 20, "sysfs")
    blocking = _blocking.choose(AVX512, caches, {
        "FASTMLP_NUMBA_BLOCKING": " k_block=256 , row_tile=96,panel_tiles=2,"})
    assert blocking == _blocking.default_blocking(AVX512, caches)._replace(
        k_block=256, row_tile=96, forward_tile=5 * 96, panel_tiles=2, pack_rows=4 * 96)
    assert _blocking.choose(AVX512, caches, {
        "FASTMLP_NUMBA_BLOCKING": "row_tile=96,forward_tile=100"}).forward_tile == 100
    assert _blocking.choose(AVX512, caches, {"FASTMLP_NUMBA_BLOCKING": ""}) == \
        _blocking.default_blocking(AVX512, caches)


@pytest.mark.parametrize("text, message", [
    ("k_block", "expected name=value items, got 'k_block'"),
    ("kblock=128", "unknown name 'kblock'; the names are k_block, row_tile"),
    ("k_block=128,k_block=64", "k_block is given twice"),
    ("k_block=0", "k_block must be an integer from 1 to 1048576, got '0'"),
    ("k_block=-5", "k_block must be an integer from 1 to"),
    ("k_block=1.5", "k_block must be an integer from 1 to"),
    ("column_tile_rows=33", "column_tile_rows must be an integer from 1 to 32, got '33'"),
    ("rows_dot_groups=", "rows_dot_groups must be an integer from 1 to 8, got ''"),
])
def test_a_bad_blocking_override_names_the_variable_and_the_problem(text, message):
    with pytest.raises(ValueError, match="FASTMLP_NUMBA_BLOCKING=") as error:
        _blocking.parse_overrides(text)
    assert message in str(error.value)


@pytest.mark.parametrize("text", ["many", "-1", "0", "1e6"])
def test_a_bad_parallel_work_names_the_variable(text):
    with pytest.raises(ValueError, match=f"FASTMLP_NUMBA_PARALLEL_WORK={text!r}: expected a "
                                         "positive integer"):
        _blocking._parallel_work({"FASTMLP_NUMBA_PARALLEL_WORK": text})
    assert _blocking._parallel_work({"FASTMLP_NUMBA_PARALLEL_WORK": "5_000"}) == 5000
    assert _blocking._parallel_work({}) == 32_000_000


def test_the_kernels_compile_the_table_s_numbers():
    blocking = _blocking.BLOCKING
    compiled = (_kernels.TILE, _kernels.K_BLOCK, _kernels.ROW_TILE, _kernels.FORWARD_TILE,
                _kernels.COLUMN_TILE_ROWS, _kernels.NARROW, _kernels.ROWS_DOT_GROUPS,
                _kernels.ROWS_DOT_ALIAS, _kernels.PANEL_TILES,
                _kernels.GATHER_AHEAD, _kernels.COLUMNS_FROM, _kernels.COLUMN_ROWS,
                _kernels.B_BLOCK, _kernels.PACK_ROWS, _kernels.PACK_STRIDE,
                _kernels.REFRESH_BYTES)
    assert compiled == tuple(blocking)
    assert _kernels.panel_width("float32") == blocking.panel_width(4)
    assert _api.PARALLEL_WORK == _blocking.PARALLEL_WORK
    if not os.environ.get("FASTMLP_NUMBA_BLOCKING"):
        assert blocking == _blocking.default_blocking(blocking.tile, _blocking.read_caches())


def test_settings_report_the_blocking_the_caches_and_the_overrides():
    settings = _api.settings()
    blocking = _blocking.BLOCKING
    assert settings["tile"] == str(blocking.tile)
    names = ("k_block", "row_tile", "forward_tile", "column_tile_rows", "narrow_vectors",
             "rows_dot_groups", "rows_dot_alias",
             "gather_ahead", "columns_from", "column_rows", "b_block",
             "pack_rows", "pack_stride", "refresh_bytes")
    assert {name: settings[name] for name in names} == {name: getattr(blocking, name)
                                                         for name in names}
    assert settings["panel_width"] == blocking.panel_width(4)
    assert settings["caches"] == _blocking.CACHES._asdict()
    assert settings["overrides"] == {
        name: os.environ[name] for name in ("FASTMLP_NUMBA_TILE", "FASTMLP_NUMBA_BLOCKING",
                                            "FASTMLP_NUMBA_PARALLEL_WORK")
        if os.environ.get(name)}


def test_the_overrides_reach_the_kernels_and_the_settings():
    # in a fresh process (the numbers are chosen at import); nothing is compiled
    code = ("import json; from fastmlp.backends.numba import _kernels, settings; "
            "print(json.dumps([_kernels.K_BLOCK, _kernels.ROW_TILE, str(_kernels.TILE), "
            "settings()]))")
    env = {**os.environ, "FASTMLP_NUMBA_BLOCKING": "k_block=96,row_tile=30",
           "FASTMLP_NUMBA_TILE": "4x2x256", "FASTMLP_NUMBA_PARALLEL_WORK": "1000"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    k_block, row_tile, tile, settings = json.loads(done.stdout)
    assert (k_block, row_tile, tile) == (96, 30, "4x2x256bit")
    assert (settings["k_block"], settings["row_tile"], settings["parallel_work"]) == (96, 30, 1000)
    assert settings["forward_tile"] == 5 * 30  # derived from the row tile overridden
    assert settings["overrides"] == {"FASTMLP_NUMBA_TILE": "4x2x256",
                                     "FASTMLP_NUMBA_BLOCKING": "k_block=96,row_tile=30",
                                     "FASTMLP_NUMBA_PARALLEL_WORK": "1000"}


def test_a_bad_override_fails_the_import_naming_the_variable():
    env = {**os.environ, "FASTMLP_NUMBA_BLOCKING": "k_blok=96"}
    done = subprocess.run([sys.executable, "-c", "import fastmlp.backends.numba"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "ValueError: FASTMLP_NUMBA_BLOCKING='k_blok=96': unknown name 'k_blok'" in done.stderr


def test_bench_prints_the_blocking_and_where_it_came_from():
    from fastmlp.benchmark import numba_settings_lines

    blocking, caches = _blocking.BLOCKING, _blocking.CACHES
    text = "\n".join(numba_settings_lines(_api.settings()))
    assert f"{blocking.tile} register tiles (FASTMLP_NUMBA_TILE)" in text
    assert f"{blocking.row_tile} rows per cache tile, k in passes of {blocking.k_block}" in text
    assert f"L1d {caches.l1d >> 10} KiB" in text and caches.source in text
    assert f"forward tile {blocking.forward_tile} rows" in text
    assert f"panels {blocking.panel_width(4)} float32 wide" in text
    assert "FASTMLP_NUMBA_BLOCKING" in text and "FASTMLP_NUMBA_PARALLEL_WORK" in text
    overridden = {**_api.settings(), "overrides": {"FASTMLP_NUMBA_BLOCKING": "k_block=96"}}
    assert "overridden: FASTMLP_NUMBA_BLOCKING=k_block=96" in numba_settings_lines(overridden)[-1]
    # a run saved before the blocking was recorded
    old = {"parallel_work": 32000000, "tile": "6x4x512bit", "row_tile": 48, "k_block": 256}
    assert numba_settings_lines(old) == [
        "numba backend: 6x4x512bit register tiles (FASTMLP_NUMBA_TILE), 48 rows per cache "
        "tile, k in passes of 256",
        "  products of >= 32,000,000 multiply-adds split across threads "
        "(FASTMLP_NUMBA_PARALLEL_WORK)"]


def test_the_blocking_bench_times_each_value_in_turns(bench_script, capsys):
    # bench/blocking.py: each value in a process of its own, compiled with it (a bad
    # value fails naming it), the table of medians and ratios to the first value
    blocking = bench_script("blocking.py")
    assert blocking.main(["default", "k_block=16", "--rounds", "2", "--shapes", "6x40x64"]) == 0
    out, err = capsys.readouterr()
    assert err.count("round ") == 4 and "round 2, k_block=16" in err
    lines = out.splitlines()
    assert lines[0] == "GFLOP/s, one core, median (range); ratio of medians to default"
    products = {line.split("  ")[0].strip(): line for line in lines[2:-1]}
    assert set(products) == {"6x40x64 panels", "6x40x64 as it lies", "6x40x64 a transposed"}
    assert all(line.split()[-1] and " 1.00 " in line for line in products.values())
    assert lines[-1].startswith("load average (1 min) at the runs: ")
    with pytest.raises(RuntimeError, match="FASTMLP_NUMBA_BLOCKING='k_block=0'.*k_block must be"):
        blocking.run_once("k_block=0", [(6, 40, 64)], Path(os.devnull))
