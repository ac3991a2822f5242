"""Trackers in a helper process (``python -m kaslite.train.tracker_host``), off the training loop.

MLflow and TensorBoard cost a run seconds it does not train: importing them
(about 2 s for MLflow), talking to the store, writing event files. ``kaslite
run`` hosts the trackers whose spec allows it (``TrackerSpec.own_process``) in
one helper process, started with the run, which imports them and does their
work on another core while the run trains. The training process sends each
event, pickled, and goes on; a reader thread collects the answers.

Each hosted tracker is a :class:`HostedTracker` in the run's
:class:`~kaslite.train.tracker.TrackerGroup`, so failures keep their policy:
a tracker that raised in the helper raises, with that error, at its next
event (and at ``where()``, which waits for every event before it), and is
detached; a helper that died detaches every tracker it hosted. ``close()``
waits for the helper to finish its work, so a run that returns has its MLflow
run complete. The helper ignores Ctrl-C (the run tells it how it stopped);
if the training process is killed, the helper reads the end of its input,
closes its trackers (MLflow marks the run FAILED) and exits.
"""

import contextlib
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from typing import IO, Any

from kaslite.errors import KasliteError, first_line
from kaslite.names import import_path, imported
from kaslite.train.tracker import Tracker

HOST = [sys.executable, "-m", "kaslite.train.tracker_host"]
# How long close() waits for the helper to finish what it was sent (logging and registering a model).
FINISH_TIMEOUT_S = 300
_FRAME = struct.Struct("<I")
_SAME_EVENT = "same event"  # the event the previous message carried: one object for every tracker, as in-process


class TrackerHostError(KasliteError):
    """The trackers' helper process is gone, or cannot be sent an event."""


class HostedTrackerFailed(KasliteError):
    """A hosted tracker raised in the helper: ``method`` where, ``reason`` its error's line (what
    :class:`~kaslite.train.tracker.TrackerGroup` reports, as for a tracker in this process)."""

    def __init__(self, method: str, reason: str) -> None:
        super().__init__(f"{method}: {reason}")
        self.method, self.reason = method, reason


def _frame(message: Any) -> bytes:
    frame = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _FRAME.pack(len(frame)) + frame


def _write(stream: IO[bytes], message: Any) -> None:
    stream.write(_frame(message))
    stream.flush()


def _read(stream: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream."""
    header = stream.read(_FRAME.size)
    if len(header) < _FRAME.size:
        return None
    return pickle.loads(stream.read(_FRAME.unpack(header)[0]))


class TrackerHost:
    """The helper process and what it has answered; shared by the trackers it hosts."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(HOST, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.failures: dict[str, HostedTrackerFailed] = {}  # tracker name → the first error it raised there
        self.results: dict[str, Any] = {}  # tracker name → what its last where() returned
        self._sent = self._answered = 0
        self._answers = threading.Condition()
        self._last_event: Any = None
        self._users = 0
        # Frames to send, written by a thread of their own: a helper busy with its imports (a pipe holds
        # 64 KiB) must not make the training loop wait. None ends its input.
        self._outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._broken: str | None = None  # why the helper's input cannot be written to
        self._reader = threading.Thread(target=self._read_answers, name="kaslite-tracker-answers", daemon=True)
        self._writer = threading.Thread(target=self._write_frames, name="kaslite-tracker-events", daemon=True)
        self._reader.start()
        self._writer.start()

    def _write_frames(self) -> None:
        stream = self.process.stdin
        assert stream is not None
        while (frame := self._outbox.get()) is not None:
            try:
                stream.write(frame)
                stream.flush()
            except (OSError, ValueError) as exc:
                self._broken = f"the trackers' helper process is gone ({first_line(exc)})"
                return
        with contextlib.suppress(OSError):  # the helper is gone already
            stream.close()

    def _read_answers(self) -> None:
        assert self.process.stdout is not None
        while (answer := _read(self.process.stdout)) is not None:
            name, method, failure, result = answer
            with self._answers:
                if failure is not None:
                    self.failures.setdefault(name, HostedTrackerFailed(method, failure))
                elif method == "where":
                    self.results[name] = result
                self._answered += 1
                self._answers.notify_all()
        with self._answers:
            self._answered = -1  # the helper is gone
            self._answers.notify_all()

    def gone(self) -> str | None:
        """Why the helper can no longer answer, or None while it can."""
        if self._answered >= 0:
            return self._broken
        code = self.process.wait()
        return f"the trackers' helper process exited (code {code})"

    def send(self, name: str, method: str, payload: Any = None) -> None:
        """Send one message; raises :class:`TrackerHostError` if the helper is gone."""
        reason = self.gone()
        if reason is not None:
            raise TrackerHostError(reason)
        same = payload is not None and payload is self._last_event
        try:
            frame = _frame((name, method, _SAME_EVENT if same else payload))
        except Exception as exc:  # an event that cannot be pickled
            raise TrackerHostError(f"cannot send {method} to the trackers' helper: {first_line(exc)}") from exc
        self._last_event = payload
        self._outbox.put(frame)
        self._sent += 1

    def wait(self, timeout: float = FINISH_TIMEOUT_S) -> None:
        """Until the helper has answered every message sent (or is gone)."""
        with self._answers:
            finished = self._answers.wait_for(lambda: self._answered in (-1, self._sent), timeout)
        if not finished:
            raise TrackerHostError(f"the trackers' helper process did not finish in {timeout:.0f} s")

    def join(self) -> None:
        self._users += 1

    def leave(self) -> None:
        """One hosted tracker closed; with the last, the helper's input ends and it exits."""
        self._users -= 1
        if self._users > 0:
            return
        self._outbox.put(None)
        self._writer.join(timeout=30)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)


