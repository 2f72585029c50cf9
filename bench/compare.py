"""fastmlp's backends against PyTorch and the machine's GEMM peak, in one run.

Trains the 784-128-128-10 network in float32 with plain SGD on full MNIST and
prints, per backend and batch size, the best epoch time of several, samples per
second, achieved GFLOP/s, the share of the machine's float32 GEMM peak, and the
speed-up over PyTorch (when ``torch`` is importable). Then the forward pass over
all 60 000 training images as one batch, and single-sample ``predict``.

Run from the repository root::

    python bench/compare.py                    # real MNIST via load_mnist()
    python bench/compare.py --batch-sizes 128  # fewer rows

Every number in one table comes from the same process, so compare them as
ratios; absolute times move by 20-30 % between runs on a shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

import fastmlp
from fastmlp.datasets import load_mnist

LAYER_SIZES = (784, 128, 128, 10)
# One training step per sample: forward GEMMs, weight-gradient GEMMs, and input-gradient
# GEMMs for every layer but the first.
MACS = sum(a * b for a, b in zip(LAYER_SIZES[:-1], LAYER_SIZES[1:]))
FLOP_PER_SAMPLE = 2 * MACS * 3 - 2 * LAYER_SIZES[0] * LAYER_SIZES[1]


def gemm_peak(n=2048, repeats=5):
    """Float32 GFLOP/s of a large square ``np.matmul`` on 2 BLAS threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = np.empty_like(a)
    with threadpool_limits(limits=2, user_api="blas"):
        np.matmul(a, b, out=out)
        best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Fastmlp:
    """One fastmlp backend training the network with plain SGD, as ``fastmlp train`` does."""

    def __init__(self, backend, x, y, batch_size):
        self.backend, self.x, self.y, self.batch_size = backend, x, y, batch_size
        self.model = fastmlp.MLP(LAYER_SIZES, dtype=np.float32, seed=0)
        self.epoch()  # warm up: JIT, caches, page faults

    def epoch(self):
        with fastmlp.use_backend(self.backend):
            history = self.model.fit(self.x, self.y, epochs=1, batch_size=self.batch_size,
                                     optimizer="sgd", learning_rate=0.01, schedule="constant")
        return history.seconds[0]


def fastmlp_forward(backend, x, repeats=3):
    model = fastmlp.MLP(LAYER_SIZES, dtype=np.float32, seed=0)
    X = model.scaler.fit(x).transform(x, np.float32)
    module = fastmlp.backends.load_backend(backend)
    module.forward(model.params, X[:100])
    return min(_timed(lambda: module.forward(model.params, X)) for _ in range(repeats))


def fastmlp_predict_one(backend, x, calls=2000):
    model = fastmlp.MLP(LAYER_SIZES, dtype=np.float32, seed=0)
    model.scaler.fit(x[:1000])
    sample = x[0]
    with fastmlp.use_backend(backend):
        for _ in range(10):
            model.predict(sample)
        return _per_call(lambda: model.predict(sample), calls)


def _per_call(fn, calls):
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times)


