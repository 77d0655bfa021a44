"""Root conftest: load the conformance suite's pytest plugin (options, fixtures, summary)."""

pytest_plugins = ["conformance.plugin"]
