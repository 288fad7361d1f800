"""Model files that share a name: the first found is used, and that is said in listings and job warnings; no torch."""

from __future__ import annotations

from collections.abc import Iterable


def clashes(entries: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """name -> every place of that name in the order found (the first is the one used), for names found twice."""
    found: dict[str, list[str]] = {}
    for name, where in entries:
        found.setdefault(name, []).append(where)
    return {name: places for name, places in found.items() if len(places) > 1}


def clash_message(kind: str, name: str, places: list[str]) -> str:
    """One line naming every file of a shared name and the one used (first found wins, never silently)."""
    return (f"{kind} name {name!r} is shared by {len(places)} files: {places[0]} is used (the first found), not "
            f"{', '.join(places[1:])}; rename one to use it")


def clash_warning(kind: str, name: str, table: dict[str, list[str]]) -> list[str]:
    """The warning a job gets for using a shared name ([] when the name is not shared)."""
    return [clash_message(kind, name, table[name])] if name in table else []
