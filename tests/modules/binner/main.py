"""binner: add COLUMN_bin, 'low' or 'high' against the column's median."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import reef

ctx = reef.step()
table = pq.read_table(ctx.input_path("data"))
name = ctx.params["column"]
values = table.column(name).to_numpy(zero_copy_only=False).astype(float)
bins = np.where(values > np.median(values), "high", "low")
pq.write_table(table.append_column(f"{name}_bin", pa.array(bins)), ctx.output_path("out"))
