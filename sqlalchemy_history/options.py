"""Typed versioning options, resolved in one place from the manager and ``__versioned__``."""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Optional

from .exc import ImproperlyConfigured

STRATEGIES = ("validity", "subquery")


class UnknownOptionWarning(UserWarning):
    """An option key that nothing reads was given (usually a typo)."""


@dataclasses.dataclass(frozen=True)
class VersioningOptions:
    """Every option of a versioned class, with its default.

    Manager-wide values come from ``make_versioned(options=...)``; a class overrides them in
    its ``__versioned__`` dict.
    """

    #: Record history for the class at all.
    versioning: bool = True
    #: Bases of the generated version classes (``None``: a plain mixin base).
    base_classes: Optional[tuple[type, ...]] = None
    #: Version table name template; ``%s`` is the parent table's name.
    table_name: str = "%s_version"
    #: Attribute or column names left out of the version table.
    exclude: tuple[str, ...] = ()
    #: Attribute or column names versioned even if excluded elsewhere.
    include: tuple[str, ...] = ()
    transaction_column_name: str = "transaction_id"
    end_transaction_column_name: str = "end_transaction_id"
    operation_type_column_name: str = "operation_type"
    #: ``"validity"`` (an ``end_transaction_id`` column closes old versions) or ``"subquery"``.
    strategy: str = "validity"
    #: ``versions`` is a ``write_only`` relationship usable from ``AsyncSession``.
    support_async: bool = False
    #: Build mapped version classes (``False``: tables only, history is still recorded).
    create_models: bool = True
    #: Build version tables (``False``: the table must already be in the MetaData).
    create_tables: bool = True
    #: Prefix version class names with the parent's module name.
    use_module_name: bool = False
    #: Longest identifier (table or index name, in bytes) we may generate. The default, 63,
    #: is PostgreSQL's limit (MySQL allows 64, SQL Server and Oracle 128), so one schema
    #: works on every database; raise it if yours allows more, set 30 for Oracle < 12.2.
    max_identifier_length: int = 63


OPTION_NAMES: frozenset[str] = frozenset(f.name for f in dataclasses.fields(VersioningOptions))


def _as_tuple(value: Any, name: str, where: str) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return tuple(value)
    raise ImproperlyConfigured(f"{where}: option {name!r} must be a list, got {value!r}")


#: Keys of SQLAlchemy-History / SQLAlchemy-Continuum that are accepted without a warning
#: although no option reads them: ``transaction_changes`` is the model class that
#: ``TransactionChangesPlugin`` stores in every ``__versioned__`` dict, and
#: ``native_versioning`` is Continuum's trigger mode (only ``False`` is accepted).
KNOWN_KEYS: frozenset[str] = frozenset({"transaction_changes", "native_versioning"})


def check_keys(given: Mapping[str, Any], extra_keys: Iterable[str], where: str) -> None:
    """Warn about every key in ``given`` that neither we nor a registered plugin reads.

    :raises ImproperlyConfigured: ``native_versioning`` is true.
    """
    refuse_native_versioning(given, where)
    valid = OPTION_NAMES | KNOWN_KEYS | frozenset(extra_keys)
    for key in given:
        if key not in valid:
            close = difflib.get_close_matches(key, sorted(valid), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            warnings.warn(
                f"{where}: unknown versioning option {key!r} is ignored.{hint} "
                f"Valid options: {', '.join(sorted(valid))}.",
                UnknownOptionWarning,
                stacklevel=4,
            )


def refuse_native_versioning(given: Mapping[str, Any], where: str) -> None:
    """Raise ``ImproperlyConfigured`` if ``given`` asks for Continuum's trigger mode."""
    if given.get("native_versioning"):
        raise ImproperlyConfigured(
            f"{where}: native_versioning=True (SQLAlchemy-Continuum's PostgreSQL trigger mode) "
            f"is not supported: sqlalchemy_history writes history from Session flushes, on "
            f"every database, and installs no trigger, so statements run outside the ORM are "
            f"not recorded. Remove the option; docs/migrating.md says what is recorded."
        )


def resolve(
    manager_options: Mapping[str, Any],
    class_options: Mapping[str, Any],
    where: str,
) -> VersioningOptions:
    """Merge manager-wide and per-class options into one validated ``VersioningOptions``.

    :param where: names the model in error messages, e.g. ``"Article.__versioned__"``.
    """
    refuse_native_versioning(manager_options, where)
    merged = {k: v for k, v in manager_options.items() if k in OPTION_NAMES}
    merged.update({k: v for k, v in class_options.items() if k in OPTION_NAMES})
    for name in ("exclude", "include"):
        if name in merged:
            merged[name] = tuple(str(v) for v in _as_tuple(merged[name], name, where))
    if merged.get("base_classes") is not None:
        merged["base_classes"] = _as_tuple(merged["base_classes"], "base_classes", where)
    options = VersioningOptions(**merged)

    if options.strategy not in STRATEGIES:
        raise ImproperlyConfigured(
            f"{where}: strategy must be one of {', '.join(map(repr, STRATEGIES))}, "
            f"got {options.strategy!r}."
        )
    if "%s" not in options.table_name:
        raise ImproperlyConfigured(
            f"{where}: table_name must contain '%s' (the parent table's name), "
            f"got {options.table_name!r}."
        )
    names = [
        options.transaction_column_name,
        options.end_transaction_column_name,
        options.operation_type_column_name,
    ]
    if any(not isinstance(n, str) or not n for n in names) or len(set(names)) != 3:
        raise ImproperlyConfigured(
            f"{where}: transaction_column_name, end_transaction_column_name and "
            f"operation_type_column_name must be three different non-empty names, got {names}."
        )
    return options
