"""to_mnist: pictures of digits of any size, colour and polarity back to MNIST's 28x28 form."""

import sys

import numpy as np
import pytest

pytest.importorskip("PIL")
from _pictures import aligned_distance, encoded, render  # noqa: E402
from PIL import Image  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp.images import read_image, to_mnist  # noqa: E402


@pytest.fixture(scope="module")
def test_digits(mnist):
    _, (x_test, y_test) = mnist
    return x_test[:40], y_test[:40]


@pytest.mark.parametrize("image_format, options", [("PNG", {}), ("JPEG", {"quality": 90})])
def test_a_large_off_centre_dark_on_light_digit_comes_back_as_the_original(
        test_digits, image_format, options):
    x, _ = test_digits
    rng = np.random.default_rng(1)
    distances = []
    for digit in x:
        picture = encoded(render(digit, canvas=(300, 200), side=150, rng=rng), image_format,
                          **options)
        assert picture.size == (200, 300)
        back = to_mnist(picture)
        assert back.shape == (28, 28) and back.dtype == np.uint8
        distances.append(aligned_distance(back, digit))
    mad, correlation = np.array(distances).T
    # Same-class MNIST digits differ by ~32 grey levels on average, correlation ~0.43;
    # resampling twice costs the round trip ~6 levels and 0.97.
    assert mad.mean() < 8 and mad.max() < 15, mad
    assert correlation.mean() > 0.95 and correlation.min() > 0.8, correlation


def test_polarity_is_found_from_the_border(test_digits):
    digit = test_digits[0][0]
    dark_on_light = render(digit, position=(40, 30))
    light_on_dark = render(digit, position=(40, 30), dark_on_light=False)
    np.testing.assert_array_equal(to_mnist(dark_on_light), to_mnist(light_on_dark))
    assert to_mnist(dark_on_light)[0, 0] == 0  # the background comes out black


def test_colour_ink_on_colour_paper_matches_grey(test_digits):
    digit = test_digits[0][1]
    grey = to_mnist(render(digit, position=(20, 20)))
    colour = to_mnist(render(digit, position=(20, 20), ink=(20, 40, 160), paper=(250, 230, 120)))
    assert np.abs(grey.astype(int) - colour).max() <= 2


def test_noisy_grey_paper_does_not_widen_the_crop(test_digits):
    digit = test_digits[0][2]
    clean = to_mnist(render(digit, position=(30, 30), ink=(40,) * 3, paper=(200,) * 3))
    noisy = to_mnist(render(digit, position=(30, 30), ink=(40,) * 3, paper=(200,) * 3,
                            noise=20, rng=np.random.default_rng(0)))
    mad, correlation = aligned_distance(noisy, clean)
    assert mad < 10 and correlation > 0.9


def test_transparent_background_is_laid_on_contrasting_paper(test_digits):
    digit = test_digits[0][3]
    on_white = to_mnist(render(digit, position=(10, 10)))
    coverage = np.asarray(render(digit, position=(10, 10), dark_on_light=False))
    for ink in (0, 255):  # black or white strokes, opacity carrying the shape
        rgba = np.zeros(coverage.shape + (4,), np.uint8)
        rgba[..., :3] = ink
        rgba[..., 3] = coverage
        np.testing.assert_allclose(to_mnist(Image.fromarray(rgba, "RGBA")), on_white, atol=1)


def test_the_result_is_shaped_like_mnist():
    # a tall, thin, off-centre bar on a 500x400 white page
    page = np.full((500, 400), 255, np.uint8)
    page[100:400, 300:330] = 0
    digit = to_mnist(page)
    rows = np.flatnonzero(digit.any(axis=1))
    cols = np.flatnonzero(digit.any(axis=0))
    assert len(rows) == 20 and len(cols) == 2  # 300x30 scaled to fit 20x20: 20x2
    assert digit.max() == 255 and digit.min() == 0
    mass = digit / digit.sum()
    # a whole-pixel shift puts the centre of mass within half a pixel of (14, 14)
    assert abs(mass.sum(axis=1) @ np.arange(28) - 14) <= 0.5 + 1e-9
    assert abs(mass.sum(axis=0) @ np.arange(28) - 14) <= 0.5 + 1e-9


def test_a_small_drawing_is_enlarged_to_fit_the_box():
    page = np.zeros((12, 12))
    page[3:9, 5:7] = 1.0  # 6x2 bright ink on black, floats in 0..1
    digit = to_mnist(page)
    assert np.flatnonzero(digit.any(axis=1)).size == 20
    assert digit.max() == 255


def test_arrays_pil_images_and_scales_agree(test_digits):
    picture = render(test_digits[0][4], position=(50, 20))
    array = np.asarray(picture)
    expected = to_mnist(picture)
    np.testing.assert_array_equal(to_mnist(array), expected)
    np.testing.assert_allclose(to_mnist(array / 255.0), expected, atol=1)
    np.testing.assert_array_equal(to_mnist(np.stack([array] * 3, axis=-1)), expected)


@pytest.mark.parametrize("image, message", [
    (np.full((30, 30), 7, np.uint8), "no ink"),
    (np.zeros((5, 5, 2)), r"\(height, width\) grey or \(height, width, 3 or 4\)"),
    (np.zeros((0, 4)), "empty"),
    (np.full((4, 4), np.nan), "NaN or inf"),
    (np.array([["a", "b"]]), "real numbers"),
])
def test_bad_images_are_refused_with_the_reason(image, message):
    with pytest.raises(ValueError, match=message):
        to_mnist(image)


def test_read_image_reads_png_jpeg_and_16_bit_grey(tmp_path, test_digits):
    picture = render(test_digits[0][5], canvas=(60, 50), side=40)
    picture.save(tmp_path / "grey.png")
    picture.convert("RGB").save(tmp_path / "colour.jpg", quality=95)
    wide = (np.asarray(picture, np.uint16) * 257)
    Image.fromarray(wide).save(tmp_path / "deep.png")
    grey = read_image(tmp_path / "grey.png")
    assert grey.shape == (60, 50) and grey.dtype == np.uint8
    np.testing.assert_array_equal(grey, np.asarray(picture))
    colour = read_image(tmp_path / "colour.jpg")
    assert colour.shape == (60, 50, 3)
    deep = read_image(tmp_path / "deep.png")
    assert deep.shape == (60, 50) and deep.max() > 255
    np.testing.assert_allclose(to_mnist(deep), to_mnist(grey), atol=1)


def test_read_image_names_the_file_it_cannot_read(tmp_path):
    with pytest.raises(OSError, match=r"cannot read image .*missing\.png: No such file"):
        read_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(OSError, match=r"cannot read image .*notes\.png: not an image file"):
        read_image(tmp_path / "notes.png")


def test_without_pillow_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r'pip install "fastmlp\[images\]"'):
        read_image("digit.png")


def test_to_mnist_is_exported_from_preprocessing():
    from fastmlp.preprocessing import to_mnist as exported

    assert exported is to_mnist
    assert fastmlp.preprocessing.to_mnist is to_mnist
