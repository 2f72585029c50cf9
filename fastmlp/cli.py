"""The ``fastmlp`` command line.

Every subcommand is built the same way: a function adding its options, a
function running it, and one `_Command` entry in `COMMANDS` that names them
with the summary and description its ``--help`` shows. Option sets more than
one command takes (training, data) are declared once, in one function each.

Every file a command writes is declared with `_add_output` and checked before
the command starts. Errors print one line, ``fastmlp: error: ...``, and exit
with status 1 (2 for a bad command line, 130 on Ctrl-C); no traceback.

Results (epoch lines, tables, JSON) go to stdout; notices (what was read, what
the run is, what was written, numba compiling, a download) go to stderr as
``fastmlp: ...`` lines, through the ``fastmlp`` loggers (`_notices_on_stderr`),
so that ``fastmlp train > out.txt`` keeps the results alone.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from . import backends, datasets, optim
from ._atomic import atomic_write, unwritable
from ._words import count as _count
from .model import MLP
from .train import check_log_csv, fit

# The command line's own notices (what it read, what it wrote): on stderr, 'fastmlp: ...',
# with the library's (compiling, downloading); results go to stdout. See _notices_on_stderr.
_log = logging.getLogger(__name__)

_DESCRIPTION = """\
Train, profile and benchmark a multilayer perceptron on MNIST, Fashion-MNIST, \
any data set in their IDX layout or arrays of your own; score, apply and \
export the models it saves.

Results go to standard output; notices ('fastmlp: ...': what was read and \
written, downloads, numba compiling) to standard error. --json on any command \
prints its results as JSON alone on standard output.

Errors print one line, 'fastmlp: error: ...', and exit with status 1 (2 for a \
bad command line, 130 when interrupted)."""


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps a description or epilog paragraph by paragraph; indented lines stay as written."""

    def _fill_text(self, text, width, indent):
        paragraphs = text.split("\n\n")
        fill = super()._fill_text
        return "\n\n".join(p if p.startswith("  ") else fill(p, width, indent) for p in paragraphs)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, formatter_class=_HelpFormatter, **kwargs)

    def error(self, message):
        self.exit(2, f"fastmlp: error: {message} (see 'fastmlp --help')\n")


class _Version(argparse.Action):
    """``--version``: the installed version, where it runs from and on which Python, as pip's."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS,
                 help="print the installed version, where fastmlp runs from and the Python "
                      "version, then exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from . import __version__

        python = ".".join(map(str, sys.version_info[:2]))
        print(f"fastmlp {__version__} from {os.path.dirname(os.path.abspath(__file__))} "
              f"(python {python})")
        parser.exit()


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
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


def _batch_sizes(text):
    sizes = _sizes(text)
    if not sizes:
        raise argparse.ArgumentTypeError(f"expected at least one batch size, got {text!r}")
    return sizes


def _widths(text):
    widths = _sizes(text)
    if not widths:
        raise argparse.ArgumentTypeError(f"expected at least one width, got {text!r}")
    return widths


def _names(text):
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _add_output(container, *name_or_flags, check: Callable[[str], object], **kwargs):
    """Add an argument naming a file the command writes; ``main`` checks it before the command.

    ``check(path)`` raises, in words naming ``path``, if the file could not be
    written there (`_writable`, or a check of its own such as the plot's); it
    runs before any data, model or training, so a bad path costs nothing.
    """
    action = container.add_argument(*name_or_flags, **kwargs)
    container.set_defaults(outputs={**(container.get_default("outputs") or {}),
                                    action.dest: check})
    return action


def _writable(what: str) -> Callable[[str], None]:
    """The check of an output path for ``what`` ("the model"): see `fastmlp._atomic.unwritable`."""
    def check(path):
        problem = unwritable(path)
        if problem:
            raise ValueError(f"cannot write {what} to {path}: {problem}")
    return check


def _checkpoint_directory(*, resume: bool) -> Callable[[str], None]:
    """The check of ``--checkpoint`` / ``--resume``: see `fastmlp.checkpoint.check_directory`."""
    def check(directory):
        from .checkpoint import check_directory

        check_directory(directory, resume=resume)
    return check


def _plot_path(path):
    """The check of a ``--plot`` path: matplotlib installed, a known image format, writable."""
    from .plots import check_plot_path

    check_plot_path(path)


def _onnx_path(path):
    """The check of ``export``'s output: the onnx package installed, the file writable."""
    from .export import _onnx

    _writable("the ONNX graph")(path)
    _onnx()


def _add_training_options(parser, *, training_run: bool):
    """The network and how it is trained: options of ``train`` and ``profile``.

    ``training_run``: the command trains to the end (``train``), so it also
    takes epochs, weight decay and the learning-rate schedule.
    """
    model = parser.add_argument_group("model")
    model.add_argument("--hidden", type=_sizes, default=(128, 128), metavar="SIZES",
                       help="hidden layer sizes, comma-separated (default: 128,128); the input "
                            "and output sizes follow the data")
    model.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                       help="precision of the parameters and the arithmetic (default: float32)")
    model.add_argument("--seed", type=int, default=0,
                       help="seed of the initial weights and the shuffling (default: 0)")
    training = parser.add_argument_group("training")
    training.add_argument("--backend", default=None,
                          help="loop, einsum, matmul or numba (default: $FASTMLP_BACKEND or "
                               "numba)")
    if training_run:
        training.add_argument("--epochs", type=_positive_int, default=15,
                              help="passes over the training data (default: 15)")
    training.add_argument("--batch-size", type=_positive_int, default=128, metavar="N",
                          help="samples per gradient step (default: 128)")
    training.add_argument("--optimizer", default="adamw", choices=list(optim.OPTIMIZERS),
                          help="the update rule (default: adamw)")
    training.add_argument("--lr", type=float, default=None,
                          help="peak learning rate (default: " + ", ".join(
                              f"{name} {defaults['learning_rate']:g}"
                              for name, (_, defaults) in optim.OPTIMIZERS.items()) + ")")
    if training_run:
        training.add_argument("--early-stopping", action="store_true",
                              help="hold out --validation-fraction of the training data "
                                   "(stratified, drawn from --seed); when its loss has not "
                                   "improved for --patience epochs, anneal the learning rate "
                                   "over --anneal-epochs epochs and stop, keeping the best "
                                   "epoch's weights; the test set is scored once, at the end")
        training.add_argument("--validation-fraction", type=_fraction, default=0.1,
                              metavar="F", help="share held out by --early-stopping "
                                                "(default: 0.1)")
        training.add_argument("--patience", type=_positive_int, default=5, metavar="N",
                              help="epochs without improvement before --early-stopping stops "
                                   "(default: 5)")
        training.add_argument("--anneal-epochs", type=_non_negative_int, default=5, metavar="N",
                              help="once --patience runs out, train N epochs more while the "
                                   "learning rate anneals to the schedule's end, then stop; 0 "
                                   "stops at once (default: 5)")
        training.add_argument("--weight-decay", type=float, default=None,
                              help="weight decay (default: 0.05 for adamw, else 0)")
        training.add_argument("--schedule", default="onecycle", choices=list(optim.SCHEDULES),
                              help="how the learning rate moves over training: constant, "
                                   "cosine decay, or one cycle up and down (default: onecycle)")


