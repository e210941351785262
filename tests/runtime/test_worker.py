"""Every interpreter call runs on the model's own thread: callers elsewhere hand it over and wait,
errors come back to them, and the thread ends with the last model closed on it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from agent.errors import BackendError
from agent.runtime import open_model
from agent.runtime.worker import ModelThread
from tests.support.models import ModelFactory


def test_a_call_runs_on_the_thread_and_returns_its_value() -> None:
    worker = ModelThread("interpreter:test")
    worker.acquire()
    assert worker.call(threading.get_ident) == worker.ident != threading.get_ident()
    assert worker.call(lambda: worker.call(lambda: 7)) == 7  # inline on its own thread
    worker.release()
    assert worker.join(5.0)


def test_an_exception_reaches_the_caller_and_the_thread_serves_on() -> None:
    worker = ModelThread()
    worker.acquire()

    def fail() -> None:
        raise BackendError("invoke failed")

    with pytest.raises(BackendError, match="invoke failed"):
        worker.call(fail)
    assert worker.call(lambda: "still serving") == "still serving"
    worker.release()
    assert worker.join(5.0)


def test_a_stopped_thread_refuses_new_work() -> None:
    worker = ModelThread()
    worker.acquire()
    worker.release()
    assert worker.join(5.0)
    with pytest.raises(BackendError, match="has stopped"):
        worker.call(lambda: None)
    with pytest.raises(BackendError, match="has stopped"):
        worker.acquire()


def test_a_model_is_created_invoked_and_closed_on_its_own_thread(
    sample_models: ModelFactory,
) -> None:
    model = open_model(sample_models("int8", "int8").model_bytes(), threads=1)
    assert model.owner.alive
    assert model.owner.ident != threading.get_ident()
    spec = model.inputs[0]
    outputs = model.invoke([np.zeros(spec.shape, np.dtype(spec.dtype))])
    assert outputs[0].shape == model.outputs[0].shape
    model.close()
    assert model.owner.join(5.0)


def test_models_sharing_a_thread_keep_it_until_the_last_is_closed(
    sample_models: ModelFactory,
) -> None:
    data = sample_models("int8", "int8").model_bytes()
    owner = ModelThread("interpreter:chain")
    first = open_model(data, threads=1, owner=owner)
    second = open_model(data, threads=1, owner=owner)
    first.close()
    spec = second.inputs[0]
    second.invoke([np.zeros(spec.shape, np.dtype(spec.dtype))])
    assert owner.alive
    second.close()
    assert owner.join(5.0)


def test_a_job_in_flight_when_its_model_is_closed_still_finishes_its_invoke(
    sample_models: ModelFactory,
) -> None:
    # the interpreter stage's item in flight at a swap: close() comes from another thread
    model = open_model(sample_models("int8", "int8").model_bytes(), threads=1)
    spec = model.inputs[0]
    zeros = np.zeros(spec.shape, np.dtype(spec.dtype))
    closed, results = threading.Event(), list[int]()

    def job() -> None:
        closed.wait(5.0)
        results.append(len(model.invoke([zeros])))

    model.owner.submit(job)
    model.close()  # queued behind the job
    closed.set()
    assert model.owner.join(5.0)
    assert results == [len(model.outputs)]
    with pytest.raises(BackendError, match="model is closed"):
        model.invoke([zeros])  # from any other thread once closed
