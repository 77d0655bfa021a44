"""Plugins: extra behaviour hooked into configuration and recording."""

from __future__ import annotations

from .activity import ActivityPlugin as ActivityPlugin
from .base import HOOKS as HOOKS
from .base import Plugin as Plugin
from .base import PluginCollection as PluginCollection
from .flask import FlaskPlugin as FlaskPlugin
from .null_delete import NullDeletePlugin as NullDeletePlugin
from .property_mod_tracker import PropertyModTrackerPlugin as PropertyModTrackerPlugin
from .transaction_changes import TransactionChangesPlugin as TransactionChangesPlugin
from .transaction_meta import TransactionMetaPlugin as TransactionMetaPlugin

__all__ = [
    "HOOKS",
    "ActivityPlugin",
    "FlaskPlugin",
    "NullDeletePlugin",
    "Plugin",
    "PluginCollection",
    "PropertyModTrackerPlugin",
    "TransactionChangesPlugin",
    "TransactionMetaPlugin",
]
