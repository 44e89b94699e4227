import pyarrow as pa
import pyarrow.parquet as pq

import reef

ctx = reef.step()
tables = [pq.read_table(ctx.input_path(side)) for side in ("left", "right")]
merged = pa.concat_tables(tables)
pq.write_table(merged, ctx.output_path("out"))
ctx.log_metric("rows", merged.num_rows)
print(f"merge: {merged.num_rows} rows", flush=True)
