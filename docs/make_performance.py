"""Render the saved ``fastmlp bench`` run of ``_data/bench.json`` for the performance page.

Writes ``_generated/bench_tables.md`` (the machine and the tables, included by
``user_guide/performance.md``) and ``_generated/bench.png`` (the same run as
bar charts, drawn by :func:`fastmlp.benchmark.plot`). ``conf.py`` runs it at
every build; to refresh the numbers, record a new run with
``record_bench.py`` (which saves ``fastmlp bench --json``) and build again.
Nothing here is typed in by hand: every number comes from the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastmlp.benchmark import NUMPY_BASELINE, Comparison, plot
from fastmlp.machine import summary

HERE = Path(__file__).resolve().parent


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A Markdown table; ``align`` has one 'l' or 'r' per column."""
    marks = ["---:" if a == "r" else ":---" for a in align]
    return (["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
            + ["| " + " | ".join(row) + " |" for row in rows])


def _ratio(seconds: dict, reference: str, value: float) -> str:
    return f"{seconds[reference] / value:.2f}x" if reference in seconds else "-"


def _load(record: dict) -> str:
    """How busy the machine was, when the record says: other work slows some rows."""
    if "load_average_before" not in record:
        return ""
    busy = max(record["load_average_before"], record["load_average_after"]) > 0.5
    return (f" The machine's 1-minute load average was {record['load_average_before']:.2f} "
            f"before the run and {record['load_average_after']:.2f} after it"
            + (" (other work shared the cores, so some rows may read slow)." if busy else "."))


def render(record: dict) -> str:
    """The Markdown of the page's generated part, from a record of ``record_bench.py``.

    ``record["result"]`` is what ``fastmlp bench --json`` printed.
    """
    result = Comparison.from_dict(record["result"])
    lines = [f"Recorded {record['recorded_at']} at commit `{record['fastmlp_commit']}` with "
             f"`{record['command']}`, which saves what `{record['bench_command']}` prints "
             f"(`fastmlp.benchmark.compare`). {'-'.join(map(str, result.layer_sizes))} "
             f"float32, plain SGD, {result.samples:,} samples per epoch "
             f"({result.epoch_gflop:.1f} GFLOP of matrix products); float32 FMA peak "
             f"{result.peak_gflops:.0f} GFLOP/s"
             + (f", BLAS GEMM {result.gemm_gflops:.0f} GFLOP/s" if result.gemm_gflops else "")
             + (f"; torch {result.torch_version}" if result.torch_version else "")
             + "." + _load(record) + " The machine, as `fastmlp.machine.summary` gives it:",
             "", "```text"]
    if result.machine:
        lines.append(summary(result.machine))
        numba = result.machine.get("numba_settings")
        if numba:
            lines.append(f"numba backend: {numba['tile']} register tiles, {numba['row_tile']} "
                         f"rows per cache tile, k in passes of {numba['k_block']}, products "
                         f"of >= {numba['parallel_work']:,} multiply-adds split across threads")
    lines += ["```", "", "Training, the best of the timed epochs of each contender:", ""]
    rows = []
    for batch_size, seconds in result.epoch_seconds.items():
        for name, value in seconds.items():
            gflops = result.epoch_gflop / value
            rows.append([f"`{name}`", f"{batch_size}", f"{value:.3f}",
                         f"{result.samples / value:,.0f}", f"{gflops:.1f}",
                         f"{100 * gflops / result.peak_gflops:.1f} %",
                         _ratio(seconds, NUMPY_BASELINE, value), _ratio(seconds, "torch", value)])
    lines += _table(["backend", "batch", "s/epoch", "samples/s", "GFLOP/s", "% peak",
                     "vs numpy", "vs torch"], rows, "lrrrrrrr")
    if result.forward_seconds:
        forward = result.forward_seconds
        lines += ["", f"The forward pass of all {result.samples:,} samples as one batch:", ""]
        lines += _table(["backend", "seconds", "vs numpy", "vs torch"],
                        [[f"`{name}`", f"{value:.3f}", _ratio(forward, NUMPY_BASELINE, value),
                          _ratio(forward, "torch", value)] for name, value in forward.items()],
                        "lrrr")
    if result.predict_seconds:
        lines += ["", "Single-sample `predict` of one raw image:", ""]
        lines += _table(["backend", "µs per call"],
                        [[f"`{name}`", f"{1e6 * value:.1f}"]
                         for name, value in result.predict_seconds.items()], "lr")
    lines += ["", "The same run as `fastmlp bench` prints it without `--json`:", "", "```text",
              str(result), "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "_data" / "bench.json")
    parser.add_argument("--out", type=Path, default=HERE / "_generated")
    parser.add_argument("--no-plot", action="store_true", help="write the tables only")
    args = parser.parse_args(argv)
    record = json.loads(args.data.read_text())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_tables.md").write_text(render(record))
    if not args.no_plot:
        plot(Comparison.from_dict(record["result"]), args.out / "bench.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
