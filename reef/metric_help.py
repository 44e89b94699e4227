"""One-line explanations of metrics for people who do not train models, shown on hover.

The smallest version, made by the `pages` work so pages can call `explain`; the `serving` work
owns the full list. `explain("evaluate/accuracy")` reads the key after the step name."""

from __future__ import annotations

TEXTS = {
    "accuracy": "Share of rows the model got right (1.0 = all of them).",
    "f1": "Balance of precision and recall, from 0 (worst) to 1 (best).",
    "f1_macro": "F1 averaged over the groups, each group counting the same.",
    "macro_f1": "F1 averaged over the groups, each group counting the same.",
    "loss": "How far the model's answers were from the truth while training; lower is better.",
    "rmse": "Typical size of the model's error, in the predicted number's unit; lower is better.",
    "mae": "Average size of the model's error, in the predicted number's unit; lower is better.",
    "r2": "Share of the variation the model explains: 1 is perfect, 0 no better than average.",
    "onnx_parity_max_abs_diff": (
        "Largest difference between the trained model and its exported copy; tiny is good."
    ),
}
SYSTEM = "A measurement of the machine while the step ran (not of the model)."


def explain(key: str) -> str | None:
    """The explanation of a metric key (`step/key` or `system/...` too), or None."""
    if key.startswith("system/"):
        return SYSTEM
    bare = key.rsplit("/", 1)[-1]
    return TEXTS.get(bare) or TEXTS.get(bare.removeprefix("test_").removeprefix("val_"))
