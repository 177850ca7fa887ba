"""One small registry: name -> object, with errors that list the valid names."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Entry:
    name: str
    obj: Any
    help: str = ""
    config: type | None = None


class Registry:
    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, obj: Any, help: str = "", config: type | None = None) -> Any:
        if name in self._entries:
            raise ValueError(f"{self.what} '{name}' is registered twice")
        self._entries[name] = Entry(name, obj, help, config)
        return obj

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            raise KeyError(self.unknown_message(name))
        return self._entries[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self.names(), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return f"Unknown {self.what} '{name}'.{hint} Available: {', '.join(self.names())}"

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]


STAGES = Registry("stage kind")


def register_stage(kind: str, config: type, help: str = "") -> Callable:
    """Decorator for a stage's run function: @register_stage("sft", SFTStage, help="...")."""

    def decorate(fn: Callable) -> Callable:
        STAGES.register(kind, fn, help or (fn.__doc__ or "").strip().splitlines()[0], config)
        return fn

    return decorate
