"""Every naming rule: version tables, classes, indexes, and identifier length limits."""

from __future__ import annotations

import hashlib

from .exc import ImproperlyConfigured
from .options import VersioningOptions

#: Generated index names are kept within PostgreSQL's 63-byte limit (MySQL allows 64,
#: Oracle 128, SQL Server 128) so one schema works everywhere.
INDEX_NAME_LIMIT = 63


def version_table_name(table_name: str, options: VersioningOptions) -> str:
    """Return the version table name for ``table_name``: ``article`` -> ``article_version``."""
    return options.table_name % table_name


def version_class_name(parent: type, options: VersioningOptions) -> str:
    """Return the version class name: ``Article`` -> ``ArticleVersion``.

    The suffix comes from the ``table_name`` template, as in SQLAlchemy-History:
    ``"%s_history"`` gives ``ArticleHistory``, ``"%s_user_defined"`` ``ArticleUserDefined``
    (``Version`` when the template leaves nothing). With ``use_module_name`` the module path
    is prefixed, so two ``Article`` classes in different modules get distinct version
    classes (``BlogModelsArticleVersion``).
    """
    suffix = options.table_name.replace("%s", "").title().replace("_", "") or "Version"
    if options.use_module_name:
        prefix = "".join(part.title() for part in parent.__module__.split("."))
        return f"{prefix}{parent.__name__}{suffix}"
    return f"{parent.__name__}{suffix}"


def fit(name: str, limit: int) -> str:
    """Shorten ``name`` to ``limit`` bytes, keeping it unique with a short hash suffix."""
    if len(name.encode("utf-8")) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    head = name.encode("utf-8")[: limit - 9].decode("utf-8", "ignore")
    return f"{head}_{digest}"


def index_name(table_name: str, column_name: str, options: VersioningOptions) -> str:
    """Return the name of the index we create on a version table column."""
    limit = min(INDEX_NAME_LIMIT, options.max_identifier_length)
    return fit(f"ix_{table_name}_{column_name}", limit)


def check_identifier(name: str, what: str, where: str, limit: int) -> None:
    """Raise ``ImproperlyConfigured`` when a generated identifier exceeds ``limit`` bytes."""
    size = len(name.encode("utf-8"))
    if size > limit:
        raise ImproperlyConfigured(
            f"{where}: the generated {what} {name!r} is {size} bytes, longer than the "
            f"{limit} bytes allowed; set a shorter 'table_name' template or "
            f"'__tablename__', or raise 'max_identifier_length' if your database allows it."
        )
