"""fastmlp predict: image files in, one class per image out; pictures as good as the IDX digits."""

import json
import sys

import numpy as np
import pytest

pytest.importorskip("PIL")
from _pictures import encoded, render  # noqa: E402

from fastmlp import MLP  # noqa: E402
from fastmlp.cli import main  # noqa: E402
from fastmlp.images import to_mnist  # noqa: E402


@pytest.fixture(scope="module")
def model(mnist):
    (x_train, y_train), _ = mnist
    model = MLP((784, 128, 128, 10), seed=0)
    model.fit(x_train, y_train, epochs=2)
    return model


def digit_files(mnist, directory, count=6):
    """PNG and JPEG pictures of the first test digits, in varied styles; and their labels."""
    _, (x_test, y_test) = mnist
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        picture = render(x_test[i], canvas=(120, 90), side=80, rng=rng,
                         dark_on_light=i % 2 == 0)
        if i % 3 == 2:
            path = directory / f"digit{i}.jpg"
            picture.save(path, quality=80)
        else:
            path = directory / f"digit{i}.png"
            picture.save(path)
        paths.append(str(path))
    return paths, y_test[:count]


def test_prints_path_class_and_probability_per_image(model_file, mnist, tmp_path, capsys):
    paths, labels = digit_files(mnist, tmp_path)
    assert main(["predict", model_file, *paths]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    lines = captured.out.splitlines()
    assert len(lines) == len(paths)
    width = max(map(len, paths))
    for line, path, label in zip(lines, paths, labels):
        assert line.startswith(f"{path:<{width}}  {label}  ")
        assert 0.5 < float(line.split()[-1]) <= 1


def test_json_lists_every_probability(model, model_file, mnist, tmp_path, capsys):
    paths, labels = digit_files(mnist, tmp_path, count=3)
    assert main(["predict", model_file, *paths, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [sorted(r) for r in results] == [["class", "path", "probabilities", "probability"]] * 3
    assert [r["path"] for r in results] == paths
    assert [r["class"] for r in results] == labels.tolist()
    for result, path in zip(results, paths):
        expected = model.predict_proba(to_mnist(opened(path)).ravel())
        np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-5, atol=1e-9)
        assert result["probability"] == max(result["probabilities"])


def opened(path):
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        return image


def test_bad_files_are_named_and_the_rest_still_predicted(model_file, mnist, tmp_path, capsys):
    paths, labels = digit_files(mnist, tmp_path, count=2)
    (tmp_path / "notes.png").write_text("not a picture")
    truncated = tmp_path / "cut.jpg"
    with open(paths[0], "rb") as file:
        truncated.write_bytes(file.read()[:200])
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.new("L", (40, 40), 200).save(blank)
    missing = str(tmp_path / "missing.png")
    args = [paths[0], str(tmp_path / "notes.png"), str(truncated), missing, str(blank), paths[1]]
    assert main(["predict", model_file, *args]) == 1
    captured = capsys.readouterr()
    assert [line.split()[0] for line in captured.out.splitlines()] == paths
    errors = captured.err.splitlines()
    assert len(errors) == 4, errors
    assert errors[0] == (f"fastmlp: error: cannot read image {tmp_path / 'notes.png'}: "
                         "not an image file Pillow knows (PNG, JPEG, ...)")
    assert errors[1].startswith(f"fastmlp: error: cannot read image {truncated}: ")
    assert "truncated" in errors[1]
    assert errors[2] == f"fastmlp: error: cannot read image {missing}: No such file or directory"
    assert errors[3] == (f"fastmlp: error: {blank}: the image has no ink: every pixel is the "
                         "background level")
    assert "Traceback" not in captured.err


def test_a_model_of_other_inputs_is_refused(tmp_path, capsys):
    MLP((100, 10), seed=0).save(tmp_path / "small.npz")
    assert main(["predict", str(tmp_path / "small.npz"), "digit.png"]) == 1
    assert capsys.readouterr().err == (
        f"fastmlp: error: {tmp_path / 'small.npz'} takes 100 inputs; predicting on images "
        "needs a model of 28x28 = 784 inputs\n")


def test_without_pillow_the_error_names_the_extra(model_file, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "PIL", None)
    assert main(["predict", model_file, "digit.png"]) == 1
    assert capsys.readouterr().err == (
        'fastmlp: error: reading image files needs Pillow: pip install "fastmlp[images]"\n')


STYLES = {  # width x height, then how
    "200x300, dark on light, PNG": dict(),
    "200x300, dark on light, JPEG quality 30": dict(format="JPEG", quality=30),
    "36x40, light on dark, PNG": dict(canvas=(40, 36), side=30, dark_on_light=False),
    "160x120, blue ink on yellow paper, JPEG 75": dict(
        canvas=(120, 160), side=90, ink=(20, 40, 160), paper=(250, 230, 120),
        format="JPEG", quality=75),
    "200x200, grey paper with noise, PNG": dict(
        canvas=(200, 200), side=120, ink=(40,) * 3, paper=(200,) * 3, noise=20),
}


@pytest.mark.parametrize("style", STYLES)
def test_pictures_of_test_digits_are_classified_as_well_as_the_digits(model, mnist, style):
    _, (x_test, y_test) = mnist
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(x_test), 300, replace=False)
    options = dict(STYLES[style])
    image_format = options.pop("format", "PNG")
    quality = {"quality": options.pop("quality")} if "quality" in options else {}
    digits = np.stack([
        to_mnist(encoded(render(x_test[i], rng=rng, **options), image_format, **quality)).ravel()
        for i in chosen])
    on_pictures = np.mean(model.predict(digits) == y_test[chosen])
    on_digits = np.mean(model.predict(x_test[chosen]) == y_test[chosen])
    assert on_digits > 0.95
    assert on_pictures >= on_digits - 0.03, (on_pictures, on_digits)
