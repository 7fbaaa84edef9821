"""This process's node identity: the agent name, instance id and tags it registers with.

Core, not agent role: the scheduler shares the member of an agent running in the same process
(`manage.py serve`), and the agent sets it when its worker starts.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from jobs.services.agents import builtin_tags


@dataclass
class Identity:
    name: str
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    tags: dict[str, str] = field(default_factory=dict)


_identity: Identity | None = None


def identity() -> Identity:
    global _identity
    if _identity is None:
        _identity = Identity(name=settings.NODE_NAME)
    return _identity


def parse_tag_options(values: Any) -> dict[str, str]:
    tags: dict[str, str] = {}
    for raw in values or ():
        for item in str(raw).split(","):
            if not item.strip():
                continue
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--tag expects key=value, got {item!r}")
            tags[key.strip()] = value.strip()
    return tags


def configure(*, name: str | None, tags: dict[str, str], server: bool = True) -> Identity:
    """Set this process's node identity (built-in Dkron tags plus the user's)."""
    global _identity
    all_tags = builtin_tags(server=server)
    all_tags.update(tags)
    _identity = Identity(name=(name or settings.NODE_NAME), tags=all_tags)
    # Children of shell jobs inherit these, so a restarted agent can find and reap orphans.
    os.environ["DKRON_AGENT_NAME"] = _identity.name
    os.environ["DKRON_AGENT_ID"] = _identity.instance_id
    return _identity


def local_agent_name() -> str:
    """The name of the agent running in this process, or "" when there is none."""
    return _identity.name if _identity is not None else ""
