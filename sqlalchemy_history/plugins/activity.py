"""ActivityPlugin: an activity stream ("who did what to which object, and in what context").

One ``activity`` table, following the activity stream vocabulary:

==============  ===========  ===================================================
column          type         meaning
==============  ===========  ===================================================
id              BigInteger   primary key (identity)
verb            Unicode      what happened: "create", "publish", "delete" ...
data            JSON         anything else worth keeping
transaction_id  BigInteger   the transaction the activity was recorded in
object_type     String       class name of the object acted on
object_id       BigInteger   its primary key (a single integer column)
object_tx_id    BigInteger   its last transaction at that time: selects its version
target_type     String       class name of the target (the object's context)
target_id       BigInteger   its primary key
target_tx_id    BigInteger   its last transaction at that time
==============  ===========  ===================================================

The actor is the transaction's user: ``activity.actor`` is ``activity.transaction.user``
(set it with ``versioning_context(user_id=...)``). Create activities next to the changes
they describe::

    Activity = activity_plugin.activity_cls   # or versioning_manager.activity_cls
    article = Article(name="Some article")
    session.add(article)
    session.add(Activity(verb="create", object=article, data={"source": "api"}))
    session.commit()

    activity.object            # the live Article (None once deleted)
    activity.object_version    # the ArticleVersion as of the activity's transaction
    select(Activity).where(or_(Activity.object == article, Activity.target == article))

Unlike SQLAlchemy-Continuum, objects need not be flushed before creating the activity.
Costs: the activity rows are ordinary ORM inserts. ``object_tx_id`` / ``target_tx_id`` of
objects the flush changes are known without SQL; for other versioned objects one
``SELECT MAX(transaction_id) ... GROUP BY`` per version table per flush finds them; an
object whose new primary key or version the flush itself produced costs one executemany
``UPDATE`` of the flush's activities.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlalchemy.ext.hybrid import Comparator, hybrid_property
from sqlalchemy.orm import (
    InstanceState,
    Mapper,
    Session,
    foreign,
    object_session,
    relationship,
)
from sqlalchemy.orm.attributes import set_committed_value

from .. import naming
from ..exc import VersioningError
from . import _support
from .base import Plugin

if TYPE_CHECKING:
    from ..tables import VersionTable
    from ..unit_of_work import UnitOfWork

TABLE_NAME = "activity"
ROLES = ("object", "target")


def _json_type() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(_JSONText(), "oracle")


class _JSONText(sa.types.TypeDecorator[Any]):
    """JSON stored as text, for backends whose SQLAlchemy dialect has no JSON type."""

    impl = sa.UnicodeText
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Optional[str]:
        import json

        return None if value is None else json.dumps(value)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        import json

        return None if value is None else json.loads(value)


def _identify(obj: Any, role: str) -> tuple[str, Optional[int], InstanceState[Any]]:
    """Return ``(class name, primary key or None when not known yet, state)`` of ``obj``."""
    try:
        state: InstanceState[Any] = sa.inspect(obj)
        mapper = state.mapper
    except (sa.exc.NoInspectionAvailable, AttributeError):
        raise VersioningError(f"Activity.{role} must be a mapped object, got {obj!r}.") from None
    pk = mapper.primary_key
    if len(pk) != 1 or not isinstance(pk[0].type, sa.Integer):
        raise VersioningError(
            f"Activity.{role}: {type(obj).__name__} must have a single integer primary key "
            f"column to be referenced by an activity; its primary key is "
            f"{', '.join(c.name for c in pk)}."
        )
    if state.key is not None:
        return type(obj).__name__, state.key[1][0], state
    attr = mapper.get_property_by_column(pk[0]).key
    return type(obj).__name__, state.dict.get(attr), state


def _has_versioned_change(manager: Any, state: InstanceState[Any]) -> bool:
    keys = manager.plan_for(state.mapper).attribute_keys
    modified = keys - state.unmodified_intersection(keys)
    return any(state.attrs[key].history.has_changes() for key in modified)


class _RelatedComparator(Comparator[Any]):
    """``Activity.object == article`` in queries: same class name and primary key."""

    def __init__(self, cls: Any, role: str) -> None:
        self._type = getattr(cls, f"{role}_type")
        self._id = getattr(cls, f"{role}_id")
        self._role = role
        super().__init__(self._id)

    def __eq__(self, other: Any) -> sa.ColumnElement[bool]:  # type: ignore[override]
        if other is None:
            return self._id.is_(None)  # type: ignore[no-any-return]
        name, pk, _ = _identify(other, self._role)
        return sa.and_(self._type == name, self._id == pk)

    def __ne__(self, other: Any) -> sa.ColumnElement[bool]:  # type: ignore[override]
        return sa.not_(self.__eq__(other))


class ActivityBase:
    """Behaviour of the generated ``Activity`` class."""

    __versioning_manager__: Any
    id: Any
    verb: Any
    data: Any
    transaction_id: Any
    transaction: Any
    object_type: Any
    object_id: Any
    object_tx_id: Any
    target_type: Any
    target_id: Any
    target_tx_id: Any

    def __init__(self, **kwargs: Any) -> None:
        mapper: Mapper[Any] = sa.inspect(type(self))
        for key, value in kwargs.items():
            if key not in mapper.attrs and key not in ROLES:
                raise TypeError(f"{key!r} is an invalid keyword argument for Activity")
            setattr(self, key, value)

    # -- object / target -----------------------------------------------------------

    def _set_related(self, role: str, obj: Any) -> None:
        self.__dict__[f"_sah_{role}"] = obj
        if obj is None:
            name: Optional[str] = None
            pk: Optional[int] = None
        else:
            name, pk, _ = _identify(obj, role)
        setattr(self, f"{role}_type", name)
        setattr(self, f"{role}_id", pk)
        setattr(self, f"{role}_tx_id", None)

    def _class_named(self, name: Optional[str]) -> Optional[type]:
        if name is None:
            return None
        mapper: Mapper[Any] = sa.inspect(type(self))
        for candidate in mapper.registry.mappers:
            if candidate.class_.__name__ == name:
                return candidate.class_
        return None

    def _related(self, role: str) -> Any:
        pk = getattr(self, f"{role}_id")
        session = object_session(self)
        cls = self._class_named(getattr(self, f"{role}_type"))
        if pk is None or session is None or cls is None:
            return self.__dict__.get(f"_sah_{role}")
        return session.get(cls, pk)

    def _related_version(self, role: str) -> Any:
        pk, tx = getattr(self, f"{role}_id"), getattr(self, f"{role}_tx_id")
        session = object_session(self)
        cls = self._class_named(getattr(self, f"{role}_type"))
        if pk is None or tx is None or session is None or cls is None:
            return None
        version_cls = self.__versioning_manager__.version_class_map.get(cls)
        if version_cls is None:
            return None
        return session.get(version_cls, (pk, tx))

    @hybrid_property
    def object(self) -> Any:
        """The object acted on (``None`` once it is deleted); ``Activity.object == obj``
        in queries."""
        return self._related("object")

    @object.inplace.setter
    def _object_setter(self, value: Any) -> None:
        self._set_related("object", value)

    @object.inplace.comparator
    @classmethod
    def _object_comparator(cls) -> _RelatedComparator:
        return _RelatedComparator(cls, "object")

    @hybrid_property
    def target(self) -> Any:
        """The target the object was acted on in (``Activity.target == obj`` in queries)."""
        return self._related("target")

    @target.inplace.setter
    def _target_setter(self, value: Any) -> None:
        self._set_related("target", value)

    @target.inplace.comparator
    @classmethod
    def _target_comparator(cls) -> _RelatedComparator:
        return _RelatedComparator(cls, "target")

    @property
    def object_version(self) -> Any:
        """The object's version as of this activity (its DELETE version for deletions)."""
        return self._related_version("object")

    @property
    def target_version(self) -> Any:
        """The target's version as of this activity."""
        return self._related_version("target")

    @property
    def actor(self) -> Any:
        """The user who did it: ``transaction.user`` (``None`` without ``user_cls``)."""
        transaction = self.transaction
        return None if transaction is None else getattr(transaction, "user", None)

    def __repr__(self) -> str:
        return (
            f"<Activity id={self.id!r} verb={self.verb!r} object={self.object_type}:"
            f"{self.object_id} target={self.target_type}:{self.target_id}>"
        )


