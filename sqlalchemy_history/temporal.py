"""Point-in-time reads: the versions valid at one transaction, with relationships that agree.

``as_of(Article, at)`` is a ``Select`` of ``ArticleVersion`` rows: for each article, the
version valid at ``at`` (``strategies.valid_at``), deleted articles left out. ``at`` is a
transaction id, a ``Transaction``, or a ``datetime`` meaning the greatest transaction id
issued at or before it (transaction ids follow commit order, SPEC §3).

The relationships of the rows it returns answer as of the same ``at``, not as of each
row's own transaction. How the point in time reaches them:

1. ``as_of`` attaches an ``AsOf`` option, a SQLAlchemy ``UserDefinedOption`` with
   ``propagate_to_loaders``: SQLAlchemy carries it to every statement that loads
   relationships of the rows (``selectinload`` statements of the same query, and lazy
   loads later, since loaded objects keep their query's propagating options);
2. the ``do_orm_execute`` listener (events.py) calls ``bind_as_of``, which binds
   ``strategies.AS_OF_PARAMETER`` for those statements;
3. temporal relationships read that parameter in their join
   (``strategies.relationship_at``), so lazy, selectin and joined loads all answer as of
   ``at`` with the SQL they always emit, in the same number of queries.

A ``datetime`` is turned into a transaction id once per execution, by one small query,
and the rows and their relationships use that same id.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.interfaces import UserDefinedOption

from . import strategies
from .exc import VersioningError
from .inspection import get_versioning_manager
from .relationships import base_info
from .transaction import TransactionBase

if TYPE_CHECKING:
    from sqlalchemy.engine import Result
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.orm import ORMExecuteState

    from .manager import VersioningManager
    from .tables import VersionTable

#: What names a point in history: a transaction id, a ``Transaction``, or a ``datetime``.
PointInTime = Union[int, datetime.datetime, TransactionBase]
#: A point in history once checked: a transaction id or a naive UTC ``datetime``.
Moment = Union[int, datetime.datetime]

#: Transaction ids start at 1 (identity columns); "no transaction yet" reads as of 0.
_BEFORE_ANY_TRANSACTION = 0


def moment(at: Any, what: str = "at") -> Moment:
    """Check a point in time and return it as a transaction id or a naive UTC datetime.

    Aware datetimes are converted to UTC; naive ones are taken as UTC, like
    ``transaction.issued_at``.
    """
    if isinstance(at, TransactionBase):
        if at.id is None:
            raise VersioningError(
                f"{what}={at!r} has no id yet; flush the session before using it as a point "
                f"in history."
            )
        return int(at.id)
    if isinstance(at, int) and not isinstance(at, bool):
        return at
    if isinstance(at, datetime.datetime):
        when: datetime.datetime = at
        if when.tzinfo is not None:
            when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
        return when
    raise TypeError(
        f"{what}= must be a transaction id (int), a Transaction or a datetime, got {at!r}"
        + ("; pass a datetime, e.g. datetime.combine(day, time.max)" if _is_date(at) else "")
        + "."
    )


def _is_date(value: Any) -> bool:
    return isinstance(value, datetime.date) and not isinstance(value, datetime.datetime)


def transaction_table(manager: VersioningManager) -> sa.Table:
    table = manager.transaction_table
    if table is None:
        raise VersioningError(
            "versioned models are not configured yet; call sqlalchemy.orm.configure_mappers()."
        )
    return table


def last_transaction_at(transactions: sa.Table, at: datetime.datetime) -> sa.ScalarSelect[Any]:
    """The greatest transaction id issued at or before ``at``::

    (SELECT max(transaction.id) FROM transaction WHERE transaction.issued_at <= :at)
    """
    return (
        sa.select(sa.func.max(transactions.c.id))
        .where(transactions.c.issued_at <= at)
        .scalar_subquery()
    )


def resolve(session: Session, transactions: sa.Table, at: Moment) -> Optional[int]:
    """Return the transaction id ``at`` stands for (one query for a datetime); ``None`` for
    a datetime before every transaction."""
    if isinstance(at, int):
        return at
    found = session.scalar(sa.select(last_transaction_at(transactions, at)))
    return None if found is None else int(found)


class AsOf(UserDefinedOption):
    """Carry an ``as_of`` query's point in time to the statements loading its relationships.

    ``propagate_to_loaders``: SQLAlchemy keeps it with every object the query loads, so
    lazy loads of their relationships carry it too.
    """

    __slots__ = ("at", "transactions")

    propagate_to_loaders = True

    def __init__(self, at: Moment, transactions: sa.Table) -> None:
        super().__init__()
        self.at = at
        #: The transaction table a datetime is looked up in.
        self.transactions = transactions


def bind_as_of(execute_state: ORMExecuteState) -> Optional[Result[Any]]:
    """``do_orm_execute``: bind the point in time of an ``as_of`` query for its statement.

    Runs the statement again with ``AS_OF_PARAMETER`` bound (``invoke_statement``, which
    skips the listeners already run). A datetime is resolved to a transaction id here,
    once per execution, and the id is added as an option, so the objects loaded (and their
    later lazy loads) carry the id rather than the datetime.
    """
    if not execute_state.is_select:
        return None
    options = [o for o in execute_state.user_defined_options if isinstance(o, AsOf)]
    if not options:
        return None
    parameters = execute_state.parameters
    # A lazy load passes every bind of its clause, ours as None; another manager's listener
    # (or the caller) may have bound it already.
    if isinstance(parameters, Mapping) and parameters.get(strategies.AS_OF_PARAMETER) is not None:
        return None
    at, transactions = options[-1].at, options[-1].transactions
    if parameters is None:
        # invoke_statement(params=...) merges into the parameters given to execute() and
        # fails on None (SQLAlchemy 2.0 and 2.1).
        execute_state.parameters = {}
    statement = None
    if not isinstance(at, int):
        found = resolve(execute_state.session, transactions, at)
        at = _BEFORE_ANY_TRANSACTION if found is None else found
        statement = execute_state.statement.options(AsOf(at, transactions))
    return execute_state.invoke_statement(
        statement=statement, params={strategies.AS_OF_PARAMETER: at}
    )


def version_info(model: type) -> tuple[VersioningManager, type, VersionTable]:
    """Return the manager, the version class and the version table holding the key and
    transaction columns of ``model`` (a versioned class or its version class)."""
    manager = get_versioning_manager(model)
    version_cls = model if model in manager.parent_class_map else manager.version_class(model)
    parent_mapper: Mapper[Any] = sa.inspect(manager.parent_class_map[version_cls])
    info = base_info(manager, parent_mapper)
    assert info is not None, f"{parent_mapper.class_.__name__} has no version table"
    return manager, version_cls, info


def as_of(model: type, at: PointInTime) -> sa.Select[Any]:
    """Return a ``Select`` of ``model``'s versions as they were at ``at``.

    One row per object that existed then (its version valid at ``at``); objects deleted by
    then are left out. Compose it like any ``Select`` (``where``, ``order_by``,
    ``limit``/``offset``, joins, ``options(selectinload(...))``). The relationships of the
    rows answer as of ``at`` too, whether loaded lazily, with ``selectinload`` (one query
    per relationship) or joined. Validity strategy, ``at`` = 10::

        SELECT article_version.* FROM article_version
        WHERE article_version.transaction_id <= 10
          AND (article_version.end_transaction_id > 10
               OR article_version.end_transaction_id IS NULL)
          AND article_version.operation_type != 2

    With a ``datetime``, 10 is ``(SELECT max(id) FROM transaction WHERE issued_at <= :at)``,
    looked up once per execution.

    The query sets ``populate_existing``: a version object is one row in the session's
    identity map, and its relationships answer as of the last ``as_of`` that loaded it.

    :param model: a versioned class (or its version class).
    :param at: a transaction id, a ``Transaction``, or a ``datetime`` (naive means UTC).
    """
    manager, version_cls, info = version_info(model)
    when = moment(at)
    transactions = transaction_table(manager)
    point: Any = when
    if not isinstance(when, int):
        # Executed through a Session, ``bind_as_of`` binds the id it resolved, so the rows
        # and their relationships agree; elsewhere (Core, a subquery of a plain query) the
        # subquery answers.
        bound = sa.bindparam(strategies.AS_OF_PARAMETER, None, type_=sa.BigInteger())
        point = sa.func.coalesce(bound, last_transaction_at(transactions, when))
    return (
        sa.select(version_cls)
        .where(strategies.valid_at(info, point))
        .options(AsOf(when, transactions))
        .execution_options(populate_existing=True)
    )


def key_values(info: VersionTable, key: Any, model: str) -> tuple[Any, ...]:
    """Return a primary key given as a value, a tuple or a ``{column key: value}`` dict."""
    columns = info.version_primary_key
    if isinstance(key, Mapping):
        missing = [c.key for c in columns if c.key not in key]
        if missing:
            raise VersioningError(
                f"{model} key {dict(key)!r} lacks {missing}; name every primary key column: "
                f"{[c.key for c in columns]}."
            )
        return tuple(key[c.key] for c in columns)
    values = tuple(key) if isinstance(key, Sequence) and not isinstance(key, str) else (key,)
    if len(values) != len(columns):
        raise VersioningError(
            f"{model} has a {len(columns)}-column primary key {[c.key for c in columns]}, "
            f"got {key!r}; pass a tuple of {len(columns)} values."
        )
    return values


def object_as_of(session: Session, model: type, key: Any, at: PointInTime) -> Any:
    """Return the version of one object valid at ``at``, or ``None`` (not existing then).

    ``key`` is the primary key: a value, a tuple (composite keys) or a dict of column keys.
    Its relationships answer as of ``at``, like those of ``as_of`` rows.
    """
    _, version_cls, info = version_info(model)
    values = key_values(info, key, version_cls.__name__)
    statement = as_of(model, at).where(*(c == v for c, v in zip(info.version_primary_key, values)))
    return session.scalars(statement).first()


async def aobject_as_of(session: AsyncSession, model: type, key: Any, at: PointInTime) -> Any:
    """``await aobject_as_of(session, ...)``: ``object_as_of`` for ``AsyncSession`` users."""
    return await session.run_sync(object_as_of, model, key, at)
