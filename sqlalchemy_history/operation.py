"""Compatibility module: ``from sqlalchemy_history.operation import Operation``."""

from __future__ import annotations

from .operations import Operation as Operation

__all__ = ["Operation"]
