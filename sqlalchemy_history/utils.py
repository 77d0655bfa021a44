"""Compatibility module: the utilities SQLAlchemy-History users import from here."""

from __future__ import annotations

from .inspection import changeset as changeset
from .inspection import count_versions as count_versions
from .inspection import end_tx_attr as end_tx_attr
from .inspection import end_tx_column_name as end_tx_column_name
from .inspection import get_association_proxies as get_association_proxies
from .inspection import get_versioning_manager as get_versioning_manager
from .inspection import is_internal_column as is_internal_column
from .inspection import is_modified as is_modified
from .inspection import is_modified_or_deleted as is_modified_or_deleted
from .inspection import is_session_modified as is_session_modified
from .inspection import is_table_column as is_table_column
from .inspection import is_versioned as is_versioned
from .inspection import option as option
from .inspection import parent_class as parent_class
from .inspection import parent_table as parent_table
from .inspection import transaction_class as transaction_class
from .inspection import tx_column_name as tx_column_name
from .inspection import version_class as version_class
from .inspection import version_obj as version_obj
from .inspection import version_table as version_table
from .inspection import versioned_column_properties as versioned_column_properties
from .inspection import versioned_objects as versioned_objects
from .inspection import versioned_relationships as versioned_relationships
from .maintenance import vacuum as vacuum

__all__ = [
    "changeset",
    "count_versions",
    "end_tx_attr",
    "end_tx_column_name",
    "get_association_proxies",
    "get_versioning_manager",
    "is_internal_column",
    "is_modified",
    "is_modified_or_deleted",
    "is_session_modified",
    "is_table_column",
    "is_versioned",
    "option",
    "parent_class",
    "parent_table",
    "transaction_class",
    "tx_column_name",
    "vacuum",
    "version_class",
    "version_obj",
    "version_table",
    "versioned_column_properties",
    "versioned_objects",
    "versioned_relationships",
]
