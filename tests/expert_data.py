"""Data for the expert's path: scikit-learn's breast-cancer set as a spreadsheet a domain
expert would have (readable column names, a text label, one wrong cell to fix)."""

from __future__ import annotations

from pathlib import Path

WRONG_ROW = 3  # the row (0-based) whose diagnosis the expert corrects
WRONG_LABEL, RIGHT_LABEL = "malignnt", "malignant"


def cancer_columns() -> tuple[list[str], list[list]]:
    """(header, rows): 30 measurements with readable names, then `diagnosis`."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    header = [str(n) for n in bunch.feature_names] + ["diagnosis"]
    labels = bunch.target_names  # 0 = malignant, 1 = benign
    rows = [
        [round(float(v), 6) for v in x] + [str(labels[y])]
        for x, y in zip(bunch.data, bunch.target, strict=True)
    ]
    return header, rows


def write_xlsx(path: Path, header: list[str], rows: list[list]) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "patients"
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def cancer_xlsx(path: Path) -> Path:
    """The spreadsheet, with a typo in the diagnosis of row `WRONG_ROW`."""
    header, rows = cancer_columns()
    assert rows[WRONG_ROW][-1] == RIGHT_LABEL
    rows[WRONG_ROW][-1] = WRONG_LABEL
    return write_xlsx(path, header, rows)


def diabetes_csv(path: Path) -> Path:
    """scikit-learn's diabetes data (442 rows) with a number to predict, as CSV."""
    from sklearn.datasets import load_diabetes

    bunch = load_diabetes()
    lines = [",".join([*bunch.feature_names, "disease_progression"])]
    lines += [
        ",".join([*(f"{v:.6f}" for v in x), f"{y:.0f}"])
        for x, y in zip(bunch.data, bunch.target, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def reviews_csv(path: Path, rows: int = 160) -> Path:
    """Short customer messages labelled complaint / praise / question, as CSV."""
    import random

    rng = random.Random(0)
    words = {
        "complaint": ["late", "broken", "refund", "rude", "damaged", "missing", "slow", "never"],
        "praise": ["great", "fast", "friendly", "perfect", "love", "thanks", "excellent", "kind"],
        "question": ["how", "when", "where", "can", "which", "does", "why", "what"],
    }
    filler = ["the", "order", "delivery", "box", "team", "service", "parcel", "my", "it", "was"]
    lines = ["message,kind"]
    for i in range(rows):
        kind = list(words)[i % 3]
        text = rng.sample(words[kind], 3) + rng.sample(filler, 4)
        rng.shuffle(text)
        lines.append(f"{' '.join(text)},{kind}")
    path.write_text("\n".join(lines) + "\n")
    return path
