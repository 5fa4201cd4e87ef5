"""Rate limits as plain token buckets (no I/O: callers pass the time)."""

from __future__ import annotations


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; each event takes one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.burst


class KeyedBuckets:
    """One bucket per key (a client IP), bounded: idle full buckets are forgotten."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        # Nobody removes a key when its client goes: _prune() forgets full (idle) buckets
        # once max_keys are held, so this stays bounded.
        self.buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, now: float) -> bool:
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.max_keys:
                self._prune(now)
            bucket = self.buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(now)

    def _prune(self, now: float) -> None:
        self.buckets = {k: b for k, b in self.buckets.items() if not b.full(now)}
        if len(self.buckets) >= self.max_keys:
            # Everyone is busy (a flood from many addresses): start over rather than grow.
            self.buckets.clear()
