"""The one changeset implementation: what a version changed against the one before it."""

from __future__ import annotations

import dataclasses
from typing import Any, Optional


@dataclasses.dataclass(frozen=True)
class Change:
    """One attribute's value before and after a version."""

    key: str
    old: Any
    new: Any

    def as_list(self) -> list[Any]:
        """Return ``[old, new]``, the SQLAlchemy-Continuum compatible form."""
        return [self.old, self.new]


def diff(keys: list[str], previous: Optional[Any], current: Any) -> tuple[Change, ...]:
    """Return the changes from ``previous`` to ``current`` over attribute ``keys``.

    With no previous version every non-null value shows as ``[None, value]``: an INSERT,
    and also a first version of another kind (history that starts with an UPDATE, for
    rows that existed before versioning was switched on), as in SQLAlchemy-History.
    """
    changes = []
    for key in keys:
        old = None if previous is None else getattr(previous, key, None)
        new = getattr(current, key, None)
        if old != new:
            changes.append(Change(key, old, new))
    return tuple(changes)


def as_dict(changes: tuple[Change, ...]) -> dict[str, list[Any]]:
    """Return ``{key: [old, new]}`` for ``changes``."""
    return {c.key: c.as_list() for c in changes}
