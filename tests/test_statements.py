"""``statements``: reading what a DML statement writes, without a database.

SQLAlchemy has no public accessor for a DML statement's SET/VALUES clause, its upsert
clause or ``return_defaults()``; ``statements`` reads the attributes SQLAlchemy's own ORM
reads. These tests pin each one, so that a SQLAlchemy release renaming one fails here.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase

from sqlalchemy_history import statements


class Base(DeclarativeBase):
    pass


class Person(Base):
    __tablename__ = "st_person"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column("person_name", sa.Unicode(50), key="name_key")
    email = sa.Column(sa.String(50), unique=True)


class Engineer(Person):
    __tablename__ = "st_engineer"
    id = sa.Column(sa.ForeignKey("st_person.id"), primary_key=True)
    skill = sa.Column(sa.Unicode(50))


person = Person.__table__
engineer = Engineer.__table__


def subject(statement: Any, mapper: Any = None) -> statements.Subject:
    return statements.Subject(statements.target_table(statement), mapper)


def test_set_clause_of_update_and_one_row_insert() -> None:
    update = sa.update(person).values(name_key="x", email=sa.func.lower("Y"))
    pairs = dict(statements.set_clause(update))
    assert set(pairs) == {"name_key", "email"}
    assert statements.set_clause(sa.update(person)) == []
    ordered = sa.update(person).ordered_values(("email", "e"), ("name_key", "n"))
    assert [k for k, _ in statements.set_clause(ordered)] == ["email", "name_key"]
    insert = sa.insert(person).values(id=1, email="e")
    pairs = statements.set_clause(insert)
    assert [(k, statements.python_value(v)) for k, v in pairs] == [("id", 1), ("email", "e")]


def test_orm_keys_become_the_columns_they_write() -> None:
    mapper = sa.inspect(Engineer)
    found = subject(sa.update(Engineer), mapper)
    assert found.tables == [person, engineer]
    # an attribute whose column name and key differ
    assert found.columns("name") == [person.c.name_key]
    # the joined-inheritance key: one attribute, a column in each table
    assert set(found.columns("id")) == {person.c.id, engineer.c.id}
    assert found.columns(Engineer.skill) == [engineer.c.skill]
    update = sa.update(Engineer).values(skill="s")
    ((key, _),) = statements.set_clause(update)
    assert found.columns(key) == [engineer.c.skill]
    row = found.row({"id": 3, "skill": "s", "unknown": 1})
    assert row[person.c.id] == row[engineer.c.id] == 3
    assert row[engineer.c.skill] == "s"
    assert len(row) == 3


def test_core_keys_are_column_keys() -> None:
    found = subject(sa.update(person))
    assert found.tables == [person]
    assert found.columns("name_key") == [person.c.name_key]
    assert found.columns(person.c.email) == [person.c.email]
    assert found.columns("nope") == []


def test_multi_values_rows_as_sqlalchemy_renders_them() -> None:
    statement = sa.insert(person).values([{"id": 1, "email": "a"}, {"id": 2, "extra": 1}])
    rows = statements.multi_values(statement)
    assert [{getattr(k, "key", k): v for k, v in row.items()} for row in rows] == [
        {"id": 1, "email": "a"},
        {"id": 2},
    ]
    assert statements.multi_values(sa.insert(person)) == []


@pytest.mark.parametrize(
    "build",
    [
        lambda: (
            postgresql.insert(person)
            .values(id=1)
            .on_conflict_do_update(index_elements=["id"], set_={"email": "x"})
        ),
        lambda: postgresql.insert(person).values(id=1).on_conflict_do_nothing(),
        lambda: sqlite.insert(person).values(id=1).on_conflict_do_nothing(),
        lambda: mysql.insert(person).values(id=1).on_duplicate_key_update(email="x"),
    ],
    ids=["postgresql do update", "postgresql do nothing", "sqlite", "mysql"],
)
def test_upserts_are_recognised(build: Any) -> None:
    assert statements.is_upsert(build())
    assert not statements.is_upsert(sa.insert(person).values(id=1))


def test_insert_prefixes_that_may_skip_or_replace_rows_are_upserts() -> None:
    assert statements.is_upsert(sa.insert(person).prefix_with("IGNORE", dialect="mysql"))
    assert statements.is_upsert(sa.insert(person).prefix_with("OR REPLACE"))
    assert not statements.is_upsert(sa.insert(person).prefix_with("LOW_PRIORITY"))


def test_returning_and_return_defaults_are_seen() -> None:
    assert not statements.fetches_defaults(sa.insert(person))
    assert statements.fetches_defaults(sa.insert(person).returning(person.c.id))
    assert statements.fetches_defaults(sa.insert(person).return_defaults())


def test_insert_from_select() -> None:
    assert statements.inserts_from_select(
        sa.insert(person).from_select(["id"], sa.select(engineer.c.id))
    )
    assert not statements.inserts_from_select(sa.insert(person))


def test_key_binds_find_the_row_each_parameter_set_names() -> None:
    key = [person.c.id]
    where = sa.and_(person.c.id == sa.bindparam("pid"), person.c.email != "x")
    assert statements.key_binds(where, key) == ["pid"]
    assert statements.key_binds(sa.bindparam("pid") == person.c.id, key) == ["pid"]
    assert statements.key_binds(person.c.id > sa.bindparam("pid"), key) is None
    assert statements.key_binds(person.c.email == sa.bindparam("e"), key) is None
    assert statements.key_binds(None, key) is None
    assert statements.key_binds(sa.or_(person.c.id == sa.bindparam("a")), key) == ["a"]


def test_unique_keys_and_given_values() -> None:
    keys = statements.unique_keys(person)
    assert (person.c.id,) in keys
    assert (person.c.email,) in keys
    rows = [{person.c.id: 1, person.c.email: "a"}, {person.c.id: 2, person.c.email: "b"}]
    assert statements.given(rows, [person.c.id]) == [(1,), (2,)]
    assert statements.given([*rows, {person.c.email: "c"}], [person.c.id]) is None
    expression = [{person.c.id: sa.func.random()}]
    assert statements.given(expression, [person.c.id]) is None
    assert statements.given([{person.c.id: sa.bindparam("x", 5)}], [person.c.id]) == [(5,)]


def test_parameter_sets() -> None:
    assert statements.parameter_sets(None) == []
    assert statements.parameter_sets({"a": 1}) == [{"a": 1}]
    assert statements.parameter_sets([{"a": 1}, {"a": 2}]) == [{"a": 1}, {"a": 2}]
