"""sqlalchemy_history: history tracking (auditing, versioning) for SQLAlchemy 2.

Mark models with ``__versioned__ = {}`` after calling ``make_versioned()``; every insert,
update and delete is then recorded in ``<table>_version`` tables, one ``transaction`` row
per database transaction.
"""

from __future__ import annotations

from .api import make_versioned as make_versioned
from .api import remove_versioning as remove_versioning
from .audit import AuditEntry as AuditEntry
from .audit import AuditPage as AuditPage
from .audit import VersionChange as VersionChange
from .audit import achanges as achanges
from .audit import changes as changes
from .changeset import Change as Change
from .context import versioning_context as versioning_context
from .diffs import RelationChange as RelationChange
from .diffs import VersionDiff as VersionDiff
from .diffs import adiff as adiff
from .diffs import diff as diff
from .exc import ClassNotVersioned as ClassNotVersioned
from .exc import ImproperlyConfigured as ImproperlyConfigured
from .exc import TableNotVersioned as TableNotVersioned
from .exc import VersioningError as VersioningError
from .inspection import changeset as changeset
from .inspection import count_versions as count_versions
from .inspection import end_tx_column_name as end_tx_column_name
from .inspection import get_versioning_manager as get_versioning_manager
from .inspection import is_modified as is_modified
from .inspection import is_modified_or_deleted as is_modified_or_deleted
from .inspection import is_session_modified as is_session_modified
from .inspection import is_versioned as is_versioned
from .inspection import parent_class as parent_class
from .inspection import transaction_class as transaction_class
from .inspection import tx_column_name as tx_column_name
from .inspection import version_class as version_class
from .inspection import version_table as version_table
from .inspection import versioned_objects as versioned_objects
from .maintenance import vacuum as vacuum
from .manager import VersioningManager as VersioningManager
from .manager import versioning_manager as versioning_manager
from .operations import Operation as Operation
from .options import VersioningOptions as VersioningOptions
from .retention import RetentionResult as RetentionResult
from .retention import aprune as aprune
from .retention import apurge as apurge
from .retention import aredact as aredact
from .retention import prune as prune
from .retention import purge as purge
from .retention import redact as redact
from .temporal import aobject_as_of as aobject_as_of
from .temporal import as_of as as_of
from .temporal import object_as_of as object_as_of
from .transaction import TransactionFactory as TransactionFactory
from .unit_of_work import UnitOfWork as UnitOfWork

__version__ = "3.0.0.dev0"

__all__ = [
    "AuditEntry",
    "AuditPage",
    "Change",
    "ClassNotVersioned",
    "ImproperlyConfigured",
    "Operation",
    "RelationChange",
    "RetentionResult",
    "TableNotVersioned",
    "TransactionFactory",
    "UnitOfWork",
    "VersionChange",
    "VersionDiff",
    "VersioningError",
    "VersioningManager",
    "VersioningOptions",
    "achanges",
    "adiff",
    "aobject_as_of",
    "aprune",
    "apurge",
    "aredact",
    "as_of",
    "changes",
    "changeset",
    "count_versions",
    "diff",
    "end_tx_column_name",
    "get_versioning_manager",
    "is_modified",
    "is_modified_or_deleted",
    "is_session_modified",
    "is_versioned",
    "make_versioned",
    "object_as_of",
    "parent_class",
    "prune",
    "purge",
    "redact",
    "remove_versioning",
    "transaction_class",
    "tx_column_name",
    "vacuum",
    "version_class",
    "version_table",
    "versioned_objects",
    "versioning_context",
    "versioning_manager",
]
