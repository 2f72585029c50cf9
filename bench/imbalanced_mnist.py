"""class_weight='balanced' on an imbalanced MNIST: per-class recall on the test set.

The training set keeps every image of the other classes and a fraction
(``--keep``, default a tenth) of those of ``--rare`` (default 9), chosen with
seed 0; the test set is MNIST's whole one. Each seed trains the default
recipe (``fastmlp.MLP((784, 128, 128, 10))``, 15 epochs of AdamW at batch 128
on a one-cycle schedule) twice from the same initialisation and shuffles,
once unweighted and once with ``class_weight='balanced'``, and the table shows
each class's test recall, then the rare class's recall and precision and the
accuracy per seed.

Run from the repository root::

    python bench/imbalanced_mnist.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Per-class test recall of the default MNIST recipe trained on a set "
                    "that keeps a fraction of one class, without and with "
                    "class_weight='balanced'.")
    parser.add_argument("--rare", type=int, default=9, help="the class thinned out (default 9)")
    parser.add_argument("--keep", type=float, default=0.1,
                        help="fraction of its training images kept (default 0.1)")
    parser.add_argument("--seeds", default="0",
                        help="comma-separated training seeds (default 0); the kept images "
                             "are always chosen with seed 0")
    parser.add_argument("--epochs", type=int, default=15, help="default 15")
    parser.add_argument("--train-size", type=int, default=None,
                        help="use the first N training images (default: all 60 000)")
    parser.add_argument("--data-dir", default=None,
                        help="directory of the MNIST IDX files (default: FASTMLP_DATA, "
                             "then the cache)")
    return parser


def imbalanced(x, y, rare, keep, seed=0):
    """The rows of ``(x, y)`` that keep a ``keep`` fraction of class ``rare``, in order."""
    rows = np.flatnonzero(y == rare)
    kept = np.random.default_rng(seed).choice(rows, int(len(rows) * keep), replace=False)
    chosen = np.sort(np.concatenate([np.flatnonzero(y != rare), kept]))
    return x[chosen], y[chosen]


def main(argv=None) -> dict:
    """Print the tables; return ``{(seed, 'unweighted' or 'balanced'): ClassReport}``."""
    args = _parser().parse_args(argv)
    import fastmlp
    from fastmlp.datasets import load_mnist
    from fastmlp.metrics import classification_report

    (x, y), (x_test, y_test) = load_mnist(args.data_dir)
    x, x_test = x.reshape(len(x), -1)[:args.train_size], x_test.reshape(len(x_test), -1)
    x, y = imbalanced(x, y[:args.train_size], args.rare, args.keep)
    counts = np.bincount(y, minlength=10)
    others = np.delete(counts, args.rare)
    print(f"MNIST, {len(y):,} training images ({counts[args.rare]} of class {args.rare}, "
          f"{others.min()}-{others.max()} of each other), {args.epochs} epochs of the "
          "default recipe; test recall, %\n")
    reports = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for name, class_weight in (("unweighted", None), ("balanced", "balanced")):
            model = fastmlp.MLP((784, 128, 128, 10), seed=seed)
            model.fit(x, y, epochs=args.epochs, seed=seed, class_weight=class_weight)
            reports[seed, name] = classification_report(y_test, model.predict(x_test), 10)
    print("| seed | class_weight | " + " | ".join(str(k) for k in range(10)) + " |")
    print("|---|---|" + "---|" * 10)
    for (seed, name), report in reports.items():
        print(f"| {seed} | {name} | " + " | ".join(f"{100 * r:.1f}" for r in report.recall)
              + " |")
    print(f"\n| seed | class_weight | recall of {args.rare} | precision of {args.rare} "
          "| accuracy |")
    print("|---|---|---|---|---|")
    for (seed, name), report in reports.items():
        print(f"| {seed} | {name} | {100 * report.recall[args.rare]:.1f} | "
              f"{100 * report.precision[args.rare]:.1f} | {100 * report.accuracy:.2f} |")
    return reports


if __name__ == "__main__":
    main(sys.argv[1:])
