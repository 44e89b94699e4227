import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import reef

ctx = reef.step()
ctx.log_metric("started", 1.0, step=0)
ctx.flush()
print("sleeper: started", flush=True)
# a name lives in the step's private temp dir, which its attempts share
marker = Path(tempfile.gettempdir(), ctx.params["marker"]) if ctx.params["marker"] else None
if marker is not None and marker.exists():
    print("sleeper: marker found, finishing at once", flush=True)
    ctx.params.update(fail=False, seconds=0)
elif marker is not None:
    marker.write_text("first attempt")
if ctx.params["fail"]:
    print("sleeper: failing on purpose", flush=True)
    sys.exit(3)
time.sleep(ctx.params["seconds"])
pq.write_table(pa.table({"x": [1.0, 2.0, 3.0, 4.0], "label": [0, 1, 0, 1]}), ctx.output_path("out"))
print("sleeper: woke up", flush=True)
