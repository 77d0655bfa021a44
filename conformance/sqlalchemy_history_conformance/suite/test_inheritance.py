"""Inheritance: version classes mirror single, joined, multi-level, concrete hierarchies."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ._helpers import DELETE, INSERT, UPDATE, pick, pk

__all__ = ["TestConcreteInheritance", "TestJoinedInheritance", "TestSingleTableInheritance"]


def single(Base):
    class Item(Base):
        __versioned__ = {}
        __tablename__ = "item"
        id = pk()
        kind = sa.Column(sa.Unicode(20))
        name = sa.Column(sa.Unicode(100))
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "item"}

    class Book(Item):
        isbn = sa.Column(sa.Unicode(20))
        __mapper_args__ = {"polymorphic_identity": "book"}

    return locals()


def joined(Base):
    class Item(Base):
        __versioned__ = {}
        __tablename__ = "item"
        id = pk()
        kind = sa.Column(sa.Unicode(20))
        name = sa.Column(sa.Unicode(100))
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "item"}

    class Book(Item):
        __tablename__ = "book"
        id = sa.Column(sa.Integer, sa.ForeignKey("item.id"), primary_key=True)
        isbn = sa.Column(sa.Unicode(20))
        __mapper_args__ = {"polymorphic_identity": "book"}

    class Ebook(Book):
        __tablename__ = "ebook"
        id = sa.Column(sa.Integer, sa.ForeignKey("book.id"), primary_key=True)
        url = sa.Column(sa.Unicode(200))
        __mapper_args__ = {"polymorphic_identity": "ebook"}

    return locals()


def concrete(Base):
    # Plain concrete mapping; ConcreteBase is avoided because on SQLAlchemy 2.0 its
    # __declare_first__ listener outlives the test's registry.
    class Item(Base):
        __versioned__ = {}
        __tablename__ = "item"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.Unicode(100))

    class Gadget(Item):
        __tablename__ = "gadget"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.Unicode(100))
        volts = sa.Column(sa.Integer)
        __mapper_args__ = {"concrete": True}

    return locals()


class TestSingleTableInheritance:
    def test_one_version_table_with_the_discriminator(self, history, conformance_models):
        m = conformance_models(single)
        BookVersion = history.version_class(m.Book)
        ItemVersion = history.version_class(m.Item)
        assert issubclass(BookVersion, ItemVersion)
        assert sa.inspect(BookVersion).local_table is sa.inspect(ItemVersion).local_table
        with m.session() as session:
            book = m.Book(name="b", isbn="1")
            session.add_all([book, m.Item(name="i")])
            session.commit()
            book.isbn = "2"
            session.commit()
            versions = session.scalars(
                sa.select(ItemVersion).order_by(ItemVersion.transaction_id, ItemVersion.id)
            ).all()
            assert [type(v) for v in versions] == [BookVersion, ItemVersion, BookVersion]
            assert [v.isbn for v in book.versions] == ["1", "2"]
        rows = m.rows("item_version", ["transaction_id", "id"])
        assert pick(rows, "kind", "isbn", "operation_type") == [
            ("book", "1", INSERT),
            ("item", None, INSERT),
            ("book", "2", UPDATE),
        ]


class TestJoinedInheritance:
    def test_one_version_table_per_table(self, history, conformance_models):
        m = conformance_models(joined)
        with m.session() as session:
            ebook = m.Ebook(name="e", isbn="1", url="u1")
            session.add(ebook)
            session.commit()
            ebook.url = "u2"
            ebook.name = "e2"
            session.commit()
            session.delete(ebook)
            session.commit()
        assert pick(
            m.rows("item_version", ["transaction_id"]), "name", "kind", "operation_type"
        ) == [
            ("e", "ebook", INSERT),
            ("e2", "ebook", UPDATE),
            ("e2", "ebook", DELETE),
        ]
        assert pick(m.rows("book_version", ["transaction_id"]), "isbn", "operation_type") == [
            ("1", INSERT),
            ("1", UPDATE),
            ("1", DELETE),
        ]
        assert pick(m.rows("ebook_version", ["transaction_id"]), "url", "operation_type") == [
            ("u1", INSERT),
            ("u2", UPDATE),
            ("u2", DELETE),
        ]

    def test_version_classes_mirror_the_hierarchy(self, history, conformance_models):
        m = conformance_models(joined)
        ItemVersion, BookVersion, EbookVersion = (
            history.version_class(m.Item),
            history.version_class(m.Book),
            history.version_class(m.Ebook),
        )
        assert issubclass(EbookVersion, BookVersion)
        assert issubclass(BookVersion, ItemVersion)
        with m.session() as session:
            session.add_all([m.Ebook(name="e", url="u"), m.Book(name="b", isbn="i")])
            session.commit()
            loaded = session.scalars(sa.select(ItemVersion).order_by(ItemVersion.id)).all()
            assert sorted(type(v).__name__ for v in loaded) == ["BookVersion", "EbookVersion"]
            ebook_version = session.scalars(sa.select(EbookVersion)).one()
            assert (ebook_version.name, ebook_version.url) == ("e", "u")
            assert ebook_version.changeset["url"] == [None, "u"]

    def test_change_in_subclass_table_only_writes_every_level(self, history, conformance_models):
        m = conformance_models(joined)
        with m.session() as session:
            book = m.Book(name="b", isbn="1")
            session.add(book)
            session.commit()
            book.isbn = "2"
            session.commit()
            assert [v.isbn for v in book.versions] == ["1", "2"]
            assert [v.name for v in book.versions] == ["b", "b"]


@pytest.mark.requires("concrete_inheritance")
class TestConcreteInheritance:
    def test_concrete_classes_get_their_own_version_tables(self, history, conformance_models):
        m = conformance_models(concrete)
        with m.session() as session:
            gadget = m.Gadget(id=1, name="g", volts=5)
            session.add_all([gadget, m.Item(id=2, name="i")])
            session.commit()
            gadget.volts = 12
            session.commit()
            assert [v.volts for v in gadget.versions] == [5, 12]
        assert pick(m.rows("gadget_version", ["transaction_id"]), "volts", "operation_type") == [
            (5, INSERT),
            (12, UPDATE),
        ]
        assert pick(m.rows("item_version"), "name", "operation_type") == [("i", INSERT)]
