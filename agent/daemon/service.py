"""The device service: wires config, model, source, stages, outbox and MQTT together.

Threads and what each owns (docs/architecture.md, "Threads and stages"):

- a source's **capture** thread, where it has one (camera, stream, video): reads and decodes
  into the source's newest-frame slot (:class:`~agent.sources.base.LatestSlot`);
- the **prepare** thread (:mod:`agent.daemon.stages`): takes items from the source, pre-processes
  frames into the model's input dtype in a ring of reused buffers (:mod:`agent.daemon.ring`);
- one **interpreter** thread per loaded model (:mod:`agent.runtime.worker`): every call on its
  interpreters (creation, warm-up, ``set_tensor``/``invoke``/``get_tensor``, close), and while
  its model is live the interpreter stage (invoke, copy the outputs out);
- the **loop** below, the results stage: post-processing, publish policy, events, the outbox,
  MQTT, status, model swaps, the watchdog;
- paho's network thread (hands events and messages to bounded queues, nothing else), the updater.

Signal handlers only set :class:`~agent.daemon.lifecycle.Flags`.

Every result goes to the durable outbox first and leaves it on PUBACK, so a broker outage loses
nothing within the outbox bounds. Bad input is counted, logged once per kind per minute and
never stops the loop. When no model can be loaded the service stays up in state ``error``,
publishing why, so that an operator (or a later update) can fix it without a restart loop.
"""

from __future__ import annotations

import gc
import logging
import queue
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from agent.config import AgentConfig, SourceConfig, load_config
from agent.daemon.devicereport import DeviceReporter, load_report_key
from agent.daemon.infer import InferenceStep
from agent.daemon.lifecycle import Flags
from agent.daemon.reporter import Reporter
from agent.daemon.results import Results
from agent.daemon.sdnotify import Notifier
from agent.daemon.sensorfeed import SensorFeed
from agent.daemon.stages import Stages
from agent.daemon.systemd import Systemd
from agent.daemon.watchdog import DEFAULT_LIVE_STALL_S
from agent.daemon.wiring import build_updater, mqtt_settings
from agent.errors import BackendError, ConfigError, EdgeError, InputError, Rejected
from agent.events.publisher import event_publisher
from agent.hass.announcer import HassAnnouncer, announcer_for
from agent.model.active import Credentials, ModelStore, load_credentials, open_active_model
from agent.model.swap import ServedModel
from agent.mqtt.client import MqttClient
from agent.mqtt.topics import DeviceTopics
from agent.secrets import FileResolver
from agent.sources.base import FrameNeed
from agent.sources.factory import InputSource, build_source
from agent.store.forwarder import Forwarder
from agent.store.outbox import Outbox
from agent.store.policy import PublishPolicy
from agent.update.updater import Updater

log = logging.getLogger(__name__)

POLL_S = 0.02
FLUSH_ON_STOP_S = 5.0
MQTT_STOP_S = 3.0
#: Outcomes delivered per loop turn before MQTT, swaps and status get theirs: frames are
#: bounded by the outcomes queue (4), readings come in bursts (stages.BURST each).
OUTCOMES_PER_TURN = 256


