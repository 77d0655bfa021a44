"""Root conftest: run the conformance suite (conformance/) against this repository's package.

We consume the suite as any implementation does (an adapter returned from the plugin's
hook); only its location differs: the in-repo source instead of an installed distribution.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "conformance"))

from sqlalchemy_history_conformance import Adapter

pytest_plugins = ["sqlalchemy_history_conformance.plugin"]


class SqlalchemyHistoryAdapter(Adapter):
    """sqlalchemy-history (this tree): the base ``Requirements``, every behaviour supported."""

    module_name = "sqlalchemy_history"
    distribution = "sqlalchemy-history"

    def identifier_length_options(self, length: int) -> dict[str, int]:
        # Generated names are checked against 63 bytes (portable) unless the user says the
        # database accepts more.
        return {"max_identifier_length": length}


def pytest_history_conformance_adapter(config: object) -> Adapter:
    return SqlalchemyHistoryAdapter()
