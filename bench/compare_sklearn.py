"""fastmlp's MLPClassifier against scikit-learn's on MNIST: fit time and test accuracy.

Both train the same 784-128-128-10 ReLU network with Adam at batch 128 for the
same number of epochs on the same inputs (pixels divided by 255, float32), from
the same estimator API (``fit``, ``score``):

- scikit-learn: ``solver="adam"``, ``learning_rate_init`` = ``--learning-rate``
  held constant (its Adam has no schedule), ``alpha=0`` (no L2 penalty, as
  fastmlp's Adam), ``max_iter`` = epochs with ``n_iter_no_change=max_iter`` and
  ``early_stopping=False`` so that every epoch runs;
- fastmlp, per backend: ``optimizer="adam"`` at the same learning rate as the
  peak of ``--schedule`` (default one-cycle; ``--schedule constant`` is
  scikit-learn's recipe step for step), its input standardisation on.

Every repetition fits each contender once, in turn, with ``random_state`` set
to the repetition's number, so load on the machine hits all of them alike. The
table shows the best fit time of the repetitions, the mean test accuracy (and
the lowest), and the speed-up: scikit-learn's best time over the contender's.
Each contender fits a few hundred images first (numba compiles, or loads its
compiled code), outside the timing.

Run from the repository root::

    python bench/compare_sklearn.py --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

NETWORK = (128, 128)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Fit time and test accuracy of fastmlp.sklearn.MLPClassifier against "
                    "sklearn.neural_network.MLPClassifier on MNIST (784-128-128-10, Adam).")
    parser.add_argument("--repeats", type=int, default=3,
                        help="fits of each contender; the table shows the best time (default 3)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of every fit (default 5)")
    parser.add_argument("--batch-size", type=int, default=128, help="default 128")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="Adam's learning rate: scikit-learn's constant one and fastmlp's "
                             "peak (default 1e-3, scikit-learn's default)")
    parser.add_argument("--schedule", default="onecycle",
                        choices=["onecycle", "cosine", "constant"],
                        help="fastmlp's learning-rate schedule (default onecycle)")
    parser.add_argument("--backends", default="default,matmul",
                        help="comma-separated fastmlp backends; 'default' is the backend in "
                             "effect, numba unless FASTMLP_BACKEND says otherwise "
                             "(default default,matmul)")
    parser.add_argument("--train-size", type=int, default=None,
                        help="use the first N training images (default: all 60 000)")
    parser.add_argument("--threads", type=int, default=None,
                        help="limit BLAS, OpenMP and numba to N threads for everyone "
                             "(default: as installed, all cores); 1 is steadiest on a "
                             "machine shared with other work")
    parser.add_argument("--data-dir", default=None,
                        help="directory of the MNIST IDX files (default: FASTMLP_DATA, "
                             "then the cache)")
    return parser


def _contenders(args):
    from sklearn.neural_network import MLPClassifier as ScikitLearnMLP

    import fastmlp
    from fastmlp.sklearn import MLPClassifier

    def scikit_learn(seed, epochs):
        return ScikitLearnMLP(NETWORK, solver="adam", batch_size=args.batch_size,
                              learning_rate_init=args.learning_rate, alpha=0.0,
                              max_iter=epochs, n_iter_no_change=epochs,
                              early_stopping=False, random_state=seed)

    contenders = {"scikit-learn": scikit_learn}
    for name in args.backends.split(","):
        backend = fastmlp.get_backend_name() if name == "default" else name
        fastmlp.backends.load_backend(backend)  # ValueError naming the choices

        def fastmlp_fit(seed, epochs, backend=backend):
            return MLPClassifier(NETWORK, backend=backend, epochs=epochs,
                                 batch_size=args.batch_size, optimizer="adam",
                                 learning_rate=args.learning_rate, schedule=args.schedule,
                                 random_state=seed)

        contenders[f"fastmlp {backend}" + (" (default)" if name == "default" else "")] = \
            fastmlp_fit
    return contenders


@contextlib.contextmanager
def _numba_threads(count):
    if "numba" not in sys.modules:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(count)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _run(contenders, args, train, test) -> dict:
    """Warm every contender up, then fit and score each once per repetition, in turns."""
    (x_train, y_train), (x_test, y_test) = train, test
    for make in contenders.values():  # compile and warm, untimed
        make(0, 1).fit(x_train[:512], y_train[:512])
    results = {name: ([], []) for name in contenders}
    for seed in range(args.repeats):
        for name, make in contenders.items():
            estimator = make(seed, args.epochs)
            start = time.perf_counter()
            estimator.fit(x_train, y_train)
            seconds = time.perf_counter() - start
            accuracy = estimator.score(x_test, y_test)
            results[name][0].append(seconds)
            results[name][1].append(accuracy)
            print(f"run {seed + 1}/{args.repeats}  {name:<24} fit {seconds:6.2f} s  "
                  f"test accuracy {accuracy:.4f}", flush=True)
    return results


def main(argv=None) -> dict:
    """Run the comparison and print the table; return ``{contender: (seconds, accuracies)}``."""
    args = _parser().parse_args(argv)
    from sklearn.exceptions import ConvergenceWarning

    from fastmlp.datasets import load_mnist

    (x_train, y_train), (x_test, y_test) = load_mnist(args.data_dir)
    x_train = x_train.reshape(len(x_train), -1)[:args.train_size].astype(np.float32) / 255
    y_train = y_train[:args.train_size]
    x_test = x_test.reshape(len(x_test), -1).astype(np.float32) / 255
    contenders = _contenders(args)
    threads = "all cores" if args.threads is None else (
        f"{args.threads} thread" + ("s" if args.threads > 1 else ""))
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter reached: as asked
        if args.threads is not None:
            stack.enter_context(threadpool_limits(args.threads))  # BLAS and OpenMP
            stack.enter_context(_numba_threads(args.threads))
        results = _run(contenders, args, (x_train, y_train), (x_test, y_test))

    reference = min(results["scikit-learn"][0])
    print(f"\nMNIST, {len(x_train):,} training images, {args.epochs} epochs of Adam at batch "
          f"{args.batch_size}, learning rate {args.learning_rate:g} (fastmlp: {args.schedule} "
          f"schedule), {threads}, best of {args.repeats}:\n")
    print("| estimator | fit (s) | test accuracy, mean (lowest) | speed-up |")
    print("|---|---:|---:|---:|")
    for name, (seconds, accuracies) in results.items():
        print(f"| {name} | {min(seconds):.2f} | {np.mean(accuracies):.2%} "
              f"({min(accuracies):.2%}) | {reference / min(seconds):.1f}x |")
    return results


if __name__ == "__main__":
    main()
