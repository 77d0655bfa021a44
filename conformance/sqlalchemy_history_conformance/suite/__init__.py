"""Every test class of the conformance suite; collect them with one star import.

::

    from sqlalchemy_history_conformance.suite import *  # noqa: F403

Each module lists its classes in ``__all__``; ``test_meta`` checks that every test class of
every module is exported here exactly once.
"""

from .test_async import *  # noqa: F403
from .test_bulk import *  # noqa: F403
from .test_crud import *  # noqa: F403
from .test_history_queries import *  # noqa: F403
from .test_inheritance import *  # noqa: F403
from .test_meta import *  # noqa: F403
from .test_naming import *  # noqa: F403
from .test_plugins import *  # noqa: F403
from .test_relationships import *  # noqa: F403
from .test_revert import *  # noqa: F403
from .test_revert_relations import *  # noqa: F403
from .test_strategies import *  # noqa: F403
from .test_temporal import *  # noqa: F403
from .test_transactions import *  # noqa: F403
from .test_traversal import *  # noqa: F403
