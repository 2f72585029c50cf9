"""The process of one peer of ``fastmlp bench``: ``python -m fastmlp.peers.worker NAME ...``.

Started by :class:`fastmlp.peers.PeerProcess`. It builds the peer (which sets its
threads, then imports its framework), loads the data of
:func:`fastmlp.peers.shared_data`, says ``{"version", "threads",
"threads_set_by"}`` on a line of JSON, then answers each request read from
standard input, one JSON line each way:

- ``{"do": "trainer", "batch_size": B}``: build the epoch of batch ``B`` and
  train it once, untimed; answers ``{}``;
- ``{"do": "epoch"}``: train one more, ``{"seconds": ...}``;
- ``{"do": "forward"}``, ``{"do": "predict"}``: the forward pass over all of
  the data, one sample's prediction, ``{"seconds": ...}``.

A failure answers ``{"error": "..."}``. It ends when standard input does. The
answers go to what was standard output when it started; anything a library
prints there goes to standard error instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

import numpy as np

from . import PEERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=PEERS)
    parser.add_argument("--layer-sizes", required=True)
    parser.add_argument("--dtype", required=True, choices=("float32", "float64"))
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--data", required=True, help="directory of x.npy and y.npy")
    args = parser.parse_args(argv)
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())

    def answer(**message) -> None:
        answers.write(json.dumps(message) + "\n")
        answers.flush()

    try:
        module = importlib.import_module(f"{__package__}.{args.peer}")
        layer_sizes = tuple(int(size) for size in args.layer_sizes.split(","))
        peer = module.Peer(layer_sizes, args.dtype, args.threads)
        x = np.load(os.path.join(args.data, "x.npy"))
        y = np.load(os.path.join(args.data, "y.npy"))
    except Exception as error:
        answer(error=f"{type(error).__name__}: {error}")
        return 1
    answer(version=peer.version, threads=peer.threads, threads_set_by=peer.threads_set_by)
    epoch = None
    for line in sys.stdin:
        request = json.loads(line)
        try:
            if request["do"] == "trainer":
                epoch = peer.trainer(x, y, request["batch_size"])
                answer()
            elif request["do"] == "epoch":
                if epoch is None:
                    raise ValueError("an epoch was asked for before a trainer")
                answer(seconds=epoch())
            elif request["do"] == "forward":
                answer(seconds=peer.forward(x))
            elif request["do"] == "predict":
                answer(seconds=peer.predict_one(x))
            else:
                raise ValueError(f"unknown request {request['do']!r}")
        except Exception as error:
            answer(error=f"{type(error).__name__}: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
