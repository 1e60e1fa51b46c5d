"""Import every domain's models so that Base.metadata knows all tables (Alembic, tests)."""

from monitor.alerts import models as alerts_models  # noqa: F401
from monitor.drift import models as drift_models  # noqa: F401
from monitor.estimation import models as estimation_models  # noqa: F401
from monitor.store import models as core_models  # noqa: F401
from monitor.store.base import Base

metadata = Base.metadata
