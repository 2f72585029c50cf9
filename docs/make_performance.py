"""Render the saved ``fastmlp bench`` runs of ``_data/`` for the performance page.

For each record of ``RECORDS``, writes ``_generated/<name>_tables.md`` (the
machine, the contenders and the tables, included by
``user_guide/performance.md``) and ``_generated/<name>.png``: the default run
of ``bench.json`` as bar charts (:func:`fastmlp.benchmark.plot`), the width
sweep of ``bench_sweep.json`` as GFLOP/s against the hidden width with the FMA
peak (:func:`fastmlp.benchmark.plot_widths`). ``conf.py`` runs it at every
build; to refresh the numbers, record new runs with ``record_bench.py`` (which
saves ``fastmlp bench --json``) and build again. Nothing here is typed in by
hand: every number comes from the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fastmlp.benchmark import REFERENCES, Comparison, Sweep, plot, plot_widths, threads_text

HERE = Path(__file__).resolve().parent
RECORDS = {"bench": "bench.json", "bench_sweep": "bench_sweep.json"}  # name: file in _data/


def _table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """A Markdown table; ``align`` has one 'l' or 'r' per column."""
    marks = ["---:" if a == "r" else ":---" for a in align]
    return (["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
            + ["| " + " | ".join(row) + " |" for row in rows])


def _ratios(seconds: dict, value: float) -> list[str]:
    """The "vs" cells: how many times faster than each reference, or '-'."""
    return [f"{seconds[reference] / value:.2f}x" if reference in seconds else "-"
            for reference in REFERENCES]


def _load(record: dict) -> str:
    """How busy the machine was, when the record says: other work slows some rows."""
    if "load_average_before" not in record:
        return ""
    busy = max(record["load_average_before"], record["load_average_after"]) > 0.5
    return (f" The machine's 1-minute load average was {record['load_average_before']:.2f} "
            f"before the run and {record['load_average_after']:.2f} after it"
            + (" (other work shared the cores, so some rows may read slow)." if busy else "."))


def _recorded(record: dict, function: str) -> str:
    return (f"Recorded {record['recorded_at']} at commit `{record['fastmlp_commit']}` with "
            f"`{record['command']}`, which saves what `{record['bench_command']}` prints "
            f"(`fastmlp.benchmark.{function}`).")


def _peak(run: Comparison) -> str:
    threads = "" if run.threads is None else f" on {threads_text(run.threads)}"
    return (f"{run.dtype} FMA peak{threads} {run.peak_gflops:.0f} GFLOP/s"
            + (f", BLAS GEMM {run.gemm_gflops:.0f} GFLOP/s" if run.gemm_gflops else ""))


def _context(run: Comparison) -> list[str]:
    """The machine and the contenders, as ``fastmlp bench`` prints them."""
    return ["", "```text", *run.context_lines(), "```", ""]


def render_run(record: dict, run: Comparison) -> str:
    """The Markdown of a record of one network: epochs, forward pass and predict."""
    lines = [_recorded(record, "compare") + f" {'-'.join(map(str, run.layer_sizes))} "
             f"{run.dtype}, plain SGD, {run.samples:,} samples per epoch "
             f"({run.epoch_gflop:.1f} GFLOP of matrix products); {_peak(run)}."
             + _load(record) + " The machine and the contenders, as `fastmlp bench` prints "
             "them:", *_context(run), "Training, the best of the timed epochs of each "
             "contender:", ""]
    rows = []
    for batch_size, seconds in run.epoch_seconds.items():
        for name, value in seconds.items():
            gflops = run.epoch_gflop / value
            rows.append([f"`{name}`", f"{batch_size}", f"{value:.3f}",
                         f"{run.samples / value:,.0f}", f"{gflops:.1f}",
                         f"{100 * gflops / run.peak_gflops:.1f} %", *_ratios(seconds, value)])
    vs = list(REFERENCES.values())
    lines += _table(["backend", "batch", "s/epoch", "samples/s", "GFLOP/s", "% peak", *vs],
                    rows, "lrrrrr" + "r" * len(vs))
    if run.forward_seconds:
        forward = run.forward_seconds
        lines += ["", f"The forward pass of all {run.samples:,} samples as one batch:", ""]
        lines += _table(["backend", "seconds", *vs],
                        [[f"`{name}`", f"{value:.3f}", *_ratios(forward, value)]
                         for name, value in forward.items()], "lr" + "r" * len(vs))
    if run.predict_seconds:
        lines += ["", "Single-sample `predict` of one raw image:", ""]
        lines += _table(["backend", "µs per call"],
                        [[f"`{name}`", f"{1e6 * value:.1f}"]
                         for name, value in run.predict_seconds.items()], "lr")
    lines += ["", "The same run as `fastmlp bench` prints it without `--json`:", "", "```text",
              str(run), "```", ""]
    return "\n".join(lines)


def render_sweep(record: dict, result: Sweep) -> str:
    """The Markdown of a record of several widths: GFLOP/s and seconds by width."""
    first = result.runs[0]
    network = f"{first.layer_sizes[0]}-W-W-{first.layer_sizes[-1]}"
    widths = ", ".join(map(str, result.widths))
    lines = [_recorded(record, "sweep") + f" {network} for W = {widths}, {first.dtype}, "
             f"plain SGD, {first.samples:,} samples per epoch; {_peak(first)}."
             + _load(record) + " The machine and the contenders, as `fastmlp bench` prints "
             "them:", *_context(first)]
    by_width = {}  # (batch size, contender): {width: seconds}
    for width, run in zip(result.widths, result.runs):
        for batch_size, seconds in run.epoch_seconds.items():
            for name, value in seconds.items():
                by_width.setdefault((batch_size, name), {})[width] = (run, value)
    cells = {"GFLOP/s of the best epoch and its share of the FMA peak, by the hidden width W:":
             lambda run, value: (f"{run.epoch_gflop / value:.1f} "
                                 f"({100 * run.epoch_gflop / value / run.peak_gflops:.0f} %)"),
             "Seconds of the best epoch:": lambda run, value: f"{value:.3f}"}
    for title, cell in cells.items():
        rows = [[f"`{name}`", f"{batch_size}", *(cell(*timed[width]) if width in timed else "-"
                                                for width in result.widths)]
                for (batch_size, name), timed in sorted(by_width.items(),
                                                        key=lambda item: item[0][0])]
        lines += [title, "", *_table(["backend", "batch", *(f"W = {w}" for w in result.widths)],
                                     rows, "lr" + "r" * len(result.widths)), ""]
    lines += ["The same run as `fastmlp bench` prints it without `--json` (the forward pass "
              "and `predict` at each width too):", "", "```text", str(result), "```", ""]
    return "\n".join(lines)


def render(record: dict) -> str:
    """The Markdown of the page's generated part, from a record of ``record_bench.py``.

    ``record["result"]`` is what ``fastmlp bench --json`` printed.
    """
    result = Sweep.from_dict(record["result"])
    if len(result.runs) == 1:
        return render_run(record, result.runs[0])
    return render_sweep(record, result)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "_data")
    parser.add_argument("--out", type=Path, default=HERE / "_generated")
    parser.add_argument("--no-plot", action="store_true", help="write the tables only")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, file in RECORDS.items():
        record = json.loads((args.data / file).read_text())
        (args.out / f"{name}_tables.md").write_text(render(record))
        if not args.no_plot:
            result = Sweep.from_dict(record["result"])
            if len(result.runs) == 1:
                plot(result.runs[0], args.out / f"{name}.png")
            else:
                plot_widths(result, args.out / f"{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
