"""Checkpoints of a training run, which resume it to the same bits.

``fit(..., checkpoint=directory)`` writes ``directory/checkpoint.npz`` after
every epoch, atomically (a temporary file renamed over the old one), so an
interruption at any moment leaves the last complete epoch's checkpoint.
``fit(..., checkpoint=directory, resume=True)`` reads it back and continues:
the parameters and the input scaler, the optimizer's state and step count,
the epoch, and with it the learning-rate schedule's position, the shuffling
generator's state, the history, and early stopping's best so far. The run
then computes exactly what it would have computed without the interruption.

A checkpoint holds the configuration of its run (layer sizes, dtype, a digest
of the data, epochs, batch size, optimizer, schedule, seed, early stopping),
and a resume with another one is refused with a message naming what differs.
The file is an ``.npz`` of plain arrays and one JSON string, read without
pickle.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from typing import NamedTuple

import numpy as np

from ._atomic import atomic_write, unwritable
from ._flat import flat_views
from .exceptions import CheckpointError

CHECKPOINT_FILE = "checkpoint.npz"
FORMAT_VERSION = 1


def checkpoint_file(directory) -> str:
    """The path of the checkpoint in ``directory``."""
    return os.path.join(os.fspath(directory), CHECKPOINT_FILE)


def check_directory(directory, *, resume: bool) -> None:
    """Raise, naming ``directory``, unless a run can keep its checkpoints there.

    The directory must be writable, or not exist yet in a writable directory
    (``prepare`` creates it). With ``resume`` it must hold a checkpoint;
    without, it must not: a new run would overwrite it.

    Raises
    ------
    CheckpointError
        If ``resume`` and there is no checkpoint, or not ``resume`` and there is one.
    OSError
        If the directory cannot be made or written.
    """
    directory = os.fspath(directory)
    path = checkpoint_file(directory)
    if os.path.isdir(directory):
        problem = unwritable(path)
    elif os.path.exists(directory):
        problem = f"{directory} is not a directory"
    else:
        problem = unwritable(directory)
    if problem:
        raise OSError(f"cannot write checkpoints to {directory}: {problem}")
    exists = os.path.exists(path)
    if resume and not exists:
        raise CheckpointError(f"no checkpoint to resume in {directory} (no {CHECKPOINT_FILE})")
    if not resume and exists:
        raise CheckpointError(
            f"{directory} already holds a checkpoint; resume it (resume=True, or "
            f"fastmlp train --resume {directory}) or remove it first"
        )


def prepare(directory) -> None:
    """Create ``directory`` if it does not exist (its parent must)."""
    os.makedirs(os.fspath(directory), exist_ok=True)


def data_digest(*arrays: np.ndarray) -> str:
    """A short hex digest of arrays' dtypes, shapes and bytes: what tells two data sets apart."""
    digest = hashlib.blake2b(digest_size=8)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.data)
    return digest.hexdigest()


def describe_data(x: np.ndarray, y: np.ndarray) -> str:
    """How a checkpoint's configuration names a data set: its size and digest."""
    return f"{x.shape[0]:,} samples of {x.shape[1]:,} features ({x.dtype}), " \
           f"digest {data_digest(x, y)}"


class Saved(NamedTuple):
    """A checkpoint as read: what ``fit`` needs to continue the run."""

    epoch: int                    # epochs done
    finished: bool                # the run ended (its last epoch, or early stopping)
    params: np.ndarray            # the parameters, as one flat vector
    scaler: dict                  # InputScaler's standardize, fitted, mean, std
    optimizer: dict               # the optimizer's state_dict()
    rng: dict                     # the shuffling generator's bit_generator.state
    history: dict                 # History's fields
    stopping: dict | None         # early stopping's state, with its best parameters
    validation_rows: np.ndarray | None  # the rows split off for validation


