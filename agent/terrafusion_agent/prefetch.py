"""Run an iterator in a background thread, a few items ahead of its consumer.

Used by bulk copies: while SQLite inserts one batch (the GIL is released during
``sqlite3_step``), the central database formats the next one, so both cores work.
"""

from __future__ import annotations

import queue
import threading
from typing import Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


class Prefetch(Generic[T]):
    """Iterates ``items`` in a worker thread started at once; the worker's exceptions
    re-raise in the consumer. Use as a context manager, so that a consumer that stops
    early also stops the worker."""

    def __init__(self, items: Iterable[T], depth: int = 2):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._work, args=(items,), name="prefetch",
                                        daemon=True)
        self._thread.start()

    def _work(self, items: Iterable[T]) -> None:
        it = iter(items)
        try:
            for item in it:
                if not self._put(item):
                    return
            self._put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(_Failure(exc))
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a generator's own clean-up (its connection, say) runs here

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        item = self._queue.get()
        if item is _DONE:
            self._finished = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._finished = True
            raise item.exc
        return item

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
