"""Service settings, read once from the environment (prefix ``GEO_SERVICE_``, nested with ``__``).

Only the composition roots (``main.create_app`` and the CLI) build a ``Settings``; every other module
receives what it needs as arguments, so tests can run several configurations side by side.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The territory's clock: conventions start and end on its days, dates are shown in it.
LOCAL_TIME = ZoneInfo("Europe/Paris")


class ClusterSettings(BaseModel):
    """The private PostgreSQL cluster started by ``geo-service db up`` when no database URL is given."""

    data_dir: Path = PROJECT_ROOT / ".pgdata"
    port: int = Field(default=55432, ge=1024, le=65535)
    database: str = "geo_service"
    # PostgreSQL refuses to run as root: the cluster belongs to this unprivileged system user.
    system_user: str = "postgres"
    bin_dir: Path | None = None


class DatabaseSettings(BaseModel):
    """Time limits of the web service's database sessions, in milliseconds (0: none). The command line sets
    none: imports, migrations and the demo run as long as they need."""

    # Longest statement of the main engine (OGC API items and tiles, exports, /admin, edits).
    statement_timeout_ms: int = Field(default=30_000, ge=0)
    # Longest statement of the resident map's read engine (/api/nearby, /api/geocode, one OGC feature).
    read_statement_timeout_ms: int = Field(default=5_000, ge=0)
    # How long a statement of the main engine waits for a lock held by another (an edit, an import) before a 503.
    lock_timeout_ms: int = Field(default=5_000, ge=0)
    # A main-engine session left inside a transaction this long is closed (a stalled stream, a leaked transaction).
    idle_in_transaction_timeout_ms: int = Field(default=60_000, ge=0)
    # Read replicas (PostgreSQL hot standbys of the database), a JSON list of URLs; empty: every read on the primary.
    replica_urls: list[SecretStr] = []
    # A replica further behind the primary than this (seconds of replay) leaves the rotation until it catches up.
    replica_max_lag_s: float = Field(default=10.0, gt=0)
    # The same bound in bytes of WAL the replica has not replayed yet.
    replica_max_lag_bytes: int = Field(default=64 * 2**20, ge=0)
    # Seconds between two checks of every replica (reachable, still a standby, lag).
    replica_check_interval_s: float = Field(default=2.0, gt=0)
    # Seconds during which a client that has just written reads from the primary only (read-your-writes).
    read_your_writes_s: float = Field(default=15.0, gt=0)
    # Keep the layers' change counters in memory, told of changes by LISTEN/NOTIFY (one connection per process).
    listen_layer_changes: bool = True

    @model_validator(mode="after")
    def _window_covers_the_lag(self) -> DatabaseSettings:
        # A replica in rotation is at most max_lag_s behind, measured at most one interval ago: a writer kept on
        # the primary for less could read a replica that has not replayed the write yet.
        if self.replica_urls and self.read_your_writes_s < self.replica_max_lag_s + self.replica_check_interval_s:
            raise ValueError("GEO_SERVICE_DB__READ_YOUR_WRITES_S doit être au moins REPLICA_MAX_LAG_S + "
                             "REPLICA_CHECK_INTERVAL_S (sinon un client pourrait ne pas relire ce qu'il vient "
                             "d'écrire)")
        return self


class TerritorySettings(BaseModel):
    """What territory the service covers. Nothing else in the code names the Lot.

    French names a département with its article, which the pages need in several forms: « le Lot », « du Lot »,
    « dans le Lot »; « l'Aveyron », « de l'Aveyron », « dans l'Aveyron »; « la Corrèze », « de la Corrèze »,
    « en Corrèze »; « les Landes », « des Landes », « dans les Landes ». The article cannot be told from the name
    (gender, plural): it is a setting, elided before a vowel or a mute h when left unset.
    """

    departement: str = Field(default="46", pattern=r"^(\d{2}|2[AB]|\d{3})$")
    name: str = Field(default="Lot", min_length=1, max_length=80)
    # The definite article of the name: "le", "la", "l'" or "les"; unset: "l'" before a vowel or h, else "le".
    article: Literal["le", "la", "l'", "les"] | None = None
    # Points farther than this from the département outline are refused as "outside the territory".
    tolerance_m: float = Field(default=500.0, ge=0)

    @property
    def definite_article(self) -> str:
        if self.article:
            return self.article
        return "l'" if self.name[:1].lower() in "aeiouyhàâéèêëîïôûü" else "le"

    @property
    def with_article(self) -> str:
        """« le Lot », « l'Aveyron », « la Corrèze », « les Landes »."""
        article = self.definite_article
        return f"{article}{self.name}" if article == "l'" else f"{article} {self.name}"

    @property
    def of_name(self) -> str:
        """« du Lot », « de l'Aveyron », « de la Corrèze », « des Landes » (de + article, contracted)."""
        article = self.definite_article
        contracted = {"le": "du", "les": "des"}
        if article in contracted:
            return f"{contracted[article]} {self.name}"
        return f"de {self.with_article}"

    @property
    def in_name(self) -> str:
        """« dans le Lot », « dans l'Aveyron », « en Corrèze », « dans les Landes »: « en » before a feminine name
        (« en Corrèze »), « dans » + article otherwise (correct whatever the gender of an elided name)."""
        if self.definite_article == "la":
            return f"en {self.name}"
        return f"dans {self.with_article}"


