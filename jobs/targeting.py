"""Node targeting by tags (Dkron's `"key": "value[:count]"` rules), as pure functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class TagError(ValueError):
    pass


UNBOUNDED = 1 << 30  # free places of an agent whose queue has no bound


@dataclass(frozen=True)
class NodeInfo:
    name: str
    tags: Mapping[str, str]
    running: int = 0
    concurrency: int = 1
    # Executions it runs at once (`--slots`); 0: its pool concurrency.
    slots: int = 0
    # Executions placement may queue for it per slot, running ones included; 0: no bound
    # (DKRON_SLOT_QUEUE).
    queue_per_slot: int = 0

    @property
    def slot_count(self) -> int:
        return self.slots or self.concurrency

    @property
    def free_slots(self) -> int:
        """Places left before the agent is full: its slots times what each may have queued,
        less what is queued for it or running on it (issue 16); unbounded when
        `queue_per_slot` is 0 (its own queue holds whatever it is given)."""
        if self.queue_per_slot <= 0:
            return UNBOUNDED
        return max(0, self.slot_count * self.queue_per_slot - self.running)


@dataclass(frozen=True)
class Target:
    """What a job asks for: tags that must match, and how many nodes (None = all)."""

    required: dict[str, str] = field(default_factory=dict)
    count: int | None = None


def parse_tags(tags: Mapping[str, object] | None) -> Target:
    """Split `value:count`; the effective count is the smallest count among the tags."""
    required: dict[str, str] = {}
    counts: list[int] = []
    for key, raw in (tags or {}).items():
        value = str(raw)
        parts = value.split(":")
        if len(parts) == 2:
            value, count_text = parts
            try:
                count = int(count_text)
            except ValueError:
                raise TagError(f"tag {key!r}: count {count_text!r} is not an integer") from None
            if count < 1:
                raise TagError(f"tag {key!r}: count must be at least 1")
            counts.append(count)
        required[str(key)] = value
    return Target(required=required, count=min(counts) if counts else None)


def matches(node: NodeInfo, target: Target) -> bool:
    return all(node.tags.get(k) == v for k, v in target.required.items())


def select_nodes(
    target: Target, nodes: Iterable[NodeInfo], *, untagged_default: str = "all"
) -> list[NodeInfo]:
    """Choose the nodes for one run.

    All matching nodes when no count is given (Dkron's rule; untagged jobs run everywhere
    unless `untagged_default` is "one"); otherwise `count` distinct nodes, least busy per slot
    first (Dkron picks at random, even busy ones), ties broken by name so the choice is stable.
    """
    candidates = [n for n in nodes if matches(n, target)]
    count = target.count
    if count is None and not target.required and untagged_default == "one":
        count = 1
    if count is None:
        return sorted(candidates, key=lambda n: n.name)
    ranked = sorted(candidates, key=lambda n: (n.running / max(n.slot_count, 1), n.name))
    return ranked[:count]
