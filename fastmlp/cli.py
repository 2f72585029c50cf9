"""The ``fastmlp`` command line.

``fastmlp train`` trains the network on MNIST and prints one line per epoch.
Errors print one line, ``fastmlp: error: ...``, and exit with status 1 (2 for
a bad command line); no traceback.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from . import backends, datasets, optim
from .model import MLP
from .train import fit


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"fastmlp: error: {message} (see 'fastmlp --help')\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _sizes(text):
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated sizes such as 128,128, got {text!r}") from None
    if any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"sizes must be >= 1, got {text!r}")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastmlp", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser(
        "train", help="train the MLP on MNIST",
        description="Train an MLP on MNIST and report loss, accuracy and throughput per epoch.")
    train.add_argument("--backend", default=None,
                       help="loop, einsum, matmul or numba (default: $FASTMLP_BACKEND or matmul)")
    train.add_argument("--epochs", type=_positive_int, default=15)
    train.add_argument("--batch-size", type=_positive_int, default=128)
    train.add_argument("--optimizer", default="adamw", choices=list(optim.OPTIMIZERS))
    train.add_argument("--lr", type=float, default=None,
                       help="peak learning rate (default: " + ", ".join(
                           f"{name} {defaults['learning_rate']:g}"
                           for name, (_, defaults) in optim.OPTIMIZERS.items()) + ")")
    train.add_argument("--weight-decay", type=float, default=None,
                       help="weight decay (default: 0.05 for adamw, else 0)")
    train.add_argument("--schedule", default="onecycle", choices=list(optim.SCHEDULES))
    train.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--hidden", type=_sizes, default=(128, 128),
                       help="hidden layer sizes, comma-separated (default: 128,128)")
    train.add_argument("--data-dir", default=None,
                       help="directory with the MNIST IDX files (default: $FASTMLP_DATA, "
                            "else the user cache, downloading on first use)")
    train.add_argument("--save", metavar="PATH", default=None,
                       help="write the trained model to PATH (.npz)")
    train.set_defaults(run=_train)
    return parser


def _train(args) -> int:
    name = args.backend or backends.get_backend_name()
    with backends.use_backend(name):
        (x_train, y_train), (x_test, y_test) = datasets.load_mnist(args.data_dir)
        x_train = x_train.reshape(len(x_train), -1)
        x_test = x_test.reshape(len(x_test), -1)
        model = MLP((x_train.shape[1], *args.hidden, 10), dtype=np.dtype(args.dtype),
                    seed=args.seed)

        def report(epoch, history):
            print(f"epoch {epoch:>2}/{args.epochs}  loss {history.loss[-1]:.4f}  "
                  f"train acc {100 * history.train_accuracy[-1]:.2f}%  "
                  f"test acc {100 * history.val_accuracy[-1]:.2f}%  "
                  f"{history.samples_per_second[-1]:,.0f} samples/s  "
                  f"{history.seconds[-1]:.2f} s", flush=True)

        optimizer = optim.make_optimizer(args.optimizer, args.lr, args.weight_decay)
        print(f"fastmlp: {'-'.join(map(str, model.layer_sizes))} {args.dtype}, backend {name}, "
              f"{args.optimizer} lr {optimizer.learning_rate:g} weight decay "
              f"{optimizer.weight_decay:g} {args.schedule}, batch {args.batch_size}, "
              f"{len(x_train):,} training images", flush=True)
        fit(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
            optimizer=optimizer, schedule=args.schedule,
            validation_data=(x_test, y_test), seed=args.seed, callback=report)
    if args.save:
        model.save(args.save)
        print(f"saved model to {args.save}")
    return 0


def main(argv=None) -> int:
    """Entry point of the ``fastmlp`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, OSError, FloatingPointError, ImportError) as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fastmlp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
