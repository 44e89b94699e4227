"""mlp-classifier: a one-hidden-layer MLP in torch, exported to ONNX by reef.

The exported model takes raw features (standardization is part of the network) and returns
class probabilities (softmax inside the network).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

import reef


class MLP(nn.Module):
    """Standardize -> Linear -> ReLU -> Linear; `forward` returns probabilities."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))
        self.net = nn.Sequential(
            nn.Linear(len(mean), hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


def features_and_labels(
    table: pa.Table, label: str
) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """Float32 features (numeric columns but the label, in column order), label indices,
    feature names and class names (sorted unique label values, as strings)."""
    if label not in table.column_names:
        raise SystemExit(f"mlp-classifier: no label column {label!r} in {table.column_names}")
    names = [
        f.name
        for f in table.schema
        if f.name != label and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]
    if not names:
        raise SystemExit("mlp-classifier: the table has no numeric feature columns")
    x = np.column_stack([table.column(n).to_numpy(zero_copy_only=False) for n in names])
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise SystemExit("mlp-classifier: features hold missing, NaN or infinite values")
    values = table.column(label).to_pylist()
    if any(v is None for v in values):
        raise SystemExit(f"mlp-classifier: label column {label!r} has missing values")
    classes = sorted(set(values))
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[v] for v in values], dtype=np.int64)
    return x, names, y, [str(c) for c in classes]


def scaling(x: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std (std 1 for constant features); identity if not standardizing."""
    if not standardize:
        return np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
    std = x.std(axis=0)
    return x.mean(axis=0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def train(model: MLP, x: torch.Tensor, y: torch.Tensor, p: dict, ctx) -> None:
    """Adam on cross-entropy; logs loss and train_accuracy once per epoch."""
    optimizer = torch.optim.Adam(model.parameters(), lr=p["lr"])
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(p["seed"])
    for epoch in range(1, p["epochs"] + 1):
        model.train()
        total = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(p["batch_size"]):
            optimizer.zero_grad()
            loss = loss_fn(model.logits(x[batch]), y[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        model.eval()
        with torch.no_grad():
            accuracy = (model.logits(x).argmax(dim=1) == y).float().mean().item()
        ctx.log_metrics({"loss": total / len(x), "train_accuracy": accuracy}, step=epoch)
        print(
            f"epoch {epoch}: loss {total / len(x):.4f}, train accuracy {accuracy:.4f}", flush=True
        )


def main() -> None:
    ctx = reef.step()
    p = ctx.params
    torch.manual_seed(p["seed"])
    np.random.seed(p["seed"])
    torch.use_deterministic_algorithms(True)
    # One thread: a re-run must give the same metrics to the last digit, and a product split
    # across threads may be summed in another order when the BLAS picks its thread count by
    # the machine's load. Batches of this size gain nothing from more threads.
    torch.set_num_threads(1)
    x, names, y, classes = features_and_labels(pq.read_table(ctx.input_path("train")), p["label"])
    mean, std = scaling(x, p["standardize"])
    model = MLP(mean, std, p["hidden"], len(classes))
    ctx.log_params({"n_features": len(names), "n_classes": len(classes), "n_rows": len(x)})
    print(f"training on {len(x)} rows, {len(names)} features, {len(classes)} classes", flush=True)
    train(model, torch.from_numpy(x), torch.from_numpy(y), p, ctx)
    diff = ctx.save_model(model, x[:256], names, classes, output="model")
    print(f"exported to ONNX; parity max abs diff {diff:.2e}", flush=True)


if __name__ == "__main__":
    main()
