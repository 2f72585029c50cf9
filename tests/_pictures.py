"""Pictures of MNIST digits as a person or a scanner might make them, for the image tests."""

import io

import numpy as np


def render(digit, *, canvas=(300, 200), side=150, position=None, dark_on_light=True,
           ink=None, paper=None, noise=0.0, rng=None):
    """A 28x28 MNIST digit drawn large on a canvas of ``canvas = (height, width)`` pixels.

    The digit's 28x28 field is enlarged bicubically to ``side`` pixels and laid at
    ``position = (top, left)`` (random when None), as ``ink`` on ``paper`` (RGB
    triples; black on white by default, white on black with ``dark_on_light=False``),
    plus Gaussian noise of standard deviation ``noise``. Grey ink on grey paper
    gives a mode "L" image, otherwise "RGB".
    """
    from PIL import Image

    rng = np.random.default_rng(0) if rng is None else rng
    height, width = canvas
    big = Image.fromarray(np.asarray(digit, np.uint8).reshape(28, 28)).resize(
        (side, side), Image.Resampling.BICUBIC)
    if position is None:
        position = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
    top, left = position
    coverage = np.zeros((height, width))
    coverage[top:top + side, left:left + side] = np.asarray(big) / 255
    if ink is None:
        ink, paper = ((0,) * 3, (255,) * 3) if dark_on_light else ((255,) * 3, (0,) * 3)
    rgb = coverage[..., None] * np.array(ink) + (1 - coverage[..., None]) * np.array(paper)
    if noise:
        rgb = rgb + noise * rng.standard_normal(rgb.shape)
    image = Image.fromarray(np.clip(np.round(rgb), 0, 255).astype(np.uint8))
    grey = len(set(ink)) == 1 and len(set(paper)) == 1
    return image.convert("L") if grey else image


def encoded(image, image_format="PNG", **options):
    """``image`` saved as ``image_format`` and read back (JPEG loses detail)."""
    from PIL import Image

    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    buffer.seek(0)
    decoded = Image.open(buffer)
    decoded.load()
    return decoded


def aligned_distance(a, b):
    """``(mean absolute difference, correlation)`` of two 28x28 images, best of shifts by <= 1.

    MNIST centred each digit by a whole-pixel shift, so its centre of mass lies
    anywhere within half a pixel of the field's centre; a reconstruction may
    round the other way. The distance is taken at the shift of at most one
    pixel in each direction that minimises the mean absolute difference (in
    grey levels 0..255); the correlation is Pearson's at that shift.
    """
    a, b = np.asarray(a, float).reshape(28, 28), np.asarray(b, float).reshape(28, 28)
    best = None
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            shifted = np.roll(a, (dr, dc), axis=(0, 1))
            mad = np.abs(shifted - b).mean()
            if best is None or mad < best[0]:
                best = (mad, np.corrcoef(shifted.ravel(), b.ravel())[0, 1])
    return best
