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
