"""Tests of the dynamic batcher."""

import asyncio
import threading

import numpy as np
import pytest

from tfjsigr.serving.batching import BatcherClosed, DynamicBatcher


class SlowDouble:
    """Doubles its input; the first call blocks until released, so requests pile up."""

    def __init__(self):
        self.batch_sizes = []
        self.release = threading.Event()

    def __call__(self, batch):
        self.release.wait(5)
        self.batch_sizes.append(len(batch))
        return {"y": batch * 2}


def test_concurrent_requests_are_merged_and_answered_with_their_own_rows():
    run = SlowDouble()
    batcher = DynamicBatcher(run, max_batch_size=64, batch_timeout_s=0.01)

    async def main():
        tasks = [asyncio.ensure_future(batcher.submit(np.full((2, 1), i, np.float32))) for i in range(20)]
        await asyncio.sleep(0.05)
        run.release.set()
        return await asyncio.gather(*tasks)

    try:
        results = asyncio.run(main())
    finally:
        batcher.close()
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result["y"], np.full((2, 1), 2 * i))
    assert sum(run.batch_sizes) == 40
    assert len(run.batch_sizes) < 20


def test_batches_never_exceed_the_maximum():
    run = SlowDouble()
    run.release.set()
    batcher = DynamicBatcher(run, max_batch_size=5, batch_timeout_s=0.01)

    async def main():
        return await asyncio.gather(*[batcher.submit(np.zeros((2, 1))) for _ in range(10)])

    try:
        asyncio.run(main())
    finally:
        batcher.close()
    assert max(run.batch_sizes) <= 5 and sum(run.batch_sizes) == 20


def test_errors_reach_every_request_of_the_batch():
    def fail(batch):
        raise RuntimeError("boom")

    batcher = DynamicBatcher(fail)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            asyncio.run(batcher.submit(np.zeros((1, 1))))
    finally:
        batcher.close()


def test_requests_after_close_are_refused_not_left_waiting():
    batcher = DynamicBatcher(lambda batch: {"y": batch})
    batcher.close()
    with pytest.raises(BatcherClosed):
        asyncio.run(batcher.submit(np.zeros((1, 1))))
