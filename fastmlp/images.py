"""Turn pictures of digits into MNIST-style 28x28 images: ``to_mnist`` and ``read_image``.

MNIST's digits were made from scanned NIST digits by a fixed recipe (LeCun et al.,
"Gradient-based learning applied to document recognition", 1998): the digit was
size-normalised to fit a 20x20 box keeping its aspect ratio, anti-aliased, and
centred by its centre of mass in a 28x28 field, light ink on a dark background.
A model trained on MNIST expects exactly that, so ``to_mnist`` applies the same
recipe to any picture of one digit. Reading image files needs Pillow (the
``images`` extra: ``pip install "fastmlp[images]"``).
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["BOX", "FIELD", "NOISE_FLOOR", "NOISE_SIGMAS", "read_image", "to_mnist"]

FIELD = 28  # side of the output image
BOX = 20  # the digit is scaled to fit a BOX x BOX square inside the field
NOISE_FLOOR = 0.1  # ink below this fraction of the strongest ink is background (JPEG, paper)
NOISE_SIGMAS = 5  # ... and so is ink within this many standard deviations of the border's noise

_LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2, as Pillow's convert("L")
_EXTRA = 'reading image files needs Pillow: pip install "fastmlp[images]"'


def _pillow():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImportError(_EXTRA) from None
    return Image, ImageOps


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file (PNG, JPEG or anything else Pillow reads) as an array.

    The EXIF orientation of photos is applied. Greyscale images come back 2-D,
    colour images as ``(height, width, 3)`` RGB, and images with transparency
    as ``(height, width, 4)`` RGBA.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    ndarray, shape (height, width) or (height, width, 3 or 4)
        ``uint8``, or ``float32`` for 16- and 32-bit greyscale files.

    Raises
    ------
    ImportError
        If Pillow is not installed; the message names the ``images`` extra.
    OSError
        If the file cannot be opened, is not an image Pillow understands or is
        truncated; the message names the file.
    """
    Image, _ = _pillow()
    try:
        with Image.open(path) as image:
            return _pil_to_array(image)
    except Image.UnidentifiedImageError:
        raise OSError(f"cannot read image {path}: not an image file Pillow knows "
                      "(PNG, JPEG, ...)") from None
    except OSError as exc:
        raise OSError(f"cannot read image {path}: {exc.strerror or exc}") from None


def _pil_to_array(image) -> np.ndarray:
    _, ImageOps = _pillow()
    image = ImageOps.exif_transpose(image)
    if image.mode in ("L", "RGB", "RGBA", "F"):
        return np.array(image)
    if "A" in image.mode or "transparency" in image.info:
        return np.array(image.convert("RGBA"))
    if image.mode.startswith("I"):  # 16- and 32-bit grey: keep the depth
        return np.array(image.convert("F"))
    return np.array(image.convert("L" if image.mode == "1" else "RGB"))


def to_mnist(image) -> np.ndarray:
    """Make a picture of one digit look like an MNIST digit.

    The steps, in order:

    1. **Greyscale**: colour becomes luminance (ITU-R 601-2 weights, as
       Pillow's ``convert("L")``). Transparent pixels are laid over white when
       the visible ink is dark on average, else over black.
    2. **Light ink on dark**: the background is the median of the image's
       border (its outermost 2 % of rows and columns, at least one pixel). If
       it is lighter than the middle of the image's range the picture is dark
       on light and is inverted. The background level is then subtracted and
       the strongest ink scaled to 1. Ink weaker than ``NOISE_FLOOR`` (10 %:
       JPEG ringing, paper texture) or than ``NOISE_SIGMAS`` (5) standard
       deviations of the border's noise (estimated robustly from its median
       absolute deviation) is set to 0 and the rest stretched to stay
       continuous, so that specks do not widen the crop. The background is
       assumed roughly even: a shadow across a photo is not corrected.
    3. **Crop** to the bounding box of the remaining ink.
    4. **Scale** to fit a 20x20 box keeping the aspect ratio, anti-aliased:
       shrinking averages each output pixel's area (Pillow's box filter),
       enlarging is bicubic. The strongest ink becomes 255 again, as in MNIST,
       where nearly every digit reaches 254 or 255.
    5. **Centre** by the centre of mass, moved to pixel (14, 14) of a 28x28
       field by a whole-pixel shift (as in MNIST, whose centres of mass sit
       at 14.0 ± 0.29 in both directions); a digit whose mass lies far to one
       side is kept inside the field rather than cut.

    Parameters
    ----------
    image : PIL.Image.Image or array_like
        A PIL image in any mode, or an array: ``(height, width)`` grey levels,
        or ``(height, width, 3)`` RGB, or ``(height, width, 4)`` RGBA, of any
        real dtype and any size. Only relative levels matter, since contrast
        is normalised; an alpha channel is read on the dtype's full scale
        (0..255 for ``uint8``, 0..1 for floats).

    Returns
    -------
    ndarray of uint8, shape (28, 28)
        Light digit on a black background, ready for ``model.predict(x.reshape(1, -1))``.

    Raises
    ------
    ValueError
        If the image has the wrong shape, non-finite values, or no ink (one
        uniform level).

    Examples
    --------
    >>> import numpy as np
    >>> from fastmlp.preprocessing import to_mnist
    >>> drawing = np.full((300, 200), 255, np.uint8)   # white paper
    >>> drawing[60:240, 90:110] = 0                     # a black stroke: a "1"
    >>> digit = to_mnist(drawing)
    >>> digit.shape, digit.dtype, digit.max(), digit[0, 0]
    ((28, 28), dtype('uint8'), np.uint8(255), np.uint8(0))
    """
    ink = _ink(_grey(image))
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return _centre(_fit_box(ink))