class OperatorSettings(BaseModel):
    """Who runs the service: named in every page's header and title, in the API's title and the embed's."""

    name: str = Field(default="Lot numérique", min_length=1, max_length=120)
    # The operator's site, linked from the pages' header (unset: the name alone).
    url: str | None = Field(default=None, pattern=r"^https?://[^\s\"'<>]+$")
    # The logo shown in the header: a file under web/static/, served by the service itself (e.g. "img/logo.svg");
    # never a remote address, so the pages load nothing from elsewhere.
    logo: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_./-]*\.(svg|png|webp|jpg)$")

    @field_validator("logo")
    @classmethod
    def _inside_static(cls, value: str | None) -> str | None:
        if value and ".." in value.split("/"):
            raise ValueError("GEO_SERVICE_OPERATOR__LOGO : un chemin sous web/static/, sans « .. »")
        return value


class ApiSettings(BaseModel):
    cors_origins: list[str] = []
    cache_max_age_s: int = Field(default=60, ge=0)
    max_features_per_request: int = Field(default=200_000, ge=1)
    # OGC API Features /items page size: default and maximum `limit` (a larger one is a 400).
    ogc_default_limit: int = Field(default=10, ge=1)
    ogc_max_limit: int = Field(default=10_000, ge=1)
    # Caps on an OGC API `filter` (CQL2 text or JSON), each a 400 naming it: length in characters (also the
    # cap on any other items parameter), nesting depth, elements in all, values of one IN list, terms of one
    # AND/OR chain.
    filter_max_chars: int = Field(default=16_384, ge=100)
    filter_max_depth: int = Field(default=20, ge=3)
    filter_max_nodes: int = Field(default=1_000, ge=10)
    filter_max_list: int = Field(default=500, ge=1)
    filter_max_terms: int = Field(default=100, ge=2)
    # Where whole-layer exports are kept, rebuilt when their layer changes (default: the system's temp folder).
    export_dir: Path | None = None
    # Threads per process for the public hot path: /api/nearby, /api/geocode, OGC API pages and features.
    hot_path_threads: int = Field(default=2, ge=1, le=64)
    # How long a Python thread holds the GIL before another waiting one may take it (ms; Python's default: 5).
    gil_switch_ms: float = Field(default=5.0, gt=0, le=100)


class TileSettings(BaseModel):
    """Vector tiles (``/ogc/.../tiles``, ``/tiles``): the zoom range served and the tile geometry."""

    min_zoom: int = Field(default=0, ge=0, le=24)
    # Beyond this zoom clients over-zoom the last tiles (points are already exact to ±5 cm at 18).
    max_zoom: int = Field(default=18, ge=0, le=24)
    extent: int = Field(default=4096, ge=256)
    # Edge margin in tile units, so symbols near an edge are not cut in half.
    buffer: int = Field(default=64, ge=0)
    # Below a layer's `style.thin_below_zoom`, one point per cell of this many pixels (and per colour).
    thin_cell_px: int = Field(default=16, ge=1, le=256)
    # Rendered tiles kept in memory per process (MiB), reused while their layers are unchanged; 0: none.
    cache_mb: int = Field(default=64, ge=0, le=65_536)
    # A folder shared by the processes of the machine for rendered tiles (empty: memory only).
    cache_dir: Path | None = None
    # The folder's bound (MiB): past it, the least recently written tiles are deleted.
    cache_dir_mb: int = Field(default=1024, ge=1)


