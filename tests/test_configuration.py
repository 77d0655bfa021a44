"""SPEC §1: switching versioning on and off, when tables appear, and configuration errors
that name the model and say what to do.
"""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Mapper, Session, configure_mappers

from sqlalchemy_history import (
    ImproperlyConfigured,
    TransactionFactory,
    make_versioned,
    remove_versioning,
    version_class,
    versioning_manager,
)
from sqlalchemy_history.exc import UnversionedModelWarning

# -- helpers ------------------------------------------------------------------------


@pytest.fixture
def declare():
    """``Base = declare(**make_versioned_kwargs)``: versioning on and a fresh Base.

    Versioning is removed and every registry disposed afterwards, even when the test
    expects configuration to fail half-way.
    """
    bases: list[Any] = []

    def run(**kwargs: Any) -> type[DeclarativeBase]:
        kwargs.setdefault("user_cls", None)
        make_versioned(**kwargs)

        class Base(DeclarativeBase):
            pass

        bases.append(Base)
        return Base

    yield run
    remove_versioning()
    for base in bases:
        base.registry.dispose()


def article(Base: Any, versioned: Any = None, tablename: str = "article", **columns: Any) -> type:
    """Declare a versioned ``Article`` model on ``Base``."""
    namespace: dict[str, Any] = {
        "__tablename__": tablename,
        "__versioned__": {} if versioned is None else versioned,
        "id": sa.Column(sa.Integer, primary_key=True),
        "name": sa.Column(sa.Unicode(50)),
        **columns,
    }
    return type("Article", (Base,), namespace)


SESSION_EVENTS = [
    "before_flush",
    "after_flush",
    "after_flush_postexec",
    "after_commit",
    "after_rollback",
    "after_soft_rollback",
    "after_begin",
    "after_transaction_create",
    "after_transaction_end",
    "before_commit",
]
MAPPER_EVENTS = [
    "after_mapper_constructed",
    "before_mapper_configured",
    "mapper_configured",
    "before_configured",
    "after_configured",
    "before_insert",
    "after_insert",
    "before_update",
    "after_update",
    "before_delete",
    "after_delete",
]


def listener_counts() -> dict[str, int]:
    """Count the listeners a new Session and a new mapper would run, per event."""

    class Probe(DeclarativeBase):
        pass

    class Thing(Probe):
        __tablename__ = "thing"
        id = sa.Column(sa.Integer, primary_key=True)

    try:
        mapper = sa.inspect(Thing)
        session = Session()
        counts = {f"session.{n}": len(getattr(session.dispatch, n)) for n in SESSION_EVENTS}
        counts.update({f"mapper.{n}": len(getattr(mapper.dispatch, n)) for n in MAPPER_EVENTS})
        session.close()
        return counts
    finally:
        Probe.registry.dispose()


def manager_sizes(manager: Any) -> dict[str, int]:
    return {
        "version_class_map": len(manager.version_class_map),
        "version_table_map": len(manager.version_table_map),
        "units_of_work": len(manager.units_of_work),
        "session_connection_map": len(manager.session_connection_map),
        "plugins": len(manager.plugins),
    }


# -- when tables appear -------------------------------------------------------------


def test_version_tables_exist_before_configure_mappers():
    make_versioned(user_cls=None)

    class Base(DeclarativeBase):
        pass

    try:

        class Article(Base):
            __versioned__ = {}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True)
            name = sa.Column(sa.Unicode(50))

        class Tag(Base):
            __versioned__ = {}
            __tablename__ = "tag"
            id = sa.Column(sa.Integer, primary_key=True)
            article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"))

        # Nothing configured yet: create_all / Alembic autogenerate run at this point.
        assert not sa.inspect(Article).configured
        assert {"article_version", "tag_version", "transaction"} <= set(Base.metadata.tables)
        assert {"id", "name", "transaction_id", "operation_type"} <= set(
            Base.metadata.tables["article_version"].c.keys()
        )
        engine = sa.create_engine("sqlite://")
        Base.metadata.create_all(engine)
        assert {"article", "article_version", "tag", "tag_version", "transaction"} <= set(
            sa.inspect(engine).get_table_names()
        )
        engine.dispose()
    finally:
        remove_versioning()
        Base.registry.dispose()


# -- configuration errors -----------------------------------------------------------


def test_invalid_strategy_in_class_options(declare):
    Base = declare()
    with pytest.raises(ImproperlyConfigured, match="Article") as info:
        article(Base, {"strategy": "timestamps"})
        configure_mappers()
    message = str(info.value)
    assert "strategy" in message and "timestamps" in message
    assert "validity" in message and "subquery" in message


def test_invalid_strategy_in_manager_options(declare):
    Base = declare(options={"strategy": "timestamps"})
    with pytest.raises(ImproperlyConfigured, match="Article") as info:
        article(Base)
        configure_mappers()
    assert "validity" in str(info.value) and "subquery" in str(info.value)


