"""Dynamic batching: concurrent requests to one model version run as one batch."""

import asyncio
import queue
import threading
import time

import numpy as np

_STOP = object()


class BatcherClosed(RuntimeError):
    """The batcher was closed (its model version unloaded) before the request got in."""


class DynamicBatcher:
    """Merges concurrently submitted batches into one call of `run`, on a worker thread.

    While one batch runs, new requests queue up; the worker then takes everything queued
    (up to `max_batch_size` rows), waiting at most `batch_timeout_s` for more to arrive.

    Args:
        run: function from a numpy batch to a dict of numpy arrays with the same first dim.
        max_batch_size: most rows per call of `run` (a bigger request runs alone).
        batch_timeout_s: how long to wait for more requests once one is queued.
        name: the worker thread's name.
    """

    def __init__(self, run, max_batch_size=256, batch_timeout_s=0.0005, name="batcher"):
        self._run = run
        self._max_batch_size = max_batch_size
        self._timeout = batch_timeout_s
        self._queue = queue.SimpleQueue()
        self._pending = None
        self._closed = False
        self._lock = threading.Lock()  # Nothing is queued behind the stop marker.
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    async def submit(self, batch):
        """Runs `batch` as part of the next merged batch.

        Args:
            batch: a numpy array whose first dimension is the batch.

        Returns:
            The dict of outputs for exactly these rows.

        Raises:
            BatcherClosed: `close()` was called before.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._closed:
                raise BatcherClosed("this model version has been unloaded")
            self._queue.put((batch, loop, future))
        return await future

    def close(self):
        """Stops the worker after it has answered every request already submitted."""
        with self._lock:
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def _collect(self):
        first = self._pending or self._queue.get()
        self._pending = None
        if first is _STOP:
            return None
        items, rows = [first], len(first[0])
        deadline = time.monotonic() + self._timeout
        while rows < self._max_batch_size:
            try:
                item = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                break
            if item is _STOP or rows + len(item[0]) > self._max_batch_size:
                self._pending = item
                break
            items.append(item)
            rows += len(item[0])
        return items

    def _work(self):
        while (items := self._collect()) is not None:
            try:
                batch = items[0][0] if len(items) == 1 else np.concatenate([i[0] for i in items])
                outputs = self._run(batch)
            except Exception as error:  # noqa: BLE001 - handed to every waiting request
                for _, loop, future in items:
                    loop.call_soon_threadsafe(_set_exception, future, error)
                continue
            start = 0
            for rows, loop, future in items:
                stop = start + len(rows)
                part = {name: value[start:stop] for name, value in outputs.items()}
                loop.call_soon_threadsafe(_set_result, future, part)
                start = stop


def _set_result(future, value):
    if not future.done():
        future.set_result(value)


def _set_exception(future, error):
    if not future.done():
        future.set_exception(error)
