"""A small thread-safe cache whose entries expire after a few seconds (for hot lookups such
as tokens and roles, which every request makes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from enum import Enum
from typing import Any, Final, Literal


class Missing(Enum):
    """The one value meaning "not in the cache" (an enum, so type checkers can narrow it)."""

    MISSING = "missing"


MISSING: Final = Missing.MISSING
NotCached = Literal[Missing.MISSING]


class TTLCache:
    def __init__(self, ttl_s: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: dict[Hashable, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        """The cached value, or MISSING."""
        with self._lock:
            item = self._items.get(key)
            if item is None or item[0] < time.monotonic():
                return MISSING
            return item[1]

    def put(self, key: Hashable, value: Any) -> Any:
        with self._lock:
            if len(self._items) >= self.max_entries:
                self._items.clear()
            self._items[key] = (time.monotonic() + self.ttl_s, value)
        return value

    def get_or(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        value = self.get(key)
        return self.put(key, compute()) if value is MISSING else value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