@pytest.mark.parametrize(
    "options, column",
    [
        ({}, "transaction_id"),
        ({}, "operation_type"),
        ({}, "end_transaction_id"),
        ({"transaction_column_name": "tx"}, "tx"),
    ],
)
def test_column_colliding_with_versioning_columns(declare, options, column):
    Base = declare()
    with pytest.raises(ImproperlyConfigured, match="Article") as info:
        article(Base, options, **{column: sa.Column(sa.Integer)})
        configure_mappers()
    message = str(info.value)
    assert column in message
    assert "column_name" in message  # says which option renames our column


def test_renamed_transaction_column_avoids_collision(declare):
    Base = declare()
    cls = article(Base, {"transaction_column_name": "tx"}, transaction_id=sa.Column(sa.BigInteger))
    configure_mappers()
    table = Base.metadata.tables["article_version"]
    assert [c.name for c in table.primary_key.columns] == ["id", "tx"]
    assert "transaction_id" in table.c and not table.c.transaction_id.primary_key
    assert {"tx", "transaction_id"} <= set(sa.inspect(version_class(cls)).attrs.keys())


def test_unknown_user_cls(declare):
    Base = declare(user_cls="Nobody")
    article(Base)
    with pytest.raises(ImproperlyConfigured, match="Nobody") as info:
        configure_mappers()
    assert "user_cls" in str(info.value)


def test_unknown_user_cls_with_transaction_factory(declare):
    # SPEC §10: assigning a TransactionFactory, an unknown user_cls still fails clearly.
    Base = declare(user_cls="Nobody")
    versioning_manager.transaction_cls = TransactionFactory(remote_addr=False)
    article(Base)
    with pytest.raises(ImproperlyConfigured, match="Nobody"):
        configure_mappers()


def test_version_table_name_longer_than_oracle_limit(declare):
    Base = declare()
    name = "a" * 125  # "_version" makes it 133 bytes, over Oracle's 128
    with pytest.raises(ImproperlyConfigured, match="Article") as info:
        article(Base, tablename=name)
        configure_mappers()
    message = str(info.value)
    assert f"{name}_version" in message
    assert "table_name" in message


def test_version_table_name_longer_than_max_identifier_length(declare):
    Base = declare(options={"max_identifier_length": 30})
    with pytest.raises(ImproperlyConfigured, match="Article") as info:
        article(Base, tablename="quite_long_article_table")  # 24 + 8 = 32 bytes
        configure_mappers()
    assert "quite_long_article_table_version" in str(info.value)


def table_name_limit(engine: sa.Engine) -> int:
    """Longest table name the database accepts, in characters."""
    if engine.dialect.name == "mysql":
        return 64  # SQLAlchemy's 255 is MySQL's limit for aliases, not for tables
    return int(engine.dialect.max_identifier_length)


def test_version_table_name_longer_than_the_portable_limit_fails_at_definition(declare):
    # A 58-character table name fits every database; its version table (66 bytes) does not
    # fit PostgreSQL (63) or MySQL/MariaDB (64). The default max_identifier_length (63)
    # refuses it when the class is defined, naming the model and the way out, instead of a
    # driver error at create_all time on some databases only.
    name = "t" * 58
    Base = declare()
    with pytest.raises(ImproperlyConfigured, match="Article") as info:
        article(Base, tablename=name)
    assert f"{name}_version" in str(info.value)
    assert "max_identifier_length" in str(info.value)


def test_version_table_name_allowed_by_a_raised_limit(declare, engine):
    # Raising max_identifier_length is the user's statement that their database allows
    # longer names; where the database does (SQLite, SQL Server, Oracle) it just works.
    name = "t" * 58
    if len(f"{name}_version") > table_name_limit(engine):
        pytest.skip(f"{engine.dialect.name} limits table names to {table_name_limit(engine)}")
    Base = declare(options={"max_identifier_length": 128})
    cls = article(Base, tablename=name)
    configure_mappers()
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    try:
        with Session(engine) as session:
            session.add(cls(id=1, name="a"))
            session.commit()
        version_table = Base.metadata.tables[f"{name}_version"]
        with engine.connect() as conn:
            count = sa.select(sa.func.count()).select_from(version_table)
            assert conn.execute(count).scalar() == 1
    finally:
        Base.metadata.drop_all(engine)


def test_version_table_name_conflicting_with_existing_table(declare):
    Base = declare()
    sa.Table("article_version", Base.metadata, sa.Column("id", sa.Integer, primary_key=True))
    with pytest.raises(ImproperlyConfigured, match="Article") as info:
        article(Base)
        configure_mappers()
    message = str(info.value)
    assert "article_version" in message
    assert "table_name" in message


