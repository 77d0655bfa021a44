"""Plugins: extra behaviour hooked into configuration and recording."""

from __future__ import annotations

from .base import HOOKS as HOOKS
from .base import Plugin as Plugin
from .base import PluginCollection as PluginCollection

__all__ = ["HOOKS", "Plugin", "PluginCollection"]
