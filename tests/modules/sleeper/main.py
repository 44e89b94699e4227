import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

import reef

ctx = reef.step()
ctx.log_metric("started", 1.0, step=0)
ctx.flush()
print("sleeper: started", flush=True)
if ctx.params["fail"]:
    print("sleeper: failing on purpose", flush=True)
    sys.exit(3)
time.sleep(ctx.params["seconds"])
pq.write_table(pa.table({"x": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 0, 1]}), ctx.output_path("out"))
print("sleeper: woke up", flush=True)
