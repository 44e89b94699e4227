"""Images to pixels, one way for training and serving alike.

`images-to-pixels` and `image-classifier` decode the training images with `decode`; the
image classifier records how (`describe`) in its schema.json under "image", and serving
decodes an image a client sends (raw bytes from a multipart upload, or base64 text in JSON)
with the same function and the same settings, so the served model sees the pixels it was
trained on. Pixels are channel-major: index = channel*size*size + row*size + column.

Pillow is imported inside the functions.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Any

import numpy as np

from reef.errors import InvalidInput

COLUMN = "image"  # the column of encoded image bytes in an image dataset and in a request
RESAMPLE = "bilinear"


def decode(data: bytes, size: int, channels: int) -> np.ndarray:
    """uint8 pixels (channels, size, size): EXIF-rotated, converted to grayscale ("L") or
    RGB, resized to size x size with bilinear filtering."""
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("L" if channels == 1 else "RGB")
    pixels = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def has_images(table: Any) -> bool:
    """Whether a pyarrow table has an `image` column of bytes."""
    import pyarrow as pa

    if COLUMN not in table.column_names:
        return False
    kind = table.schema.field(COLUMN).type
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


def decode_all(table: Any, size: int, channels: int) -> np.ndarray:
    """uint8 (rows, channels*size*size) of a table's `image` column; ValueError naming the
    row (and its path) of an image that does not decode."""
    paths = table.column("path").to_pylist() if "path" in table.column_names else None
    rows = []
    for i, data in enumerate(table.column(COLUMN).to_pylist()):
        try:
            rows.append(decode(data, size, channels).reshape(-1))
        except Exception as e:  # Pillow raises many kinds; name the image either way
            where = f"row {i}" + (f" ({paths[i]})" if paths else "")
            raise ValueError(f"cannot decode the image of {where}: {e}") from e
    return np.stack(rows) if rows else np.zeros((0, channels * size * size), np.uint8)


def describe(size: int, channels: int) -> dict[str, Any]:
    """The "image" part of a schema.json: what serving needs to decode as training did."""
    mode = "L" if channels == 1 else "RGB"
    return {"column": COLUMN, "size": size, "channels": channels, "mode": mode,
            "resample": RESAMPLE, "exif_transpose": True}  # fmt: skip


def pixel_row(index: int, value: Any, spec: dict[str, Any]) -> list[float]:
    """The pixels (floats 0..255, in feature order) of an image a client sent for row
    `index`: raw bytes, or base64 text (a data: URL too), decoded as `spec` (a schema's
    "image" part) says. InvalidInput names the row when it is not an image."""
    data = _image_bytes(index, value)
    try:
        pixels = decode(data, int(spec["size"]), int(spec["channels"]))
    except Exception as e:  # Pillow raises many kinds
        raise InvalidInput(f"row {index}: 'image' is not an image ({_reason(e)})") from None
    return pixels.reshape(-1).astype(np.float32).tolist()


def _image_bytes(index: int, value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str):
        raise InvalidInput(
            f"row {index}: 'image' must be the image file as base64 text, got "
            f"{type(value).__name__}"
        )
    text = value.split(",", 1)[1] if value.startswith("data:") else value  # a data URL
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"row {index}: 'image' is not valid base64 text") from None


def _reason(error: Exception) -> str:
    text = str(error).split(" <_io.BytesIO")[0]  # Pillow names the stream object
    return text if len(text) <= 120 else text[:117] + "..."
