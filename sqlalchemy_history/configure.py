"""The configure pipeline: mapped classes -> version tables -> transaction class -> models.

Steps, in the order they run:

1. ``mapper_constructed`` (each class as it is mapped): resolve and validate the class's
   options, build or extend its version table and the ``transaction`` table in the same
   MetaData, remember the class for step 2. Tables exist before ``configure_mappers()``, so
   ``create_all()`` and Alembic autogenerate see them.
   Many-to-many relationships given a secondary Table get their association version
   table here too.
2. ``before_configured`` (once per ``configure_mappers()`` with pending classes): map the
   ``Transaction`` class, then each version class (parents before subclasses) with its
   ``version_parent`` and ``transaction`` relationships, and add ``versions`` to each
   parent. SQLAlchemy configures the new mappers in the same pass.
3. ``after_configured`` (relationships are resolved now): association version tables of
   secondaries named late (callables), then the temporal relationships of each new
   version class (``relationships.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy
from sqlalchemy.ext.hybrid import HybridExtensionType
from sqlalchemy.orm import Mapper, RelationshipProperty, foreign, relationship, remote

from . import naming, tables
from . import options as _options
from .exc import ImproperlyConfigured
from .plugins.base import build_version_table_columns
from .relationships import add_temporal_relationships
from .transaction import TransactionFactory
from .version import VersionMixin

if TYPE_CHECKING:
    from .manager import VersioningManager


def _is_user_class(manager: VersioningManager, cls: type) -> bool:
    user_cls = manager.user_cls
    if user_cls is None:
        return False
    if isinstance(user_cls, str):
        return cls.__name__ == user_cls
    return cls is user_cls


def _attach_user(manager: VersioningManager) -> None:
    if manager.user_mapper is None or manager.transaction_table is None:
        return
    user_table = manager.user_mapper.local_table
    assert isinstance(user_table, sa.Table)
    tables.add_user_column(manager.transaction_table, user_table, "user_cls")
    _sync_transaction_copies(manager)


def _sync_transaction_copies(
    manager: VersioningManager, metadata: Optional[sa.MetaData] = None
) -> None:
    """Give ``metadata`` (and every MetaData given before) a copy of the transaction table.

    Versioned models may live on several declarative bases; each MetaData holding a version
    table gets the ``transaction`` table too, so that ``create_all()`` on any of them creates
    it (see ``tables.copy_transaction_table``).
    """
    main = manager.transaction_table
    if main is None:
        return
    if metadata is not None and metadata is not main.metadata:
        manager.transaction_copies.setdefault(metadata, main)
    for other in manager.transaction_copies:
        manager.transaction_copies[other] = tables.copy_transaction_table(main, other)


def _find_user_mapper(manager: VersioningManager, reg: Any) -> None:
    if manager.user_mapper is not None or manager.user_cls is None:
        return
    for candidate in list(reg.mappers):
        if _is_user_class(manager, candidate.class_):
            manager.user_mapper = candidate
            return


def mapper_constructed(manager: VersioningManager, mapper: Mapper[Any], cls: type) -> None:
    """Step 1: build version tables for ``cls`` as soon as it is mapped."""
    if _is_user_class(manager, cls):
        manager.user_mapper = mapper
        _attach_user(manager)
    if getattr(cls, "__versioned__", None) is None:
        return
    options = manager.resolve_options(cls)
    if not options.versioning:
        return
    # SQLAlchemy-History sets it on every versioned class; code reads Model.__versioning_manager__.
    cls.__versioning_manager__ = manager  # type: ignore[attr-defined]
    where = cls.__name__
    parent = mapper.inherits
    if parent is not None and not manager.is_versioned_class(parent.class_):
        raise ImproperlyConfigured(
            f"{where} is versioned but its parent class {parent.class_.__name__} is not; "
            f"add __versioned__ to {parent.class_.__name__} too."
        )
    table = mapper.local_table
    if not isinstance(table, sa.Table):
        raise ImproperlyConfigured(
            f"{where} is mapped to {table!r}, not to a table; only classes mapped to tables "
            f"can be versioned."
        )
    if not table.primary_key.columns:
        raise ImproperlyConfigured(
            f"{where} has no primary key on table {table.name!r}; versioned models need one."
        )
    info = manager.version_tables.get(table)
    if info is None:
        info = tables.build_version_table(table, options, mapper, where)
        manager.register_version_table(info)
        build_version_table_columns(manager.plugins, manager, info, cls)
    else:
        tables.sync_version_table(info, mapper, options, where)
        # Single-table subclasses add columns: plugins see the table again (idempotently).
        build_version_table_columns(manager.plugins, manager, info, cls)
    if manager.transaction_table is None:
        factory = manager.transaction_cls
        if not isinstance(factory, TransactionFactory):
            factory = TransactionFactory()
        manager.transaction_table = factory.build_table(table.metadata)
        manager.transaction_registry = mapper.registry
        _find_user_mapper(manager, mapper.registry)
        _attach_user(manager)
    _sync_transaction_copies(manager, table.metadata)
    _early_association_tables(manager, mapper, options)
    manager.pending_classes.append(cls)


def _secondary_table(prop: Any, metadata: sa.MetaData) -> Optional[sa.Table]:
    """Return the many-to-many secondary table of ``prop`` if it is already known.

    Before configuration ``secondary`` is whatever was passed to ``relationship()``: a
    Table, a table name, or a callable resolved later.
    """
    # SQLAlchemy keeps the unresolved argument in the private ``_init_args`` (2.0 and 2.1)
    # until configuration. This is only a head start so that create_all() without
    # configure_mappers() sees association version tables; after_configured catches
    # whatever this misses, so a change in SQLAlchemy's internals cannot lose history.
    init_args = getattr(prop, "_init_args", None)
    argument = getattr(getattr(init_args, "secondary", None), "argument", None)
    secondary = argument if argument is not None else getattr(prop, "secondary", None)
    if isinstance(secondary, sa.Table):
        return secondary
    if isinstance(secondary, str):
        return metadata.tables.get(secondary)
    return None


def _versioned_secondaries(mapper: Mapper[Any], configured: bool, options: Any) -> list[sa.Table]:
    table = mapper.local_table
    metadata = table.metadata if isinstance(table, sa.Table) else sa.MetaData()
    props = mapper.relationships if configured else mapper.iterate_properties
    found = []
    for prop in props:
        if not isinstance(prop, RelationshipProperty) or prop.viewonly:
            continue
        if prop.parent is not mapper:
            continue
        if prop.key in options.exclude and prop.key not in options.include:
            continue  # an excluded relationship's links are not versioned
        secondary = prop.secondary if configured else _secondary_table(prop, metadata)
        if isinstance(secondary, sa.Table):
            found.append(secondary)
    return found


def _add_association_table(
    manager: VersioningManager, mapper: Mapper[Any], table: sa.Table
) -> None:
    if table in manager.association_tables or table in manager.version_tables:
        return
    where = f"{mapper.class_.__name__} (association table {table.name!r})"
    # An association table belongs to no class: the manager-wide options name and shape its
    # version table (``table_name`` of make_versioned(options=...)), as in SQLAlchemy-History.
    options = _options.resolve(manager.options, {}, where)
    info = tables.build_association_table(table, options, where)
    manager.register_association_table(info)
    build_version_table_columns(manager.plugins, manager, info, None)


def _early_association_tables(
    manager: VersioningManager, mapper: Mapper[Any], options: Any
) -> None:
    # Relationships are not configured yet; those given a Table (or a known table name)
    # get their association version table now, so create_all() sees it.
    for table in _versioned_secondaries(mapper, configured=False, options=options):
        _add_association_table(manager, mapper, table)


def after_configured(manager: VersioningManager) -> None:
    """Step 3: association tables resolved late, then temporal relationships."""
    if not manager.pending_relationships and not manager.pending_associations:
        return
    mappers, manager.pending_associations = manager.pending_associations, []
    for mapper in mappers:
        options = manager.resolve_options(mapper.class_)
        for table in _versioned_secondaries(mapper, configured=True, options=options):
            _add_association_table(manager, mapper, table)
    pending, manager.pending_relationships = manager.pending_relationships, []
    for mapper, version_cls in pending:
        add_temporal_relationships(manager, mapper, version_cls)
        _copy_descriptors(mapper, version_cls)


def _copy_descriptors(mapper: Mapper[Any], version_cls: type) -> None:
    """Give ``version_cls`` the hybrid attributes and association proxies of its parent.

    A hybrid is shared as is: its functions read attributes by name, and the version class
    has the same column and relationship names, so ``ArticleVersion.shout`` works in
    Python and in SQL (``select(ArticleVersion).where(ArticleVersion.shout == "A")``). An
    association proxy is rebuilt over the temporal relationship of the same name, so it
    answers as of the version. Names the version class already has (columns, relationships,
    ``changeset`` ...) are left alone, as are proxies whose relationship is not reflected.
    """
    version_mapper: Mapper[Any] = sa.inspect(version_cls)
    for key, descriptor in mapper.all_orm_descriptors.items():
        kind = descriptor.extension_type
        if hasattr(version_cls, key) or key == "__mapper__":
            continue
        if kind in (HybridExtensionType.HYBRID_PROPERTY, HybridExtensionType.HYBRID_METHOD):
            setattr(version_cls, key, descriptor)
        elif (
            isinstance(descriptor, AssociationProxy)
            and descriptor.target_collection in version_mapper.relationships
        ):
            proxy = association_proxy(descriptor.target_collection, descriptor.value_attr)
            setattr(version_cls, key, proxy)


def before_configured(manager: VersioningManager) -> None:
    """Step 2: map the transaction class and the version classes of pending models."""
    if not manager.pending_classes:
        return
    pending, manager.pending_classes = manager.pending_classes, []
    for info in manager.version_tables.values():
        tables.refresh_types(info)
    map_transaction_class(manager)
    # Parents first: a subclass's version class inherits its parent's version class.
    for cls in sorted(pending, key=_depth):
        mapper: Mapper[Any] = sa.inspect(cls)
        options = manager.resolve_options(cls)
        assert isinstance(mapper.local_table, sa.Table)
        info = manager.version_tables[mapper.local_table]
        tables.sync_version_table(info, mapper, options, cls.__name__)
        manager._plans.clear()
        manager.pending_associations.append(mapper)
        if options.create_models:
            _build_version_class(manager, cls, mapper, options, info)
    manager.plugins.after_build_models(manager)


def _depth(cls: type) -> int:
    return sum(1 for _ in sa.inspect(cls).iterate_to_root())


def map_transaction_class(manager: VersioningManager) -> None:
    """Map the ``Transaction`` class from the ``TransactionFactory`` in ``transaction_cls``.

    Runs at ``configure_mappers()``; ``manager.create_transaction_model()`` runs it earlier.
    """
    factory = manager.transaction_cls
    if not isinstance(factory, TransactionFactory):
        return
    table = manager.transaction_table
    assert table is not None
    # user_cls and transaction_cls may be assigned after make_versioned(), even after the
    # models were mapped: they are read now, and the table is rebuilt if it disagrees.
    manager.user_mapper = None
    if manager.user_cls is not None:
        if not isinstance(manager.user_cls, str):
            manager.user_mapper = sa.inspect(manager.user_cls, raiseerr=False)
        else:
            _find_user_mapper(manager, manager.transaction_registry)
        if manager.user_mapper is None:
            raise ImproperlyConfigured(
                f"user_cls {manager.user_cls!r} is not a mapped class in the registry of the "
                f"versioned models; define it, pass the class itself, or pass user_cls=None "
                f"to make_versioned() for no Transaction.user."
            )
    wants_user = manager.user_mapper is not None
    if ("remote_addr" in table.c) != factory.remote_addr or ("user_id" in table.c) != wants_user:
        table.metadata.remove(table)
        table = manager.transaction_table = factory.build_table(table.metadata)
    _attach_user(manager)
    _sync_transaction_copies(manager)
    user_cls = manager.user_mapper.class_ if manager.user_mapper is not None else None
    manager.transaction_cls = factory(manager, table, manager.transaction_registry, user_cls)
    manager.plugins.after_build_tx_class(manager)


def _ancestor_columns(manager: VersioningManager, mapper: Mapper[Any], key: str) -> list[Any]:
    found = []
    parent = mapper.inherits
    while parent is not None:
        info = manager.version_tables.get(parent.local_table)  # type: ignore[call-overload]
        if info is not None and key in info.table.c and not parent.single:
            found.append(info.table.c[key])
        parent = parent.inherits
    return found


def _build_version_class(
    manager: VersioningManager,
    cls: type,
    mapper: Mapper[Any],
    options: Any,
    info: tables.VersionTable,
) -> None:
    parent_version = (
        manager.version_class_map.get(mapper.inherits.class_) if mapper.inherits else None
    )
    if parent_version is not None:
        bases: tuple[type, ...] = (parent_version,)
    else:
        user_bases = tuple(options.base_classes or ())
        bases = (
            user_bases
            if any(issubclass(b, VersionMixin) for b in user_bases)
            else (
                *user_bases,
                VersionMixin,
            )
        )
    name = naming.version_class_name(cls, options)
    # __abstract__: a declarative base among ``base_classes`` (SQLAlchemy-Continuum users
    # pass their ``Base`` or Flask's ``db.Model``) must not try to map the class itself;
    # it is mapped imperatively below. Harmless for plain mixins.
    version_cls = type(name, bases, {"__module__": cls.__module__, "__abstract__": True})
    version_cls.__versioning_manager__ = manager  # type: ignore[attr-defined]

    kwargs: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    local: Optional[sa.Table] = info.table
    if parent_version is not None:
        kwargs["inherits"] = parent_version
        if mapper.single:
            local = None
        elif mapper.concrete:
            kwargs["concrete"] = True
        else:
            parent_info = manager.version_tables[mapper.inherits.local_table]  # type: ignore[union-attr,index]
            kwargs["inherit_condition"] = sa.and_(
                *(
                    info.table.c[c.key] == parent_info.table.c[c.key]
                    for c in [*info.version_primary_key, info.transaction_column]
                    if c.key in parent_info.table.c
                )
            )
            for column in info.table.c:
                ancestors = _ancestor_columns(manager, mapper, column.key)
                if ancestors:
                    properties[column.key] = [column, *ancestors]
    if mapper.polymorphic_identity is not None:
        kwargs["polymorphic_identity"] = mapper.polymorphic_identity
    if parent_version is None and isinstance(mapper.polymorphic_on, sa.Column):
        column = mapper.polymorphic_on
        owner = manager.version_tables.get(column.table)
        if owner is not None and column in owner.columns:
            kwargs["polymorphic_on"] = owner.columns[column]

    if parent_version is None or mapper.concrete:
        pk = [c for c in info.primary_key]
        properties["version_parent"] = relationship(
            cls,
            primaryjoin=sa.and_(*(foreign(info.columns[c]) == remote(c) for c in pk)),
            viewonly=True,
            uselist=False,
        )
        properties["transaction"] = relationship(
            manager.transaction_cls,
            primaryjoin=foreign(info.transaction_column) == remote(manager.transaction_table.c.id),  # type: ignore[union-attr]
            viewonly=True,
            uselist=False,
        )
    if local is None:
        kwargs["properties"] = properties
        mapper.registry.map_imperatively(version_cls, None, **kwargs)
        # Mapping without a table leaves ``__table__ = None``; declarative single-table
        # subclasses (and SQLAlchemy-History's version classes) carry the inherited table.
        version_cls.__table__ = sa.inspect(version_cls).local_table  # type: ignore[attr-defined]
    else:
        mapper.registry.map_imperatively(version_cls, local, properties=properties, **kwargs)

    manager.version_class_map[cls] = version_cls
    manager.parent_class_map[version_cls] = cls
    manager.pending_relationships.append((mapper, version_cls))
    manager.plugins.after_version_class_built(cls, version_cls)

    if parent_version is None or mapper.concrete:
        pk = [c for c in info.primary_key]
        mapper.add_property(
            "versions",
            relationship(
                version_cls,
                primaryjoin=sa.and_(*(c == foreign(info.columns[c]) for c in pk)),
                order_by=info.transaction_column,
                lazy="write_only" if options.support_async else "dynamic",
                viewonly=True,
            ),
        )
