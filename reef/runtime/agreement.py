"""How far annotators agree, beyond what chance would give: Cohen's kappa for two annotators,
Fleiss' kappa for more (overall and per label), and the agreed label of a row.

Pure functions over plain lists (no store, no numpy): the formulas as in Cohen (1960) and
Fleiss (1971). A kappa is None where it is undefined (every answer the same class, so chance
alone explains the agreement, or too few rows).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import combinations

# Landis & Koch (1977): the usual words for a kappa
WORDS = ((0.8, "almost perfect"), (0.6, "substantial"), (0.4, "moderate"),
         (0.2, "fair"), (0.0, "slight"))  # fmt: skip


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two annotators' labels of the same rows: (po - pe) / (1 - pe), po the
    share of rows they agree on, pe the share expected by chance from each one's label mix."""
    if len(a) != len(b):
        raise ValueError("both annotators must label the same rows")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(counts: Sequence[Sequence[int]]) -> float | None:
    """Fleiss' kappa of rows each labelled by the same number n >= 2 of annotators; `counts`
    holds one list per row: how many annotators chose each label."""
    n, total = _raters(counts)
    if n is None:
        return None
    shares = [sum(row[j] for row in counts) / total for j in range(len(counts[0]))]
    expected = sum(p * p for p in shares)
    observed = sum((sum(c * c for c in row) - n) / (n * (n - 1)) for row in counts) / len(counts)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def label_kappas(counts: Sequence[Sequence[int]]) -> list[float | None]:
    """Fleiss' kappa of each label (column of `counts`): how reliably annotators tell that
    label from all the others."""
    n, total = _raters(counts)
    if n is None:
        return [None] * (len(counts[0]) if counts else 0)
    kappas: list[float | None] = []
    for j in range(len(counts[0])):
        p = sum(row[j] for row in counts) / total
        if p in (0.0, 1.0):
            kappas.append(None)
            continue
        spread = sum(row[j] * (n - row[j]) for row in counts)
        kappas.append(1.0 - spread / (len(counts) * n * (n - 1) * p * (1.0 - p)))
    return kappas


def _raters(counts: Sequence[Sequence[int]]) -> tuple[int | None, int]:
    if not counts:
        return None, 0
    sizes = {sum(row) for row in counts}
    if len(sizes) != 1:
        raise ValueError("every row must have the same number of annotators")
    n = sizes.pop()
    return (n, n * len(counts)) if n >= 2 else (None, 0)


def agreed(labels: Sequence[str], needed: int = 1) -> str | None:
    """The label more than half of the annotators chose, once at least `needed` labelled the
    row; None when there is no such label (yet)."""
    if len(labels) < max(needed, 1):
        return None
    label, votes = Counter(labels).most_common(1)[0]
    return label if votes * 2 > len(labels) else None


def in_words(kappa: float | None) -> str:
    """A kappa in plain words."""
    if kappa is None:
        return "not enough different answers to tell"
    if kappa < 0:
        return "worse than chance"
    return next(word for bound, word in WORDS if kappa > bound or bound == 0.0)


def summary(rows: Mapping[int, Mapping[str, str]], labels: Sequence[str]) -> dict:
    """Agreement over rows labelled by two or more annotators (`rows`: row -> annotator ->
    label): overall (Fleiss' kappa over the rows with the most common annotator count), per
    label, and per annotator pair (Cohen's kappa over the rows both labelled)."""
    shared = {r: votes for r, votes in rows.items() if len(votes) >= 2}
    sizes = Counter(len(votes) for votes in shared.values())
    n = sizes.most_common(1)[0][0] if sizes else 0
    known = list(labels) + sorted({v for vs in shared.values() for v in vs.values()} - set(labels))
    counts = [[Counter(v.values())[k] for k in known] for v in shared.values() if len(v) == n]
    overall = fleiss_kappa(counts) if counts else None
    per_label = label_kappas(counts) if counts else [None] * len(known)
    return {
        "rows": len(shared),
        "agreeing": sum(len(set(v.values())) == 1 for v in shared.values()),
        "kappa": overall,
        "words": in_words(overall),
        "per_label": [
            {"label": k, "kappa": kappa, "words": in_words(kappa)}
            for k, kappa in zip(known, per_label, strict=True)
        ],
        "pairs": _pairs(shared),
    }


def _pairs(shared: Mapping[int, Mapping[str, str]]) -> list[dict]:
    people = sorted({a for votes in shared.values() for a in votes})
    pairs = []
    for a, b in combinations(people, 2):
        both = [(v[a], v[b]) for v in shared.values() if a in v and b in v]
        if not both:
            continue
        kappa = cohen_kappa([x for x, _ in both], [y for _, y in both])
        same = sum(x == y for x, y in both)
        pairs.append({"a": a, "b": b, "rows": len(both), "same": same, "kappa": kappa,
                      "words": in_words(kappa)})  # fmt: skip
    return pairs
