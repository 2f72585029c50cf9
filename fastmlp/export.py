"""Export a trained MLP as a standard ONNX graph: ``MLP.to_onnx`` and ``fastmlp export``.

The graph is the network and nothing else: one ``Gemm`` per layer, ``Relu``
between them, ``Softmax`` at the end, so any ONNX runtime runs it. Its input
``pixels`` holds raw pixel values 0..255 as float32, shape ``(N, n_features)``
with ``N`` free; its output ``probabilities`` has shape ``(N, n_classes)``.

The model's input scaling (``scale * x + offset``) is folded into the first
layer rather than added as ``Mul`` and ``Add`` nodes: with
``W' = W * scale`` and ``b' = b + offset * W.sum(axis=1)``, computed in float64
and then cast, ``W' x + b' = W (scale * x + offset) + b`` exactly in real
arithmetic. The graph stays the three standard operators, and the scaling
costs nothing at inference; the price is rounding in a different order from
fastmlp's, which in float32 moves MNIST test probabilities by about 1.5e-6
at most (the tests hold it to 1e-5), and in float64 by about 1e-15.

Precision: by default the graph computes in the model's dtype. A float64
model exports float64 weights, a ``Cast`` of the float32 input to double and
float64 probabilities, so the export loses nothing; ``dtype="float32"``
exports any model in float32, for runtimes without double-precision kernels
(ONNX Runtime has them on the CPU; many mobile and GPU runtimes do not).
"""

from __future__ import annotations

import os

import numpy as np

from ._atomic import atomic_write
from ._validation import check_dtype

__all__ = ["OPSET", "to_onnx"]

OPSET = 17  # Softmax on one axis since 13; 17 is read by ONNX Runtime >= 1.11

_EXTRA = 'ONNX export needs onnx: pip install "fastmlp[onnx]"'


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ImportError(_EXTRA) from None
    return onnx


def to_onnx(model, path: str | os.PathLike, *, dtype=None) -> None:
    """Write ``model`` to ``path`` as an ONNX graph taking raw float32 pixel values.

    Parameters
    ----------
    model : MLP
    path : str or path-like
        Output file, conventionally ``.onnx``; written atomically.
    dtype : float32 or float64, optional
        Precision of the weights, the computation and the output
        probabilities; default the model's dtype. The input is float32 either
        way: pixel values 0..255 are exact in it.

    Raises
    ------
    ImportError
        If the ``onnx`` package is missing; the message names the ``onnx`` extra.

    Examples
    --------
    >>> import numpy as np, onnxruntime, fastmlp                    # doctest: +SKIP
    >>> model = fastmlp.MLP.load("mnist.npz")                       # doctest: +SKIP
    >>> model.to_onnx("mnist.onnx")                                 # doctest: +SKIP
    >>> session = onnxruntime.InferenceSession("mnist.onnx")        # doctest: +SKIP
    >>> pixels = x_test[:5].reshape(5, 784).astype(np.float32)      # doctest: +SKIP
    >>> session.run(None, {"pixels": pixels})[0].argmax(axis=1)     # doctest: +SKIP
    array([7, 2, 1, 0, 4])
    """
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    from . import __version__

    dtype = model.dtype if dtype is None else check_dtype(dtype)
    elem_type = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    scale, offset = model.scaler.affine()  # the scaled input is scale * x + offset
    layers = [(W.astype(np.float64), b.astype(np.float64)) for W, b in model.params]
    W, b = layers[0]
    layers[0] = (W * scale, b + offset * W.sum(axis=1))

    batch = "N"
    inputs = [helper.make_tensor_value_info("pixels", TensorProto.FLOAT,
                                            [batch, model.n_features])]
    outputs = [helper.make_tensor_value_info("probabilities", elem_type,
                                             [batch, model.n_classes])]
    nodes, initializers = [], []
    a = "pixels"
    if elem_type != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", ["pixels"], ["x"], to=elem_type))
        a = "x"
    last = len(layers) - 1
    for l, (W, b) in enumerate(layers):
        initializers += [numpy_helper.from_array(W.astype(dtype), f"W{l}"),
                         numpy_helper.from_array(b.astype(dtype), f"b{l}")]
        # z = a W^T + b, W of shape (n_out, n_in) as in fastmlp and torch.nn.Linear
        nodes.append(helper.make_node("Gemm", [a, f"W{l}", f"b{l}"], [f"z{l}"], transB=1))
        if l == last:
            nodes.append(helper.make_node("Softmax", [f"z{l}"], ["probabilities"], axis=1))
        else:
            nodes.append(helper.make_node("Relu", [f"z{l}"], [f"a{l + 1}"]))
            a = f"a{l + 1}"
    graph = helper.make_graph(
        nodes, "fastmlp_mlp", inputs, outputs, initializers,
        doc_string=f"MLP {'-'.join(map(str, model.layer_sizes))}: raw pixel values 0..255 in, "
                   "class probabilities out")
    opsets = [helper.make_opsetid("", OPSET)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="fastmlp",
                              producer_version=__version__)
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    helper.set_model_props(proto, {
        "layer_sizes": ",".join(map(str, model.layer_sizes)),
        "input": "raw pixel values 0..255, float32, scaling folded into the first Gemm",
        "input_scale": repr(scale),
        "input_offset": repr(offset),
    })
    onnx.checker.check_model(proto)
    with atomic_write(path) as file:
        file.write(proto.SerializeToString())