class Torch:
    """The same network, loss, optimizer and batching in PyTorch eager mode."""

    def __init__(self):
        import torch

        self.torch = torch
        torch.manual_seed(0)
        sizes = LAYER_SIZES
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(torch.nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.net = torch.nn.Sequential(*layers)

    def trainer(self, x, y, batch_size):
        """A function that trains one epoch and returns its seconds (after one warm-up)."""
        torch = self.torch
        X = torch.from_numpy(((x / 255.0 - 0.1307) / 0.3081).astype(np.float32))
        Y = torch.from_numpy(y.astype(np.int64))
        optimizer = torch.optim.SGD(self.net.parameters(), lr=0.01)
        loss_fn = torch.nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(0)

        def epoch():
            start = time.perf_counter()
            order = torch.randperm(len(X), generator=generator)
            Xe, Ye = X[order], Y[order]
            for begin in range(0, len(X), batch_size):
                optimizer.zero_grad()
                loss = loss_fn(self.net(Xe[begin:begin + batch_size]), Ye[begin:begin + batch_size])
                loss.backward()
                optimizer.step()
            return time.perf_counter() - start

        epoch()
        return epoch

    def forward(self, x, repeats=3):
        X = self.torch.from_numpy(((x / 255.0 - 0.1307) / 0.3081).astype(np.float32))
        with self.torch.no_grad():
            self.net(X[:100])
            return min(_timed(lambda: self.net(X)) for _ in range(repeats))

    def predict_one(self, x, calls=2000):
        sample = self.torch.from_numpy(((x[0] / 255.0 - 0.1307) / 0.3081).astype(np.float32))
        with self.torch.no_grad():
            return _per_call(lambda: int(self.net(sample).argmax()), calls)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=None,
                        help="default: every available backend but the slow reference 'loop'")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 128, 1000])
    parser.add_argument("--epochs", type=int, default=4,
                        help="timed epochs per contender, interleaved; the best counts")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch column")
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args(argv)
    backends = args.backends or [b for b in fastmlp.available_backends() if b != "loop"]

    (x, y), _ = load_mnist(args.data_dir)
    x = x.reshape(len(x), -1)
    torch = None
    if not args.no_torch:
        try:
            torch = Torch()
        except ImportError:
            print("torch is not importable: no PyTorch column (pip install -e '.[peers]')")
    peak = gemm_peak()
    epoch_gflop = len(x) * FLOP_PER_SAMPLE / 1e9
    print(f"float32 GEMM peak (2048^3 np.matmul, 2 threads): {peak:.0f} GFLOP/s; "
          f"one epoch = {len(x):,} x {FLOP_PER_SAMPLE:,} FLOP = {epoch_gflop:.1f} GFLOP")
    if torch is not None:
        print(f"torch {torch.torch.__version__}, {torch.torch.get_num_threads()} threads")
    print()
    header = (f"{'backend':<8} {'batch':>5} {'s/epoch':>8} {'samples/s':>10} {'GFLOP/s':>8} "
              f"{'% peak':>7} {'vs torch':>9}")
    print(header)
    print("-" * len(header))
    for batch_size in args.batch_sizes:
        contenders = {name: Fastmlp(name, x, y, batch_size).epoch for name in backends}
        if torch is not None:
            contenders["torch"] = torch.trainer(x, y, batch_size)
        # Round-robin, so a slow spell of the machine hits every contender alike.
        best = dict.fromkeys(contenders, float("inf"))
        for _ in range(args.epochs):
            for name, epoch in contenders.items():
                time.sleep(0.2)  # let the previous contender's spinning thread pools go idle
                best[name] = min(best[name], epoch())
        reference = best.get("torch")
        for name, seconds in best.items():
            gflops = epoch_gflop / seconds
            ratio = f"{reference / seconds:8.2f}x" if reference is not None else f"{'-':>9}"
            print(f"{name:<8} {batch_size:>5} {seconds:8.3f} {len(x) / seconds:10,.0f} "
                  f"{gflops:8.1f} {100 * gflops / peak:6.1f}% {ratio}", flush=True)
    print()
    print(f"forward of all {len(x):,} images as one batch, seconds (best of 3):")
    forward = {name: fastmlp_forward(name, x) for name in backends}
    if torch is not None:
        forward["torch"] = torch.forward(x)
    for name, seconds in forward.items():
        print(f"  {name:<8} {seconds:.3f}")
    print()
    print("single-sample predict, microseconds per call (median of 5 x 2000):")
    single = {name: fastmlp_predict_one(name, x) for name in backends}
    if torch is not None:
        single["torch"] = torch.predict_one(x)
    for name, seconds in single.items():
        print(f"  {name:<8} {1e6 * seconds:.1f}")


if __name__ == "__main__":
    main()
