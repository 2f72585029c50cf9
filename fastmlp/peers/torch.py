"""PyTorch as a peer of ``fastmlp bench``: eager mode, the training loop of its tutorials."""

from __future__ import annotations

import time

import numpy as np

from .._timing import per_call, timed
from . import LEARNING_RATE, scaled


class Peer:
    """The network in PyTorch eager mode: ``nn.Sequential`` of ``nn.Linear`` and ``nn.ReLU``.

    Each step is ``zero_grad``, the forward pass and ``CrossEntropyLoss``,
    ``backward`` and ``optim.SGD.step``, on slices of a tensor shuffled once an
    epoch. ``threads`` goes to ``torch.set_num_threads``, PyTorch's control of
    its intra-op thread pool, before any torch code runs.
    """

    threads_set_by = "torch.set_num_threads"

    def __init__(self, layer_sizes, dtype, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.version = f"torch {torch.__version__}"
        self.threads = torch.get_num_threads()
        self.dtype = np.dtype(dtype)
        torch.manual_seed(0)
        layers = []
        for i, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
            layers.append(torch.nn.Linear(n_in, n_out))
            if i < len(layer_sizes) - 2:
                layers.append(torch.nn.ReLU())
        self.net = torch.nn.Sequential(*layers)
        if self.dtype == np.float64:
            self.net = self.net.double()

    def get_params(self) -> list:
        """The parameters as fastmlp lays them out: ``(W, b)`` a layer, ``W`` ``(n_out, n_in)``."""
        return [(layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy())
                for layer in self.net if isinstance(layer, self.torch.nn.Linear)]

    def set_params(self, params) -> None:
        """Start from ``params``, in the layout of :meth:`get_params`."""
        layers = [layer for layer in self.net if isinstance(layer, self.torch.nn.Linear)]
        with self.torch.no_grad():
            for layer, (W, b) in zip(layers, params, strict=True):
                layer.weight.copy_(self.torch.from_numpy(np.asarray(W, self.dtype)))
                layer.bias.copy_(self.torch.from_numpy(np.asarray(b, self.dtype)))

    def trainer(self, x, y, batch_size):
        """A function that trains one epoch and returns its seconds (after one warm-up)."""
        torch = self.torch
        X = torch.from_numpy(scaled(x, self.dtype))
        Y = torch.from_numpy(y.astype(np.int64))
        optimizer = torch.optim.SGD(self.net.parameters(), lr=LEARNING_RATE)
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
        """Seconds of the probabilities of all of ``x`` as one batch, the best of ``repeats``."""
        X = self.torch.from_numpy(scaled(x, self.dtype))
        with self.torch.no_grad():
            self.net(X[:100]).softmax(1)
            return min(timed(lambda: self.net(X).softmax(1)) for _ in range(repeats))

    def predict_one(self, x, calls=2000):
        """Seconds per call of the class of one already scaled sample."""
        sample = self.torch.from_numpy(scaled(x[0], self.dtype))
        with self.torch.no_grad():
            return per_call(lambda: int(self.net(sample).argmax()), calls)
