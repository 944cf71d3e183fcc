"""The R-Series leaky bucket and burst limiter (2026 model), with the headers they put on responses.

A request is let through while the level is below the bucket size — the one that pushes it over
is still served — and adds its cost; the level drains at the drip rate. Independently, at most
``burst_limit`` requests are served per fixed one-second window.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field


def _fmt(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


@dataclass
class Verdict:
    allowed: bool
    headers: dict[str, str]
    limit_type: str | None = None
    retry_after: int = 0


@dataclass
class Bucket:
    size: float = 90.0
    drip: float = 1.0
    burst_limit: int = 20
    level: float = 0.0
    clock: float = field(default_factory=time.monotonic)
    window: int = -1
    window_count: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _drain(self, now: float) -> None:
        self.level = max(0.0, self.level - self.drip * (now - self.clock))
        self.clock = now

    def take(self, cost: float) -> Verdict:
        with self.lock:
            now = time.monotonic()
            self._drain(now)
            window = math.floor(now)
            if window != self.window:
                self.window, self.window_count = window, 0
            if self.level >= self.size:
                wait = (self.level - self.size) / self.drip + 1e-3
                return Verdict(False, self.headers(cost), "api-leaky-bucket", max(1, math.ceil(wait)))
            if self.window_count >= self.burst_limit:
                return Verdict(False, self.headers(cost), "api-burst-limiter", 1)
            self.level += cost
            self.window_count += 1
            return Verdict(True, self.headers(cost))

    def headers(self, cost: float) -> dict[str, str]:
        return {
            "X-LS-Api-Bucket-Level": f"{_fmt(self.level)}/{_fmt(self.size)}",
            "X-LS-API-Burst-Level": f"{self.window_count}/{self.burst_limit}",
            "X-LS-Api-Drip-Rate": _fmt(self.drip),
            "X-LS-Api-Request-Cost": _fmt(cost),
        }

    def configure(self, *, size: float | None = None, drip: float | None = None, burst_limit: int | None = None,
                  level: float | None = None) -> None:
        with self.lock:
            self._drain(time.monotonic())
            if size is not None:
                self.size = float(size)
            if drip is not None:
                self.drip = float(drip)
            if burst_limit is not None:
                self.burst_limit = int(burst_limit)
            if level is not None:
                self.level = float(level)
