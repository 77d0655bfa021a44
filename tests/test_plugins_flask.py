"""FlaskPlugin: SQLAlchemy-Continuum's Flask integration, with a real Flask app and
Flask-Login users (dependency group ``tests-recipes``), on every configured database.

``make_versioned(plugins=[FlaskPlugin()])`` fills ``transaction.user_id`` with Flask-Login's
``current_user.id`` and ``transaction.remote_addr`` with ``request.remote_addr``; outside a
request, for anonymous users and without Flask-Login, the values are ``None`` and nothing
fails.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from sqlalchemy_history import ImproperlyConfigured, versioning_context
from sqlalchemy_history.plugins import FlaskPlugin

flask = pytest.importorskip("flask")
flask_login = pytest.importorskip("flask_login")


def models(Base):
    class User(Base, flask_login.UserMixin):
        __tablename__ = "app_user"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.Unicode(50))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))

    return locals()


def flask_app(v):
    """A Flask app with Flask-Login: ``/login/<id>``, ``/logout`` and ``POST /articles``."""
    app = flask.Flask(__name__)
    app.secret_key = "test"
    login = flask_login.LoginManager(app)

    @login.user_loader
    def load_user(user_id):
        with v.session() as session:
            return session.get(v.User, int(user_id))

    @app.post("/login/<int:user_id>")
    def log_in(user_id):
        flask_login.login_user(load_user(user_id))
        return "ok"

    @app.post("/logout")
    def log_out():
        flask_login.logout_user()
        return "ok"

    @app.post("/articles")
    def create_article():
        data = flask.request.get_json()
        with v.session() as session:
            if data.get("as_user"):
                # An explicit context in the request wins over the plugin.
                with versioning_context(user_id=data["as_user"]):
                    session.add(v.Article(name=data["name"]))
                    session.commit()
            else:
                session.add(v.Article(name=data["name"]))
                session.commit()
        return "ok"

    return app


def written_by(v):
    """Map each article name to the (user_id, remote_addr) of the transaction that wrote it."""
    transactions = {r["id"]: r for r in v.rows("transaction")}
    return {
        r["name"]: (
            transactions[r["transaction_id"]]["user_id"],
            transactions[r["transaction_id"]]["remote_addr"],
        )
        for r in v.rows("article_version")
    }


@pytest.fixture
def v(versioned):
    v = versioned(models, user_cls="User", plugins=[FlaskPlugin()])
    with v.session() as session:
        session.add_all([v.User(id=1, name="ann"), v.User(id=2, name="bob")])
        session.commit()
    return v


def test_records_the_logged_in_user_and_address(v):
    client = flask_app(v).test_client()
    client.post("/articles", json={"name": "anonymous"})
    client.post("/login/1")
    client.post("/articles", json={"name": "by ann"}, environ_base={"REMOTE_ADDR": "10.0.0.7"})
    client.post("/articles", json={"name": "context wins", "as_user": 2})
    client.post("/logout")
    client.post("/articles", json={"name": "logged out"})
    with v.session() as session:  # outside any request: nothing, and no error
        session.add(v.Article(name="cli"))
        session.commit()
    assert written_by(v) == {
        "anonymous": (None, "127.0.0.1"),
        "by ann": (1, "10.0.0.7"),
        "context wins": (2, "127.0.0.1"),
        "logged out": (None, "127.0.0.1"),
        "cli": (None, None),
    }
    with v.session() as session:
        article = session.scalars(sa.select(v.Article).where(v.Article.name == "by ann")).one()
        assert article.versions[0].transaction.user.name == "ann"


def test_without_flask_login_the_user_is_none(v, monkeypatch):
    monkeypatch.setitem(sys.modules, "flask_login", None)  # import flask_login fails
    app = flask.Flask(__name__)

    @app.post("/articles")
    def create_article():
        with v.session() as session:
            session.add(v.Article(name="a"))
            session.commit()
        return "ok"

    assert app.test_client().post("/articles").status_code == 200
    assert written_by(v) == {"a": (None, "127.0.0.1")}


def test_custom_factories(versioned):
    plugin = FlaskPlugin(
        current_user_id_factory=lambda: 2, remote_addr_factory=lambda: "from-factory"
    )
    v = versioned(models, user_cls="User", plugins=[plugin])
    with v.session() as session:
        session.add(v.User(id=2, name="bob"))
        session.add(v.Article(name="a"))
        session.commit()
    assert written_by(v) == {"a": (2, "from-factory")}


def test_a_user_without_a_user_column_is_a_clear_error(versioned):
    v = versioned(models, user_cls=None, plugins=[FlaskPlugin(current_user_id_factory=lambda: 1)])
    with v.session() as session:
        session.add(v.Article(name="a"))
        with pytest.raises(ImproperlyConfigured, match=r"FlaskPlugin.*user_cls"):
            session.commit()


def test_needs_flask_only_when_created(monkeypatch):
    monkeypatch.setitem(sys.modules, "flask", None)
    with pytest.raises(ImproperlyConfigured, match="pip install flask"):
        FlaskPlugin()


def test_importing_the_package_does_not_import_flask():
    code = (
        "import sys, sqlalchemy_history, sqlalchemy_history.plugins as p; "
        "p.FlaskPlugin; assert 'flask' not in sys.modules, 'flask imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
