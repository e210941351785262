"""The device service: wires config, model, source, pipeline, outbox and MQTT into one loop.

Threads: the loop below (the only one touching the outbox and the interpreter), paho's network
thread (hands events and messages to bounded queues, nothing else), and a source's capture
thread where it has one. Signal handlers only set :class:`~agent.daemon.lifecycle.Flags`.

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
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent.bundle import DecryptedBundle
from agent.config import AgentConfig, load_config
from agent.daemon.lifecycle import Flags
from agent.daemon.metrics import RollingStats, cpu_temperature_c, rss_bytes
from agent.daemon.sdnotify import Notifier
from agent.daemon.watchdog import Progress, stall_limit_s
from agent.errors import BackendError, ConfigError, EdgeError, ErrorLog, InputError, Rejected
from agent.hass.announcer import HassAnnouncer, announcer_for
from agent.model.active import (
    ActiveModel,
    Credentials,
    ModelStore,
    load_bundle,
    load_credentials,
    open_active_model,
)
from agent.model.pipeline import InferenceResult, Pipeline
from agent.model.watch import Watch
from agent.mqtt.client import MqttClient
from agent.mqtt.events import Subscription
from agent.mqtt.messages import LastError, ModelRef, ResultMessage, StatusMessage
from agent.mqtt.settings import MqttSettings, TLSFiles
from agent.mqtt.topics import DeviceTopics, TopicFilter
from agent.runtime import LoadedModel, ReprobeSchedule
from agent.runtime.reprobe import AcceleratorReprobe
from agent.secrets import FileResolver, read_secret
from agent.sources.base import Frame, FrameNeed, Reading
from agent.sources.factory import InputSource, build_source
from agent.store.forwarder import Forwarder
from agent.store.outbox import Outbox, OutboxError
from agent.store.policy import PublishPolicy
from agent.update.install import Installer, Swap
from agent.update.updater import Updater

log = logging.getLogger(__name__)

POLL_S = 0.02
FLUSH_ON_STOP_S = 5.0
MQTT_STOP_S = 3.0


@dataclass
class Health:
    """What the status message reports beyond the rolling figures."""

    state: str = "starting"
    last_error: LastError | None = None
    errors: ErrorLog = field(default_factory=ErrorLog)

    def fail(self, code: str, message: str) -> None:
        self.last_error = LastError(code, message[:1000])


def mqtt_settings(config: AgentConfig, resolver: FileResolver) -> MqttSettings:
    """Client settings from the config; the password is read from its file here."""
    mqtt = config.mqtt
    password = None
    if mqtt.password_file:
        raw = read_secret(resolver, "mqtt.password_file", mqtt.password_file)
        password = raw.decode("utf-8").strip()
    tls = None
    if mqtt.tls:
        tls = TLSFiles(
            ca_file=resolver.path(mqtt.ca_file) if mqtt.ca_file else None,
            cert_file=resolver.path(mqtt.cert_file) if mqtt.cert_file else None,
            key_file=resolver.path(mqtt.key_file) if mqtt.key_file else None,
        )
    return MqttSettings.from_url(
        mqtt.url,
        client_id=config.device_id,
        tls=tls,
        username=mqtt.username,
        password=password,
        keepalive_s=mqtt.keepalive_s,
        backoff_min_s=mqtt.reconnect_min_s,
        backoff_max_s=mqtt.reconnect_max_s,
        protocol=mqtt.protocol,
    )


class Service:
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
        self.health = Health()
        self.stats = RollingStats()
        self.policy = PublishPolicy(config.output)
        self.active: ActiveModel | None = None
        self.pipeline: Pipeline | None = None
        self.source: InputSource | None = None
        self.reprobe: AcceleratorReprobe | None = None
        self._reprobe_for: ActiveModel | None = None
        self.results_published = 0
        self.updater: Updater | None = None
        self._watch: Watch | None = None
        self._held: tuple[ActiveModel, Pipeline, str | None] | None = None
        self._sensor_queue: queue.Queue[bytes] = queue.Queue(maxsize=1024)
        self._sensor_sub: Subscription | None = None
        self._next_status = 0.0
        self._min_period = 1.0 / config.source.fps if config.source.fps else 0.0
        self._last_inference = -1e9
        self.notifier = notifier or Notifier(None)
        self._ready_sent = False
        self.progress: Progress | None = None
        interval = self.notifier.watchdog_interval_s
        if interval is not None:
            self.progress = Progress(interval, stall_limit_s(config.source))
        state_dir = Path(config.state_dir)
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.store = ModelStore(state_dir)
        self.outbox = Outbox(
            state_dir / "outbox.sqlite3",
            max_bytes=config.store.max_bytes,
            max_age_s=config.store.max_age_s,
        )
        self.client = MqttClient(mqtt_settings(config, self.resolver), self.topics)
        self.forwarder = Forwarder(self.outbox, self.client, qos=config.mqtt.qos)
        self.hass: HassAnnouncer | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until asked to stop; returns the process exit code."""
        self.client.start()
        self._subscribe()
        self._load_model()
        self._start_updater()
        self._open_source()
        # What exists now (modules, model, clients) lives as long as the process: keep it out of
        # the collector's full passes (~20 ms of CPU each here), which would land on a frame.
        gc.freeze()
        if self.progress is not None:
            self.progress.start(self.clock())
        if self.health.state == "error":
            self._notify_ready()  # safe mode: up, publishing why, waiting for a fix
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
        """One turn of the loop: at most one inference, then MQTT events, outbox and status."""
        self._feed_sensor_queue()
        item = None
        if self.source is not None and self.pipeline is not None and self._due():
            item = self.source.get(timeout=POLL_S)
            if item is None and self.source.finished:  # a video that ended returns at once
                self._idle()
        else:
            self._idle()
        if item is not None:
            self._last_inference = self.clock()
            self._infer(item)
        self._pump_updates()
        self._maybe_reprobe()
        self.forwarder.step(self.client.events, 0.0)
        if self.hass is not None:
            self.hass.step()
        self._maybe_status()
        self._feed_watchdog()

    def _idle(self) -> None:
        """Wait one poll interval, or less when a signal arrives (its flag stays set)."""
        self.flags.wake.wait(POLL_S)
        self.flags.wake.clear()

    def shutdown(self) -> None:
        """Stop the source, flush the outbox (bounded), publish offline, close everything."""
        self.notifier.stopping("stopping: flushing results")
        self._set_state("stopping")
        if self.source is not None:
            self.source.close()
        deadline = self.clock() + FLUSH_ON_STOP_S
        while self.outbox.stats().depth and self.forwarder.connected and self.clock() < deadline:
            self.forwarder.step(self.client.events, POLL_S)
        self._publish_status()
        if self.updater is not None:
            self.updater.stop()
        self.client.stop(MQTT_STOP_S)
        self.outbox.close()
        self._stop_reprobe()
        if self.active is not None:
            self.active.model.close()
        if self._held is not None:
            self._held[0].model.close()
        log.info("agent stopped; %s results published", self.results_published)
        self.notifier.close()

    def reload(self) -> None:
        """SIGHUP: re-read the config; apply output, status, source and model settings."""
        self.notifier.reloading()
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("config reload rejected, keeping the running config: %s", exc)
            self.health.fail(exc.code, f"config reload rejected: {exc}")
            self._publish_status()
            self.notifier.ready(f"config reload rejected: {exc}")
            return
        for key in ("device_id", "state_dir", "mqtt", "keys", "store"):
            if getattr(new, key) != getattr(self.config, key):
                log.warning("config reload: %s changed; it takes effect after a restart", key)
        old = self.config
        self.config = new
        self.policy = PublishPolicy(new.output)
        self._min_period = 1.0 / new.source.fps if new.source.fps else 0.0
        if new.model != old.model:
            self._load_model()
        elif self.pipeline is not None and self.active is not None:
            self.pipeline = self._make_pipeline(self.active)
        if new.source != old.source:
            if self.source is not None:
                self.source.close()
            self._open_source()
        log.info("config reloaded")
        if self.progress is not None:
            self.progress.stall_s = stall_limit_s(new.source)
            self.progress.start(self.clock())
        self._publish_status()
        self.notifier.ready(self._status_text())

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
            self._set_state("error")
            return
        if self.active is not None:
            self.active.model.close()
        self.active = active
        self.pipeline = self._make_pipeline(active)
        degraded = active.model.degraded
        if active.model.fallback_reason:
            self.health.fail("accelerator_unavailable", active.model.fallback_reason)
        self._set_state("degraded" if degraded else "running")
        log.info(
            "serving %s version %s on %s/%s",
            active.name,
            active.version,
            active.model.backend,
            active.model.accelerator,
        )

    def _watch_accelerator(self, active: ActiveModel | None) -> None:
        """After a fallback to CPU, re-probe the Edge TPU with backoff (off the loop thread)."""
        self._stop_reprobe()
        self._reprobe_for = active
        if active is None or active.accelerated is None:
            return
        settings = self.config.model
        self.reprobe = AcceleratorReprobe.for_model(
            active.accelerated,
            backend=settings.backend,
            threads=active.model.threads,
            schedule=ReprobeSchedule(base=settings.reprobe_min_s, max_delay=settings.reprobe_max_s),
            now=self.clock(),
        )

    def _maybe_reprobe(self) -> None:
        if self.active is not self._reprobe_for:  # a load, an update or a rollback swapped it
            self._watch_accelerator(self.active)
        if self.reprobe is None:
            return
        outcome = self.reprobe.poll(self.clock())
        if isinstance(outcome, str):
            if self.health.errors.record("accelerator_unavailable", self.clock()):
                log.info("still on CPU: %s (re-probing with backoff)", outcome)
            self.health.fail("accelerator_unavailable", outcome)
        elif outcome is not None:
            self._swap_model(outcome)

    def _swap_model(self, model: LoadedModel) -> None:
        """Serve the same release on the accelerator that has just appeared."""
        assert self.active is not None
        old = self.active
        self.reprobe = None
        self.active = self._reprobe_for = replace(old, model=model, accelerated=None)
        self.pipeline = self._make_pipeline(self.active)
        old.model.close()
        log.info("Edge TPU available: %s version %s now runs on it", old.name, old.version)
        self._set_state("running")

    def _stop_reprobe(self) -> None:
        if self.reprobe is not None:
            self.reprobe.close()
            self.reprobe = None

    def _make_pipeline(self, active: ActiveModel) -> Pipeline:
        pipeline = Pipeline(active, self.config.output, self.clock)
        pipeline.configure_window(self.config.source.hop)
        return pipeline

    def _open_source(self) -> None:
        try:
            self.source = build_source(
                self.config.source, self.resolver, self._sensor_queue, self._frame_need
            )
        except EdgeError as exc:
            log.error("source cannot be opened: %s", exc)
            self.health.fail(exc.code, str(exc))
            self._set_state("error")

    def _frame_need(self) -> FrameNeed | None:
        """Asked by the capture thread per frame, so a new model's input size applies at once."""
        pipeline = self.pipeline
        return pipeline.frame_need if pipeline is not None else None

    def _subscribe(self) -> None:
        self.hass = announcer_for(
            self.client, self.topics, self.config, self._publish_status, self.clock
        )
        if self.config.source.type == "mqtt_sensor" and self.config.source.topic:
            self._sensor_sub = self.client.subscribe(
                TopicFilter(self.config.source.topic),
                max_payload=self.config.source.max_line_bytes,
            )

    def _feed_sensor_queue(self) -> None:
        if self._sensor_sub is None:
            return
        message = self._sensor_sub.get(0)
        while message is not None:
            try:
                self._sensor_queue.put_nowait(message.payload)
            except queue.Full:
                self.health.errors.record("sensor_queue_full", self.clock())
            message = self._sensor_sub.get(0)

    def _due(self) -> bool:
        return self.clock() - self._last_inference >= self._min_period

    # -- per item -------------------------------------------------------------------------------

    def _infer(self, item: Frame | Reading) -> None:
        assert self.pipeline is not None
        try:
            result = self.pipeline.process(item)
        except InputError as exc:
            self._bad("bad_input", exc)
            return
        except BackendError as exc:
            self._bad("backend", exc)
            if self._watch is not None:
                self._judge(self._watch.observe_error())
            return
        if result is None:
            return
        now = self.clock()
        if self.progress is not None:
            self.progress.inferred(now)
        if not self._ready_sent and result.finite:
            self._notify_ready()
        self.stats.add(result.total_s, now)
        if not result.finite:
            self._bad("non_finite_output", InputError("model produced NaN or Inf"))
        if self._watch is not None and self._judge(
            self._watch.observe_result(result.total_s, result.finite)
        ):
            return  # the result came from the model just rolled back; it is not published
        if self.policy.admit(result.summary, now):
            self._enqueue(result, now)

    def _enqueue(self, result: InferenceResult, now: float) -> None:
        assert self.active is not None
        captured_wall = self.wall() - (now - result.captured_t)
        model = ModelRef(self.active.name, str(self.active.version), self.active.sha256)

        def payload(seq: int) -> bytes:
            return ResultMessage(
                seq=seq,
                ts=round(captured_wall, 6),
                model=model,
                latency_ms=round(result.total_s * 1000.0, 3),
                outputs=result.outputs,
            ).to_json()

        try:
            seq = self.outbox.enqueue(str(self.topics.results), payload)
        except OutboxError as exc:
            self._bad("outbox_write", exc)
            return
        self.results_published += 1
        if self.hass is not None:
            self.hass.offer_result(payload(seq))

    def _bad(self, kind: str, exc: Exception) -> None:
        if self.health.errors.record(kind, self.clock()):
            log.warning("%s: %s (logged once per minute per kind)", kind, exc)
        self.health.fail(kind, str(exc))

    # -- model updates (the updater thread does the work; the loop only swaps) -----------------

    def _start_updater(self) -> None:
        try:
            credentials = load_credentials(self.config, self.resolver)
        except (ConfigError, InputError) as exc:
            log.error("updates over MQTT are off: %s", exc)
            return
        if credentials.fleet is None:
            log.info("updates over MQTT are off: keys.fleet_keys is not set")
            return
        installer = Installer(
            self.config,
            credentials,
            self.store.slots,
            self.store.state,
            self._load_for_swap,
            wall=self.wall,
        )
        self.updater = Updater(
            self.config, self.client, self.topics, credentials.fleet, installer, clock=self.clock
        )
        self.updater.start()

    def _load_for_swap(self, bundle: DecryptedBundle) -> tuple[ActiveModel, Pipeline]:
        """Runs on the updater thread: the interpreter and its tables are built off the loop."""
        active = load_bundle(bundle, self.config)
        return active, self._make_pipeline(active)

    def _pump_updates(self) -> None:
        """Once per loop turn: put a ready model live, end a watch window, publish progress."""
        updater = self.updater
        if updater is None:
            return
        swap = updater.take_swap()
        if swap is not None:
            self._swap_in(swap, updater)
            return  # the status goes out on the next turn, not between the last two frames
        if self._watch is not None and self._watch.done(self.clock()):
            self._release_held(updater)
            self._watch = None
            log.info("watch window passed; the previous model is released")
        if updater.status_changed.is_set():
            updater.status_changed.clear()
            self._publish_status()

    def _swap_in(self, swap: Swap, updater: Updater) -> None:
        """Between two inferences: the next frame goes to the new model (pointers only)."""
        old_active, old_pipeline = self.active, self.pipeline
        self.active, self.pipeline = swap.active, swap.pipeline
        self._release_held(updater)
        self._watch = None
        if swap.watch and old_active is not None and old_pipeline is not None:
            p50_ms = self.stats.percentile_ms(50)
            update = self.config.update
            self._watch = Watch(
                self.clock(),
                update.watch_results,
                update.watch_s,
                None if p50_ms is None else p50_ms / 1000.0,
                update.latency_budget_factor,
            )
            self._held = (old_active, old_pipeline, swap.bundle)
        elif old_active is not None:
            updater.retire(old_active)
        log.info("now serving %s version %s (%s)", swap.active.name, swap.active.version, swap.kind)
        self._set_state("degraded" if swap.active.model.degraded else "running")
        updater.status_changed.set()  # published on the next turn, not between two frames

    def _judge(self, verdict: str | None) -> bool:
        """Roll back at once when the watch window saw a failure; whether it did."""
        if verdict is None or self._held is None or self.updater is None:
            return False
        failed = self.active
        self.active, self.pipeline, bundle = self._held
        self._held = None
        self._watch = None
        assert failed is not None
        log.warning("new model failed its watch window (%s); rolled back", verdict)
        self.updater.watch_failed(bundle, verdict, failed)
        return True

    def _release_held(self, updater: Updater) -> None:
        if self._held is not None:
            updater.retire(self._held[0])
            self._held = None

    # -- status ---------------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        if state != self.health.state:
            self.health.state = state
            self._publish_status()

    def _maybe_status(self) -> None:
        if self.clock() >= self._next_status:
            self._publish_status()

    def status_message(self) -> StatusMessage:
        source_stats = self.source.stats() if self.source is not None else {}
        errors = dict(self.health.errors.counts)
        errors.update({k: v for k, v in source_stats.items() if k.startswith("error.")})
        if self._sensor_sub is not None:
            errors["mqtt_oversize"] = self._sensor_sub.dropped_oversize
        model = self.active.model if self.active else None
        return StatusMessage(
            ts=self.wall(),
            state=self.health.state,
            fps=round(self.stats.fps(), 3),
            latency_p50_ms=self.stats.percentile_ms(50),
            latency_p95_ms=self.stats.percentile_ms(95),
            frames_dropped=source_stats.get("dropped", 0),
            queue_depth=self.outbox.stats().depth,
            backend=model.backend if model else "",
            backend_reason=model.backend_reason if model else "",
            accelerator=model.accelerator if model else "cpu",
            degraded=bool(model and model.degraded),
            model=(
                ModelRef(self.active.name, str(self.active.version), self.active.sha256)
                if self.active
                else None
            ),
            rss_bytes=rss_bytes(),
            cpu_temp_c=cpu_temperature_c(),
            errors=errors,
            outbox=self.outbox.stats(),
            last_error=self.health.last_error,
            groups=self.config.groups,
            update=self.updater.status() if self.updater is not None else None,
        )

    # -- systemd --------------------------------------------------------------------------------

    def _notify_ready(self) -> None:
        self._ready_sent = True
        self.notifier.ready(self._status_text())

    def _feed_watchdog(self) -> None:
        """``WATCHDOG=1`` while inference makes progress (see :mod:`agent.daemon.watchdog`)."""
        if self.progress is None or not self._ready_sent:
            return
        expecting = (
            self.health.state != "error"
            and self.source is not None
            and self.pipeline is not None
            and not self.source.finished
        )
        if self.progress.due(self.clock(), expecting_input=expecting):
            self.notifier.watchdog()

    def _status_text(self) -> str:
        """The one line ``systemctl status`` shows."""
        if self.health.state == "error" and self.health.last_error is not None:
            return f"error ({self.health.last_error.code}): {self.health.last_error.message}"
        model = f"{self.active.name} v{self.active.version}" if self.active else "no model"
        return f"{self.health.state}: {model}, {self.stats.fps():.1f} fps"

    def _publish_status(self) -> None:
        self._next_status = self.clock() + self.config.status.interval_s
        if self._ready_sent:
            self.notifier.status(self._status_text())
        if self.updater is not None:
            self.updater.note_latency(self.stats.percentile_ms(50))
        if not self.client.connected:
            return
        try:
            self.client.publish(
                self.topics.status, self.status_message().to_json(), qos=1, retain=True
            )
        except EdgeError as exc:
            log.debug("status not published: %s", exc)