def _check_config(saved: dict[str, str], config: dict[str, str], path: str) -> None:
    """Raise ``CheckpointError`` naming every entry where ``config`` differs from ``saved``."""
    differences = [
        f"{name}: {saved.get(name, 'not recorded')} in the checkpoint, {value} now"
        for name, value in config.items() if saved.get(name) != value
    ]
    if differences:
        raise CheckpointError(
            f"checkpoint {path} is of another run; " + "; ".join(differences)
        )


def write(directory, *, config: dict[str, str], epoch: int, finished: bool, model, optimizer,
          rng: np.random.Generator, history: dict, stopping: dict | None,
          validation_rows: np.ndarray | None) -> None:
    """Write the checkpoint of a run after ``epoch`` epochs, atomically.

    ``stopping`` is early stopping's state, its ``best_params`` (a flat vector,
    or None) stored as an array and the rest in the JSON.
    """
    state = optimizer.state_dict()
    arrays = {"params": _flat_vector([a for pair in model.params for a in pair])}
    for name, parts in state["arrays"].items():
        if parts is not None:
            arrays[f"optimizer.{name}"] = _flat_vector(parts)
    stopping = None if stopping is None else dict(stopping)
    if stopping is not None:
        best = stopping.pop("best_params")
        if best is not None:
            arrays["best_params"] = best
    if validation_rows is not None:
        arrays["validation_rows"] = validation_rows
    scaler = model.scaler
    meta = {
        "format_version": FORMAT_VERSION,
        "config": config,
        "epoch": epoch,
        "finished": finished,
        "scaler": {"standardize": bool(scaler.standardize), "fitted": bool(scaler.fitted),
                   "mean": float(scaler.mean), "std": float(scaler.std)},
        "optimizer": {key: value for key, value in state.items() if key != "arrays"}
                     | {"arrays": {name: parts is not None
                                   for name, parts in state["arrays"].items()}},
        "rng": rng.bit_generator.state,
        "history": history,
        "stopping": stopping,
    }
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_write(checkpoint_file(directory)) as file:
        np.savez(file, **arrays)


def read(directory, config: dict[str, str], shapes: list[tuple[int, ...]], dtype) -> Saved:
    """The checkpoint in ``directory`` of the run ``config`` describes, whose parameters
    have ``shapes`` and ``dtype``.

    Raises
    ------
    CheckpointError
        If it is missing, corrupt or truncated, of another format, of another
        run (the message names every difference of its configuration), or its
        arrays do not fit the parameters; the message names the file.
    """
    path = checkpoint_file(directory)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"checkpoint {path} has format version {meta.get('format_version')!r}; "
                f"this fastmlp reads {FORMAT_VERSION}"
            )
        _check_config(meta["config"], config, path)
        size = sum(int(np.prod(shape)) for shape in shapes)
        params = arrays.pop("params")
        best = arrays.pop("best_params", None)
        for name, vector in [("params", params), ("best_params", best),
                             *((n, arrays.get(f"optimizer.{n}"))
                               for n, kept in meta["optimizer"]["arrays"].items() if kept)]:
            if vector is None and name != "best_params":
                raise CheckpointError(f"checkpoint {path} is missing its {name}")
            if vector is not None and (vector.shape != (size,) or vector.dtype != dtype):
                raise CheckpointError(
                    f"checkpoint {path}: {name} holds {vector.shape} {vector.dtype}; "
                    f"the network has {size:,} parameters of {np.dtype(dtype)}"
                )
        optimizer = dict(meta["optimizer"])
        optimizer["arrays"] = {
            name: flat_views(arrays[f"optimizer.{name}"], shapes) if kept else None
            for name, kept in optimizer["arrays"].items()
        }
        stopping = meta["stopping"]
        if stopping is not None:
            stopping = {**stopping, "best_params": best}
        return Saved(int(meta["epoch"]), bool(meta["finished"]), params,
                     meta["scaler"], optimizer, meta["rng"], meta["history"], stopping,
                     arrays.get("validation_rows"))
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint to resume in {os.fspath(directory)} "
                              f"(no {CHECKPOINT_FILE})") from None
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc!r}") from None


def _flat_vector(arrays) -> np.ndarray:
    return np.concatenate([np.ravel(a) for a in arrays])
