"""Each test counts agent-side metrics from zero, in this process, and leaves no global state."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families

from jobs import telemetry


@pytest.fixture(autouse=True)
def fresh_agent_metrics() -> Iterator[None]:
    saved = (values.ValueClass, telemetry._objects, telemetry._dir)
    env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    telemetry._objects = None
    telemetry._dir = None
    try:
        yield
    finally:
        values.ValueClass, telemetry._objects, telemetry._dir = saved
        if env is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = env


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    return {m.name: m for m in text_string_to_metric_families(response.content.decode())}


def samples(metrics: dict, family: str, sample: str | None = None, **labels: str) -> list:
    """The samples of `family` named `sample` (default: the family) whose labels include these."""
    name = sample or family
    return [
        s
        for s in metrics[family].samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def value(metrics: dict, family: str, sample: str | None = None, **labels: str) -> float | None:
    found = samples(metrics, family, sample, **labels)
    assert len(found) <= 1, found
    return found[0].value if found else None
