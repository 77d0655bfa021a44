"""Compatibility module: ``Reverter`` and ``ReverterException`` import paths."""

from __future__ import annotations

from typing import Any, Optional

from .exc import ReverterException as ReverterException


class Reverter:
    """Revert ``version`` (with ``relations``) when called: ``Reverter(v, relations)()``."""

    def __init__(self, version: Any, relations: Optional[list[str]] = None) -> None:
        self.version = version
        self.relations = list(relations or [])

    def __call__(self) -> Any:
        from .revert import revert

        return revert(self.version, self.relations)


__all__ = ["Reverter", "ReverterException"]
