"""NATS JetStream as a `Source` (nats-py): a pull subscription on a durable consumer.

Every `monitor consume` process of a model binds the same durable consumer of the model's
stream and pulls batches from it, so the server hands each message to one of them (queue
semantics) and the processes may run on any number of hosts. Messages are acknowledged
explicitly, after the batch is committed; one left unacknowledged for `ack_wait` (its process
died) is delivered again to another process.

The stream (`[models.stream] stream`, default MONITOR_<model>) holds the model's two subjects
and nothing else; it is created when missing (file storage, messages kept 7 days), and an
existing stream with other subjects is refused with an explanation rather than read partly.
The consumer reads the whole stream, so one fetch returns predictions and labels in the order
they were published.

nats-py is asynchronous; the `Source` interface is not (the database work is not): the
source runs its own event loop and each call runs to completion on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from monitor.settings.stream import StreamSettings
from monitor.stream.source import Delivery, Lag, StreamError

log = logging.getLogger("monitor.stream")
T = TypeVar("T")
KEEP_SECONDS = 7 * 86400  # max_age of a stream created here
CONNECT_TRIES = 3  # per server, at start
MIN_FETCH_WAIT = 0.05  # seconds: shorter pull requests expire before the server answers


class JetStreamSource:
    """A model's stream on NATS JetStream (see the module doc)."""

    def __init__(self, settings: StreamSettings, model: str) -> None:
        self.settings = settings
        self.model = model
        self.name = settings.stream_name(model)
        self.consumer = settings.durable
        predictions, labels = settings.subjects(model)
        self.kinds = {predictions: "predictions", labels: "labels"}
        self._loop = asyncio.new_event_loop()
        self._nc: Any = None
        self._js: Any = None
        self._sub: Any = None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    # -- connection, stream and consumer ------------------------------------------------------

    def open(self) -> None:
        self._run(self._open())

    async def _open(self) -> None:
        import nats
        from nats.errors import NoServersError

        async def on_error(error: Exception) -> None:
            log.warning("NATS: %s", error or type(error).__name__)

        servers = [server.strip() for server in self.settings.url.split(",")]
        try:
            # a few tries at start (then a clear error), reconnecting for ever once connected
            self._nc = await nats.connect(servers=servers, connect_timeout=3, max_reconnect_attempts=CONNECT_TRIES,
                                          reconnect_time_wait=1, error_cb=on_error, name=f"monitor consume {self.model}")
        except (NoServersError, OSError, asyncio.TimeoutError) as error:
            raise StreamError(f"cannot reach NATS at {self.settings.url}: {error or type(error).__name__}") from None
        self._nc.options["max_reconnect_attempts"] = -1
        self._js = self._nc.jetstream(timeout=10)
        await self._ensure_stream()
        await self._ensure_consumer()
        self._sub = await self._js.pull_subscribe_bind(durable=self.consumer, stream=self.name)

    async def _ensure_stream(self) -> None:
        from nats.errors import NoRespondersError
        from nats.js.api import RetentionPolicy, StorageType, StreamConfig
        from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

        subjects = sorted(self.kinds)
        try:
            info = await self._js.stream_info(self.name)
        except NotFoundError:
            info = None
        except (NoRespondersError, ServiceUnavailableError, asyncio.TimeoutError):
            raise StreamError(f"the NATS server at {self.settings.url} has no JetStream: start it with "
                              "`nats-server -js` (or enable jetstream in its config)") from None
        if info is None:
            if not self.settings.create_stream:
                raise StreamError(f"stream {self.name} does not exist on {self.settings.url} "
                                  "(create it, or set [models.stream] create_stream = true)")
            try:
                await self._js.add_stream(StreamConfig(
                    name=self.name, subjects=subjects, retention=RetentionPolicy.LIMITS, storage=StorageType.FILE,
                    max_age=KEEP_SECONDS))
            except APIError as error:  # e.g. another stream already holds these subjects
                raise StreamError(f"cannot create stream {self.name} for {subjects} on {self.settings.url}: "
                                  f"{error.description}") from None
            log.info("created stream %s for %s", self.name, ", ".join(subjects))
            return
        held = sorted(info.config.subjects or [])
        if held != subjects:
            raise StreamError(f"stream {self.name} holds subjects {held}, the model {self.model!r} needs exactly "
                              f"{subjects}: give each model a stream of its own ([models.stream] stream)")

    async def _ensure_consumer(self) -> None:
        """The durable consumer, created by the first process (the same config from several at
        once is accepted by the server); an existing one is used as it is."""
        from nats.js.errors import NotFoundError

        try:
            await self._js.consumer_info(self.name, self.consumer)
        except NotFoundError:
            await self._js.add_consumer(self.name, self._consumer_config())
            log.info("created durable consumer %s on stream %s", self.consumer, self.name)

    def _consumer_config(self) -> Any:
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        return ConsumerConfig(
            durable_name=self.consumer, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.ack_wait_seconds,
            # enough for a full batch in every process, with room
            max_ack_pending=max(self.settings.batch_size * 64, 10_000),
        )

    def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            try:
                self._run(self._close())
            except Exception as error:  # noqa: BLE001 - closing must not hide the real outcome
                log.warning("NATS: closing the connection failed: %s", error)
        self._loop.close()

    async def _close(self) -> None:
        # acknowledgements are flushed as each batch is settled; a drain would wait for the
        # pull subscription's open request to expire
        await self._nc.flush(timeout=5)
        await self._nc.close()

    # -- batches ------------------------------------------------------------------------------

    def fetch(self, max_count: int, max_wait: float) -> list[Delivery]:
        return self._run(self._fetch(max_count, max_wait))

    async def _fetch(self, max_count: int, max_wait: float) -> list[Delivery]:
        """Pull until `max_count` messages or `max_wait` seconds: a busy stream fills a batch
        at once; a quiet one returns what came in the time."""
        from nats.errors import TimeoutError as NatsTimeout

        deadline = self._loop.time() + max_wait
        messages: list[Any] = []
        while len(messages) < max_count:
            remaining = deadline - self._loop.time()
            if remaining < MIN_FETCH_WAIT:
                break
            try:
                messages += await self._sub.fetch(max_count - len(messages), timeout=remaining)
            except (NatsTimeout, asyncio.TimeoutError):
                break
        return [self._delivery(message) for message in messages]

    def _delivery(self, message: Any) -> Delivery:
        meta = message.metadata
        return Delivery(
            data=message.data, subject=message.subject, kind=self.kinds.get(message.subject, ""),
            sequence=int(meta.sequence.stream), published=meta.timestamp.timestamp(),
            redelivered=int(meta.num_delivered) > 1, pending=int(meta.num_pending), handle=message,
        )

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        self._run(self._settle(deliveries, "ack"))

    def term(self, deliveries: Sequence[Delivery]) -> None:
        self._run(self._settle(deliveries, "term"))

    def nak(self, deliveries: Sequence[Delivery], delay: float) -> None:
        self._run(self._settle(deliveries, "nak", delay))

    async def _settle(self, deliveries: Sequence[Delivery], how: str, delay: float | None = None) -> None:
        for delivery in deliveries:
            message = delivery.handle
            if how == "nak":
                await message.nak(delay=delay)
            else:
                await getattr(message, how)()
        await self._nc.flush(timeout=10)  # on the wire before the next batch

    def publish(self, subject: str, payload: bytes) -> None:
        self._run(self._nc.publish(subject, payload))

    def lag(self) -> Lag:
        info = self._run(self._sub.consumer_info())
        return Lag(pending=int(info.num_pending or 0), ack_pending=int(info.num_ack_pending or 0))
