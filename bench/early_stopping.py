"""Early stopping on MNIST: the default recipe against early stopping, without and with the anneal.

For each seed, and for ``fastmlp.MLP.fit`` and the estimator
``fastmlp.sklearn.MLPClassifier``, three runs from the same initialisation:

- ``plain``: the default recipe (15 epochs of AdamW at batch 128 on a
  one-cycle schedule) on every training image;
- ``stop``: ``early_stopping=True, epochs=--epochs, anneal_epochs=0``, which
  stops where the run stalls (Keras's rule, and fastmlp's before the anneal);
- ``anneal``: ``early_stopping=True, epochs=--epochs`` with the default
  ``anneal_epochs``, which anneals the learning rate once the run stalls.

The estimator runs the same recipe in scikit-learn's names (``RECIPE``:
``solver="adamw", learning_rate="onecycle", max_iter=15``, ...; ``epochs``
is its ``max_iter``). Early stopping holds out a tenth of the training
images (``MLP.fit``: stratified; the estimator: scikit-learn's split) and
watches it (``MLP.fit``: validation loss, patience 5; the estimator:
validation accuracy, ``n_iter_no_change=10``); the table shows the test
accuracy of the model each run ends with, the epochs it ran and its best
epoch, and the epoch the anneal began.

Run from the repository root::

    python bench/early_stopping.py --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

RUNS = ("plain", "stop", "anneal")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Test accuracy of the default MNIST recipe against early stopping "
                    "without and with the anneal, for MLP.fit and MLPClassifier.")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    parser.add_argument("--epochs", type=int, default=60,
                        help="early stopping's most epochs (default 60); the plain runs "
                             "train 15")
    parser.add_argument("--paths", default="fit,estimator",
                        help="comma-separated: fit (MLP.fit), estimator (MLPClassifier); "
                             "default both")
    parser.add_argument("--train-size", type=int, default=None,
                        help="use the first N training images (default: all 60 000)")
    parser.add_argument("--data-dir", default=None,
                        help="directory of the MNIST IDX files (default: FASTMLP_DATA, "
                             "then the cache)")
    return parser


def _fit_run(run, seed, epochs, x, y, x_test, y_test) -> dict:
    import fastmlp

    model = fastmlp.MLP((784, 128, 128, 10), seed=seed)
    settings = {"plain": {}, "stop": dict(early_stopping=True, epochs=epochs, anneal_epochs=0),
                "anneal": dict(early_stopping=True, epochs=epochs)}[run]
    history = model.fit(x, y, seed=seed, **settings)
    return {"accuracy": model.score(x_test, y_test), "epochs": len(history),
            "best": history.best_epoch, "annealed_from": history.annealed_from}


def _estimator_run(run, seed, epochs, x, y, x_test, y_test) -> dict:
    from fastmlp.sklearn import MLPClassifier

    settings = {"plain": {}, "stop": dict(early_stopping=True, max_iter=epochs, anneal_epochs=0),
                "anneal": dict(early_stopping=True, max_iter=epochs)}[run]
    clf = MLPClassifier(random_state=seed, **{**RECIPE, **settings}).fit(x, y)
    scores = clf.validation_scores_
    best = None if scores is None else int(np.argmax(scores)) + 1
    return {"accuracy": clf.score(x_test, y_test), "epochs": clf.n_iter_, "best": best,
            "annealed_from": None}


# fastmlp's default recipe in the estimator's (scikit-learn's) parameter names
RECIPE = dict(hidden_layer_sizes=(128, 128), solver="adamw", learning_rate="onecycle",
              learning_rate_init=3e-3, batch_size=128, max_iter=15, standardize=True,
              dtype="float32")

PATHS = {"fit": ("MLP.fit", _fit_run), "estimator": ("MLPClassifier", _estimator_run)}


def _cell(result: dict) -> str:
    cell = f"{100 * result['accuracy']:.2f} % ({result['epochs']}"
    if result["best"] is not None:
        cell += f", best {result['best']}"
    if result["annealed_from"] is not None:
        cell += f", anneal from {result['annealed_from']}"
    return cell + ")"


def main(argv=None) -> dict:
    """Print the table; return ``{(path, seed, run): result}``, each result a dict of
    ``accuracy`` (test), ``epochs`` (run), ``best`` and ``annealed_from`` (epochs or None)."""
    args = _parser().parse_args(argv)
    from fastmlp.datasets import load_mnist

    (x, y), (x_test, y_test) = load_mnist(args.data_dir)
    x, y = x.reshape(len(x), -1)[:args.train_size], y[:args.train_size]
    x_test = x_test.reshape(len(x_test), -1)
    seeds = [int(s) for s in args.seeds.split(",")]
    paths = args.paths.split(",")
    results = {}
    for path in paths:
        for seed in seeds:
            for run in RUNS:
                results[path, seed, run] = PATHS[path][1](run, seed, args.epochs, x, y,
                                                          x_test, y_test)
    print(f"MNIST, {len(y):,} training images, {len(y_test):,} test; test accuracy (epochs "
          "run, best epoch, first epoch of the anneal)\n")
    print(f"| path | seed | plain (15 epochs) | early stopping, epochs={args.epochs}, "
          f"anneal_epochs=0 | early stopping, epochs={args.epochs} |")
    print("|---|---|---|---|---|")
    for path in paths:
        for seed in seeds:
            print(f"| {PATHS[path][0]} | {seed} | "
                  + " | ".join(_cell(results[path, seed, run]) for run in RUNS) + " |")
        means = [statistics.mean(results[path, seed, run]["accuracy"] for seed in seeds)
                 for run in RUNS]
        print(f"| {PATHS[path][0]} | mean | "
              + " | ".join(f"{100 * mean:.2f} %" for mean in means) + " |")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