@dataclasses.dataclass
class _Ref:
    activity: Any
    role: str
    state: InstanceState[Any]
    info: Optional[VersionTable]


@dataclasses.dataclass
class _State:
    #: References whose id or transaction the flush in progress may still change.
    refs: list[_Ref] = dataclasses.field(default_factory=list)
    #: Version rows written in this transaction -> their transaction id.
    rows: dict[_support.RowKey, int] = dataclasses.field(default_factory=dict)


class ActivityPlugin(Plugin):
    """Provide an ``Activity`` model recording verbs on objects and targets."""

    def __init__(self) -> None:
        self._state = _support.PerTransaction(_State)
        #: The mapped ``Activity`` class (after ``configure_mappers()``).
        self.activity_cls: Optional[type] = None
        self.table: Optional[sa.Table] = None

    # -- schema --------------------------------------------------------------------

    def _build_table(self, metadata: sa.MetaData) -> sa.Table:
        def build() -> sa.Table:
            table = sa.Table(
                TABLE_NAME,
                metadata,
                _support.identity_column("id"),
                sa.Column("verb", sa.Unicode(255)),
                sa.Column("data", _json_type()),
                sa.Column("transaction_id", sa.BigInteger, nullable=False),
                sa.Column("object_type", sa.String(255)),
                sa.Column("object_id", sa.BigInteger),
                sa.Column("object_tx_id", sa.BigInteger),
                sa.Column("target_type", sa.String(255)),
                sa.Column("target_id", sa.BigInteger),
                sa.Column("target_tx_id", sa.BigInteger),
            )
            limit = naming.INDEX_NAME_LIMIT
            sa.Index(naming.fit("ix_activity_transaction_id", limit), table.c.transaction_id)
            for role in ROLES:
                sa.Index(
                    naming.fit(f"ix_activity_{role}", limit),
                    table.c[f"{role}_type"],
                    table.c[f"{role}_id"],
                )
            return table

        self.table = _support.plugin_table(metadata, TABLE_NAME, build, type(self).__name__)
        return self.table

    def after_build_version_table_columns(self, info: VersionTable) -> None:
        self._build_table(info.table.metadata)

    def after_build_tx_class(self, manager: Any) -> None:
        tx_cls = manager.transaction_cls
        tx_table = manager.transaction_table
        table = self._build_table(tx_table.metadata)
        cls = _support.map_transaction_child(
            manager, "Activity", ActivityBase, table, __versioning_manager__=manager
        )
        sa.inspect(tx_cls).add_property(
            "activities",
            relationship(
                cls,
                primaryjoin=tx_table.c.id == foreign(table.c.transaction_id),
                order_by=table.c.id,
                viewonly=True,
            ),
        )
        self.activity_cls = cls
        manager.activity_cls = cls

    # -- recording -----------------------------------------------------------------

    def is_session_modified(self, session: Session) -> bool:
        cls = self.activity_cls
        return cls is not None and any(isinstance(obj, cls) for obj in session.new)

    def before_flush(self, uow: UnitOfWork, session: Session) -> None:
        cls = self.activity_cls
        if cls is None:
            return
        activities: list[Any] = [obj for obj in session.new if isinstance(obj, cls)]
        if not activities:
            return
        state = self._state(uow)
        state.refs = []
        manager = uow.manager
        transaction = uow.create_transaction(session)
        # version table -> primary keys whose last transaction must be looked up
        lookups: dict[VersionTable, dict[int, list[tuple[Any, str]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        deleted = set(session.deleted)
        for activity in activities:
            if activity.transaction_id is None:
                activity.transaction_id = transaction.id
            for role in ROLES:
                obj = activity.__dict__.get(f"_sah_{role}")
                if obj is None:
                    continue
                name, pk, obj_state = _identify(obj, role)
                info = self._version_info(manager, obj_state.mapper)
                setattr(activity, f"{role}_id", pk)
                if info is None:
                    if pk is None:
                        raise VersioningError(
                            f"Activity.{role}: {name} has no primary key yet and is not "
                            f"versioned; flush the session before adding the activity."
                        )
                    continue
                if (
                    pk is None
                    or obj_state.key is None
                    or obj in deleted
                    or _has_versioned_change(manager, obj_state)
                    or (info.table, (pk,)) in state.rows
                ):
                    # This transaction writes (or wrote) a version of it: that one counts.
                    setattr(activity, f"{role}_tx_id", transaction.id)
                else:
                    lookups[info][pk].append((activity, role))
                state.refs.append(_Ref(activity, role, obj_state, info))
        for info, wanted in lookups.items():
            self._lookup_last_transactions(session, info, wanted)

    @staticmethod
    def _version_info(manager: Any, mapper: Mapper[Any]) -> Optional[VersionTable]:
        if not manager.is_versioned_mapper(mapper):
            return None
        tables = manager.plan_for(mapper).tables
        return tables[0][0] if tables else None

    @staticmethod
    def _lookup_last_transactions(
        session: Session, info: VersionTable, wanted: dict[int, list[tuple[Any, str]]]
    ) -> None:
        """Set ``<role>_tx_id`` to each object's last transaction: one grouped ``SELECT``.

        Emits::

            SELECT article_version.id, max(article_version.transaction_id)
            FROM article_version WHERE article_version.id IN (...) GROUP BY article_version.id
        """
        (pk,) = info.version_primary_key
        tx = info.transaction_column
        connection = session.connection(bind_arguments={"clause": info.table})
        found: dict[Any, Any] = {}
        keys = [(k,) for k in wanted]
        from ..dialects import rules_for

        for predicate in rules_for(connection.dialect).key_chunks([pk], keys):
            statement = sa.select(pk, sa.func.max(tx)).where(predicate).group_by(pk)
            found.update({row[0]: row[1] for row in connection.execute(statement)})
        for key, targets in wanted.items():
            for activity, role in targets:
                setattr(activity, f"{role}_tx_id", found.get(key))

    def after_rollback_savepoint(self, uow: UnitOfWork, session: Session) -> None:
        state = self._state.get(uow)
        if state is not None:
            state.rows = {}  # forget rows the database forgot; lookups fall back to SQL

    def after_version_row(
        self, uow: UnitOfWork, info: VersionTable, row: dict[str, Any], rewrite: bool
    ) -> None:
        self._state(uow).rows[_support.row_key(info, row)] = row[info.transaction_column.key]

    def after_create_version_objects(self, uow: UnitOfWork, session: Session) -> None:
        state = self._state.get(uow)
        if state is None or not state.refs or self.table is None:
            return
        refs, rows = state.refs, state.rows
        state.refs = []
        changed: dict[int, Any] = {}
        for ref in refs:
            _, pk, _ = _identify(ref.state.obj(), ref.role)
            tx_id = getattr(ref.activity, f"{ref.role}_tx_id")
            if ref.info is not None:
                tx_id = rows.get((ref.info.table, (pk,)), tx_id)
            values = {f"{ref.role}_id": pk, f"{ref.role}_tx_id": tx_id}
            if any(getattr(ref.activity, k) != v for k, v in values.items()):
                for key, value in values.items():
                    set_committed_value(ref.activity, key, value)
                changed[id(ref.activity)] = ref.activity
        if not changed:
            return
        table = _support.table_beside_transactions(uow, TABLE_NAME)
        columns = [f"{role}_{part}" for role in ROLES for part in ("id", "tx_id")]
        statement = (
            table.update()
            .where(table.c.id == sa.bindparam("_sah_activity_id"))
            .values({table.c[c]: sa.bindparam(c) for c in columns})
        )
        params = [
            {"_sah_activity_id": a.id, **{c: getattr(a, c) for c in columns}}
            for a in changed.values()
        ]
        mapper: Mapper[Any] = sa.inspect(type(next(iter(changed.values()))))
        session.connection(bind_arguments={"mapper": mapper}).execute(statement, params)
