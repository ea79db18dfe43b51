"""One persistent worker thread for model runs, polled by the GUI thread (no Qt, no MRML here).

Latest request wins: while a job runs, a newly submitted job replaces any job still waiting, and the replaced
one is reported as superseded. Jobs are plain callables; they must not touch Qt or the MRML scene.
"""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any, Callable


@dataclass
class Outcome:
    request: int
    result: Any = None
    error: BaseException | None = None
    superseded: bool = False


class Worker:
    def __init__(self, name: str = "EISegMed3D worker"):
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._pending: tuple | None = None  # (request id, job)
        self._running: int | None = None
        self._done: dict = {}
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], Any]) -> int:
        """Queue `job`; a job still waiting is dropped (reported superseded). Returns the request id."""
        with self._cond:
            if self._stop:
                raise RuntimeError("worker was stopped")
            request = next(self._ids)
            if self._pending is not None:
                old = self._pending[0]
                self._done[old] = Outcome(old, superseded=True)
            self._pending = (request, job)
            self._cond.notify_all()
            return request

    def poll(self, request: int) -> Outcome | None:
        """The outcome of a request once it is over (each outcome is handed out once), else None."""
        with self._cond:
            return self._done.pop(request, None)

    def wait(self, request: int, timeout: float | None = None) -> Outcome | None:
        """Block up to `timeout` seconds for a request (the GUI uses short timeouts between processEvents)."""
        with self._cond:
            self._cond.wait_for(lambda: request in self._done, timeout)
            return self._done.pop(request, None)

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._running is not None or self._pending is not None

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            if self._pending is not None:
                self._done[self._pending[0]] = Outcome(self._pending[0], superseded=True)
                self._pending = None
            self._cond.notify_all()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._stop)
                if self._stop:
                    return
                request, job = self._pending
                self._pending, self._running = None, request
            outcome = Outcome(request)
            try:
                outcome.result = job()
            except BaseException as exc:  # reported to the GUI thread, which shows the message
                outcome.error = exc
            with self._cond:
                self._running = None
                self._done[request] = outcome
                self._cond.notify_all()