class _NotBothDataAndDataset(argparse.Action):
    """``store`` for ``--data`` and ``--dataset``, refusing the second of them in either order.

    ``--data`` (arrays of your own) goes with neither ``--dataset`` nor
    ``--data-dir``, which go together. A mutually exclusive group holds
    ``--data-dir`` and ``--data``; as an option belongs to one such group only,
    this action keeps ``--data`` and ``--dataset`` apart, naming them in the
    same words whichever came first.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        other = "dataset" if self.dest == "data" else "data"
        if getattr(namespace, other, None) is not None:
            raise argparse.ArgumentError(
                None, "argument --data: not allowed with argument --dataset")
        setattr(namespace, self.dest, values)


_DATA_HELP = {
    # split: (the group's text, what --dataset gives the command, --data's help)
    "train": ("Training data: a known data set by name, any directory of IDX files laid out "
              "like MNIST's, or arrays of your own. The network's input and output sizes "
              "follow the data.",
              "a known data set,",
              "your own arrays: x_train, y_train and optionally x_test, y_test (samples of any "
              "shape, flattened; integer labels 0..n-1)"),
    "test": ("The test set to score on: a known data set's, any directory of IDX files laid "
             "out like MNIST's, or arrays of your own.",
             "a known data set's test split, with its class names,",
             "evaluate on the arrays x_test and y_test (or x and y) of an .npz file instead; "
             "class names from its class_names array if present"),
}


def _add_data_options(parser, split: str):
    """``--dataset``, ``--data-dir`` and ``--data``, for a command reading ``split``.

    ``split`` is ``"train"`` (training and test data: train, profile, bench) or
    ``"test"`` (the test set: evaluate). ``--data`` excludes the other two.
    """
    about, dataset, arrays = _DATA_HELP[split]
    variables = ", ".join(f"{name}: ${info.environment_variable}"
                          for name, info in datasets.DATASETS.items())
    group = parser.add_argument_group("data", about)
    group.add_argument("--dataset", default=None, choices=list(datasets.DATASETS),
                       action=_NotBothDataAndDataset,
                       help=f"{dataset} read from --data-dir, else from its environment "
                            f"variable ({variables}), else from the user cache, downloading on "
                            "first use; checksums verified (default: mnist)")
    sources = group.add_mutually_exclusive_group()
    sources.add_argument("--data-dir", metavar="DIR", default=None,
                         help="directory with the four IDX files (train-images-idx3-ubyte, "
                              "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                              "t10k-labels-idx1-ubyte, raw or .gz) of any data set in that "
                              "layout; verified against the checksums of --dataset when given")
    sources.add_argument("--data", metavar="FILE.npz", default=None,
                         action=_NotBothDataAndDataset, help=arrays)


class _Data(NamedTuple):
    """Training data for a command: inputs flattened to (n_samples, n_features)."""

    train: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray] | None
    n_classes: int
    description: str


def _load_data(args) -> _Data:
    """Read the data ``--dataset``, ``--data-dir`` or ``--data`` choose."""
    if args.data is not None:
        train, test = datasets.load_arrays(args.data)
        source, kind, n_classes = args.data, "samples", None
    elif args.data_dir is not None and args.dataset is None:
        train, test = datasets.load_idx_dataset(args.data_dir)
        source = f"IDX data set in {args.data_dir} (no checksums: --dataset verifies a known one)"
        kind, n_classes = "images", None
    else:
        info = datasets.dataset_info(args.dataset or "mnist")
        train, test = datasets.load_dataset(info.name, args.data_dir)
        source, kind, n_classes = info.title, "images", info.n_classes
    if n_classes is None:
        labels = [train[1]] if test is None else [train[1], test[1]]
        n_classes = 1 + max(int(y.max()) for y in labels)
        samples = sum(len(y) for y in labels)
        if n_classes > samples:  # a stray label, not a class: it would size the output layer
            raise ValueError(f"{source}: the largest label, {n_classes - 1:,}, makes more classes "
                             f"than the {samples:,} samples; labels must be 0 .. n_classes - 1")
    shape = train[0].shape[1:]
    size = f"{shape[0]} features" if len(shape) == 1 else "x".join(map(str, shape))
    tested = f"{len(test[0]):,} test" if test is not None else "no test"
    description = (f"{source}: {len(train[0]):,} training and {tested} {kind} of {size}, "
                   f"{n_classes} classes")

    def flatten(split):
        x, y = split
        return x.reshape(len(x), math.prod(shape)), y

    return _Data(flatten(train), None if test is None else flatten(test), n_classes, description)


def _train_options(parser):
    _add_training_options(parser, training_run=True)
    _add_data_options(parser, "train")
    output = parser.add_argument_group("output")
    _add_output(output, "--save", metavar="PATH", default=None, check=_writable("the model"),
                help="write the trained model to PATH (.npz)")
    _add_output(output, "--plot", metavar="FILE.png", default=None, check=_plot_path,
                help="draw the loss and the train and test accuracy per epoch into FILE.png "
                     "(needs matplotlib: the 'plot' extra)")
    _add_output(output, "--log", metavar="FILE.csv", default=None, check=check_log_csv,
                help="write a header and, as each epoch ends, its row to FILE.csv: epoch, loss, "
                     "train_accuracy, val_accuracy, samples_per_second, seconds, val_loss (val: "
                     "the test set, or --early-stopping's split); with --resume give it again: "
                     "the file is rewritten from the checkpoint, then appended to")
    resuming = output.add_mutually_exclusive_group()
    _add_output(resuming, "--checkpoint", metavar="DIR", default=None,
                check=_checkpoint_directory(resume=False),
                help="after every epoch, write what a resume needs (model, optimizer state, "
                     "epoch, shuffling state) to DIR/checkpoint.npz, atomically, and the "
                     "run's options to DIR/run.json; DIR is created if its parent exists and "
                     "must not hold a checkpoint yet")
    _add_output(resuming, "--resume", metavar="DIR", default=None,
                check=_checkpoint_directory(resume=True),
                help="continue the run whose checkpoint is in DIR, to the same result bit for "
                     "bit, and keep writing its checkpoints there; the run's options (model, "
                     "training, data) are those it was started with, unless given again (a "
                     "different one is refused, naming it)")
    output.add_argument("--quiet", "-q", action="store_true",
                        help="print only the final line")
    output.add_argument("--json", action="store_true",
                        help="print one JSON object when training ends, alone on stdout: the "
                             "model, the data, the options in effect, every epoch's numbers, "
                             "the final result and the files written (with --timings, the "
                             "timings too); no epoch lines or progress bar")
    output.add_argument("--timings", action="store_true",
                        help="end with where the whole process's time went: start-up and "
                             "imports, data, input scaling, the first epoch (which loads or "
                             "compiles numba's kernels), the other epochs, scoring the test set")


def _seconds_since_process_start() -> float | None:
    """Seconds since this process started (Linux: /proc), or None where unknown."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            started = int(stat.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
            return float(uptime.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None


# The options of fastmlp train that make its run, kept in RUN_FILE beside the
# checkpoints so that --resume DIR alone continues the run (--save, --plot, --log,
# --quiet, --json and --timings are this command's own)
RUN_FILE = "run.json"
_DATA_OPTIONS = ("dataset", "data_dir", "data")
RUN_OPTIONS = ("hidden", "dtype", "seed", "backend", "epochs", "batch_size", "optimizer", "lr",
               "weight_decay", "schedule", "early_stopping", "validation_fraction", "patience",
               "anneal_epochs",
               *_DATA_OPTIONS)


def _train(args) -> int:
    if args.checkpoint:
        _write_run_options(args)
    clock = [("start-up and imports", _seconds_since_process_start(), time.perf_counter())]
    name = args.backend or backends.get_backend_name()
    with backends.use_backend(name):
        clock.append(("backend import", None, time.perf_counter()))
        backend = backends.get_backend()
        optimizer = optim.make_optimizer(args.optimizer, args.lr, args.weight_decay)
        prepare = getattr(backend, "prepare_in_background", None)
        if prepare is not None:
            prepare()  # numba readies its compiler while the data is read
        ahead = getattr(backend, "compile_ahead", None)
        if ahead is not None:  # and on a first run compiles the epoch's kernels meanwhile
            ahead(args.dtype, optimizer, len(args.hidden) + 1)
        data = _load_data(args)
        clock.append(("data", None, time.perf_counter()))
        (x_train, y_train), test = data.train, data.test
        model = MLP((x_train.shape[1], *args.hidden, data.n_classes),
                    dtype=np.dtype(args.dtype), seed=args.seed)
        if not args.early_stopping:
            # (with early stopping, fit fits it on the rows it trains on, not the held-out ones)
            model.scaler.fit(x_train)
        clock.append(("input scaling (fit)", None, time.perf_counter()))
        if getattr(args, "resumed_options", None):
            _log.info("the checkpointed run's options: %s", " ".join(args.resumed_options))
        _log.info("%s", data.description)
        _log.info("%s %s, backend %s, %s lr %g weight decay %g %s, batch %d",
                  "-".join(map(str, model.layer_sizes)), args.dtype, name, args.optimizer,
                  optimizer.learning_rate, optimizer.weight_decay, args.schedule,
                  args.batch_size)
        # Early stopping watches a split of the training data; the test set is scored
        # once, at the end, so it never chooses the model it scores.
        stopping = dict(early_stopping=True, validation_fraction=args.validation_fraction,
                        patience=args.patience, anneal_epochs=args.anneal_epochs
                        ) if args.early_stopping else {}
        history = fit(model, x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                      optimizer=optimizer, schedule=args.schedule,
                      validation_data=None if args.early_stopping else test,
                      seed=args.seed, verbose=0 if args.quiet or args.json else "auto",
                      validation_name="val" if args.early_stopping else "test",
                      checkpoint=args.checkpoint or args.resume, resume=bool(args.resume),
                      log_csv=args.log, **stopping)
        test_accuracy = None
        if test is not None:
            test_accuracy = (model.score(*test) if args.early_stopping
                             else history.val_accuracy[-1])
        clock.append(("training", None, time.perf_counter()))
    tested = f"test acc {100 * test_accuracy:.2f}%  " if test is not None else ""
    kept = -1  # the epoch whose weights the model has
    if args.early_stopping:
        kept = history.best_epoch - 1
        tested += (f"best epoch {history.best_epoch}: val acc "
                   f"{100 * history.val_accuracy[kept]:.2f}%  ")
    if not args.json:
        print(f"final  {tested}train acc {100 * history.train_accuracy[kept]:.2f}%  "
              f"loss {history.loss[kept]:.4f}  {_count(len(history), 'epoch')}, "
              f"{sum(history.seconds):.1f} s training")
    if args.save:
        model.save(args.save)
        _log.info("saved model to %s", args.save)
    if args.plot:
        from .plots import plot_history

        plot_history(history, args.plot,
                     validation_label="validation" if args.early_stopping else "test")
        _log.info("saved plot to %s", args.plot)
    phases = _timing_phases(clock, history) if args.timings else None
    if args.json:
        print(json.dumps(_train_result(args, name, model, data, optimizer, history,
                                       test_accuracy, kept, phases), indent=2))
    elif args.timings:
        print(_timings(phases))
    return 0


def _train_result(args, backend, model, data, optimizer, history, test_accuracy, kept,
                  phases) -> dict:
    """What ``fastmlp train --json`` prints: the run and its result, as plain JSON types."""
    validation = "val" if args.early_stopping else "test"
    config = {dest: getattr(args, dest) for dest in RUN_OPTIONS}
    config.update(hidden=list(args.hidden), backend=backend, lr=optimizer.learning_rate,
                  weight_decay=optimizer.weight_decay)

    def number(value):
        return None if value is None else float(value)

    result = {
        "model": {"layer_sizes": list(model.layer_sizes), "dtype": model.dtype.name,
                  "parameters": sum(W.size + b.size for W, b in model.params)},
        "data": {"description": data.description, "train_samples": len(data.train[1]),
                 "test_samples": None if data.test is None else len(data.test[1]),
                 "n_classes": data.n_classes},
        "config": config,
        "history": [{"epoch": epoch + 1, "loss": number(history.loss[epoch]),
                     "train_accuracy": number(history.train_accuracy[epoch]),
                     f"{validation}_loss": number(history.val_loss[epoch]),
                     f"{validation}_accuracy": number(history.val_accuracy[epoch]),
                     "samples_per_second": number(history.samples_per_second[epoch]),
                     "seconds": number(history.seconds[epoch])}
                    for epoch in range(len(history))],
        "final": {"test_accuracy": number(test_accuracy),
                  "train_accuracy": number(history.train_accuracy[kept]),
                  "loss": number(history.loss[kept]), "epochs": len(history),
                  "best_epoch": history.best_epoch, "annealed_from": history.annealed_from,
                  "stop_reason": history.stop_reason,
                  "resumed_after": history.resumed_after,
                  "training_seconds": number(sum(history.seconds))},
        "saved": {"model": args.save, "plot": args.plot,
                  "checkpoint": args.checkpoint or args.resume},
    }
    if phases is not None:
        result["timings"] = {label: seconds for label, seconds in phases}
    return result


def _timing_phases(clock, history) -> list[tuple[str, float | None]]:
    """The whole process's time, phase by phase (None where unknown), from ``_train``'s clock
    readings, and their total."""
    (_, startup, t_main), (_, _, t_backend), (_, _, t_data), (_, _, t_scaled), \
        (_, _, t_trained) = clock
    training = t_trained - t_scaled
    epochs = history.seconds[history.resumed_after:]  # this process's
    first = history.resumed_after + 1
    phases = [("start-up and imports", startup), ("backend import", t_backend - t_main),
              ("data", t_data - t_backend),
              ("input scaling (fit)", t_scaled - t_data),
              (f"epoch {first} (incl. kernels' first call)", epochs[0] if epochs else 0.0),
              (f"epochs {first + 1}-{len(history)}" if len(epochs) > 1 else "later epochs",
               sum(epochs[1:])),
              ("scoring and bookkeeping", training - sum(epochs))]
    return [*phases, ("total", sum(seconds for _, seconds in phases if seconds is not None))]


def _timings(phases) -> str:
    """The table ``--timings`` prints: `_timing_phases`, with each phase's share."""
    *phases, (_, total) = phases
    lines = ["timings (whole process):"]
    for label, seconds in phases:
        shown = "unknown" if seconds is None else f"{seconds:6.3f} s {100 * seconds / total:5.1f}%"
        lines.append(f"  {label:<38} {shown}")
    lines.append(f"  {'total':<38} {total:6.3f} s")
    return "\n".join(lines)


def _profile_options(parser):
    _add_training_options(parser, training_run=False)
    _add_data_options(parser, "train")
    run = parser.add_argument_group("profiling")
    run.add_argument("--steps", type=_positive_int, default=None,
                     help="gradient steps to time (default: one epoch)")
    run.add_argument("--all-backends", action="store_true",
                     help="profile every available backend, side by side (instead of --backend)")
    run.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _profile(args) -> int:
    from .profile import profile_training, side_by_side

    names = backends.available_backends() if args.all_backends else [
        args.backend or backends.get_backend_name()]
    for name in names:
        backends.load_backend(name)  # an unknown name fails before the data is read
    data = _load_data(args)
    x_train, y_train = data.train
    results = []
    for name in names:
        if not args.json and len(names) > 1:
            _log.info("profiling %s ...", name)
        results.append(profile_training(
            name, x=x_train, y=y_train, steps=args.steps, batch_size=args.batch_size,
            dtype=args.dtype, hidden=args.hidden, optimizer=args.optimizer,
            learning_rate=args.lr, n_classes=data.n_classes, seed=args.seed))
    if args.json:
        data = [result.to_dict() for result in results]
        print(json.dumps(data if args.all_backends else data[0], indent=2))
    elif args.all_backends:
        print(side_by_side(results))
    else:
        print(results[0])
    return 0


def _bench_options(parser):
    parser.add_argument("--backends", type=_names, default=None,
                        help="comma-separated (default: every backend but the slow loop)")
    parser.add_argument("--hidden", type=_widths, default=(128,), metavar="WIDTHS",
                        help="hidden widths to sweep, comma-separated: each width W times the "
                             "network n_features-W-W-n_classes, two hidden layers of W units "
                             "(default: 128; unlike train's --hidden, which lists the layers "
                             "of one network)")
    parser.add_argument("--batch-sizes", type=_batch_sizes, default=(32, 128, 1000),
                        metavar="SIZES", help="comma-separated (default: 32,128,1000)")
    parser.add_argument("--epochs", type=_positive_int, default=4,
                        help="timed epochs per contender, in turns; the best counts (default: 4)")
    parser.add_argument("--samples", type=_positive_int, default=None, metavar="N",
                        help="train on the first N training samples only (default: all)")
    parser.add_argument("--threads", type=_positive_int, default=None, metavar="N",
                        help="threads of every contender and of the FMA peak (default: the "
                             "CPUs this process may run on)")
    parser.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    parser.add_argument("--no-jax", action="store_true", help="leave JAX out")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="precision of every contender, the peers included, and of the FMA "
                             "peak (default: float32)")
    _add_output(parser, "--plot", metavar="PATH", default=None, check=_plot_path,
                help="also draw the results into PATH (needs matplotlib): bar charts for one "
                     "width, GFLOP/s against the width with the FMA peak for several")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON (fastmlp.benchmark.Sweep.to_dict, a "
                             "Comparison per width, the machine included) instead of tables; "
                             "progress goes to stderr")
    _add_data_options(parser, "train")


