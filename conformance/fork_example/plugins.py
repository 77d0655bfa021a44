"""The fork's ``plugins`` module (users import plugins from ``<package>.plugins``)."""

from __future__ import annotations

from sqlalchemy_history.plugins import *  # noqa: F403
from sqlalchemy_history.plugins import __all__ as __all__
