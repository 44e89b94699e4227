"""The preprocessing a raw-row model carries: one scikit-learn ColumnTransformer over the
columns `reef.model_io.feeds` produces, fitted on the training rows only, and exported in
the same ONNX graph as the estimator (reef.runtime.export_raw).

Per role (docs/models.md, "Preprocessing inside the model"):
- number, date (days since 1970): median imputation, then standard scaling;
- boolean (0/1): most-frequent imputation;
- category (null as ""): one-hot encoding of the categories the schema lists (at most
  reef.model_io.MAX_CHOICES, the most frequent) and of "" (missing); any other value, unseen
  in training or rarer, gets all zeros (handle_unknown="ignore": skl2onnx 1.20 does not
  convert scikit-learn's "infrequent" grouping);
- text (null as ""): TF-IDF of words (one vectoriser per text column). Word pairs
  (ngram_range=(1, 2)) and sublinear_tf are left out: skl2onnx 1.20 computes both
  differently from scikit-learn (probabilities off by up to 0.02).

scikit-learn and pandas are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from reef.model_io import Feature

MAX_TEXT_FEATURES = 20_000


def frame(feeds: Mapping[str, np.ndarray]) -> Any:
    """A pandas DataFrame with one column per ONNX input (what the ColumnTransformer sees)."""
    import pandas as pd

    return pd.DataFrame({name: values[:, 0] for name, values in feeds.items()})


def preprocessor(features: Sequence[Feature], scale: bool = True) -> Any:
    """The ColumnTransformer for `features` (see the module docstring)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    by_role: dict[str, list[str]] = {}
    for f in features:
        by_role.setdefault(f.role, []).append(f.input)
    parts: list[tuple[str, Any, Any]] = []
    numbers = by_role.get("number", []) + by_role.get("date", [])
    if numbers:
        steps = [SimpleImputer(strategy="median")] + ([StandardScaler()] if scale else [])
        parts.append(("numbers", make_pipeline(*steps), numbers))
    if by_role.get("boolean"):
        parts.append(("booleans", SimpleImputer(strategy="most_frequent"), by_role["boolean"]))
    categories = [f for f in features if f.role == "category"]
    if categories:
        # the training categories the schema lists (the MAX_CHOICES most frequent) and ""
        # (missing); any other value, rarer or unseen, is all zeros
        known = [sorted({"", *f.choices}) for f in categories]
        encoder = OneHotEncoder(
            categories=known, handle_unknown="ignore", sparse_output=False, dtype=np.float32
        )
        parts.append(("categories", encoder, [f.input for f in categories]))
    for name in by_role.get("text", []):
        tfidf = TfidfVectorizer(ngram_range=(1, 1), max_features=MAX_TEXT_FEATURES)
        parts.append((f"text_{name}", tfidf, name))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