def _bench(args) -> int:
    from . import peers
    from .benchmark import check_threads, plot, plot_widths, sweep

    for name in args.backends or ():
        backends.load_backend(name)  # an unknown name fails before the data is read
    threads = check_threads(args.threads)  # and so does a thread count beyond the CPUs
    wanted = [name for name in peers.PEERS if not getattr(args, f"no_{name}")]
    data = _load_data(args)
    x_train, y_train = data.train
    if args.samples:
        x_train, y_train = x_train[:args.samples], y_train[:args.samples]
    result = sweep(x_train, y_train, widths=args.hidden, n_classes=data.n_classes,
                   backend_names=args.backends, batch_sizes=args.batch_sizes,
                   epochs=args.epochs, peer_names=wanted, threads=threads,
                   report=lambda line: print(line, file=sys.stderr, flush=True),
                   dtype=args.dtype)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(result)
    for name in wanted:
        if name not in result.runs[0].contenders:
            _log.info("%s", peers.missing_message(name))
    if args.plot:
        if len(result.runs) > 1:
            plot_widths(result, args.plot)
        else:
            plot(result.runs[0], args.plot)
        _log.info("saved plot to %s", args.plot)
    return 0


def _evaluate_options(parser):
    parser.add_argument("model", metavar="MODEL", help="model file (.npz)")
    _add_data_options(parser, "test")
    output = parser.add_argument_group("output")
    _add_output(output, "--plot", metavar="FILE.png", default=None, check=_plot_path,
                help="also draw the confusion matrix and the most confident mistakes into "
                     "FILE.png (needs matplotlib: the 'plot' extra)")
    output.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _evaluate(args) -> int:
    from .evaluate import evaluate, evaluation_data

    model = MLP.load(args.model)
    data = evaluation_data(dataset=args.dataset, data_dir=args.data_dir, data=args.data)
    result = evaluate(model, data)
    if args.json:
        print(json.dumps({"model": args.model, **result.to_dict()}, indent=2))
    else:
        print(f"{args.model}: {'-'.join(map(str, model.layer_sizes))} {model.dtype.name} on "
              f"{data.source}, {len(data.y):,} samples")
        print(result)
    if args.plot:
        from .plots import plot_evaluation

        plot_evaluation(result, data.x, args.plot)
        _log.info("saved plot to %s", args.plot)
    return 0


