"""``terrafusion-agent run``: scheduler plus local HTTP API until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime, timezone
from typing import Optional

from terrafusion_agent import health
from terrafusion_agent.config import Config
from terrafusion_agent.errors import TerraFusionError
from terrafusion_agent.lock import LocalLock
from terrafusion_agent.redact import redact
from terrafusion_agent.stores.local import LocalStore
from terrafusion_agent.sync.engine import run_sync

log = logging.getLogger("terrafusion.agent")
JOB_ID = "sync"


class Agent:
    """The long-running agent: owns the local lock, the scheduler and the HTTP server."""

    def __init__(self, config: Config):
        self.config = config
        self.lock = LocalLock(config.local_path)
        self.scheduler = None
        self.server = None
        self._stop = threading.Event()
        self._server_thread: Optional[threading.Thread] = None

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler
        from waitress import create_server

        from terrafusion_agent.service.http import Api

        self.lock.acquire()
        try:
            LocalStore.open(self.config.local_path).close()  # create + migrate up front
            self.scheduler = BackgroundScheduler(timezone=timezone.utc)
            self.scheduler.add_job(
                self._scheduled_sync, "interval", id=JOB_ID,
                seconds=self.config.interval_seconds,
                next_run_time=datetime.now(timezone.utc),
                max_instances=1, coalesce=True,
                misfire_grace_time=self.config.interval_seconds,
            )
            self.scheduler.start()
            try:
                self.server = create_server(Api(self), host=self.config.http_host,
                                            port=self.config.http_port, threads=4,
                                            ident="terrafusion-agent")
            except OSError as exc:
                raise TerraFusionError(
                    f"The agent cannot listen on {self.config.http_host}:"
                    f"{self.config.http_port}: {exc.strerror or exc}."
                ) from None
            self._server_thread = threading.Thread(target=self.server.run, name="http",
                                                   daemon=True)
            self._server_thread.start()
        except BaseException:
            self.stop()
            raise

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    @property
    def health_url(self) -> str:
        host = self.config.http_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/health"

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM ask for a graceful stop (main thread only; call before start)."""
        def handler(signum, _frame):
            log.info("received %s, stopping", signal.Signals(signum).name)
            self._stop.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def wait(self) -> None:
        """Block until a stop is requested."""
        while not self._stop.wait(0.5):
            pass

    def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)  # a running sync finishes its transaction
        if self.server is not None:
            self.server.close()
        self.lock.release()

    # --- work ---------------------------------------------------------------------------

    def _scheduled_sync(self) -> None:
        try:
            run_sync(self.config, trigger="schedule")
        except TerraFusionError as exc:
            log.warning("scheduled sync failed: %s", redact(str(exc)))
        except Exception:  # noqa: BLE001 - the schedule must survive any failure
            log.exception("scheduled sync crashed")

    def scheduler_alive(self) -> bool:
        return bool(self.scheduler is not None and self.scheduler.running)

    def next_sync(self) -> Optional[str]:
        job = self.scheduler.get_job(JOB_ID) if self.scheduler else None
        if job is None or job.next_run_time is None:
            return None
        return job.next_run_time.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")

    def health_body(self) -> dict:
        return health.build(self.config, next_sync=self.next_sync())
