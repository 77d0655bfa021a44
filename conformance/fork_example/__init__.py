"""A stand-in fork: a package that offers sqlalchemy_history's API under its own name.

It is what a fork looks like to the conformance suite, and CI runs the suite through it
(the ``tests`` nox session, "fork simulation")::

    pytest tests/test_conformance.py --db sqlite \\
        --impl conformance.fork_example \\
        --requirements conformance.fork_example.requirements:ForkRequirements

A real fork renames the package and changes one line of pyproject.toml instead
(``[tool.sqlalchemy_history.conformance] implementation = "its_package"``).
"""

from __future__ import annotations

from sqlalchemy_history import *  # noqa: F403
from sqlalchemy_history import __all__ as __all__

from . import plugins as plugins