def _predict_options(parser):
    parser.add_argument("model", metavar="MODEL", help="model file (.npz) of a 784-input model")
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="image files")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of {path, class, probability, probabilities} "
                             "(for a model that is not a classifier: {path, outputs})")


def _predict(args) -> int:
    from .evaluate import class_probabilities, model_classes
    from .images import FIELD, read_image, to_mnist

    model = MLP.load(args.model)
    if model.n_features != FIELD * FIELD:
        raise ValueError(f"{args.model} takes {model.n_features} inputs; predicting on images "
                         f"needs a model of {FIELD}x{FIELD} = {FIELD * FIELD} inputs")
    paths, digits, failed = [], [], 0
    for path in args.images:
        try:
            digits.append(to_mnist(read_image(path)).ravel())
            paths.append(path)
            continue
        except OSError as exc:  # not readable as an image; the message names the file
            message = str(exc)
        except ValueError as exc:  # an image, but no digit in it
            message = f"{path}: {exc}"
        print(f"fastmlp: error: {message}", file=sys.stderr, flush=True)
        failed += 1
    results = []
    try:
        model_classes(model)
        classifier = True
    except ValueError:  # multilabel or a regression: its outputs as they are
        classifier = False
    if digits and classifier:
        # one logistic unit is two classes, [1 - p, p], not one
        probabilities = class_probabilities(model, np.stack(digits))
        for path, probs in zip(paths, probabilities):
            label = int(probs.argmax())
            results.append({"path": path, "class": label, "probability": float(probs[label]),
                            "probabilities": [float(p) for p in probs]})
    elif digits:
        for path, values in zip(paths, np.atleast_2d(model.predict_values(np.stack(digits)))):
            results.append({"path": path, "outputs": [float(v) for v in values]})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        width = max((len(result["path"]) for result in results), default=0)
        for result in results:
            if classifier:
                print(f"{result['path']:<{width}}  {result['class']}  "
                      f"{result['probability']:.4f}")
            else:
                print(f"{result['path']:<{width}}  "
                      + "  ".join(f"{v:.4g}" for v in result["outputs"]))
    return 1 if failed else 0


