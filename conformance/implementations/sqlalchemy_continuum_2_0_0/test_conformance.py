from sqlalchemy_history_conformance.suite import *  # noqa: F403
