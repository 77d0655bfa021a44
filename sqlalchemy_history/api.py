"""Switching versioning on and off: ``make_versioned`` and ``remove_versioning``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

from sqlalchemy.orm import Mapper, Session

from . import events
from . import options as _options
from .manager import VersioningManager, versioning_manager


def make_versioned(
    mapper: Any = Mapper,
    session: Any = Session,
    manager: VersioningManager = versioning_manager,
    plugins: Optional[Iterable[Any]] = None,
    options: Optional[Mapping[str, Any]] = None,
    user_cls: Union[type, str, None] = "User",
) -> None:
    """Switch versioning on; call it before the versioned models are defined.

    :param mapper: the mapper class (or a mapper) whose mapping events build version tables.
    :param session: the ``Session`` class, subclass or ``sessionmaker`` whose flushes are
        recorded.
    :param plugins: plugins to use, replacing the manager's.
    :param options: manager-wide option defaults (``strategy``, ``table_name`` ...).
    :param user_cls: the user model for ``Transaction.user``; ``None`` for none.
    """
    if plugins is not None:
        manager._given_plugins = list(plugins)
        manager.plugins = manager._given_plugins
    if options:
        _options.check_keys(options, manager.plugins.option_keys(), "make_versioned(options=...)")
        manager._given_options.update(options)
        manager.options.update(options)
    manager.user_cls = user_cls
    manager._initial_user_cls = user_cls
    events.listen(manager, mapper, session)


def remove_versioning(
    mapper: Any = Mapper,
    session: Any = Session,
    manager: VersioningManager = versioning_manager,
) -> None:
    """Switch versioning off: remove every listener and reset the manager.

    Models already built keep their version classes and tables; define new models after
    ``make_versioned()`` to version again (what test suites do for each test).
    """
    events.remove(manager)
    manager._given_options = {}
    manager._given_plugins = []
    manager.reset()
