"""images-to-pixels: decode every image into pixel columns px_0 ... (float32, 0..255).

Decodes exactly as image-classifier does, so its output is what that model takes as
features: index = channel*size*size + row*size + column.
"""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, ImageOps

import reef


def decode(data: bytes, size: int, channels: int) -> np.ndarray:
    """uint8 pixels (channels, size, size): EXIF-rotated, converted to grayscale ("L") or
    RGB, resized with bilinear filtering. image-classifier decodes the same way."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("L" if channels == 1 else "RGB")
    pixels = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR), dtype=np.uint8)
    return pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)


def has_images(table: pa.Table) -> bool:
    """Whether the table has an `image` column of bytes."""
    if "image" not in table.column_names:
        return False
    kind = table.schema.field("image").type
    return pa.types.is_binary(kind) or pa.types.is_large_binary(kind)


def decode_all(table: pa.Table, size: int, channels: int) -> np.ndarray:
    """uint8 (rows, channels*size*size); exits naming the row of an image that won't decode."""
    if not has_images(table):
        raise SystemExit("images-to-pixels: the dataset has no binary 'image' column")
    paths = table.column("path").to_pylist() if "path" in table.column_names else None
    rows = []
    for i, data in enumerate(table.column("image").to_pylist()):
        try:
            rows.append(decode(data, size, channels).reshape(-1))
        except Exception as e:  # PIL raises many kinds; name the image either way
            where = f"row {i}" + (f" ({paths[i]})" if paths else "")
            raise SystemExit(f"images-to-pixels: cannot decode the image of {where}: {e}") from e
    return np.stack(rows) if rows else np.zeros((0, channels * size * size), np.uint8)


def pixel_table(pixels: np.ndarray, table: pa.Table, label: str) -> pa.Table:
    """px_0 ... as float32 columns, then the label and path columns when present."""
    columns = {f"px_{i}": pa.array(pixels[:, i].astype(np.float32)) for i in range(pixels.shape[1])}
    for name in (label, "path"):
        if name and name in table.column_names:
            columns[name] = table.column(name)
    return pa.table(columns)


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    size, channels = p["image_size"], int(p["channels"])
    table = pq.read_table(ctx.input_path("data"))
    if p["label"] and p["label"] not in table.column_names:
        raise SystemExit(
            f"images-to-pixels: no label column {p['label']!r}; set label=<column>, "
            "or label='' for images without labels"
        )
    print(f"decoding {table.num_rows} images to {channels}x{size}x{size}", flush=True)
    pixels = decode_all(table, size, channels)
    pq.write_table(pixel_table(pixels, table, p["label"]), ctx.output_path("data"))
    ctx.log_params({"n_rows": len(pixels), "n_pixel_columns": pixels.shape[1]})
    print(f"wrote {len(pixels)} rows x {pixels.shape[1]} pixel columns (px_0 ...)", flush=True)


if __name__ == "__main__":
    main()