def _grey(image) -> np.ndarray:
    """Luminance as float64 of shape (height, width)."""
    if hasattr(image, "mode") and hasattr(image, "getdata"):  # a PIL image
        array = _pil_to_array(image)
    else:
        array = np.asarray(image)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"an image must hold real numbers, got dtype {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))):
        raise ValueError("an image must be (height, width) grey or (height, width, 3 or 4) "
                         f"RGB(A), got shape {array.shape}")
    if min(array.shape[:2]) == 0:
        raise ValueError(f"the image is empty (shape {array.shape})")
    values = array.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError("the image contains NaN or inf")
    if array.ndim == 2:
        return values
    grey = values[..., :3] @ _LUMA
    if array.shape[2] == 3:
        return grey
    full = np.iinfo(array.dtype).max if array.dtype.kind in "iu" else 1.0
    alpha = np.clip(values[..., 3] / full, 0.0, 1.0)
    if alpha.min() == 1.0:
        return grey
    top = full if array.dtype.kind in "iu" else max(1.0, float(grey.max()))
    visible = alpha.sum()
    dark_ink = visible > 0 and (alpha * grey).sum() / visible < top / 2
    paper = top if dark_ink else 0.0
    return alpha * grey + (1 - alpha) * paper


def _ink(grey: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1], background exactly 0 (step 2 of ``to_mnist``)."""
    height, width = grey.shape
    edge = max(1, round(0.02 * min(height, width)))
    border = np.concatenate([grey[:edge].ravel(), grey[-edge:].ravel(),
                             grey[:, :edge].ravel(), grey[:, -edge:].ravel()])
    background = float(np.median(border))
    low, high = float(grey.min()), float(grey.max())
    ink = background - grey if background > (low + high) / 2 else grey - background
    np.clip(ink, 0.0, None, out=ink)
    strongest = ink.max()
    if strongest <= 0:
        raise ValueError("the image has no ink: every pixel is the background level")
    # The border's spread is the noise (1.4826 x median absolute deviation
    # estimates a Gaussian's sigma); ink that does not stand out of it is dropped.
    noise = 1.4826 * float(np.median(np.abs(border - background)))
    floor = max(NOISE_FLOOR, NOISE_SIGMAS * noise / strongest)
    if floor >= 1:
        raise ValueError("the image has no ink standing out of the background's noise")
    ink /= strongest
    return np.clip((ink - floor) / (1 - floor), 0.0, 1.0)


def _fit_box(ink: np.ndarray) -> np.ndarray:
    """Scale so the longer side is ``BOX`` pixels (step 4), strongest ink 1."""
    # Pillow even for array input: its filters are antialiased (they widen
    # when shrinking), which scipy.ndimage.zoom is not. Shrinking averages the
    # ink over each output pixel's area, as a coarser scanner would; enlarging
    # a small crop interpolates bicubically rather than making blocks.
    Image, _ = _pillow()
    height, width = ink.shape
    factor = BOX / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    resample = Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC
    resized = Image.fromarray(ink.astype(np.float32)).resize(size, resample)
    digit = np.clip(np.asarray(resized, dtype=np.float64), 0.0, None)  # bicubic undershoots
    return digit / digit.max()


def _centre(digit: np.ndarray) -> np.ndarray:
    """Place ``digit`` in the 28x28 field, centre of mass at pixel (14, 14) (step 5)."""
    height, width = digit.shape
    mass = digit.sum()
    row = (digit.sum(axis=1) @ np.arange(height)) / mass
    col = (digit.sum(axis=0) @ np.arange(width)) / mass
    top = min(max(round(FIELD / 2 - row), 0), FIELD - height)
    left = min(max(round(FIELD / 2 - col), 0), FIELD - width)
    field = np.zeros((FIELD, FIELD))
    field[top:top + height, left:left + width] = digit
    return np.round(255 * field).astype(np.uint8)
