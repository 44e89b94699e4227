"""Each probe logs a metric `reached.<kind>.<name>`: 1 when the step got there, 0 when refused.

The allowed probes (its input, work dir, temp dir) must give 1, every forbidden one 0; the
metrics themselves travel through the SDK, so their arrival shows the server stays in reach.
"""

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

import reef


def can_read(path: str) -> bool:
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb") as f:
                f.read(1)
        return True
    except OSError as e:
        print(f"escape: read {path}: {e}", flush=True)
        return False


def can_write(path: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write("escaped")
        return True
    except OSError as e:
        print(f"escape: write {path}: {e}", flush=True)
        return False


def can_connect(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return True
    except OSError as e:
        print(f"escape: connect {port}: {e}", flush=True)
        return False


def through_symlink(target: str) -> bool:
    link = Path("link-to-target")
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    return can_read(str(link))


ctx = reef.step()
shutil.copyfile(ctx.input_path("data"), ctx.output_path("out"))
probes = json.loads(ctx.params["probes"])
tmp = tempfile.gettempdir()
results = {
    "allowed.input": can_read(str(ctx.input_path("data"))),
    "allowed.work": can_write("mine.txt"),
    "allowed.tmp": can_write(os.path.join(tmp, "mine.txt")),
    "allowed.tmp_is_private": tmp != "/tmp",
}
results |= {f"read.{k}": can_read(v) for k, v in probes.get("read", {}).items()}
results |= {f"symlink.{k}": through_symlink(v) for k, v in probes.get("read", {}).items()}
results |= {f"write.{k}": can_write(v) for k, v in probes.get("write", {}).items()}
results |= {f"connect.{k}": can_connect(int(v)) for k, v in probes.get("connect", {}).items()}
results["write.own_input"] = can_write(str(ctx.input_path("data")))  # read-only, even so
results["uid_is_root"] = os.getuid() == 0
for key, reached in results.items():
    ctx.log_metric(f"reached.{key}", float(reached))
print("escape: " + json.dumps(results), flush=True)