class HostedTracker(Tracker):
    """Stands in the training process for one tracker that lives in the helper process."""

    def __init__(self, host: TrackerHost, name: str, factory: Any, run: Any) -> None:
        path = import_path(factory)
        if "<" in path:  # a lambda or a local class: the helper could not import it
            raise TrackerHostError(f"tracker {name!r}: its factory {path} cannot be imported elsewhere")
        self.host, self.name = host, name
        self._closed = False
        host.join()
        self._send("create", (path, run))

    def _send(self, method: str, payload: Any = None, *, caught_up: bool = False) -> None:
        """Send an event; with ``caught_up``, once the helper has done every earlier one, so that a failure
        among them is reported first (before the run's last lines, not after them)."""
        if caught_up:
            self.host.wait()
        failure = self.host.failures.get(self.name)
        if failure is not None:
            raise failure
        self.host.send(self.name, method, payload)

    def on_run_start(self, run: Any) -> None:
        self._send("on_run_start", run)

    def on_epoch_end(self, record: Any) -> None:
        self._send("on_epoch_end", record)

    def on_phase_change(self, event: Any) -> None:
        self._send("on_phase_change", event)

    def on_seed_transition(self, event: Any) -> None:
        self._send("on_seed_transition", event)

    def on_growth_decision(self, event: Any) -> None:
        self._send("on_growth_decision", event)

    def on_warning(self, event: Any) -> None:
        self._send("on_warning", event)

    def on_model_ready(self, event: Any) -> None:
        self._send("on_model_ready", event, caught_up=True)

    def on_run_end(self, summary: Any) -> None:
        self._send("on_run_end", summary, caught_up=True)

    def on_run_failed(self, event: Any) -> None:
        self._send("on_run_failed", event, caught_up=True)

    def on_run_tracked(self, event: Any) -> None:
        self._send("on_run_tracked", event)

    def where(self) -> list[str]:
        """The hosted tracker's own answer, once the helper has done everything sent before."""
        self._send("where")
        self.host.wait()
        failure = self.host.failures.get(self.name)
        if failure is not None:
            raise failure
        gone = self.host.gone()
        if gone is not None:
            raise TrackerHostError(gone)
        return list(self.host.results.get(self.name, []))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.host.gone() is None:
                self.host.send(self.name, "close")
                self.host.wait()
        finally:
            self.host.leave()


_started: TrackerHost | None = None  # started early by start(), for the run's make_trackers()


def _hostable(spec: Any) -> bool:
    return bool(spec.own_process) and os.name == "posix"


def start(specs: list[Any]) -> None:
    """Start the helper for the trackers among ``specs`` that it will host, before the run needs it, and
    have it warm them up (``TrackerSpec.warm_up``: their imports) while this process imports torch."""
    global _started
    warm_ups = [import_path(spec.warm_up) for spec in specs if _hostable(spec) and spec.warm_up is not None]
    if _started is None and any(_hostable(spec) for spec in specs):
        _started = TrackerHost()
        for reference in warm_ups:
            _started.send("", "warm_up", reference)


def make_trackers(specs: dict[str, Any], run: Any, host: bool) -> dict[str, Tracker]:
    """A tracker for each ``name → TrackerSpec``, in order: with ``host``, those whose spec allows it
    (``own_process``) live in one helper process (POSIX only; the one :func:`start` started, if any),
    the others in this one."""
    global _started
    away = [name for name, spec in specs.items() if host and _hostable(spec)]
    helper = None
    if away:
        helper, _started = _started or TrackerHost(), None
    return {
        name: HostedTracker(helper, name, spec.factory, run) if helper and name in away else spec.factory(run)
        for name, spec in specs.items()
    }


# -- the helper process ---------------------------------------------------------------


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """Create and drive trackers as the training process asks, answering each message."""
    trackers: dict[str, Any] = {}
    failed: set[str] = set()  # detached, as in-process: no more events reach them but close()
    last_event: Any = None
    while (message := _read(requests)) is not None:
        name, method, payload = message
        payload = last_event if isinstance(payload, str) and payload == _SAME_EVENT else payload
        last_event = payload
        failure, result = None, None
        try:
            if method == "warm_up":
                imported(payload)()
            elif method == "create":
                path, run = payload
                trackers[name] = imported(path)(run)
            elif method == "close":
                failed.discard(name)
                trackers.pop(name).close()
            elif name not in failed:
                result = getattr(trackers[name], method)(*(() if method == "where" else (payload,)))
        except Exception as exc:
            failure = first_line(exc)
            failed.add(name)
        _write(answers, (name, method, failure, result))
    for tracker in trackers.values():  # the training process is gone: end what it left open
        try:
            tracker.close()
        except Exception as exc:
            print(f"kaslite: a tracker failed to close: {first_line(exc)}", file=sys.stderr)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the run; it tells us how it stopped
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # what trackers print goes to stderr, not into the answers
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
