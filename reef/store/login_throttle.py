"""Failed sign-ins counted per user name and per address, in memory (the `limits` library).

After `per_minute` failures within a moving minute, every further attempt for that user or
from that address is refused, the right password included, until the window moves on.
"""

from __future__ import annotations

from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from reef.errors import TooManyRequests

FAILURES_PER_MINUTE = 10


class LoginThrottle:
    def __init__(self, per_minute: int = FAILURES_PER_MINUTE) -> None:
        self.limit = parse(f"{per_minute}/minute")
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    def check(self, name: str, address: str) -> None:
        """Raise TooManyRequests while the user or the address is locked out."""
        for key in _keys(name, address):
            if not self.limiter.test(self.limit, *key):
                raise TooManyRequests(
                    f"too many failed sign-ins for this {key[0]} in the last minute: "
                    "wait a minute, then try again"
                )

    def failed(self, name: str, address: str) -> None:
        for key in _keys(name, address):
            self.limiter.hit(self.limit, *key)


def _keys(name: str, address: str) -> list[tuple[str, str]]:
    keys = [("user", name.lower())]
    if address:
        keys.append(("address", address))
    return keys
