"""ONNX export: a standard graph whose probabilities match fastmlp's, on raw float32 pixels."""

import json
import sys

import numpy as np
import pytest

from fastmlp import MLP
from fastmlp.cli import main

onnx = pytest.importorskip("onnx")


def trained(mnist, layer_sizes, dtype, standardize=True):
    (x_train, y_train), _ = mnist
    model = MLP(layer_sizes, dtype=dtype, seed=0, standardize=standardize)
    model.fit(x_train[:3000], y_train[:3000], epochs=1, batch_size=100)
    return model


def run_onnx(path, pixels):
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"pixels": pixels})
    return output


@pytest.mark.parametrize("layer_sizes", [(784, 10), (784, 64, 32, 10)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnx_runtime_gives_fastmlps_probabilities(mnist, tmp_path, layer_sizes, dtype):
    _, (x_test, _) = mnist
    model = trained(mnist, layer_sizes, dtype)
    path = tmp_path / "model.onnx"
    model.to_onnx(path)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    hidden = len(layer_sizes) - 2
    ops = ["Gemm", "Relu"] * hidden + ["Gemm", "Softmax"]
    assert [node.op_type for node in proto.graph.node] == (
        ops if dtype == "float32" else ["Cast", *ops])
    (graph_input,) = proto.graph.input
    assert graph_input.name == "pixels"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert [d.dim_param or d.dim_value for d in graph_input.type.tensor_type.shape.dim] == [
        "N", 784]

    probs = run_onnx(path, x_test.astype(np.float32))  # raw pixel values 0..255
    expected = model.predict_proba(x_test)
    assert probs.dtype == np.dtype(dtype) and probs.shape == (10_000, 10)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-5)
    agreement = np.mean(probs.argmax(axis=1) == expected.argmax(axis=1))
    assert agreement >= 0.9999


def test_a_float64_model_exports_in_float32_on_request(mnist, tmp_path):
    _, (x_test, _) = mnist
    model = trained(mnist, (784, 32, 10), "float64")
    model.to_onnx(tmp_path / "small.onnx", dtype="float32")
    probs = run_onnx(tmp_path / "small.onnx", x_test[:2000].astype(np.float32))
    assert probs.dtype == np.float32
    np.testing.assert_allclose(probs, model.predict_proba(x_test[:2000]), rtol=0, atol=1e-5)


def test_an_unstandardised_model_folds_no_scaling(mnist, tmp_path):
    # standardize=False: the network sees the raw values, so the first Gemm keeps W as it is
    _, (x_test, _) = mnist
    model = trained(mnist, (784, 16, 10), "float32", standardize=False)
    model.to_onnx(tmp_path / "plain.onnx")
    W0 = onnx.numpy_helper.to_array(onnx.load(tmp_path / "plain.onnx").graph.initializer[0])
    np.testing.assert_array_equal(W0, model.params[0][0])
    probs = run_onnx(tmp_path / "plain.onnx", x_test[:500].astype(np.float32))
    np.testing.assert_allclose(probs, model.predict_proba(x_test[:500]), rtol=0, atol=1e-5)


def test_export_command_writes_the_file_and_says_what_it_holds(mnist, tmp_path, capsys):
    model = trained(mnist, (784, 16, 10), "float64")
    model.save(tmp_path / "model.npz")
    out = tmp_path / "model.onnx"
    assert main(["export", str(tmp_path / "model.npz"), str(out), "--dtype", "float32"]) == 0
    assert capsys.readouterr() == ("", (  # a notice of the file written, on stderr
        f"fastmlp: wrote {out}: ONNX opset 17, 784-16-10 float32; input 'pixels' float32 "
        "(N, 784) raw 0..255, output 'probabilities' float32 (N, 10)\n"))
    onnx.checker.check_model(onnx.load(out))
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_export_json_describes_the_graph_written(mnist, tmp_path, capsys):
    model = trained(mnist, (784, 16, 10), "float64")
    model.save(tmp_path / "model.npz")
    out = tmp_path / "model.onnx"
    assert main(["export", str(tmp_path / "model.npz"), str(out), "--json"]) == 0
    printed, notices = capsys.readouterr()
    assert json.loads(printed) == {  # stdout holds the JSON alone
        "model": str(tmp_path / "model.npz"), "path": str(out), "opset": 17,
        "layer_sizes": [784, 16, 10], "dtype": "float64",
        "activation": "relu", "output_function": "softmax",
        "input": {"name": "pixels", "dtype": "float32", "shape": [None, 784],
                  "value_range": [0, 255]},
        "output": {"name": "probabilities", "dtype": "float64", "shape": [None, 10]}}
    assert notices.startswith(f"fastmlp: wrote {out}: ONNX opset 17, 784-16-10 float64; ")
    graph = onnx.load(out).graph  # what the JSON says is what the file holds
    for value, name, elem_type, width in [(graph.input[0], "pixels", onnx.TensorProto.FLOAT, 784),
                                          (graph.output[0], "probabilities",
                                           onnx.TensorProto.DOUBLE, 10)]:
        assert value.name == name and value.type.tensor_type.elem_type == elem_type
        assert value.type.tensor_type.shape.dim[1].dim_value == width
    assert onnx.load(out).opset_import[0].version == 17


def test_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "none.npz"), str(tmp_path / "x.onnx")]) == 1
    assert capsys.readouterr().err == (
        f"fastmlp: error: model file {tmp_path / 'none.npz'} does not exist\n")


def test_without_onnx_the_error_names_the_extra(monkeypatch, tmp_path, capsys):
    MLP((4, 2), seed=0).save(tmp_path / "tiny.npz")
    monkeypatch.setitem(sys.modules, "onnx", None)
    status = main(["export", str(tmp_path / "tiny.npz"), str(tmp_path / "tiny.onnx")])
    assert status == 1
    assert capsys.readouterr().err == (
        'fastmlp: error: ONNX export needs onnx: pip install "fastmlp[onnx]"\n')
    assert not (tmp_path / "tiny.onnx").exists()
