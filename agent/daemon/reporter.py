"""What the service says about itself: the retained status message (every ``status.interval_s``
and on each state change), the ``systemctl status`` line, ``READY=1`` and ``WATCHDOG=1``.

Runs on the loop thread. The service sets :attr:`Reporter.source`, :attr:`Reporter.sensor` and
:attr:`Reporter.updater` as it opens them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.config import AgentConfig
from agent.daemon.devicereport import DeviceReporter
from agent.daemon.metrics import RollingStats
from agent.daemon.sensorfeed import SensorFeed
from agent.daemon.status import Health, StatusInputs, status_message, status_text
from agent.daemon.systemd import Systemd
from agent.errors import EdgeError
from agent.model.swap import ServedModel
from agent.mqtt.messages import StatusMessage
from agent.mqtt.ports import Publisher
from agent.mqtt.topics import Topic
from agent.sources.factory import InputSource
from agent.store.outbox import Outbox
from agent.update.updater import Updater

log = logging.getLogger(__name__)


class Reporter:
    def __init__(
        self,
        publisher: Publisher,
        topic: Topic,
        model: ServedModel,
        outbox: Outbox,
        *,
        systemd: Systemd,
        config: AgentConfig,
        clock: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        self.publisher = publisher
        self.topic = topic
        self.model = model
        self.outbox = outbox
        self.systemd = systemd
        self.config = config
        self.clock = clock
        self.wall = wall
        self.health = Health()
        self.stats = RollingStats()
        self.source: InputSource | None = None
        #: Frames the prepare stage's ring dropped (newest wins), added to the source's.
        self.ring_dropped: Callable[[], int] = lambda: 0
        self.sensor: SensorFeed | None = None
        self.updater: Updater | None = None
        self.device_report: DeviceReporter | None = None
        self._next = 0.0

    def set_state(self, state: str) -> None:
        """A new service state is published at once."""
        if state != self.health.state:
            self.health.state = state
            self.publish()

    def maybe_publish(self) -> None:
        if self.clock() >= self._next:
            self.publish()

    def publish(self) -> None:
        self._next = self.clock() + self.config.status.interval_s
        self.systemd.status(self.text())
        if self.updater is not None:
            self.updater.note_latency(self.stats.percentile_ms(50))
        if not self.publisher.connected:
            return
        try:
            self.publisher.publish(self.topic, self.message().to_json(), qos=1, retain=True)
        except EdgeError as exc:
            log.debug("status not published: %s", exc)
        if self.device_report is not None:
            self.device_report.maybe_publish(self.model.active, self.updater)

    def message(self) -> StatusMessage:
        return status_message(
            StatusInputs(
                ts=self.wall(),
                health=self.health,
                stats=self.stats,
                active=self.model.active,
                source_stats=self._source_stats(),
                sensor_oversize=self.sensor.dropped_oversize if self.sensor else None,
                outbox=self.outbox.stats(),
                groups=self.config.groups,
                update=self.updater.status() if self.updater is not None else None,
                drops=self._drops(),
                stages=self.model.pipeline.stage_stats() if self.model.pipeline else {},
            )
        )

    def _source_stats(self) -> dict[str, int]:
        stats = dict(self.source.stats()) if self.source is not None else {}
        dropped = self.ring_dropped()
        if dropped:
            stats["dropped"] = stats.get("dropped", 0) + dropped
        return stats

    def _drops(self) -> dict[str, int]:
        """The updater's counts, and ``report_unsigned`` when reports go out unsigned."""
        drops = self.updater.drops.counts() if self.updater is not None else {}
        if self.device_report is not None and not self.device_report.signed:
            drops["report_unsigned"] = 1
        return drops

    def text(self) -> str:
        """The one line ``systemctl status`` shows."""
        return status_text(self.health, self.model.active, self.stats.fps())

    def notify_ready(self) -> None:
        self.systemd.ready(self.text())

    def feed_watchdog(self) -> None:
        """``WATCHDOG=1`` while inference makes progress (see :mod:`agent.daemon.watchdog`)."""
        source = self.source
        expecting = (
            self.health.state != "error"
            and source is not None
            and self.model.pipeline is not None
            and not source.finished
        )
        self.systemd.feed(self.clock(), expecting_input=expecting)