def _export_options(parser):
    parser.add_argument("model", metavar="MODEL", help="model file (.npz)")
    _add_output(parser, "out", metavar="OUT.onnx", check=_onnx_path, help="ONNX file to write")
    parser.add_argument("--dtype", choices=["float32", "float64"], default=None,
                        help="precision of the graph's weights and output (default: the "
                             "model's; float32 for runtimes without double kernels)")
    parser.add_argument("--json", action="store_true",
                        help="print what was written as JSON on stdout: the file, the opset, "
                             "the layer sizes, and the graph's input and output (name, dtype, "
                             "shape, with null for the free batch dimension)")


def _export(args) -> int:
    from .export import OPSET, output_name

    model = MLP.load(args.model)
    model.to_onnx(args.out, dtype=args.dtype)
    dtype = args.dtype or model.dtype.name
    if args.json:
        print(json.dumps({
            "model": args.model, "path": args.out, "opset": OPSET,
            "layer_sizes": list(model.layer_sizes), "dtype": dtype,
            "input": {"name": "pixels", "dtype": "float32", "shape": [None, model.n_features],
                      "value_range": [0, 255]},
            "activation": model.activation, "output_function": model.output,
            "output": {"name": output_name(model.output), "dtype": dtype,
                       "shape": [None, model.n_classes]},
        }, indent=2))
    _log.info("wrote %s: ONNX opset %d, %s %s; input 'pixels' float32 (N, %d) raw 0..255, "
              "output '%s' %s (N, %d)", args.out, OPSET,
              "-".join(map(str, model.layer_sizes)), dtype, model.n_features,
              output_name(model.output), dtype, model.n_classes)
    return 0


