"""FlaskPlugin: who did it, from the Flask request in progress (SQLAlchemy-Continuum's plugin).

``make_versioned(plugins=[FlaskPlugin()])`` fills each transaction row written during a
request with::

    transaction.user_id      = flask_login.current_user.id   (None when anonymous)
    transaction.remote_addr  = flask.request.remote_addr

Outside a request (a CLI command, a worker) and without Flask-Login installed, the values
are ``None`` and nothing fails. The values are read when the transaction row is written
(the transaction's first versioned flush) and go through the same checks as
``versioning_context``: a user id without a ``user_id`` column raises
``ImproperlyConfigured`` naming ``user_cls``. A ``versioning_context`` opened in the
request wins over the plugin, column by column.

Flask is imported when the plugin is created, never by ``sqlalchemy_history`` itself; the
package does not depend on Flask.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..context import check_columns
from ..exc import ImproperlyConfigured
from .base import Plugin

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ..unit_of_work import UnitOfWork


def _flask() -> Any:
    return importlib.import_module("flask")


def fetch_current_user_id() -> Any:
    """Return ``flask_login.current_user.id`` in a request, else ``None``.

    ``None`` too for an anonymous user (no ``id``) and when Flask-Login is not installed.
    """
    if not _flask().has_request_context():
        return None
    try:
        flask_login = importlib.import_module("flask_login")
    except ImportError:
        return None
    return getattr(flask_login.current_user, "id", None)


def fetch_remote_addr() -> Optional[str]:
    """Return ``flask.request.remote_addr`` in a request, else ``None``."""
    flask = _flask()
    if not (flask.has_app_context() and flask.has_request_context()):
        return None
    address: Optional[str] = flask.request.remote_addr
    return address


class FlaskPlugin(Plugin):
    """Fill ``transaction.user_id`` and ``remote_addr`` from Flask(-Login) in a request.

    :param current_user_id_factory: returns the user id (default: Flask-Login's
        ``current_user.id``).
    :param remote_addr_factory: returns the client address (default:
        ``request.remote_addr``).
    :raises ImproperlyConfigured: Flask is not installed.
    """

    def __init__(
        self,
        current_user_id_factory: Optional[Callable[[], Any]] = None,
        remote_addr_factory: Optional[Callable[[], Any]] = None,
    ) -> None:
        try:
            _flask()
        except ImportError:
            raise ImproperlyConfigured(
                "FlaskPlugin needs Flask; install it (pip install flask, and flask-login for "
                "transaction.user_id) or remove the plugin."
            ) from None
        self.current_user_id_factory = current_user_id_factory or fetch_current_user_id
        self.remote_addr_factory = remote_addr_factory or fetch_remote_addr

    def transaction_args(self, uow: UnitOfWork, session: Session) -> dict[str, Any]:
        values = {
            "user_id": self.current_user_id_factory(),
            "remote_addr": self.remote_addr_factory(),
        }
        check_columns(uow.manager, values, "FlaskPlugin ({name})")
        return values