def test_version_table_name_conflicting_with_a_model(declare):
    Base = declare()

    class ArticleVersionLog(Base):
        __tablename__ = "article_version"
        id = sa.Column(sa.Integer, primary_key=True)

    with pytest.raises(ImproperlyConfigured, match="Article"):
        article(Base)
        configure_mappers()


def test_unknown_class_option_warns(declare):
    Base = declare()
    with pytest.warns(UserWarning, match="stratgy") as record:
        cls = article(Base, {"stratgy": "subquery"})
        configure_mappers()
    message = next(str(w.message) for w in record if "stratgy" in str(w.message))
    assert "Article" in message
    for valid in ("strategy", "exclude", "table_name"):
        assert valid in message
    # The typo is ignored: the default strategy is used.
    assert "end_transaction_id" in Base.metadata.tables["article_version"].c
    assert version_class(cls) is not None


def test_unknown_manager_option_warns():
    try:
        with pytest.warns(UserWarning, match="stratgy") as record:
            make_versioned(user_cls=None, options={"stratgy": "subquery"})
        message = next(str(w.message) for w in record if "stratgy" in str(w.message))
        for valid in ("strategy", "exclude", "table_name"):
            assert valid in message
    finally:
        remove_versioning()


def test_known_options_do_not_warn(declare, recwarn):
    Base = declare(options={"strategy": "subquery", "table_name": "%s_history"})
    article(Base, {"exclude": ["name"], "include": [], "versioning": True})
    configure_mappers()
    assert not [w for w in recwarn if "option" in str(w.message)]
    assert "article_history" in Base.metadata.tables


# -- remove_versioning --------------------------------------------------------------


def test_remove_versioning_removes_listeners_and_resets_manager():
    baseline = listener_counts()
    make_versioned(user_cls=None, options={"strategy": "subquery"})

    class Base(DeclarativeBase):
        pass

    try:
        cls = article(Base)
        configure_mappers()
        engine = sa.create_engine("sqlite://")
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            session.add(cls(id=1, name="a"))
            session.commit()
        active = listener_counts()
        assert active["session.after_flush"] > baseline["session.after_flush"]
        assert active["mapper.after_insert"] > baseline["mapper.after_insert"]
        assert versioning_manager.version_class_map
        assert versioning_manager.options["strategy"] == "subquery"
        engine.dispose()
    finally:
        remove_versioning()
        Base.registry.dispose()

    assert listener_counts() == baseline
    assert manager_sizes(versioning_manager) == {
        "version_class_map": 0,
        "version_table_map": 0,
        "units_of_work": 0,
        "session_connection_map": 0,
        "plugins": 0,
    }
    assert versioning_manager.options["strategy"] == "validity"
    assert isinstance(versioning_manager.transaction_cls, TransactionFactory)

    # Models defined now are not versioned at all (and a warning says so).
    class Plain(DeclarativeBase):
        pass

    try:
        cls = article(Plain)
        with pytest.warns(UnversionedModelWarning, match="Article"):
            configure_mappers()
        assert "article_version" not in Plain.metadata.tables
        assert "transaction" not in Plain.metadata.tables
        assert "versions" not in sa.inspect(cls).attrs
    finally:
        Plain.registry.dispose()


def test_remove_versioning_removes_listeners_on_custom_targets():
    class MySession(Session):
        pass

    baseline = len(MySession().dispatch.after_flush)
    make_versioned(user_cls=None, session=MySession, mapper=Mapper)
    try:
        assert len(MySession().dispatch.after_flush) == baseline + 1
    finally:
        remove_versioning(session=MySession, mapper=Mapper)
    assert len(MySession().dispatch.after_flush) == baseline


def test_rebuilding_models_repeatedly_does_not_leak():
    baseline = listener_counts()
    refs: list[weakref.ref[type]] = []
    engine = sa.create_engine("sqlite://")
    try:
        for i in range(50):
            make_versioned(user_cls=None)

            class Base(DeclarativeBase):
                pass

            try:
                cls = article(Base)
                configure_mappers()
                refs.append(weakref.ref(version_class(cls)))
                if i % 10 == 0:  # now and then really record something
                    Base.metadata.create_all(engine)
                    with Session(engine) as session:
                        session.add(cls(id=i, name="a"))
                        session.commit()
                        assert cls.versions is not None
                    Base.metadata.drop_all(engine)
                assert manager_sizes(versioning_manager)["version_class_map"] == 1
            finally:
                remove_versioning()
                Base.registry.dispose()
            assert manager_sizes(versioning_manager) == {
                "version_class_map": 0,
                "version_table_map": 0,
                "units_of_work": 0,
                "session_connection_map": 0,
                "plugins": 0,
            }
        del Base, cls
    finally:
        engine.dispose()
    del engine
    assert listener_counts() == baseline
    gc.collect()
    alive = [r for r in refs if r() is not None]
    assert len(alive) <= 2, f"{len(alive)} of 50 version classes are still alive"