class _Command(NamedTuple):
    """A subcommand: what ``fastmlp --help`` and its own ``--help`` say, and its two functions."""

    name: str
    summary: str  # the line in ``fastmlp --help``
    description: str  # the text its ``--help`` opens with
    examples: str  # command lines its ``--help`` ends with, one a line
    add_options: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]  # returns the exit status


COMMANDS = (
    _Command(
        "train", "train the MLP on MNIST, Fashion-MNIST or your own data",
        "Train an MLP and report loss, accuracy and throughput per epoch: a plain line per "
        "epoch on standard output and, when standard error is a terminal, a progress bar over "
        "each epoch's steps there; a final line sums up.",
        "fastmlp train --epochs 5 --save mnist.npz\n"
        "fastmlp train --dataset fashion-mnist --backend numba --plot curves.png\n"
        "fastmlp train --data mine.npz --hidden 64 --quiet\n"
        "fastmlp train --epochs 5 --save mnist.npz --json",
        _train_options, _train),
    _Command(
        "profile", "time each phase of training steps",
        "Train a fresh model for some steps (default: one epoch) and print where the time "
        "goes: data, forward, backward, update and Python overhead, as seconds, share, "
        "samples/s and GFLOP/s against this machine's FMA peak (and BLAS's GEMM rate). The "
        "same batches also go through the backend's fused epoch, which fit runs, when it has "
        "one; numba's is split into its parts (gather, products, epilogues, update, wait, "
        "other, launch; CPU cycles counted on each worker thread), the products with their "
        "own GFLOP/s.",
        "fastmlp profile --backend numba --steps 200\n"
        "fastmlp profile --all-backends --json",
        _profile_options, _profile),
    _Command(
        "bench", "compare backends, plain NumPy, PyTorch and JAX",
        "Time training epochs, the full forward pass and single-sample predict for every "
        "backend and, when importable, PyTorch and JAX (the 'peers' extra), each peer in a "
        "process of its own and every contender on the same threads, taking turns; print "
        "each one's version, its GFLOP/s and share of this machine's FMA peak, and the "
        "ratios. --hidden sweeps the hidden width; with --json, the numbers and the machine "
        "as JSON.",
        "fastmlp bench --backends matmul,numba --batch-sizes 128 --plot bench.png\n"
        "fastmlp bench --hidden 128,512,1024,2048 --batch-sizes 128 --plot widths.png\n"
        "fastmlp bench --samples 10000 --epochs 2 --no-torch --no-jax --json",
        _bench_options, _bench),
    _Command(
        "evaluate", "score a saved model on the test set",
        "Run a model saved by 'fastmlp train --save' over a test set (MNIST's by default) and "
        "print its accuracy, precision, recall, F1 and support per class, and the confusion "
        "matrix.",
        "fastmlp evaluate mnist.npz --plot evaluation.png\n"
        "fastmlp evaluate fashion.npz --dataset fashion-mnist --json",
        _evaluate_options, _evaluate),
    _Command(
        "predict", "classify pictures of digits (PNG, JPEG)",
        "Classify image files of single digits with a saved model. Each picture, grey or "
        "colour, of any size, is first made like an MNIST digit: greyscale, light ink on dark "
        "(a drawing on a light background, judged by the median of its border, is inverted), "
        "cropped to the ink, scaled to fit 20x20 and centred by its centre of mass in 28x28; "
        "see fastmlp.preprocessing.to_mnist. Prints one line per image: path, class, "
        "probability. Needs Pillow (the 'images' extra).",
        "fastmlp predict mnist.npz seven.png scan.jpg",
        _predict_options, _predict),
    _Command(
        "export", "write a saved model as ONNX",
        "Write a model saved by 'fastmlp train --save' as a standard ONNX graph (Gemm, Relu, "
        "Softmax) for any ONNX runtime. Its input 'pixels' is raw float32 pixel values 0..255 "
        "of shape (N, n_features), the input scaling folded into the first Gemm; its output "
        "'probabilities' has shape (N, n_classes). Needs the onnx package (the 'onnx' extra).",
        "fastmlp export mnist.npz mnist.onnx --dtype float32",
        _export_options, _export),
)


