"""The pytest-benchmark suite: timed on full MNIST, or run once on a few images as a smoke test.

``pytest --benchmark-only`` (or ``--benchmark-enable``) times every benchmark on
full MNIST. Plain ``pytest`` runs each benchmarked function once, untimed, on a
few hundred images, so a broken benchmark fails CI without slowing it down.
"""

import pytest

_throughput = []  # (group, name, samples, gflop, best seconds) of every timed benchmark


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if not (config.getoption("benchmark_only") or config.getoption("benchmark_enable")):
        config.option.benchmark_disable = True


def pytest_collection_modifyitems(config, items):
    # --benchmark-only would list every test of tests/ as skipped; deselect them instead.
    if config.getoption("benchmark_only"):
        kept = [item for item in items if "benchmark" in getattr(item, "fixturenames", ())]
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept


@pytest.fixture
def full(benchmark):
    """True when benchmarks are timed (full MNIST), False for the once-through smoke run."""
    return benchmark.enabled


@pytest.fixture
def measure(benchmark):
    """``measure(fn, samples=, flop=, rounds=)``: time ``fn`` and record its throughput.

    ``samples`` and ``flop`` describe one call; samples/s and GFLOP/s of the
    best round go into the benchmark's ``extra_info`` (saved with
    ``--benchmark-json``) and into the throughput table printed at the end.
    """

    def run(fn, *, samples, flop, rounds):
        benchmark.extra_info.update(samples=samples, gflop=flop / 1e9, machine=_machine())
        result = benchmark.pedantic(fn, rounds=rounds, iterations=1)
        if benchmark.enabled:
            best = benchmark.stats.stats.min
            benchmark.extra_info.update(samples_per_s=samples / best, gflops=flop / best / 1e9)
            _throughput.append((benchmark.group, benchmark.name, samples, flop / 1e9, best))
        return result

    return run


_described = {}


def _machine():
    """fastmlp.machine.describe(), once per session (after numba has run, for its layer)."""
    from fastmlp.machine import describe

    if not _described or "not yet chosen" in str(_described["numba"]):
        _described.update(describe())
    return dict(_described)


def pytest_terminal_summary(terminalreporter):
    if not _throughput:
        return
    from fastmlp.machine import summary

    write = terminalreporter.write_line
    terminalreporter.section("throughput of the best round")
    for line in summary(_machine()).splitlines():
        write(line)
    write("")
    for group in dict.fromkeys(row[0] for row in _throughput):
        write(f"{group}:")
        for _, name, samples, gflop, best in (row for row in _throughput if row[0] == group):
            write(f"  {name:<44} {best:9.4f} s {samples / best:12,.0f} samples/s "
                  f"{gflop / best:7.1f} GFLOP/s")
