"""The sqlalchemy-history conformance suite: one suite for every implementation of the API.

Modeled on SQLAlchemy's ``sqlalchemy.testing.suite``. An implementation (sqlalchemy-history,
SQLAlchemy-History 2.2.1, SQLAlchemy-Continuum 2.0.0, a fork) runs it with two files:

``conftest.py``::

    from sqlalchemy_history_conformance import Adapter, Requirements

    pytest_plugins = ["sqlalchemy_history_conformance.plugin"]

    class MyAdapter(Adapter):
        module_name = "my_history"          # the import name
        requirements_cls = Requirements     # or a subclass saying what differs

    def pytest_history_conformance_adapter(config):
        return MyAdapter()

``test_conformance.py``::

    from sqlalchemy_history_conformance.suite import *  # noqa: F403

Then ``pytest --db postgresql --async``. The README shipped with the distribution is the
guide; ``adapter.py`` is the seam, ``requirements.py`` the list of behaviours an
implementation may lack, ``databases.py`` how databases are reached.

The suite never imports an implementation package; ``suite/test_meta.py`` checks that.
"""

from __future__ import annotations

from .adapter import Adapter as Adapter
from .requirements import Requirements as Requirements
from .requirements import Support as Support
from .requirements import failing as failing
from .requirements import supported as supported
from .requirements import unsupported as unsupported

__all__ = ["Adapter", "Requirements", "Support", "failing", "supported", "unsupported"]
