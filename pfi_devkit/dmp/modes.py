"""The fake DMP's failure modes: how it answers, changed at runtime by the tests (``set_mode``) or
by another process (``POST /_devkit/mode``).

``normal``; ``fail`` (a valid request gets a registry Failure with ``error_code``, by default
``DMPClosed``); ``transient`` (HTTP 503 with a SOAP ``Receiver`` fault and ``Retry-After``);
``slow`` (wait ``delay`` s, then normal); ``drop`` (read the request, close the connection without
answering); ``down`` (stop listening, sever open connections: connection refused until the mode
changes). ``duration`` makes any mode revert to ``normal`` after that many seconds, which is how a
separate process brings ``down`` back. ``transient``, ``slow`` and ``drop`` are applied by the HTTP
handler (:mod:`pfi_devkit.dmp.http`), ``fail`` by the registry once a request is found valid.
"""

from __future__ import annotations

import threading

from pfi_devkit.dmp.constants import DEFAULT_FAIL_CODE, DEFAULT_SLOW_DELAY, MODES, Mode
from pfi_devkit.dmp.model import RegistryFailure


class FailureModes:
    """Mixin of :class:`~pfi_devkit.dmp.DmpEndpoint`: the mode and its timed revert.

    The endpoint provides the listener (``_listen``, ``_unlisten``, ``_sever_connections``) that
    ``down`` stops and restarts.
    """

    mode: Mode
    fail_code: str
    fail_text: str
    delay: float
    _mode_lock: threading.Lock
    _generation: int
    _revert: threading.Timer | None
    _stopping: threading.Event

    def set_mode(
        self,
        mode: Mode,
        *,
        error_code: str | None = None,
        error_text: str | None = None,
        delay: float | None = None,
        duration: float | None = None,
    ) -> None:
        """Change how requests are answered (see the module docstring).

        ``error_code``/``error_text``: the registry error of ``fail``; ``delay``: seconds of
        ``slow``; ``duration``: revert to ``normal`` after that many seconds.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        with self._mode_lock:
            self._apply_mode(mode, error_code, error_text, delay, duration)

    def _apply_mode(
        self,
        mode: Mode,
        error_code: str | None = None,
        error_text: str | None = None,
        delay: float | None = None,
        duration: float | None = None,
    ) -> None:
        self._generation += 1
        if self._revert is not None:
            self._revert.cancel()
            self._revert = None
        if mode == "fail":
            self.fail_code = error_code or DEFAULT_FAIL_CODE
            self.fail_text = error_text or f"{self.fail_code} (devkit fail mode)"
        if mode == "slow":
            self.delay = DEFAULT_SLOW_DELAY if delay is None else float(delay)
        previous, self.mode = self.mode, mode
        if mode == "down" and previous != "down":
            self._unlisten()
            self._sever_connections()
        elif mode != "down" and previous == "down" and not self._stopping.is_set():
            self._listen()
        if duration is not None and mode != "normal":
            self._revert = threading.Timer(
                float(duration), self._revert_to_normal, (self._generation,)
            )
            self._revert.daemon = True
            self._revert.start()

    def _revert_to_normal(self, generation: int) -> None:
        with self._mode_lock:
            if generation == self._generation:  # no set_mode since this timer was armed
                self._apply_mode("normal")

    def _fail_mode(self) -> None:
        if self.mode == "fail":
            raise RegistryFailure.one(self.fail_code, self.fail_text)
