"""Every tuning number of the numba backend, in one table: the register tile, the cache
blocks of the products, and the thresholds of the Python wrappers.

BLIS keeps every block size of an architecture in one context table
(``config/*/bli_cntx_init_*.c``); this module is ours. Nothing else in the
backend writes a block size: ``_kernels`` and ``_api`` import them from here.

Two kinds of number live here:

- **Frozen into the compiled kernels** (`Blocking`: the tile, ``k_block``,
  ``row_tile``, ``forward_tile``, ``column_tile_rows``, ``narrow_vectors``,
  ``rows_dot_groups``, ``rows_dot_alias``, ``panel_tiles``, ``gather_ahead``,
  ``columns_from``, ``column_rows``, ``b_block``, ``pack_rows``, ``pack_stride``,
  ``refresh_bytes``). numba
  compiles them in as constants, so they are part of the stamp of numba's cache
  (`frozen`, read by
  ``_kernels._drop_stale_cache``): another machine or another override never
  loads code compiled for other numbers. None of them changes a bit of any
  result (see `Blocking`).
- **Read by the Python wrappers at each call** (``PARALLEL_WORK`` and the
  memory thresholds below): speed and memory only.

The tile follows the instruction set numba compiles for (`TILES`), and the k
block the L1 data cache the machine reports (`read_caches`, `k_block_for`),
not the CPU these numbers were measured on. Two environment variables
override them (a bad value raises ``ValueError`` naming the variable)::

    FASTMLP_NUMBA_TILE=6x2x256                     # ROWSxVECTORSxBITS
    FASTMLP_NUMBA_BLOCKING="k_block=128,row_tile=96"

``settings`` in ``_api`` reports all of them, and ``fastmlp bench`` prints them.
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import re
from pathlib import Path
from typing import NamedTuple

from ._simd import Tile, target_features, target_isa

# --- the register tile, per instruction set -------------------------------------------------

# Measured on an AVX-512 Xeon, float32, shapes of a 784-128-128-10 step, one
# core (GFLOP/s, peak 223): 6x2 126-148, 12x2 144-177, 8x3 154-181, 6x4
# 137-175, 4x4 110-125. 6x4 and 12x2 use 24 of the 32 vector registers; 6x4
# covers 64 columns, half a 128-unit layer, with one broadcast per 4 FMAs.
# AVX2 has 16 registers: 6x2 (12 accumulators, 2 loads, 1 broadcast).
# Elsewhere, 16-byte vectors (SSE, NEON) in a 6x2 tile fit 16 registers.
TILES = {
    "avx512": Tile(6, 4, 64),
    "avx2": Tile(6, 2, 32),
    "generic": Tile(6, 2, 16),
}

TILE_VARIABLE = "FASTMLP_NUMBA_TILE"
BLOCKING_VARIABLE = "FASTMLP_NUMBA_BLOCKING"


def choose_tile() -> Tile:
    """The tile for the compile target; ``FASTMLP_NUMBA_TILE=RxVxBITS`` (e.g. ``6x2x256``)
    overrides it (same bits, other speed)."""
    override = os.environ.get(TILE_VARIABLE)
    if override:
        match = re.fullmatch(r"(\d+)x(\d+)x(128|256|512)", override.strip())
        if not match:
            raise ValueError(f"{TILE_VARIABLE}={override!r}: expected ROWSxVECTORSxBITS with "
                             "BITS 128, 256 or 512, e.g. 6x2x256")
        rows, vectors, bits = map(int, match.groups())
        if not (1 <= rows <= 16 and 1 <= vectors <= 8):
            raise ValueError(f"{TILE_VARIABLE}={override!r}: rows must be 1-16, vectors 1-8")
        return Tile(rows, vectors, bits // 8)
    return TILES[target_isa(*target_features())]


# --- the caches the machine reports ----------------------------------------------------------


class Caches(NamedTuple):
    """The data caches of one core as the machine reports them (sizes in bytes)."""

    l1d: int        # the L1 data cache
    l1d_ways: int   # its associativity (0: not reported)
    l2: int         # the L2 (unified) cache
    source: str     # where they were read: "sysfs", "sysconf" or "assumed"

    def __str__(self):
        ways = f" {self.l1d_ways}-way" if self.l1d_ways else ""
        return f"L1d {self.l1d >> 10} KiB{ways}, L2 {self.l2 >> 10} KiB ({self.source})"


# What a machine that reports nothing is taken to have: the smallest L1 data cache
# and L2 of the x86-64 cores of the last decade (Skylake client: 32 KiB 8-way, 256 KiB).
ASSUMED_CACHES = Caches(32 << 10, 8, 256 << 10, "assumed")

SYSFS_CACHES = "/sys/devices/system/cpu/cpu0/cache"


def _size(text: str) -> int:
    # sysfs writes "48K"; a plain number is bytes
    match = re.fullmatch(r"(\d+)\s*([KMG]?)", text.strip())
    if not match:
        raise ValueError(text)
    return int(match.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30}[match.group(2)]


def _from_sysfs(root: Path) -> Caches | None:
    # Linux: index*/{level,type,size,ways_of_associativity} of the first CPU
    found = {}
    for index in sorted(root.glob("index*")):
        try:
            level = int((index / "level").read_text())
            kind = (index / "type").read_text().strip()
            size = _size((index / "size").read_text())
        except (OSError, ValueError):
            continue
        try:
            ways = int((index / "ways_of_associativity").read_text())
        except (OSError, ValueError):
            ways = 0
        if level == 1 and kind in ("Data", "Unified"):
            found["l1d"], found["l1d_ways"] = size, ways
        elif level == 2 and kind in ("Data", "Unified"):
            found["l2"] = size
    if found.get("l1d", 0) <= 0 or found.get("l2", 0) <= 0:
        return None
    return Caches(found["l1d"], found["l1d_ways"], found["l2"], "sysfs")


# glibc's sysconf names for the caches (bits/confname.h), which Python's os.sysconf
# does not know
_SC_LEVEL1_DCACHE_SIZE, _SC_LEVEL1_DCACHE_ASSOC, _SC_LEVEL2_CACHE_SIZE = 188, 189, 191


def _from_sysconf() -> Caches | None:
    # glibc answers these from CPUID where sysfs is hidden (some containers)
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.sysconf.restype = ctypes.c_long
        libc.sysconf.argtypes = [ctypes.c_int]
        l1d, ways, l2 = (libc.sysconf(name) for name in (
            _SC_LEVEL1_DCACHE_SIZE, _SC_LEVEL1_DCACHE_ASSOC, _SC_LEVEL2_CACHE_SIZE))
    except (OSError, AttributeError):
        return None
    if l1d <= 0 or l2 <= 0:
        return None
    return Caches(l1d, max(ways, 0), l2, "sysconf")


def read_caches(root: str | os.PathLike = SYSFS_CACHES) -> Caches:
    """The L1 data cache and the L2 of the first CPU, as the machine reports them.

    Linux's sysfs (``root``: ``/sys/devices/system/cpu/cpu0/cache/index*/``
    ``level``, ``type``, ``size``, ``ways_of_associativity``), else glibc's
    ``sysconf`` (``_SC_LEVEL1_DCACHE_SIZE``, ..., what ``getconf -a`` prints),
    else `ASSUMED_CACHES` (macOS and Windows, for now).
    """
    return _from_sysfs(Path(root)) or _from_sysconf() or ASSUMED_CACHES


# --- the cache blocks ------------------------------------------------------------------------


def k_block_for(caches: Caches, tile: Tile) -> int:
    """``k`` per pass of the tile loop over a panel of ``b``, from the L1 data cache.

    In one pass, the panel's ``k_block`` rows (``tile.vectors * tile.vector_bytes``
    bytes each, whatever the dtype) are read once by every tile of the row tile's
    rows, so they should stay in L1 between them. They get the L1 data cache
    but two of its ways, one left for the tile's rows of ``a`` and one for
    ``c`` (the model of BLIS's analytical blocking, Low et al. 2016), or half
    of it when its ways are not reported; in multiples of 16, between 16 and
    1024.

    Measured on the project's Xeon (48 KiB 12-way L1d: 160; it was 256 on every
    machine before), one core, float32: ``python bench/blocking.py default
    k_block=256 --rounds 6`` at load 2.1-2.2 gave 256 0.92-1.00 times 160's GFLOP/s
    on every product of 784-1024-1024-10 and 784-128-128-10 at batch 128 and 512
    (``W`` read as it lies, ``delta @ W``: 0.92-0.98; on the forward's panels:
    0.96-1.00); 96 gave 0.94-1.04. Smaller blocks lose: 48 up to 10 %, 12 20-35 %
    (the sums reloaded every pass). A GEMM experiment on 64-128 rows by 784-1024
    by 1024 at load 4.0-4.2 had 160 7-8 % ahead of 256 as ``W`` lies, 5-8 % on
    panels, with MKL in the same processes 1-3 % apart.
    """
    if caches.l1d_ways < 4:
        usable = caches.l1d // 2
    else:
        usable = caches.l1d * (caches.l1d_ways - 2) // caches.l1d_ways
    rows = usable // (tile.vectors * tile.vector_bytes)
    return max(16, min(1024, rows - rows % 16))


# rows_dot_alias where no row length makes a group's rows share the L1's sets: longer
# than any row (its LIMITS bound; fastmlp bench prints no alias for it)
NO_ALIAS = 1 << 30


def rows_dot_alias_for(caches: Caches, tile: Tile, groups: int) -> int:
    """The smallest power of two ``K`` from which ``predict_one`` takes the rows of ``W``
    (``K`` elements each) one vector of them at a time rather than ``groups``, or
    ``NO_ALIAS``.

    ``rows_dot`` reads a block of every row of its groups, ``groups`` vectors'
    lanes of rows (float32 lanes: float64 rows are twice the bytes and half as
    many, the same ``K``), before it transposes them. Rows ``4 K`` bytes apart
    fall into ``way / gcd(4 K, way)`` sets of the L1 data cache (``way`` its
    size over its ways); where that puts more of the rows into one set than it
    has ways, each evicts another's line before its next pieces are read.
    Measured on a 2-core EPYC (Zen 4, AVX-512, 32 KiB 8-way L1d; 512 here), one
    sample through 784-W-W-10, float32, two groups against one: W = 512 74 us
    against 60, 1024 263-400 against 218-227, 1536 460 against 323, 2048 1648
    against 1049; 128 11.8 against 12.5, 192 17 against 19, 256 to 768 but
    512 alike.
    """
    ways = caches.l1d_ways or ASSUMED_CACHES.l1d_ways
    way = max(64, caches.l1d // ways)
    rows = groups * tile.lanes(4)
    k = 1
    while 4 * k <= way:  # (longer rows fall into no fewer sets)
        if -(-rows // (way // math.gcd(4 * k, way))) > ways:
            return k
        k *= 2
    return NO_ALIAS


class Blocking(NamedTuple):
    """The numbers frozen into the compiled products (see the module's docstring).

    None of them changes a result's bits: every element of a product is one
    FMA chain in ``k`` order from 0 (``_simd.make_tile_kernel``), and these
    only decide which rows, columns and ``k`` one call of the tile takes; a
    pass over ``k`` that continues an earlier one reloads the sums it stored,
    which continues the chain exactly. ``tests/test_simd.py`` compiles other
    values in subprocesses and compares the bits.
    """

    tile: Tile
    # k per pass over a panel of b (k_block_for, from the L1 data cache)
    k_block: int
    # rows of a product's cache tile: its epilogue (bias and ReLU, the ReLU mask)
    # runs on them while they are in cache, and each pass over k reads a's rows of
    # them once per panel of b
    row_tile: int
    # rows of the forward pass that go through every layer before the next ones start
    forward_tile: int
    # rows of the tile one vector wide (products one vector wide)
    column_tile_rows: int
    # column blocks at most this many vectors wide run on one-vector tiles side by side
    narrow_vectors: int
    # vectors of W's rows that one call of rows_dot takes at once (predict_one)
    rows_dot_groups: int
    # W's row length (elements) at whose multiples predict_one takes one vector of its
    # rows at a time (rows_dot_alias_for)
    rows_dot_alias: int
    # tiles' columns per panel of a paneled b: panel_width = panel_tiles * tile columns
    panel_tiles: int
    # rows ahead of the one it copies that the batch gather asks the CPU for
    gather_ahead: int
    # units from which the fused epoch's forward product runs by columns
    # (kernels.forward_by_columns)
    columns_from: int
    # rows of a worker's batch that a forward product by columns takes at a time, and
    # the most a worker for which its deltas are transposed for the weight gradient
    column_rows: int
    # bytes of a product's b (its K rows by some columns) that every row tile reads
    # before the next columns of b (gemm_into)
    b_block: int
    # rows from which a product of long k whose b's rows lie a multiple of pack_stride
    # bytes apart copies each column block of b into panels first (gemm_into)
    pack_rows: int
    pack_stride: int
    # bytes of W's rows that the fused epoch's update takes at a time where it also
    # refreshes a copy of them (kernels.w_panel): the copy reads them while in L1
    refresh_bytes: int

    def panel_width(self, itemsize: int) -> int:
        """Columns of ``b`` in one panel of ``gemm_into``'s panel layout."""
        return self.panel_tiles * self.tile.vectors * self.tile.lanes(itemsize)


# The rules that give each number from the tile and the caches, and the measurement
# behind each (the project's 2-core AVX-512 Xeon: 48 KiB 12-way L1d, 2 MiB L2).
def default_blocking(tile: Tile, caches: Caches, overrides=None) -> Blocking:
    """The numbers for ``tile`` on a machine with ``caches``; ``overrides`` (a dict by
    name) replace some, and the rules of the others follow them (``forward_tile`` is 5
    row tiles of the row tile given, ``pack_rows`` 4)."""
    given = dict(overrides or {})

    def number(name, rule):
        return given.pop(name) if name in given else rule

    # Row tile: 8 tiles of rows (48 on AVX-512). `python bench/blocking.py default
    # row_tile=96` (one core, float32, 4 rounds at load 1.9-2.1): 96 rows gave 0.93-1.01
    # times 48's GFLOP/s on the 128-row products of 784-1024-1024-10 and 784-128-128-10
    # (an earlier one-core run had 96 5-17 % ahead at 1024 units, 24 8-15 % behind);
    # two-thread forward passes and epochs at load 2.5-5 showed no difference either.
    row_tile = number("row_tile", 8 * tile.rows)
    # A 784 x 128 layer: one group 8.1 us, two 6.7, four 7.8 (64 vectors of W then no
    # longer fit in the 32 registers). Measured on AVX-512 only.
    rows_dot_groups = number("rows_dot_groups", 2)
    blocking = Blocking(
        tile=tile,
        # (k_block_for's docstring has the rule and its measurement)
        k_block=number("k_block", k_block_for(caches, tile)),
        row_tile=row_tile,
        # Rows through every layer before the next: their activations are read back
        # from the core's cache, not from memory, and the layers' panels stay in it
        # (MNIST's 60 000 rows: 55 ms, layer by layer 58 ms).
        forward_tile=number("forward_tile", 5 * row_tile),
        # A tile of one vector for products one vector wide (the output layer's 10
        # units, a last column block, a forward product by columns of 16 rows a
        # worker at batch 32), of 8 rows: 8 FMA chains keep two FMA units of 4 cycles'
        # latency busy, and each more row of a is one more line in L1 at once (rows
        # 4 KiB apart share one set, 8 ways on the L1s we know). One core of a 2-core
        # EPYC (Zen 4, AVX-512, 32 KiB 8-way L1d), float32 GFLOP/s, 24 rows -> 12 ->
        # 8 (24 was the AVX-512 tile's accumulators): (64x1024)(1024x10) 17.6 -> 38
        # -> 66, (2048x2048)(2048x16) 26 -> 58 -> 84 (MKL 46-53), (1024x1024)
        # (1024x16) 26 -> 62 -> 100-110, (512x512)(512x16) 67 -> 100 -> 88-111,
        # (64x128)(128x10) 55-57 -> 56-57 -> 66, (2048x784)(784x16) 102 -> 102-103
        # -> 107-110; 784-2048-2048-10 SGD epochs at batch 32 24.5-25.6 s -> 18.5-22.8.
        column_tile_rows=number("column_tile_rows", min(tile.rows * tile.vectors, 8)),
        # Column blocks narrower than the tile's vectors less one (a last block of 17-48
        # float32 columns on AVX-512, the 36 of a 100-unit layer; a product by columns of
        # 32 rows) on one-vector tiles side by side rather than on the tile with its
        # other vectors masked off (each vector one more pass over a's rows, which the
        # tile's rows keep in L1). One core of a 2-core EPYC (Zen 4, AVX-512), float32
        # GFLOP/s: (64x784)(784x32) 44 -> 113, (64x784)(784x48) 66 -> 113,
        # (64x784)(784x100) 74 -> 97, (100x100)(100x100) 73 -> 94, (1024x1024)
        # (1024x32) 45 -> 98-107. A whole tile's width stays on the tile: one-vector
        # tiles took (64x1024)(1024x1024) from 99 to 69.
        narrow_vectors=number("narrow_vectors", max(1, tile.vectors - 1)),
        rows_dot_groups=rows_dot_groups,
        rows_dot_alias=number("rows_dot_alias",
                              rows_dot_alias_for(caches, tile, rows_dot_groups)),
        # One tile's columns (64 float32 on AVX-512): each tile reads one contiguous
        # panel, a row after the other.
        panel_tiles=number("panel_tiles", 1),
        # A random row of a large x is asked for this many rows before it is copied.
        gather_ahead=number("gather_ahead", 4),
        # Forward products by columns (kernels.forward_by_columns) from 384 units: SGD
        # epochs at batch 128, 2 threads, by columns against by rows: 784-256-256-10
        # 1.02-1.05 times the time, 784-384-384-10 0.94-0.99, 784-512-512-10 0.92-0.99,
        # 784-1024-1024-10 0.85-0.87 (products 2.83 -> 2.41 s, the update 0.32 -> 0.19 s
        # without W.T to refresh), 784-2048-2048-10 0.78; every layer of 784-128-128-10
        # by columns 1.12-1.13 (the transpositions cost more than the products gain).
        columns_from=number("columns_from", 384),
        # A worker's rows by columns at a time: their a.T and z.T at 1024 units (8 KiB a
        # row) in half the L2 (128 rows of 2 MiB). At batch 1000 (500 rows a worker)
        # the transpositions of all of them at once cost 0.31 s an epoch, of 128 rows
        # at a time 0.24 s. Also the most rows a worker for which the deltas are
        # transposed for the weight gradients (at batch 128, 64 rows, 0.88-0.95 times
        # the epoch's time; at batch 1000 they cost 0.12 s for no faster product).
        column_rows=number("column_rows",
                           max(16, min(512, caches.l2 // (2 * 2048 * 4) // 16 * 16))),
        # Half the L2: a product's b (K rows by some columns) that every row tile reads
        # before its next columns, so that a b larger than the L2 is not fetched from
        # memory again by each row tile (BLIS's nc). The forward pass of all of MNIST,
        # 2 threads, against b read whole by each row tile: 784-1024-1024-10 703-722 ms
        # against 784-803, 784-512-512-10 245-252 against 260-263, 784-2048-2048-10
        # 2429-2458 against 2473-2618; a quarter or an eighth of the L2 at 1024 units
        # 723-732 ms. The epochs' products at batch 128 and 1000 (the 1024-unit
        # backward's W, a batch-1000 gradient's activations) took the same time either
        # way (784-1024-1024-10: 2.40-2.52 s against 2.43-2.56). Where not even one
        # tile's columns of b fit (k of tens of thousands: the backward pass of 20 000
        # rows), b is read whole: blocks of it read a's rows again for each, 695 -> 1190
        # ms at 1024 units.
        b_block=number("b_block", caches.l2 // 2),
        # From 4 row tiles, b's rows a multiple of 4 KiB apart (the L1 has 64 sets of
        # 64 bytes on every x86-64 core of the last decade: such rows share their sets),
        # k at least 2 k blocks, and one tile's columns of b within b_block. One core,
        # 480 or 500 rows, k 1000-1024, as the batch-1000 epoch at 1024 units has them:
        # delta @ W 99-128 -> 140-149 GFLOP/s (MKL 158), a (480 x 1000)(1000 x 1024)
        # product 106-110 -> 131-145, the weight gradient (delta read transposed)
        # 95-97 -> 117-120; 784-1024-1024-10 at batch 1000, 2 threads: 0.91-1.02 times
        # the epoch's time over 7 rounds (median 0.94), 784-2048-2048-10 0.90-0.98.
        # Every plain b packed (rows 512 or 3136 bytes apart too) made 784-128-128-10
        # and 784-512-512-10 at batch 1000 5-15 % slower. The same rows and k also pack a
        # transposed a into micro-panels (the weight gradient's delta.T at batch 1000):
        # on a 2-core EPYC (Zen 3, AVX2, 32 KiB 8-way L1d), SGD epochs of
        # 784-1024-1024-10 at batch 1000 5.0-6.2 -> 4.1-4.5 s (products 4.4-5.2 ->
        # 3.5-3.7), 784-512-512-10 2.10 -> 1.92; batch 128 (k 128, not packed) as before.
        pack_rows=number("pack_rows", 4 * row_tile),
        pack_stride=number("pack_stride", 4096),
        # A third of the L1 data cache (16 KiB of 48): the update and the refresh of
        # W's panels a few rows at a time, each copied while in L1, against all of a
        # worker's rows updated and then copied (SGD, batch 128, 2 threads, the
        # update's part of the epoch): 784-1024-1024-10 0.28-0.29 s against 0.33-0.34,
        # in float64 0.61-0.64 against 0.69-0.70, 784-2048-2048-10 1.23-1.34 against
        # 1.36-1.38; 128 KiB at a time 1.29-1.33 at 2048 units.
        refresh_bytes=number("refresh_bytes", caches.l1d // 3),
    )
    if given:
        raise TypeError(f"no such blocking number: {', '.join(given)}")
    return blocking


# What FASTMLP_NUMBA_BLOCKING may set, and the values each may take.
LIMITS = {"k_block": (1, 1 << 20), "row_tile": (1, 1 << 20), "forward_tile": (1, 1 << 20),
          "column_tile_rows": (1, 32), "narrow_vectors": (1, 64), "rows_dot_groups": (1, 8),
          "rows_dot_alias": (1, NO_ALIAS), "panel_tiles": (1, 64), "gather_ahead": (0, 64),
          "columns_from": (1, 1 << 30),
          "column_rows": (1, 1 << 20), "b_block": (1, 1 << 40),
          "pack_rows": (1, 1 << 40), "pack_stride": (1, 1 << 40),
          "refresh_bytes": (1, 1 << 40)}


def parse_overrides(text: str) -> dict[str, int]:
    """``FASTMLP_NUMBA_BLOCKING``'s ``name=value,...`` as a dict; ``ValueError`` naming the
    variable and the problem for an unknown name, a repeated one, or a value that is
    not an integer in its range (`LIMITS`)."""
    overrides: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = (part.strip() for part in item.partition("="))
        if not equals:
            raise ValueError(f"{BLOCKING_VARIABLE}={text!r}: expected name=value items, "
                             f"got {item!r}")
        if name not in LIMITS:
            raise ValueError(f"{BLOCKING_VARIABLE}={text!r}: unknown name {name!r}; the names "
                             f"are {', '.join(LIMITS)}")
        if name in overrides:
            raise ValueError(f"{BLOCKING_VARIABLE}={text!r}: {name} is given twice")
        low, high = LIMITS[name]
        if not re.fullmatch(r"\d+", value) or not low <= int(value) <= high:
            raise ValueError(f"{BLOCKING_VARIABLE}={text!r}: {name} must be an integer from "
                             f"{low} to {high}, got {value!r}")
        overrides[name] = int(value)
    return overrides


def choose(tile: Tile | None = None, caches: Caches | None = None,
           environ=os.environ) -> Blocking:
    """The blocking to compile: `default_blocking` for the target's tile (`choose_tile`)
    and the machine's caches (`read_caches`), with ``FASTMLP_NUMBA_BLOCKING``'s values."""
    tile = choose_tile() if tile is None else tile
    caches = read_caches() if caches is None else caches
    return default_blocking(tile, caches, parse_overrides(environ.get(BLOCKING_VARIABLE, "")))


CACHES = read_caches()
BLOCKING = choose(caches=CACHES)
TILE = BLOCKING.tile


def frozen() -> str:
    """What the compiled kernels freeze in, as text for the stamp of numba's cache."""
    return repr(BLOCKING)


# --- the Python wrappers' thresholds (speed and memory only) --------------------------------

# Products (and forward passes) of at least this many multiply-adds split their
# rows across a pool of threads (FASTMLP_NUMBA_PARALLEL_WORK overrides it). Only
# speed depends on it: every split gives the same bits. Measured on 2 cores: a
# 784-128-128-10 forward pass of 256 rows ran faster whole, of 1000 rows split;
# it splits from 272 rows. A fused epoch whose products come to fewer runs one worker
# in the calling thread (_fused): on scikit-learn's iris, 0.31 ms an epoch against 0.60
# with a thread started and joined.
PARALLEL_WORK_VARIABLE = "FASTMLP_NUMBA_PARALLEL_WORK"


def _parallel_work(environ=os.environ) -> int:
    text = environ.get(PARALLEL_WORK_VARIABLE, "").strip()
    if not text:
        return 32_000_000
    if not re.fullmatch(r"\d+", text.replace("_", "")) or int(text.replace("_", "")) < 1:
        raise ValueError(f"{PARALLEL_WORK_VARIABLE}={text!r}: expected a positive integer "
                         "(multiply-adds)")
    return int(text.replace("_", ""))


PARALLEL_WORK = _parallel_work()

# The overrides in effect: the variables as they were when the numbers were chosen.
OVERRIDES = {name: os.environ[name] for name in (TILE_VARIABLE, BLOCKING_VARIABLE,
                                                 PARALLEL_WORK_VARIABLE)
             if os.environ.get(name, "").strip()}

# Work arrays start at a multiple of this many bytes: a cache line, and an AVX-512
# vector, so that no vector load of a product's rows spans two lines (a 64-row x 784
# product ran at 147 GFLOP/s on one core with its B 16 bytes off, 177 aligned).
ALIGNMENT = 64

# Outputs at least this large reuse the memory of an earlier output that nothing
# references any more (_api._fresh); smaller ones are plain np.empty. (MNIST's
# 60 000-row forward pass: 62-65 ms with glibc told to keep freed memory, 70-160 ms
# without.)
REUSE_BYTES = 4 << 20
# At most this many such buffers, and this many bytes of them, are kept per thread,
# the least recently used dropped first.
REUSE_KEPT = 8
REUSE_KEPT_BYTES = 256 << 20

# Panel copies of at most this many bytes are kept as a thread's scratch, and at
# most this many of them (a larger layer's product costs far more than faulting its
# copy's memory in; a fresh copy of a 784 x 128 layer faulted its memory in on every
# call: a forward pass of 64 rows took 330 us, half of it outside the products).
PANEL_KEEP_BYTES = 16 << 20
PANELS_KEPT = 16