def build_parser() -> argparse.ArgumentParser:
    """The ``fastmlp`` parser: one subparser per entry of `COMMANDS`, in that order."""
    parser = _Parser(prog="fastmlp", description=_DESCRIPTION,
                     epilog="Run 'fastmlp COMMAND --help' for what a command does and takes.")
    parser.add_argument("--version", action=_Version)
    parser.commands = {}  # name -> subparser
    commands = parser.add_subparsers(title="commands", dest="command", required=True,
                                     parser_class=_Parser)
    for command in COMMANDS:
        examples = "\n".join(f"  {line}" for line in command.examples.splitlines())
        subparser = commands.add_parser(command.name, help=command.summary,
                                        description=command.description,
                                        epilog=f"examples:\n\n{examples}")
        command.add_options(subparser)
        subparser.set_defaults(run=command.run)
        parser.commands[command.name] = subparser
    return parser


_UNSET = object()


def _given(argv, command: str) -> set[str]:
    """The options of ``command`` that ``argv`` gives (abbreviated or not), by their dests."""
    probe = build_parser()
    for action in probe.commands[command]._actions:
        action.default = _UNSET
    return {dest for dest, value in vars(probe.parse_args(argv)).items() if value is not _UNSET}


def _resumed_options(args, given: set[str]) -> list[str]:
    """Take the options of the run checkpointed in ``args.resume`` that ``given`` lacks.

    The options come from the run's ``RUN_FILE``; the data options come as a
    group, unless one of them is given. Returns them as command-line words,
    where they differ from this command line's.
    """
    path = os.path.join(args.resume, RUN_FILE)
    try:
        with open(path) as file:
            stored = json.load(file)
    except FileNotFoundError:
        return []  # a checkpoint of fit() alone: the options are the command line's
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the options of the checkpointed run in {path}: "
                         f"{error}") from None
    taken = []
    data_given = bool(given & set(_DATA_OPTIONS))
    for dest in RUN_OPTIONS:
        if dest in given or (dest in _DATA_OPTIONS and data_given) or dest not in stored:
            continue
        value = stored[dest]
        value = tuple(value) if dest == "hidden" else value
        if value != getattr(args, dest):
            setattr(args, dest, value)
            flag = "--" + dest.replace("_", "-")
            if value is True:
                taken.append(flag)
            elif value is not None and value is not False:
                shown = ",".join(map(str, value)) if dest == "hidden" else value
                taken.append(f"{flag} {shown}")
    return taken


