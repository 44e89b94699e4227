"""image-classifier: a small CNN in torch on an image dataset, exported to ONNX by reef.

The exported model takes the flattened pixels as features (`px_0` ... `px_{c*s*s-1}`, raw
values 0..255, channel-major: index = channel*s*s + row*s + column) and returns class
probabilities: reshaping to (channels, size, size) and scaling to [0, 1] are layers of the
network. `images-to-pixels` turns images into exactly those columns, with the same decoding
(`reef.images`); schema.json records it under "image", so serving also takes the image file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

import reef
from reef import images
from reef.sdk import StepContext


class SmallCNN(nn.Module):
    """(conv 3x3 -> ReLU -> max-pool 2) x 2 -> linear; `forward` returns probabilities."""

    def __init__(self, channels: int, size: int, n_classes: int) -> None:
        super().__init__()
        self.channels, self.size = channels, size
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
        )
        self.head = nn.Linear(32 * (size // 4) ** 2, n_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        images = x.reshape(-1, self.channels, self.size, self.size) / 255.0
        return self.head(self.features(images))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


def decode_all(table: pa.Table, size: int, channels: int) -> np.ndarray:
    """uint8 (rows, channels*size*size); exits naming the row of an image that won't decode."""
    if not images.has_images(table):
        raise SystemExit("image-classifier: the training set has no binary 'image' column")
    try:
        return images.decode_all(table, size, channels)
    except ValueError as e:
        raise SystemExit(f"image-classifier: {e}") from e


def describe_images(model_dir: Path, size: int, channels: int) -> None:
    """Record in schema.json how images become pixels, so serving can take the image file."""
    path = model_dir / "schema.json"
    schema = json.loads(path.read_text())
    schema["task"] = "image_classification"
    schema["image"] = images.describe(size, channels)
    path.write_text(json.dumps(schema, indent=2) + "\n")


def labels(table: pa.Table, label: str) -> tuple[np.ndarray, list[str]]:
    """Label indices and class names (sorted unique label values, as strings)."""
    if label not in table.column_names:
        raise SystemExit(f"image-classifier: no label column {label!r} in the training set")
    values = table.column(label).to_pylist()
    if any(v is None for v in values):
        raise SystemExit(f"image-classifier: label column {label!r} has missing values")
    classes = sorted(set(values))
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index[v] for v in values], dtype=np.int64), [str(c) for c in classes]


def train(model: SmallCNN, x: torch.Tensor, y: torch.Tensor, p: dict, ctx: StepContext) -> None:
    """Adam on cross-entropy; logs loss and train_accuracy once per epoch. `x` holds uint8
    pixels; each batch becomes float32 here and is scaled to [0, 1] by the network."""
    optimizer = torch.optim.Adam(model.parameters(), lr=p["lr"])
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(p["seed"])
    for epoch in range(1, p["epochs"] + 1):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(p["batch_size"]):
            optimizer.zero_grad()
            loss = loss_fn(model.logits(x[batch].float()), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        accuracy = train_accuracy(model, x, y)
        ctx.log_metrics({"loss": total / len(x), "train_accuracy": accuracy}, step=epoch)
        print(f"epoch {epoch}: loss {total / len(x):.4f}, train accuracy {accuracy:.4f}")


def train_accuracy(model: SmallCNN, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        hits = sum(
            (model.logits(xb.float()).argmax(dim=1) == yb).sum().item()
            for xb, yb in zip(x.split(1024), y.split(1024), strict=True)
        )
    return hits / len(x)


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    torch.manual_seed(p["seed"])
    torch.use_deterministic_algorithms(True)
    size, channels = p["image_size"], int(p["channels"])
    table = pq.read_table(ctx.input_path("train"))
    if table.num_rows == 0:
        raise SystemExit("image-classifier: the training set is empty")
    y, classes = labels(table, p["label"])
    print(f"decoding {table.num_rows} images to {channels}x{size}x{size}", flush=True)
    x = decode_all(table, size, channels)
    names = [f"px_{i}" for i in range(x.shape[1])]
    ctx.log_params({"n_rows": len(x), "n_classes": len(classes), "n_features": len(names)})
    print(f"training on {len(x)} images, {len(classes)} classes", flush=True)
    model = SmallCNN(channels, size, len(classes))
    train(model, torch.from_numpy(x), torch.from_numpy(y), p, ctx)
    sample = x[:256].astype(np.float32)
    diff = ctx.save_model(model, sample, names, classes, output="model")
    describe_images(ctx.output_path("model"), size, channels)
    print(f"exported to ONNX; parity max abs diff {diff:.2e}", flush=True)


if __name__ == "__main__":
    main()
