"""The hook an implementer's ``conftest.py`` implements to hand the suite its adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import pytest

if TYPE_CHECKING:
    from .adapter import Adapter


@pytest.hookspec(firstresult=True)
def pytest_history_conformance_adapter(config: pytest.Config) -> Optional[Adapter]:
    """Return the ``Adapter`` of the implementation under test (called once per run).

    Implement it in the ``conftest.py`` that loads the plugin::

        def pytest_history_conformance_adapter(config):
            return MyAdapter()
    """
