"""Run many deliveries at once, each channel on its own few threads, within a time budget.

Why: sending one event after another, a receiver that hangs until the channel timeout cost one
timeout per event and held up every other channel (13-16 s ticks with one slow webhook). Here

- each channel gets its own small pool (`per_channel` threads, fewer when its registration
  says so: one for the log channel, whose file lines keep their order), so a hanging channel
  cannot take the threads of a healthy one;
- the events of one alert go to one channel in event order (firing before resolved), one
  chain per (channel, alert); chains run in parallel;
- once a send finds the channel down (timeout, refused: `TransportError.channel_down`), no
  further send to that channel starts in this pass: it would only wait for the same timeout;
- no send starts after `budget` seconds; the pass waits for sends in flight at most until
  `budget + 2 x the longest channel timeout`, then leaves them running in the background.

What did not start is reported `skipped`, what was still running `in_flight`; the caller
decides what they mean for the outbox (see `monitor.alerts.outbox`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from monitor.config import Channel
from monitor.registry import CHANNELS

log = logging.getLogger(__name__)
SKIPPED, IN_FLIGHT = "skipped", "in_flight"


@dataclass(frozen=True)
class Delivery:
    """One event to one channel. `final`: the event's last allowed attempt."""

    event: dict[str, Any]
    channel: Channel
    attempt: int
    final: bool

    @property
    def key(self) -> tuple[int, str]:
        return int(self.event["id"]), self.channel.label


@dataclass(frozen=True)
class Result:
    """What one attempt did: a delivery status, and whether the channel looked down."""

    status: str
    channel_down: bool = False


def dispatch(deliveries: list[Delivery], attempt: Callable[[Delivery], Result], *,
             budget: float, per_channel: int,
             clock: Callable[[], float] = time.monotonic) -> dict[tuple[int, str], str]:
    """Run `attempt` for every delivery as described above; returns status by (event id,
    channel label): the attempt's status, `skipped` or `in_flight`. `attempt` records its
    own outcome (so a crash after it never forgets a success) and should not raise."""
    started = clock()
    start_before = started + budget
    results: dict[tuple[int, str], str] = {d.key: SKIPPED for d in deliveries}
    down: set[str] = set()
    lock = threading.Lock()

    def run_chain(chain: list[Delivery]) -> None:
        for delivery in chain:
            label = delivery.channel.label
            with lock:
                if clock() >= start_before or label in down:
                    return  # the rest of the chain stays skipped, in order
                results[delivery.key] = IN_FLIGHT
            result = attempt(delivery)
            with lock:
                results[delivery.key] = result.status
                if result.channel_down:
                    down.add(label)

    chains: dict[str, dict[Any, list[Delivery]]] = {}
    for delivery in deliveries:  # the caller's order (event id) is the order within a chain
        by_alert = chains.setdefault(delivery.channel.label, {})
        by_alert.setdefault(delivery.event["alert_id"], []).append(delivery)
    channels = {d.channel.label: d.channel for d in deliveries}
    pools: list[ThreadPoolExecutor] = []
    futures: list[Future[None]] = []
    for label, by_alert in chains.items():
        limit = CHANNELS.entry(channels[label].type).options.get("threads", per_channel)
        threads = max(1, min(limit, per_channel, len(by_alert)))
        pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"notify-{channels[label].type}")
        pools.append(pool)
        futures.extend(pool.submit(run_chain, chain) for chain in by_alert.values())
    longest_timeout = max((c.timeout for c in channels.values()), default=0.0)
    done, not_done = wait(futures, timeout=max(0.0, start_before + 2 * longest_timeout - clock()))
    for future in done:
        if future.exception() is not None:  # recording failed (database gone): outcome unknown
            log.error("a notification sender failed", exc_info=future.exception())
    if not_done:
        log.warning("%d notification chain(s) still running after %.0f s; they finish in the "
                    "background and their events stay claimed until the lease expires",
                    len(not_done), clock() - started)
    for pool in pools:
        pool.shutdown(wait=False, cancel_futures=True)
    with lock:
        return dict(results)
