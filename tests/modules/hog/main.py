import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import reef

ctx = reef.step()
held = np.ones(ctx.params["mb"] * 2**20, dtype=np.uint8)  # ones, so every page is touched
print(f"hog: holding {held.nbytes // 2**20} MiB", flush=True)
time.sleep(ctx.params["seconds"])
pq.write_table(pa.table({"x": [1.0, 2.0], "label": [0, 1]}), ctx.output_path("out"))
