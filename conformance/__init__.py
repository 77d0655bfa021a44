"""The sqlalchemy_history conformance suite: one suite for every implementation and database.

Modeled on SQLAlchemy's ``sqlalchemy.testing.suite``. To run it against an implementation
(ours, or a fork's):

1. load the plugin from the root ``conftest.py``::

       pytest_plugins = ["conformance.plugin"]

2. collect the suite with one line in a test module (``tests/test_conformance.py``)::

       from conformance.suite import *  # noqa: F403

3. name the implementation (and, optionally, a requirements subclass) in pyproject.toml::

       [tool.sqlalchemy_history.conformance]
       implementation = "sqlalchemy_history"
       requirements = "conformance.requirements:Requirements"

Then ``pytest tests/test_conformance.py --db postgresql --async``. See ``plugin.py`` for
the options, ``requirements.py`` for capabilities and features, ``databases.py`` for how
databases are reached, and CONTRIBUTING.md for the recipes.

The suite never imports the implementation package; ``suite/test_meta.py`` checks that.
"""