class MapSettings(BaseModel):
    """The resident map (``/map``), and the base map under every map of the service."""

    # The base map under every map (services/basemap/basemap_choice.py): "ign-plan" (IGN Plan v2, Géoplateforme),
    # "osm" (OpenStreetMap-compatible tiles), "self-hosted" (the MBTiles of `geo-service basemap install`),
    # "custom" (basemap_url), "none". Empty: "custom" if basemap_url is set, else "none" in test mode (the
    # tests never leave the machine) and "ign-plan" otherwise.
    basemap: str = Field(default="", pattern="^(|ign-plan|osm|self-hosted|custom|none)$")
    # A raster tile URL ({z}/{x}/{y}, {s} allowed) for "custom", or another OSM-compatible server for "osm".
    basemap_url: str = ""
    # Replaces the preset's attribution (required with "custom"; shown on the map and in the page).
    basemap_attribution: str = ""
    # Aerial photographs offered in the editor: "ign-ortho" (ORTHOIMAGERY.ORTHOPHOTOS), "self-hosted", "none";
    # empty: "ign-ortho" with the IGN Plan, "self-hosted" with a self-hosted plan if a photo file is installed.
    aerial: str = Field(default="", pattern="^(|ign-ortho|self-hosted|none)$")
    # Where `geo-service basemap install` puts the self-hosted files (plan.mbtiles, photo.mbtiles).
    basemap_dir: Path = PROJECT_ROOT / "data" / "basemap"
    # Layers with more features than this are loaded by bounding box, and only from `dense_min_zoom` on.
    dense_layer_threshold: int = Field(default=5000, ge=1)
    dense_min_zoom: int = Field(default=14, ge=0, le=20)
    # Who may show /map/embed in an iframe: the CSP `frame-ancestors` sources ('self', https://www.lot.fr…).
    embed_frame_ancestors: list[str] = ["'self'", "https://www.lot.fr", "https://lot.fr"]


class AuthSettings(BaseModel):
    """Accounts: web sessions, login throttling (see ``services/editing/accounts.py``)."""

    session_hours: float = Field(default=8.0, gt=0)
    # "auto": the cookie is Secure unless the request is for localhost / 127.0.0.1 / ::1.
    cookie_secure: str = Field(default="auto", pattern="^(auto|always|never)$")
    # Login throttling: this many failures within the window locks the account (or the IP) until the
    # oldest failure leaves the window. Counted in the database, so it holds across workers.
    login_window_min: int = Field(default=15, ge=1)
    max_failures_per_account: int = Field(default=5, ge=1)
    max_failures_per_ip: int = Field(default=20, ge=1)
    first_admin: str = Field(default="admin", pattern=r"^[a-z][a-z0-9_.-]{1,62}$")


class EditingSettings(BaseModel):
    """Editing rules (``services/editing/feature_writes.py``, ``services/editing/rights.py``)."""

    # An EPCI contributor's geometry may stick out of its EPCI's perimeter by this much (digitising slack).
    perimeter_tolerance_m: float = Field(default=50.0, ge=0)
    # A geometry sent by an editor may have at most this many vertices (each costs every check and every tile).
    max_vertices: int = Field(default=100_000, ge=4)
    # Request bodies above this are refused with a 413 before being read.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Files sent to /admin/import (bulk import, open-data files) may be larger than an API body.
    max_upload_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    # A bulk import through the editing rules checks every row one by one: beyond this, use `geo-service import`.
    max_import_rows: int = Field(default=50_000, ge=1)
    # How far a file sent through the pages may expand once unzipped or gunzipped (decompression bombs),
    # and how many files its archive may hold.
    max_unpacked_bytes: int = Field(default=1024 * 1024 * 1024, ge=1024)
    max_archive_members: int = Field(default=200, ge=1)
    # The same bound for `geo-service import` and `edit import` (national files: a 10^7-row Cartefibre is 1.5 GB).
    command_line_max_unpacked_bytes: int = Field(default=32 * 1024 * 1024 * 1024, ge=1024)
    # Where files sent to /admin/import wait between the preview and the import (default: the system's temp).
    upload_dir: Path | None = None