class Service:
    """One agent: the loop over the source, with the model, the outbox and MQTT around it."""

    def __init__(
        self,
        config: AgentConfig,
        config_path: Path,
        flags: Flags,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.flags = flags
        self.resolver = FileResolver.from_env(config_path, env)
        self.topics = DeviceTopics(config.mqtt.topic_prefix, config.device_id)
        self.clock = clock
        self.wall = wall
        self.source: InputSource | None = None
        self.updater: Updater | None = None
        self._sensor_queue: queue.Queue[bytes] = queue.Queue(maxsize=1024)
        self._sensor: SensorFeed | None = None
        self.systemd = Systemd(notifier or Notifier(None), config.source)
        self.model = ServedModel(config, clock)
        self.stages = Stages(self.model, clock)
        state_dir = Path(config.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = ModelStore(state_dir)
        self.outbox = Outbox(
            state_dir / "outbox.sqlite3",
            max_bytes=config.store.max_bytes,
            max_age_s=config.store.max_age_s,
            commit_s=config.store.commit_ms / 1000.0,
            commit_max=config.store.commit_max,
        )
        self.client = MqttClient(mqtt_settings(config, self.resolver), self.topics)
        self.reporter = Reporter(
            self.client,
            self.topics.status,
            self.model,
            self.outbox,
            systemd=self.systemd,
            config=config,
            clock=clock,
            wall=wall,
        )
        self.reporter.device_report = DeviceReporter(
            self.client,
            self.topics.report,
            config.device_id,
            key=load_report_key(config, self.resolver),
            state_dir=state_dir,
            slots=self.store.slots,
            wall=wall,
        )
        self.health, self.stats = self.reporter.health, self.reporter.stats
        self.reporter.ring_dropped = lambda: self.stages.ring.dropped
        self.results = Results(self.outbox, self.topics.results, wall)
        self.forwarder = Forwarder(
            self.outbox,
            self.client,
            qos=config.mqtt.qos,
            coalesce=frozenset({str(self.topics.results)} if config.store.coalesce else ()),
        )
        self.events = event_publisher(config.events, self.outbox, self.topics, self.client, wall)
        self.infer = InferenceStep(
            self.model,
            self.results,
            self.health,
            self.stats,
            systemd=self.systemd,
            policy=PublishPolicy(config.output),
            clock=clock,
            on_first_result=self.reporter.notify_ready,
            events=self.events,
        )
        self.forwarder.on_outbox_error = lambda exc: self.infer.bad("outbox_write", exc)
        self.hass: HassAnnouncer | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until asked to stop; returns the process exit code."""
        self.client.start()
        self._subscribe()
        self._load_model()
        self.updater = build_updater(
            self.config,
            self.resolver,
            self.store,
            self.model,
            subscriber=self.client,
            topics=self.topics,
            clock=self.clock,
            wall=self.wall,
        )
        if self.updater is not None:
            self.reporter.updater = self.updater
            self.updater.start()
        self._open_source()
        # What exists now (modules, model, clients) lives as long as the process: keep it out of
        # the collector's full passes (~20 ms of CPU each here), which would land on a frame.
        gc.freeze()
        self.systemd.start(self.clock())
        if self.health.state == "error":
            self.reporter.notify_ready()  # safe mode: up, publishing why, waiting for a fix
        log.info("agent %s running (source %s)", self.config.device_id, self.config.source.type)
        try:
            while not self.flags.stop.is_set():
                if self.flags.reload.is_set():
                    self.flags.reload.clear()
                    self.reload()
                self.step()
        finally:
            self.shutdown()
        return 0

    def step(self) -> None:
        """One turn of the loop: the outcomes of the interpreter stage that are ready (waiting up
        to a poll interval for the first, at most a few), then model swaps, MQTT events, outbox,
        status and watchdog."""
        if self._sensor is not None:
            self._sensor.step()
        self.stages.route()
        outcome, delivered = self.stages.next(POLL_S), 0
        while outcome is not None:
            self.infer.deliver(outcome)
            delivered += 1
            outcome = self.stages.next(0) if delivered < OUTCOMES_PER_TURN else None
        self._pump_updates()
        self.stages.route()  # a swap serves from the next frame on
        self._maybe_reprobe()
        self.events.tick(self.clock())
        self.forwarder.step(self.client.events, 0.0)
        if self.hass is not None:
            self.hass.step()
        self.reporter.maybe_publish()
        if not self._interpreter_stuck():
            self.reporter.feed_watchdog()

    def _interpreter_stuck(self) -> bool:
        """An interpreter call running longer than the stall limit: no watchdog ping, so that
        systemd restarts a service whose interpreter hangs (the loop itself keeps turning)."""
        progress = self.systemd.progress
        limit = (progress.stall_s if progress is not None else None) or DEFAULT_LIVE_STALL_S
        return self.stages.busy_s(self.clock()) > limit

    def shutdown(self) -> None:
        """Stop the stages in order (source, prepare, interpreter, the outcomes delivered),
        flush the outbox (bounded), publish offline, close everything."""
        self.systemd.notifier.stopping("stopping: flushing results")
        self.reporter.set_state("stopping")
        if self.source is not None:
            self.source.close()
        self.stages.stop(self.infer.deliver, FLUSH_ON_STOP_S)
        self.events.close("stopped")  # no event is left without its end
        deadline = self.clock() + FLUSH_ON_STOP_S
        while self.outbox.stats().depth and self.forwarder.connected and self.clock() < deadline:
            self.forwarder.step(self.client.events, POLL_S)
        self.reporter.publish()
        if self.updater is not None:
            self.updater.stop()
        self.client.stop(MQTT_STOP_S)
        self.outbox.close()
        self.model.close()
        log.info("agent stopped; %s results published", self.results.published)
        self.systemd.notifier.close()

    def reload(self) -> None:
        """SIGHUP: re-read the config; apply output, status, source and model settings."""
        self.systemd.notifier.reloading()
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("config reload rejected, keeping the running config: %s", exc)
            self.health.fail(exc.code, f"config reload rejected: {exc}")
            self.reporter.publish()
            self.systemd.notifier.ready(f"config reload rejected: {exc}")
            return
        for key in ("device_id", "state_dir", "mqtt", "keys", "store", "events"):
            if getattr(new, key) != getattr(self.config, key):
                log.warning("config reload: %s changed; it takes effect after a restart", key)
        old = self.config
        self.config = self.reporter.config = new
        self.infer.policy = PublishPolicy(new.output)
        if new.model != old.model:
            self.model.config = new
            self._load_model()
        else:
            self.model.reconfigure(new)
        if new.source != old.source:
            if self.source is not None:
                self.source.close()
            self.stages.close_source()
            self._open_source()
        log.info("config reloaded")
        self.systemd.reloaded(new.source, self.clock())
        self.reporter.publish()
        self.systemd.notifier.ready(self.reporter.text())

    # -- model and source -----------------------------------------------------------------------

    def _load_model(self) -> None:
        try:
            credentials: Credentials = load_credentials(self.config, self.resolver)
            active = open_active_model(
                self.config, self.resolver, self.store, credentials, now=self.wall()
            )
        except (Rejected, BackendError, ConfigError, InputError) as exc:
            log.error("no model can be served: %s", exc)
            self.health.fail(exc.code, str(exc))
            self.reporter.set_state("error")
            return
        self.model.serve(active)
        if active.model.fallback_reason:
            self.health.fail("accelerator_unavailable", active.model.fallback_reason)
        self.reporter.set_state("degraded" if active.model.degraded else "running")
        log.info(
            "serving %s version %s on %s/%s",
            active.name,
            active.version,
            active.model.backend,
            active.model.accelerator,
        )

    def _maybe_reprobe(self) -> None:
        outcome = self.model.poll_accelerator()
        if isinstance(outcome, str):
            if self.health.errors.record("accelerator_unavailable", self.clock()):
                log.info("still on CPU: %s (re-probing with backoff)", outcome)
            self.health.fail("accelerator_unavailable", outcome)
        elif outcome:
            self.reporter.set_state("running")

    def _open_source(self) -> None:
        try:
            self.source = self.reporter.source = build_source(
                self.config.source, self.resolver, self._sensor_queue, self._frame_need
            )
        except EdgeError as exc:
            log.error("source cannot be opened: %s", exc)
            self.health.fail(exc.code, str(exc))
            self.reporter.set_state("error")
            return
        source = self.config.source
        self.stages.open(
            self.source,
            live=_drops_frames(source),
            min_period_s=1.0 / source.fps if source.fps else 0.0,
        )

    def _frame_need(self) -> FrameNeed | None:
        """Asked by the capture thread per frame, so a new model's input size applies at once."""
        pipeline = self.model.pipeline
        return pipeline.frame_need if pipeline is not None else None

    def _subscribe(self) -> None:
        self.hass = announcer_for(
            self.client, self.topics, self.config, self.reporter.publish, self.clock
        )
        if self.hass is not None:
            self.results.on_result = self.hass.offer_result
        source = self.config.source
        if source.type == "mqtt_sensor" and source.topic:
            self._sensor = self.reporter.sensor = SensorFeed(
                self.client,
                source.topic,
                max_payload=source.max_line_bytes,
                readings=self._sensor_queue,
                errors=self.health.errors,
                clock=self.clock,
            )

    # -- model updates (the updater thread does the work; the loop only swaps) -----------------

    def _pump_updates(self) -> None:
        """Once per loop turn: put a ready model live, end a watch window, publish progress."""
        updater = self.updater
        if updater is None:
            return
        swap = self.model.pump(self.stats.percentile_ms(50))
        if swap is not None:
            self.reporter.set_state("degraded" if swap.active.model.degraded else "running")
            updater.status_changed.set()  # published on the next turn, not between two frames
            return
        if updater.status_changed.is_set():
            updater.status_changed.clear()
            self.reporter.publish()


def _drops_frames(source: SourceConfig) -> bool:
    """A live source (camera, stream, a video read in real time): the newest frame wins."""
    return source.type in ("camera", "stream") or (source.type == "video" and source.realtime)
