"""The fork's requirements: the suite's class, with what this fork does differently."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from conformance.requirements import Requirements, Support, unsupported


class ForkRequirements(Requirements):
    """Requirements of ``conformance.fork_example``.

    It declares one feature unsupported to show how a fork opts out (the run's summary
    lists the skipped tests), and refuses to describe any other implementation, so a
    fork-simulation run that silently tested the reference package would fail.
    """

    def __init__(self, database: Any, implementation: ModuleType) -> None:
        if implementation.__name__ != "conformance.fork_example":
            raise RuntimeError(
                f"ForkRequirements describes conformance.fork_example, not "
                f"{implementation.__name__}; pass --impl conformance.fork_example."
            )
        super().__init__(database, implementation)

    @property
    def vacuum(self) -> Support:
        return unsupported("fork_example does not offer vacuum()")
