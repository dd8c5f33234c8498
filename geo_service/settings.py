"""Service settings, read once from the environment (prefix ``GEO_SERVICE_``, nested with ``__``).

Only the composition roots (``main.create_app`` and the CLI) build a ``Settings``; every other module
receives what it needs as arguments, so tests can run several configurations side by side.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class ClusterSettings(BaseModel):
    """The private PostgreSQL cluster started by ``geo-service db up`` when no database URL is given."""

    data_dir: Path = PROJECT_ROOT / ".pgdata"
    port: int = Field(default=55432, ge=1024, le=65535)
    database: str = "geo_service"
    # PostgreSQL refuses to run as root: the cluster belongs to this unprivileged system user.
    system_user: str = "postgres"
    bin_dir: Path | None = None


class TerritorySettings(BaseModel):
    """What territory the service covers. Nothing else in the code names the Lot."""

    departement: str = Field(default="46", pattern=r"^(\d{2}|2[AB]|\d{3})$")
    name: str = "Lot"
    # Points farther than this from the département outline are refused as "outside the territory".
    tolerance_m: float = Field(default=500.0, ge=0)


class ApiSettings(BaseModel):
    cors_origins: list[str] = []
    cache_max_age_s: int = Field(default=60, ge=0)
    max_features_per_request: int = Field(default=200_000, ge=1)
    # OGC API Features /items page size: default and maximum `limit` (a larger one is a 400).
    ogc_default_limit: int = Field(default=10, ge=1)
    ogc_max_limit: int = Field(default=10_000, ge=1)


class MapSettings(BaseModel):
    """The resident map (``/map``)."""

    # A raster tile URL ({z}/{x}/{y}); empty by default because no request may leave the machine:
    # the background is then drawn from our own communes and EPCI layers.
    basemap_url: str = ""
    basemap_attribution: str = ""
    # Layers with more features than this are loaded by bounding box, and only from `dense_min_zoom` on.
    dense_layer_threshold: int = Field(default=5000, ge=1)
    dense_min_zoom: int = Field(default=14, ge=0, le=20)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GEO_SERVICE_", env_nested_delimiter="__", extra="ignore")

    mode: str = Field(default="development", pattern="^(development|production|test)$")
    # An existing PostGIS (postgresql://user:pass@host/db); when empty the private cluster is used.
    database_url: str | None = None
    cluster: ClusterSettings = ClusterSettings()
    territory: TerritorySettings = TerritorySettings()
    api: ApiSettings = ApiSettings()
    map: MapSettings = MapSettings()
    layers_dir: Path = PROJECT_ROOT / "layers"
    web_dir: Path = PROJECT_ROOT / "web"
    boundaries_dir: Path | None = None
    boundaries_api_url: str = "https://geo.api.gouv.fr"
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str | None = None

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        if self.mode == "production" and not self.secret_key:
            raise ValueError("GEO_SERVICE_SECRET_KEY doit être défini en mode production")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL (psycopg 3 driver) of the database in use."""
        url = self.database_url or self.cluster_url
        for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix):]
        return url

    @property
    def cluster_url(self) -> str:
        c = self.cluster
        return f"postgresql://{c.system_user}@/{c.database}?host={c.data_dir}&port={c.port}"

    @property
    def uses_private_cluster(self) -> bool:
        return not self.database_url

    def resolved_boundaries_dir(self) -> Path | None:
        """The folder of boundary files ``make run`` loads: the setting, else ../shared/data/lot if present."""
        if self.boundaries_dir:
            return self.boundaries_dir
        candidate = PROJECT_ROOT.parent / "shared" / "data" / "lot"
        return candidate if candidate.is_dir() else None
