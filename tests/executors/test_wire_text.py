"""Values sent as text on a wire protocol (headers, subjects, routing keys) may not hold CR, LF,
NUL or other control characters: each is refused at save time with the key named."""

from __future__ import annotations

from typing import Any

import pytest

from executors.base import ConfigError
from executors.registry import get_executor

BASE: dict[str, dict[str, Any]] = {
    "http": {"method": "GET", "url": "http://example.org/"},
    "nats": {"url": "nats://n:4222"},
    "kafka": {"brokerAddress": "k:9092", "topic": "t"},
    "rabbitmq": {"url": "amqp://guest:guest@r:5672/", "queue.name": "q"},
}


@pytest.mark.parametrize(
    ("executor", "raw", "key"),
    [
        ("http", {"headers": '["X-A: 1\\r\\nX-Injected: 2"]'}, "headers"),
        ("http", {"headers": '["X-A: a\\u0000b"]'}, "headers"),
        ("nats", {"subject": "a.b\x00"}, "subject"),
        ("nats", {"subject": "a.b\x7f"}, "subject"),
        ("kafka", {"headers": '{"h": "v\\r\\nw"}'}, "headers"),
        ("kafka", {"headers": '["h: v\\nw"]'}, "headers"),
        ("rabbitmq", {"queue.name": "q\r\nx"}, "queue.name"),
        ("rabbitmq", {"exchange": "e\x01"}, "exchange"),
        ("rabbitmq", {"message.messageId": "m\n"}, "message.messageId"),
    ],
)
def test_a_control_character_in_a_wire_value_is_refused_naming_the_key(
    executor: str, raw: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        get_executor(executor).validate({**BASE[executor], **raw})
    assert "must not contain control characters" in caught.value.errors[key]
