"""SQLAlchemy 2 tables, one a module; `Base.metadata` is what Alembic compares against."""

from models.api_key import ApiKey
from models.assessment import Assessment
from models.base import Base
from models.country import Country, DataSnapshot, IndicatorValue
from models.model_version import ModelVersion
from models.outcome import AssessmentOutcome
from models.weight_profile import WeightProfile

__all__ = [
    "ApiKey",
    "Assessment",
    "AssessmentOutcome",
    "Base",
    "Country",
    "DataSnapshot",
    "IndicatorValue",
    "ModelVersion",
    "WeightProfile",
]
