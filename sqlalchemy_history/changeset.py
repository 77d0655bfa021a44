"""The one changeset implementation: what a version changed against the one before it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
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
    """Return the changes from ``previous`` to ``current`` (objects) over attribute ``keys``.

    With no previous version every non-null value shows as ``[None, value]``: an INSERT,
    and also a first version of another kind (history that starts with an UPDATE, for
    rows that existed before versioning was switched on), as in SQLAlchemy-History.
    """
    before = None if previous is None else {k: getattr(previous, k, None) for k in keys}
    return diff_values(keys, before, {k: getattr(current, k, None) for k in keys})


def diff_values(
    keys: Iterable[str],
    previous: Optional[Mapping[str, Any]],
    current: Mapping[str, Any],
) -> tuple[Change, ...]:
    """``diff`` over values by key (the audit log reads rows, not objects)."""
    changes = []
    for key in keys:
        old = None if previous is None else previous.get(key)
        new = current.get(key)
        if old != new:
            changes.append(Change(key, old, new))
    return tuple(changes)


def as_dict(changes: tuple[Change, ...]) -> dict[str, list[Any]]:
    """Return ``{key: [old, new]}`` for ``changes``."""
    return {c.key: c.as_list() for c in changes}
