"""`Content-Disposition` headers per RFC 6266: a plain-ASCII `filename` fallback (quotes,
backslashes and control characters replaced) and the exact name as RFC 5987 `filename*`."""

from __future__ import annotations

import re
from urllib.parse import quote

_UNSAFE = re.compile(r'[^\x20-\x7e]|["\\]')


def disposition(kind: str, filename: str) -> str:
    """`kind; filename="..."; filename*=UTF-8''...` for any name, CR/LF and quotes included."""
    fallback = _UNSAFE.sub("_", filename) or "download"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def attachment(filename: str) -> str:
    return disposition("attachment", filename)


def inline(filename: str) -> str:
    return disposition("inline", filename)
