"""The whole schema: every domain's models imported, so that `metadata` knows all tables.

Alembic's env.py (autogenerate, `alembic check`) and the schema tests compare the database
with this. It sits above the domains: `monitor.store` is the layer they build on and imports
none of them, so this aggregation cannot live there.
"""

from monitor.alerts import models as alerts_models  # noqa: F401
from monitor.drift import models as drift_models  # noqa: F401
from monitor.estimation import models as estimation_models  # noqa: F401
from monitor.incidents import models as incidents_models  # noqa: F401
from monitor.ingest import inbox as inbox_models  # noqa: F401  (issue 15: the write inbox, 0009)
from monitor.ingest import writers as writers_models  # noqa: F401  (issue 17: overlapping writers, 0014)
from monitor.store import models as core_models  # noqa: F401
from monitor.store.base import Base
from monitor.stream import models as stream_models  # noqa: F401  (issue 17: stream consumers, 0010)

metadata = Base.metadata