class SmtpSettings(BaseModel):
    """Outgoing e-mail (``services/reports/notifications.py``): no host, no e-mail sent."""

    # SMTP server of the notifications; empty: notifications are off.
    host: str = ""
    port: int = Field(default=587, ge=1, le=65535)
    # Sender address of the notifications.
    from_address: str = "ne-pas-repondre@localhost"
    # Upgrade the connection with STARTTLS before sending (off only for a local relay).
    starttls: bool = True
    # Credentials, from the environment (GEO_SERVICE_SMTP__USER / __PASSWORD); none: no login.
    user: str | None = None
    password: SecretStr | None = None
    # Seconds to wait for the server before giving up (the answer to the person never waits longer).
    timeout_s: float = Field(default=10.0, gt=0)


class ReportSettings(BaseModel):
    """Residents' reports (``services/reports/``): abuse limits, duplicates, retention, photos."""

    # E-mail addresses given for follow-up are erased this many days after the report (geo-service reports purge).
    email_retention_days: int = Field(default=365, ge=1, le=3650)
    # Longest free text of a report, in characters.
    max_text_chars: int = Field(default=2000, ge=100, le=20000)
    # Reports (and confirmations) one address may send per hour before a 429.
    max_per_ip_per_hour: int = Field(default=5, ge=1)
    # Reports within `area_radius_m` of a point per hour before a 429 (a flood aimed at one place).
    max_per_area_per_hour: int = Field(default=30, ge=1)
    area_radius_m: float = Field(default=1000.0, gt=0)
    # A report of the same category this close (m) and this recent (days) is a duplicate: counted, not stored.
    duplicate_distance_m: float = Field(default=100.0, ge=0)
    duplicate_window_days: int = Field(default=30, ge=0)
    # Officers told of every new report by e-mail (empty: nobody).
    officer_emails: list[str] = []
    # Photos: largest file accepted, largest side once re-encoded, and where they are kept.
    max_photo_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    photo_max_side_px: int = Field(default=2048, ge=256, le=8192)
    photo_dir: Path | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GEO_SERVICE_", env_nested_delimiter="__", extra="ignore")

    mode: str = Field(default="development", pattern="^(development|production|test)$")
    # An existing PostGIS (postgresql://user:pass@host/db); when empty the private cluster is used.
    database_url: str | None = None
    cluster: ClusterSettings = ClusterSettings()
    db: DatabaseSettings = DatabaseSettings()
    territory: TerritorySettings = TerritorySettings()
    operator: OperatorSettings = OperatorSettings()
    api: ApiSettings = ApiSettings()
    map: MapSettings = MapSettings()
    auth: AuthSettings = AuthSettings()
    editing: EditingSettings = EditingSettings()
    tiles: TileSettings = TileSettings()
    smtp: SmtpSettings = SmtpSettings()
    reports: ReportSettings = ReportSettings()
    layers_dir: Path = PROJECT_ROOT / "layers"
    web_dir: Path = PROJECT_ROOT / "web"
    boundaries_dir: Path | None = None
    boundaries_api_url: str = "https://geo.api.gouv.fr"
    host: str = "127.0.0.1"
    port: int = 8000
    # glibc memory arenas per `geo-service serve` process (0: glibc's default, 8 per core): each thread of the pool
    # otherwise gets an arena of its own that is never given back (docs/benchmarks.md, memory: −25 MB per process).
    malloc_arena_max: int = Field(default=2, ge=0, le=64)
    # `geo-service serve` runs on jemalloc (Debian's libjemalloc2, preloaded) when installed: a worker's memory stays
    # flat under long traffic where glibc's kept creeping (docs/benchmarks.md, memory); false: glibc's malloc.
    jemalloc: bool = True
    # uvicorn's HTTP/1.1 implementation: h11 writes header names as the service gives them (QGIS finds a created
    # feature only under a capitalised `Location`); httptools is faster but writes every name in lower case.
    http_implementation: Literal["h11", "httptools"] = "h11"
    secret_key: str | None = None
    # Password of the first administrator (`geo-service user ensure-admin`); generated and printed once if unset.
    admin_password: SecretStr | None = None
    # The service's public address (https://carto.lot.fr, prefix included if any): every absolute link (OGC API,
    # TileJSON, embed snippet) is built on it, never on the request's Host. Required in production.
    public_base_url: str | None = None
    # Host names the service answers to (others get 400); unset: 127.0.0.1, localhost and public_base_url's host.
    trusted_hosts: list[str] | None = None
    # Addresses (or networks) of the reverse proxies whose X-Forwarded-For/-Proto are believed; empty: none.
    trusted_proxies: list[str] = []

    @field_validator("public_base_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("GEO_SERVICE_PUBLIC_BASE_URL doit être une adresse http(s) sans paramètres, "
                             "ex. https://carto.lot.fr")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _public_address_in_production(self) -> Settings:
        # Cached documents (OGC API, TileJSON) hold absolute links: in production they must not depend on a Host
        # header a client chose.
        if self.mode == "production" and not self.public_base_url:
            raise ValueError("GEO_SERVICE_PUBLIC_BASE_URL doit être défini en mode production "
                             "(adresse publique du service, ex. https://carto.lot.fr)")
        return self

    @model_validator(mode="after")
    def _basemap_of_the_mode(self) -> Settings:
        # Tests run offline (the browser tests check that no request leaves 127.0.0.1); a developer and a resident
        # see the IGN Plan unless a deployment chose otherwise.
        if not self.map.basemap and not self.map.basemap_url:
            self.map = self.map.model_copy(update={"basemap": "none" if self.mode == "test" else "ign-plan"})
        return self

    @property
    def allowed_hosts(self) -> list[str]:
        """The Host names accepted: the setting (or 127.0.0.1 and localhost), plus public_base_url's host."""
        hosts = list(self.trusted_hosts if self.trusted_hosts is not None else ["127.0.0.1", "localhost"])
        if self.public_base_url:
            hosts.append(urlsplit(self.public_base_url).hostname or "")
        return list(dict.fromkeys(h for h in hosts if h))

    @model_validator(mode="after")
    def _no_default_secret_in_production(self) -> Settings:
        if self.mode == "production" and not self.secret_key:
            raise ValueError("GEO_SERVICE_SECRET_KEY doit être défini en mode production")
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL (psycopg 3 driver) of the database in use."""
        return psycopg_url(self.database_url or self.cluster_url)

    @property
    def replica_sqlalchemy_urls(self) -> list[str]:
        """The SQLAlchemy URLs of the read replicas (``db.replica_urls``), in their order."""
        return [psycopg_url(url.get_secret_value()) for url in self.db.replica_urls]

    @property
    def libpq_url(self) -> str:
        """The same database as a libpq URL, for a plain psycopg connection."""
        return "postgresql://" + self.sqlalchemy_url.removeprefix("postgresql+psycopg://")

    @property
    def cluster_url(self) -> str:
        c = self.cluster
        return f"postgresql://{c.system_user}@/{c.database}?host={c.data_dir}&port={c.port}"

    @property
    def uses_private_cluster(self) -> bool:
        return not self.database_url

    def resolved_export_dir(self) -> Path:
        """The export folder: the setting, else one per database under the system's temp folder."""
        if self.api.export_dir:
            return self.api.export_dir
        database = hashlib.sha256(self.sqlalchemy_url.encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"geo-service-exports-{database}"

    def resolved_photo_dir(self) -> Path:
        """Where report photos are kept: the setting, else one folder per database under the system's temp."""
        if self.reports.photo_dir:
            return self.reports.photo_dir
        database = hashlib.sha256(self.sqlalchemy_url.encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"geo-service-report-photos-{database}"

    def resolved_boundaries_dir(self) -> Path | None:
        """The folder of boundary files ``make run`` loads: the setting, else ../shared/data/lot if present."""
        if self.boundaries_dir:
            return self.boundaries_dir
        candidate = PROJECT_ROOT.parent / "shared" / "data" / "lot"
        return candidate if candidate.is_dir() else None


def psycopg_url(url: str) -> str:
    """A PostgreSQL URL with SQLAlchemy's psycopg 3 driver named in it."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
