"""Export a trained MLP as a standard ONNX graph: ``MLP.to_onnx`` and ``fastmlp export``.

The graph is the network and nothing else: one ``Gemm`` per layer, the
model's activation between them and its output function at the end, each one
standard operator (``ONNX_OPS``: ``Relu``, ``Tanh``, ``Sigmoid``, none for
identity; ``Softmax``, ``Sigmoid``, ``Exp``) or two (leaky ReLU is ``Max(z,
0.01 z)``: ``LeakyRelu``'s slope is a float32 attribute, 0.01 only to 2e-9 in
a float64 graph), so any ONNX runtime runs it. Its input ``pixels`` holds raw pixel values 0..255 as
float32, shape ``(N, n_features)`` with ``N`` free; its output has shape
``(N, n_outputs)`` and is named ``probabilities`` for a softmax or logistic
output (class or label probabilities), ``values`` for identity and exp (a
regression's predictions).

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

# Each activation and output of fastmlp.family as an ONNX operator and its attributes;
# None: no operator (the identity); "Max(z, slope z)": a Mul by the slope, then a Max.
ONNX_OPS = {
    "activation": {"identity": None, "logistic": ("Sigmoid", {}), "tanh": ("Tanh", {}),
                   "relu": ("Relu", {}), "leaky_relu": ("Max(z, slope z)", {})},
    "output": {"softmax": ("Softmax", {"axis": 1}), "logistic": ("Sigmoid", {}),
               "identity": None, "exp": ("Exp", {})},
}


def output_name(output: str) -> str:
    """The name of the graph's output for a model with ``output``: ``'probabilities'`` or
    ``'values'``."""
    return "probabilities" if output in ("softmax", "logistic") else "values"


def _apply(nodes, initializers, operator, source, target, dtype):
    """Append the nodes of ``operator`` (an ``ONNX_OPS`` entry) from ``source`` to
    ``target``, computing in ``dtype``; the identity is an ``Identity`` node (used only
    where the name must change)."""
    from onnx import helper, numpy_helper

    from .family import LEAKY_SLOPE

    if operator is None:
        nodes.append(helper.make_node("Identity", [source], [target]))
    elif operator[0] == "Max(z, slope z)":
        if not any(tensor.name == "slope" for tensor in initializers):
            initializers.append(numpy_helper.from_array(np.array(LEAKY_SLOPE, dtype), "slope"))
        nodes.append(helper.make_node("Mul", [source, "slope"], [f"{source}_sloped"]))
        nodes.append(helper.make_node("Max", [source, f"{source}_sloped"], [target]))
    else:
        op_type, attributes = operator
        nodes.append(helper.make_node(op_type, [source], [target], **attributes))


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
    activation = getattr(model, "activation", "relu")
    output = getattr(model, "output", "softmax")
    out_name = output_name(output)
    outputs = [helper.make_tensor_value_info(out_name, elem_type, [batch, model.n_classes])]
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
            _apply(nodes, initializers, ONNX_OPS["output"][output], f"z{l}", out_name, dtype)
        elif ONNX_OPS["activation"][activation] is None:
            a = f"z{l}"
        else:
            _apply(nodes, initializers, ONNX_OPS["activation"][activation], f"z{l}",
                   f"a{l + 1}", dtype)
            a = f"a{l + 1}"
    graph = helper.make_graph(
        nodes, "fastmlp_mlp", inputs, outputs, initializers,
        doc_string=f"MLP {'-'.join(map(str, model.layer_sizes))}, {activation} hidden layers, "
                   f"{output} output: raw pixel values 0..255 in, {out_name} out")
    opsets = [helper.make_opsetid("", OPSET)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="fastmlp",
                              producer_version=__version__)
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    helper.set_model_props(proto, {
        "layer_sizes": ",".join(map(str, model.layer_sizes)),
        "activation": activation,
        "output": output,
        "input": "raw pixel values 0..255, float32, scaling folded into the first Gemm",
        "input_scale": repr(scale),
        "input_offset": repr(offset),
    })
    onnx.checker.check_model(proto)
    with atomic_write(path) as file:
        file.write(proto.SerializeToString())
