import shutil
import time

import reef

ctx = reef.step()
print("relay: start", flush=True)
time.sleep(ctx.params["seconds"])
shutil.copyfile(ctx.input_path("data"), ctx.output_path("out"))
print("relay: done", flush=True)
