"""images-to-pixels: decode every image into pixel columns px_0 ... (float32, 0..255).

Decodes with `reef.images.decode`, exactly as image-classifier and serving do, so its
output is what that model takes as features: index = channel*size*size + row*size + column.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import reef
from reef import images


def decode_all(table: pa.Table, size: int, channels: int) -> np.ndarray:
    """uint8 (rows, channels*size*size); exits naming the row of an image that won't decode."""
    if not images.has_images(table):
        raise SystemExit("images-to-pixels: the dataset has no binary 'image' column")
    try:
        return images.decode_all(table, size, channels)
    except ValueError as e:
        raise SystemExit(f"images-to-pixels: {e}") from e


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
