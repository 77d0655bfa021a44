"""Exceptions raised by sqlalchemy_history.

The hierarchy::

    VersioningError                 base of everything raised here
    +-- ImproperlyConfigured        a model or option cannot be versioned as configured
    +-- ClassNotVersioned           a class (or its object) has no version class
    +-- TableNotVersioned           a table has no version table
    +-- ReverterException           a revert was asked for something that cannot be reverted
    +-- NoChangesAttribute          Transaction.entity_names without TransactionChangesPlugin

Warnings (``UserWarning`` subclasses; ``warnings.filterwarnings("error", category=...)``
turns them into errors)::

    UnversionedModelWarning         a class declares __versioned__ but gets no history
    UnrecordedSessionWarning        a Session that make_versioned(session=...) excludes
                                    flushed versioned objects
"""

from __future__ import annotations


class VersioningError(Exception):
    """Base class of every exception raised by sqlalchemy_history."""


class ImproperlyConfigured(VersioningError):
    """A versioned model, plugin or option is configured in a way that cannot work."""


class ClassNotVersioned(VersioningError):
    """The class has no version class: add ``__versioned__ = {}`` and configure mappers."""


class TableNotVersioned(VersioningError):
    """The table has no version table."""


class ReverterException(VersioningError):
    """A revert named a relationship (or path) that the version class does not have."""


class NoChangesAttribute(VersioningError):
    """``Transaction.entity_names`` was read but ``TransactionChangesPlugin`` is not used."""


class UnversionedModelWarning(UserWarning):
    """A class declares ``__versioned__`` but no history is recorded for it: call
    ``make_versioned()`` before the versioned models are defined."""


class UnrecordedSessionWarning(UserWarning):
    """A Session of a class that ``make_versioned(session=...)`` does not record flushed
    versioned objects."""
