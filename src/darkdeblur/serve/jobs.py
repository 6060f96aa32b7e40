"""One worker thread per device, fed by a bounded queue.

A request first takes a :class:`Slot` (``QueueFull`` when ``1 + waiting`` photos are already
admitted: the one being restored and those waiting), so that even uploading and decoding are
bounded; it then hands the worker a function to run. The worker only ever completes a
``concurrent.futures.Future``: whoever waits for it may go away (a browser tab closed mid-job)
and the worker simply goes on to the next job. A job cancelled before it started is skipped.
"""
from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any, Callable


class QueueFull(Exception):
    """Every place in the queue is taken; the message says how many photos are ahead."""


class Slot:
    """A place in the queue, held from the upload until the job ends (or the upload fails)."""

    def __init__(self, jobs: JobQueue):
        self._jobs = jobs
        self._held = True

    def release(self) -> None:
        """Give the place back; safe to call more than once, from any thread."""
        self._jobs._release(self)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:  # an upload that failed before it became a job
            self.release()


class JobQueue:
    """Runs submitted functions one at a time, in order, on a thread of its own."""

    def __init__(self, waiting: int, name: str = "darkdeblur-worker"):
        if waiting < 0:
            raise ValueError(f"waiting must be 0 or more, got {waiting}")
        self.capacity = 1 + waiting  # the running job and those waiting
        self._admitted = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    @property
    def admitted(self) -> int:
        """Photos being uploaded, waiting or being restored."""
        with self._lock:
            return self._admitted

    def reserve(self) -> Slot:
        """A place in the queue, or :class:`QueueFull`."""
        with self._lock:
            if self._admitted >= self.capacity:
                raise QueueFull(f"the server is busy with {self._admitted} photos; "
                                f"try again when one is done")
            self._admitted += 1
        return Slot(self)

    def submit(self, slot: Slot, fn: Callable[[], Any]) -> Future:
        """Run ``fn()`` on the worker when its turn comes; the slot is released when it ends."""
        future: Future = Future()
        # A job cancelled while waiting gives its place back at once, not when its turn comes.
        future.add_done_callback(lambda done: slot.release() if done.cancelled() else None)
        self._queue.put((slot, fn, future))
        return future

    def close(self) -> None:
        """Stop after the running job (which cannot be interrupted); cancel the waiting ones."""
        self._closing.set()
        self._queue.put(None)

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _release(self, slot: Slot) -> None:
        with self._lock:
            if slot._held:
                slot._held = False
                self._admitted -= 1

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            slot, fn, future = item
            try:
                if self._closing.is_set():
                    future.cancel()
                elif future.set_running_or_notify_cancel():  # False: its client went away
                    try:
                        future.set_result(fn())
                    except BaseException as err:  # noqa: BLE001 - handed to whoever waits
                        future.set_exception(err)
            finally:
                slot.release()
