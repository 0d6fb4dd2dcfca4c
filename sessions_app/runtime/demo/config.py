"""What the demo may do: the agents and owners it plays for, and its knobs (rate, mix, speed,
how often things go wrong)."""

from __future__ import annotations

from dataclasses import dataclass, field

KINDS = ("flow_run", "background_task", "chat")


@dataclass(frozen=True)
class Target:
    """An agent the demo may start sessions for, and the users it may start them for."""

    agent_id: int
    agent_name: str
    owners: tuple[str, ...]


@dataclass
class DemoConfig:
    rate: float = 4.0  # new sessions per minute
    mix: dict[str, int] = field(
        default_factory=lambda: {"flow_run": 2, "background_task": 1, "chat": 2}
    )
    speed: float = 1.0  # >1 plays each session faster
    checkpoint_chance: float = 0.35
    failure_chance: float = 0.15
    secret_chance: float = 0.2
    spawn_task_chance: float = 0.5
    checkpoint_patience: float = 180.0  # seconds before the demo approves its own checkpoint
    max_live: int = 25
    poll_every: float = 1.0  # poll mode only


def parse_mix(text: str) -> dict[str, int]:
    """'flow=2,task=1,chat=2' -> {'flow_run': 2, 'background_task': 1, 'chat': 2}."""
    aliases = {"flow": "flow_run", "task": "background_task", "chat": "chat"}
    aliases.update({k: k for k in KINDS})
    mix: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, weight = part.partition("=")
        if not sep or name.strip() not in aliases:
            raise ValueError(f"bad mix entry {part!r}; expected e.g. flow=2,task=1,chat=2")
        try:
            value = int(weight)
        except ValueError:
            raise ValueError(f"bad weight in {part!r}; expected a whole number") from None
        if value < 0:
            raise ValueError(f"bad weight in {part!r}; must not be negative")
        mix[aliases[name.strip()]] = value
    if not any(mix.values()):
        raise ValueError("the mix must give at least one kind a positive weight")
    return mix