def _write_run_options(args) -> None:
    """Keep the run's options beside its checkpoints (``RUN_FILE``), for ``--resume``."""
    options = {dest: getattr(args, dest) for dest in RUN_OPTIONS}
    for dest in _DATA_OPTIONS[1:]:  # paths, made absolute: a resume may run elsewhere
        if options[dest] is not None:
            options[dest] = os.path.abspath(options[dest])
    from .checkpoint import prepare

    prepare(args.checkpoint)
    with atomic_write(os.path.join(args.checkpoint, RUN_FILE)) as file:
        file.write(json.dumps(options, indent=1).encode())


class _StderrHandler(logging.StreamHandler):
    """A handler writing to whatever ``sys.stderr`` is when a record comes, as logging's
    last resort does (tests and callers may replace it)."""

    def __init__(self):
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


@contextlib.contextmanager
def _notices_on_stderr(level: int):
    """While a command runs, show the ``fastmlp`` loggers' records of ``level`` and above on
    stderr, one line each, ``fastmlp: ...``; and only there (no propagation to the root)."""
    logger = logging.getLogger("fastmlp")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("fastmlp: %(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def main(argv=None) -> int:
    """Run the ``fastmlp`` command line ``argv`` (default: the process's); the exit status."""
    args = build_parser().parse_args(argv)
    level = logging.WARNING if getattr(args, "quiet", False) else logging.INFO
    with _notices_on_stderr(level):
        return _run(args, argv)


def console(argv=None) -> int:
    """Entry point of the ``fastmlp`` console script and ``python -m fastmlp``: ``main``, in
    a process that ends when it returns.

    An ending interpreter runs the garbage collector's search for cycles over every
    object still alive: after numba has compiled, a quarter of a million, 0.4-0.7 s of a
    first ``fastmlp train --epochs 1`` (5.4-5.8 s -> 4.9-5.1 s on the project's 2-core
    Zen 4 EPYC, alternating runs) and 0.1-0.3 s of a later one. ``gc.freeze`` moves them
    where the collector does not look; all the command's files are written and closed
    by then, and the interpreter still flushes standard output and runs ``atexit``.
    """
    status = main(argv)
    gc.freeze()
    return status


def _run(args, argv) -> int:
    """Run the command ``args`` names: errors as one line, and the exit status."""
    try:
        for dest, check in getattr(args, "outputs", {}).items():
            if getattr(args, dest) is not None:
                check(getattr(args, dest))  # before any work: a bad path costs nothing
        if getattr(args, "resume", None):
            args.resumed_options = _resumed_options(
                args, _given(sys.argv[1:] if argv is None else argv, args.command))
        return args.run(args)
    except BrokenPipeError:
        # The reader went away (`fastmlp profile --json | head`): stop quietly, as `cat` does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, OSError, FloatingPointError, ImportError) as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        directory = getattr(args, "checkpoint", None) or getattr(args, "resume", None)
        hint = f"; continue with --resume {directory}" if directory else ""
        print(f"fastmlp: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
