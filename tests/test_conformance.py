from conformance.suite import *  # noqa: F403  (the conformance suite, as a fork consumes it)
