"""Database tables derived from the layer declarations (GeoAlchemy2), plus the service's own tables.

Alembic's autogenerate compares this metadata with the database, so a new layer file becomes a
migration with ``geo-service db revision -m "…"`` and no code change.
"""

from __future__ import annotations

import weakref

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR

from geo_service.layers import VALIDATION_STATES, FieldDecl, LayerDecl, LayerRegistry

# The one row per layer table that a statement trigger bumps on every change (install_change_triggers).
LAYER_CHANGES = "layer_changes"

SRID = 4326
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "pk": "pk_%(table_name)s",
}

_SQL_TYPES = {
    "string": Text,
    "integer": Integer,
    "number": Float,
    "boolean": Boolean,
    "date": Date,
    "datetime": lambda: DateTime(timezone=True),
    "string_list": lambda: ARRAY(Text),
}


def _sql_literal(value: str | int) -> str:
    return str(value) if isinstance(value, int) else "'" + value.replace("'", "''") + "'"


def _field_constraints(layer: LayerDecl, field: FieldDecl) -> list[CheckConstraint]:
    """Code lists are enforced by the database too, so a direct edit (QGIS, psql) cannot break them."""
    if not field.codes:
        return []
    values = ", ".join(_sql_literal(v) for v in field.code_values or ())
    if field.type == "string_list":
        condition = f"{field.name} <@ ARRAY[{values}]::text[]"
    else:
        condition = f"{field.name} IN ({values})"
    return [CheckConstraint(condition, name=f"{field.name}_codes")]


def layer_table(layer: LayerDecl, metadata: MetaData) -> Table:
    """The table of one layer: its declared fields, its geometry and, if editable, provenance columns."""
    columns: list = [Column("fid", BigInteger, Identity(), primary_key=True)]
    constraints: list = []
    for field in layer.fields:
        columns.append(Column(field.name, _SQL_TYPES[field.type](), nullable=not field.required,
                              comment=field.label))
        constraints.extend(_field_constraints(layer, field))
    columns.append(Column("geom", Geometry(layer.geometry, srid=SRID, spatial_index=True), nullable=False))
    if layer.editable:
        columns += [
            Column("source", Text, comment="Source de la donnée"),
            Column("licence", Text, comment="Licence de la source"),
            Column("source_date", Date, comment="Date de la source"),
            Column("import_id", Text, comment="Identifiant de l'import qui a écrit la ligne"),
            Column("updated_by", Text),
            Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
            Column("version", Integer, nullable=False, server_default=text("1")),
            Column("validation_state", Text, nullable=False, server_default=text("'published'")),
            # Synthetic rows of `geo-service demo`: the only rows a demo run may replace.
            Column("demo", Boolean, nullable=False, server_default=text("false")),
            # Logical deletion (services/editing/feature_writes.py): hidden from every reader, restorable from history.
            Column("deleted_at", DateTime(timezone=True), comment="Suppression logique (restaurable)"),
        ]
        states = ", ".join(_sql_literal(s) for s in VALIDATION_STATES)
        constraints.append(CheckConstraint(f"validation_state IN ({states})", name="validation_state"))
    table = Table(layer.id, metadata, *columns, *constraints, comment=layer.title)
    indexed = {f.name for f in layer.fields if f.index or f.name == "code_insee"}
    for name in sorted(indexed - {layer.natural_key}):
        Index(f"ix_{layer.id}_{name}", table.c[name])
    if layer.natural_key:
        Index(f"uq_{layer.id}_{layer.natural_key}", table.c[layer.natural_key], unique=True)
    if layer.editable:
        Index(f"ix_{layer.id}_demo", table.c.demo)
    return table


def build_metadata(registry: LayerRegistry) -> MetaData:
    """All tables of the service: one per layer and the service's bookkeeping tables."""
    metadata = MetaData(naming_convention=NAMING)
    for layer in registry:
        layer_table(layer, metadata)
    Table(
        "territory", metadata,
        Column("code", Text, primary_key=True),
        Column("nom", Text, nullable=False),
        Column("geom", Geometry("MultiPolygon", srid=SRID, spatial_index=True), nullable=False),
        comment="Contour du territoire servi (union des communes chargées)",
    )
    Table(
        "dataset_loads", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("kind", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("loaded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        comment="Journal des chargements (limites, démo, imports)",
    )
    # Bumped by a statement trigger on each layer table (install_change_triggers): ETags and caches read it.
    Table(
        LAYER_CHANGES, metadata,
        Column("layer_id", Text, primary_key=True),
        Column("version", BigInteger, nullable=False, server_default=text("1")),
        Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        comment="Compteur de modifications par couche (ETag, Last-Modified, caches)",
    )
    _geocoder_tables(metadata)
    _editing_tables(metadata)
    _importer_tables(metadata)
    _report_tables(metadata)
    _observatory_tables(metadata)
    return metadata


def _geocoder_tables(metadata: MetaData) -> None:
    """The BAN addresses (written by the BAN importer) and the geocoder's search index (see services/geocoder).

    ``geocode_names`` and ``geocode_numbers`` are derived data, rebuilt by ``refresh_search_index``; their
    ``search_text`` is already normalised (``search_normalize``, migration 0002), so plain GIN indexes serve
    both the prefix search (``search_vector``) and the trigram search for typos (``search_text``).
    """
    addresses = Table(
        "addresses", metadata,
        Column("id", Text, primary_key=True, comment="Clé d'interopérabilité BAN (cle_interop)"),
        Column("numero", Integer, comment="Numéro dans la voie"),
        Column("rep", Text, comment="Indice de répétition (bis, ter, a…)"),
        Column("nom_voie", Text, nullable=False, comment="Voie ou lieu-dit"),
        Column("code_postal", Text, comment="Code postal"),
        Column("code_insee", Text, nullable=False, comment="Code INSEE de la commune"),
        Column("nom_commune", Text, comment="Commune"),
        Column("geom", Geometry("Point", srid=SRID, spatial_index=True), nullable=False),
        Column("source", Text, nullable=False, server_default=text("'BAN'"), comment="Source de l'adresse"),
        Column("source_date", Date, comment="Date de la source"),
        comment="Adresses de la Base Adresse Nationale, écrites par l'import BAN et lues par le géocodeur",
    )
    Index("ix_addresses_code_insee", addresses.c.code_insee)
    names = Table(
        "geocode_names", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("kind", Text, nullable=False, comment="commune ou voie (voie ou lieu-dit)"),
        Column("name", Text, nullable=False, comment="Nom affiché"),
        Column("code_insee", Text, nullable=False),
        Column("code_postal", Text),
        Column("nom_commune", Text, nullable=False),
        Column("search_text", Text, nullable=False, comment="Texte normalisé cherché (search_normalize)"),
        Column("search_vector", TSVECTOR, nullable=False, comment="Mots de search_text (recherche par préfixe)"),
        Column("weight", Float, nullable=False, server_default=text("0"),
               comment="Départage des résultats égaux (population, nombre d'adresses)"),
        Column("geom", Geometry("Point", srid=SRID, spatial_index=True), nullable=False),
        CheckConstraint("kind IN ('commune', 'voie')", name="kind"),
        comment="Géocodeur : communes et voies cherchables (reconstruit par refresh_search_index)",
    )
    # Words typed in full or begun (prefix search), then trigrams for the typos.
    Index("ix_geocode_names_search_vector", names.c.search_vector, postgresql_using="gin")
    Index("ix_geocode_names_search_text", names.c.search_text, postgresql_using="gin",
          postgresql_ops={"search_text": "gin_trgm_ops"})
    numbers = Table(
        "geocode_numbers", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("name_id", BigInteger, nullable=False, comment="Voie (geocode_names.id)"),
        Column("numero", Integer, nullable=False),
        Column("rep", Text, comment="Indice de répétition, en minuscules"),
        Column("ref", Text, nullable=False, comment="Identifiant dans la source (imb_id, clé BAN)"),
        Column("source", Text, nullable=False, comment="premises ou addresses"),
        Column("geom", Geometry("Point", srid=SRID, spatial_index=True), nullable=False),
        comment="Géocodeur : numéros des voies (reconstruit par refresh_search_index)",
    )
    Index("ix_geocode_numbers_name_id", numbers.c.name_id, numbers.c.numero)


# -- editing: accounts, conventions, proposals, history (migration 0004; services/editing/accounts.py, rights.py,
#    editing.py, history.py) ------------------------------------------------------------------------------------
ROLES = ("admin", "editor", "epci_contributor", "epci_reader")
EPCI_ROLES = ("epci_contributor", "epci_reader")


_METADATA: weakref.WeakKeyDictionary[LayerRegistry, MetaData] = weakref.WeakKeyDictionary()


def metadata_for(registry: LayerRegistry) -> MetaData:
    """``build_metadata`` once per registry (tables are pure functions of the declarations)."""
    if registry not in _METADATA:
        _METADATA[registry] = build_metadata(registry)
    return _METADATA[registry]


def _editing_tables(metadata: MetaData) -> None:
    """Accounts and their credentials, EPCI conventions, contributors' proposals and the feature history.

    EPCI are referred to by SIREN without a foreign key: ``load boundaries`` replaces the ``epci`` table
    wholesale, and a convention must outlive a reload.
    """
    roles = ", ".join(_sql_literal(r) for r in ROLES)
    epci_roles = ", ".join(_sql_literal(r) for r in EPCI_ROLES)
    Table(
        "accounts", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("username", Text, nullable=False, comment="Identifiant de connexion (minuscules)"),
        Column("display_name", Text, comment="Nom affiché"),
        Column("email", Text),
        Column("password_hash", Text, comment="Empreinte argon2id du mot de passe"),
        Column("role", Text, nullable=False),
        Column("epci_siren", Text, comment="EPCI du compte (rôles EPCI seulement)"),
        Column("active", Boolean, nullable=False, server_default=text("true")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("last_login_at", DateTime(timezone=True)),
        CheckConstraint(f"role IN ({roles})", name="role"),
        CheckConstraint(f"(role IN ({epci_roles})) = (epci_siren IS NOT NULL)", name="epci"),
        comment="Comptes : administrateurs, éditeurs, contributeurs et lecteurs EPCI",
    )
    Index("uq_accounts_username", metadata.tables["accounts"].c.username, unique=True)
    Table(
        "account_tokens", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        Column("name", Text, nullable=False, comment="Usage du jeton (QGIS, script…)"),
        Column("token_hash", Text, nullable=False, comment="SHA-256 du jeton, jamais le jeton"),
        Column("prefix", Text, nullable=False, comment="Début du jeton, pour le reconnaître"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("expires_at", DateTime(timezone=True)),
        Column("last_used_at", DateTime(timezone=True)),
        Column("revoked_at", DateTime(timezone=True)),
        Column("if_match_optional", Boolean, nullable=False, server_default=text("false"),
               comment="Client sans If-Match (QGIS) : modifications acceptées sans If-Match, la dernière gagne"),
        comment="Jetons d'accès personnels (Authorization: Bearer)",
    )
    Index("uq_account_tokens_token_hash", metadata.tables["account_tokens"].c.token_hash, unique=True)
    Table(
        "account_sessions", metadata,
        Column("id_hash", Text, primary_key=True, comment="SHA-256 du cookie de session"),
        Column("account_id", BigInteger, ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        Column("csrf_token", Text, nullable=False, comment="Jeton anti-CSRF des formulaires de la session"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("expires_at", DateTime(timezone=True), nullable=False),
        Column("ip", Text),
        comment="Sessions web ouvertes (cookie HttpOnly)",
    )
    attempts = Table(
        "login_attempts", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("username", Text, nullable=False),
        Column("ip", Text, nullable=False),
        Column("success", Boolean, nullable=False),
        Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        comment="Tentatives de connexion (limitation des essais)",
    )
    Index("ix_login_attempts_username", attempts.c.username, attempts.c.at)
    Index("ix_login_attempts_ip", attempts.c.ip, attempts.c.at)
    conventions = Table(
        "conventions", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("epci_siren", Text, nullable=False, comment="SIREN de l'EPCI signataire"),
        Column("direction", Text, nullable=False,
               comment="ascendante : l'EPCI alimente les couches ; descendante : il y accède"),
        Column("layers", ARRAY(Text), nullable=False, comment="Couches concernées"),
        Column("starts_on", Date, nullable=False, comment="Début (inclus)"),
        Column("ends_on", Date, comment="Fin (incluse) ; vide : sans terme"),
        Column("reference", Text, nullable=False, comment="Référence du document signé"),
        Column("status", Text, nullable=False, server_default=text("'active'"),
               comment="active, suspendue ou terminee"),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        CheckConstraint("direction IN ('ascendante', 'descendante')", name="direction"),
        CheckConstraint("status IN ('active', 'suspendue', 'terminee')", name="status"),
        CheckConstraint("ends_on IS NULL OR ends_on >= starts_on", name="dates"),
        comment="Conventions entre le syndicat et les EPCI : les droits en découlent à chaque requête",
    )
    Index("ix_conventions_epci_siren", conventions.c.epci_siren)
    requests = Table(
        "change_requests", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("layer_id", Text, nullable=False),
        Column("fid", BigInteger, nullable=False, comment="Entité visée (pour une création : la ligne proposée)"),
        Column("kind", Text, nullable=False, comment="create, update ou delete"),
        Column("status", Text, nullable=False, server_default=text("'pending'")),
        Column("properties", JSONB, comment="Propriétés proposées (état complet)"),
        Column("geom", Geometry("GEOMETRY", srid=SRID, spatial_index=True), comment="Géométrie proposée"),
        Column("base_version", Integer, comment="Version de l'entité sur laquelle porte la proposition"),
        Column("submitted_by", Text, nullable=False),
        Column("epci_siren", Text),
        Column("convention_id", BigInteger),
        Column("path", Text, nullable=False, comment="web, api, import ou cli"),
        Column("submitted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("decided_by", Text),
        Column("decided_at", DateTime(timezone=True)),
        Column("comment", Text, comment="Commentaire de l'administrateur"),
        CheckConstraint("kind IN ('create', 'update', 'delete')", name="kind"),
        CheckConstraint("status IN ('pending', 'accepted', 'rejected')", name="status"),
        comment="Propositions des contributeurs EPCI, en attente de validation",
    )
    Index("ix_change_requests_status", requests.c.status, requests.c.layer_id)
    Index("ix_change_requests_feature", requests.c.layer_id, requests.c.fid)
    history = Table(
        "feature_history", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("layer_id", Text, nullable=False),
        Column("fid", BigInteger, nullable=False),
        Column("action", Text, nullable=False),
        Column("version_before", Integer),
        Column("version_after", Integer),
        Column("actor", Text, nullable=False, comment="Compte auteur du changement"),
        Column("path", Text, nullable=False, comment="web, api, import ou cli"),
        Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("properties_before", JSONB),
        Column("properties_after", JSONB),
        Column("geom_before", Geometry("GEOMETRY", srid=SRID, spatial_index=False)),
        Column("geom_after", Geometry("GEOMETRY", srid=SRID, spatial_index=False)),
        Column("change_request_id", BigInteger),
        Column("change_set", Text, comment="Lot de modifications (import) auquel appartient le changement"),
        Column("comment", Text),
        CheckConstraint("path IN ('web', 'api', 'import', 'cli')", name="path"),
        comment="Historique de chaque modification d'entité (avant / après)",
    )
    Index("ix_feature_history_feature", history.c.layer_id, history.c.fid, history.c.id)
    Index("ix_feature_history_at", history.c.at)


def _importer_tables(metadata: MetaData) -> None:
    """What the open-data importers keep that is not a map layer (see services/importers/).

    ``premise_eligibility``: ARCEP « Ma connexion internet », one row per building × operator × technology,
    so the resident report can say which technologies and speed classes each operator offers at an address.
    """
    table = Table(
        "premise_eligibility", metadata,
        Column("imb_id", Text, primary_key=True, comment="Identifiant immeuble (premises.imb_id)"),
        Column("code_operateur", Text, primary_key=True, comment="Code ARCEP de l'opérateur commercial (ex. FRTE)"),
        Column("code_techno", Text, primary_key=True, comment="Technologie : FO, CU, COAX, 4GF, SAT, THDR…"),
        Column("id_ban", Text, comment="Clé d'interopérabilité BAN de l'adresse (addr_code)"),
        Column("classe_debit_descendant", Text, comment="Classe de débit descendant (INEL, HD05… THD1G)"),
        Column("classe_debit_montant", Text, comment="Classe de débit montant"),
        Column("limitation_go", Integer, comment="Volume de données mensuel limité (Go), vide si illimité"),
        Column("saturation", Boolean, comment="Réseau saturé (pas de nouvel abonné)"),
        Column("source", Text, nullable=False, comment="Source de la donnée"),
        Column("licence", Text, comment="Licence de la source"),
        Column("source_date", Date, comment="Date de la source"),
        Column("import_id", Text, comment="Identifiant de l'import qui a écrit la ligne"),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        comment="Éligibilité par immeuble, opérateur et technologie (ARCEP, Ma connexion internet)",
    )
    Index("ix_premise_eligibility_id_ban", table.c.id_ban)


def migration_filter(metadata: MetaData):
    """Alembic ``include_object`` hook: compare only the service's tables, never PostGIS's own."""
    from geoalchemy2 import alembic_helpers

    def include_object(obj, name, type_, reflected, compare_to):
        if type_ == "table" and reflected and compare_to is None:
            return name in metadata.tables
        return alembic_helpers.include_object(obj, name, type_, reflected, compare_to)

    return include_object


# -- the change counter of the layer tables (read by services/publish/layer_state.py) ---------------------------
CHANGE_FUNCTION = "geo_service_layer_changed"
CHANGE_TRIGGER = "layer_changed"
# Kept in the migration that creates the table, and re-applied by `install_change_triggers` (idempotent).
CHANGE_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {CHANGE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {LAYER_CHANGES} (layer_id, version, changed_at) VALUES (TG_TABLE_NAME, 1, clock_timestamp())
    ON CONFLICT (layer_id) DO UPDATE
        SET version = {LAYER_CHANGES}.version + 1, changed_at = clock_timestamp();
    -- Delivered at commit to the service processes listening (services/publish/layer_versions.py).
    PERFORM pg_notify('{LAYER_CHANGES}', TG_TABLE_NAME);
    RETURN NULL;
END
$$
"""


def install_change_triggers(conn: Connection, registry: LayerRegistry) -> None:
    """Create (or refresh) the change trigger on every layer table; run after each migration.

    Alembic writes the table of a new layer file, not its trigger: doing it here keeps "adding a layer =
    adding a file". Table names come from validated declarations (``^[a-z][a-z0-9_]*$``).
    """
    conn.execute(text(CHANGE_FUNCTION_SQL))
    for layer in registry:
        conn.execute(text(
            f'CREATE OR REPLACE TRIGGER {CHANGE_TRIGGER} AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON "{layer.id}" '
            f"FOR EACH STATEMENT EXECUTE FUNCTION {CHANGE_FUNCTION}()"))
    # Tables that already held rows get a starting point, so Last-Modified exists before their next change.
    conn.execute(text(f"INSERT INTO {LAYER_CHANGES} (layer_id) SELECT unnest(CAST(:ids AS text[])) "
                      "ON CONFLICT (layer_id) DO NOTHING"), {"ids": [layer.id for layer in registry]})


# Statistics targets of the declared field groups: their most common combinations are kept up to this many, so a
# state × commune of the Lot (7 × 313) is known exactly (PostgreSQL's default keeps 100).
STATISTICS_TARGET = 3000


def install_extended_statistics(conn: Connection, registry: LayerRegistry) -> list[str]:
    """Create the extended statistics each layer declares (``statistics:``) and drop those no longer declared;
    a table given new statistics is analysed at once. Run after each migration, like the change triggers.
    Returns the names created."""
    declared = {f"st_{layer.id}_{'_'.join(group)}"[:63]: (layer.id, group) for layer in registry
                for group in layer.statistics}
    existing = {row[0] for row in conn.execute(text(
        "SELECT stxname FROM pg_statistic_ext WHERE stxnamespace = 'public'::regnamespace AND stxname LIKE 'st\\_%'"))}
    for name in existing - set(declared):
        conn.execute(text(f'DROP STATISTICS IF EXISTS "{name}"'))
    created = []
    for name, (layer_id, group) in declared.items():
        if name in existing:
            continue
        columns = ", ".join(f'"{column}"' for column in group)
        conn.execute(text(f'CREATE STATISTICS "{name}" (ndistinct, dependencies, mcv) ON {columns} FROM "{layer_id}"'))
        conn.execute(text(f'ALTER STATISTICS "{name}" SET STATISTICS {STATISTICS_TARGET}'))
        conn.execute(text(f'ANALYZE "{layer_id}"'))
        created.append(name)
    return created


# -- residents' reports (migration 0007; services/reports/) --------------------------------------------------------
REPORT_STATUSES = ("new", "acknowledged", "in_progress", "resolved", "not_reproducible", "duplicate")


def _report_tables(metadata: MetaData) -> None:
    """Residents' reports, their status history and the confirmations of duplicates.

    A report's own history table rather than ``feature_history``: that one holds versions of layer features (before
    and after, revertible, exported for audit), while a report changes only its status and public answer. The
    personal data (``email``, ``ip_hash``) sit in columns the purge empties; nothing else names the resident.
    """
    statuses = ", ".join(_sql_literal(s) for s in REPORT_STATUSES)
    reports = Table(
        "reports", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("public_id", Text, nullable=False, comment="Numéro public (Open311 service_request_id)"),
        Column("token_hash", Text, nullable=False, comment="SHA-256 du jeton du lien de suivi, jamais le jeton"),
        Column("category", Text, nullable=False, comment="Catégorie (services/reports/report_categories.py)"),
        Column("details", JSONB, nullable=False, server_default=text("'{}'::jsonb"),
               comment="Précisions de la catégorie (opérateur, technologie)"),
        Column("description", Text, nullable=False, server_default=text("''"), comment="Texte libre du résident"),
        Column("geom", Geometry("Point", srid=SRID, spatial_index=True), nullable=False),
        Column("layer_id", Text, comment="Couche de l'entité signalée"),
        Column("feature_id", BigInteger, comment="Entité signalée (fid)"),
        Column("code_insee", Text, comment="Commune du point (calculée par la base)"),
        Column("epci_siren", Text, comment="EPCI du point (calculé par la base)"),
        Column("status", Text, nullable=False, server_default=text("'new'")),
        Column("public_answer", Text, comment="Réponse publique des agents"),
        Column("duplicate_of", BigInteger, ForeignKey("reports.id", ondelete="SET NULL")),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("email", Text, comment="Adresse de suivi (donnée personnelle, purgée)"),
        Column("email_consent_at", DateTime(timezone=True), comment="Consentement donné à cet instant"),
        Column("email_purge_on", Date, comment="Date à laquelle l'adresse est effacée"),
        Column("ip_hash", Text, comment="Empreinte de l'adresse IP (limites d'envoi), effacée après un jour"),
        Column("photo_path", Text, comment="Photo ré-encodée, sans métadonnées (nom de fichier)"),
        CheckConstraint(f"status IN ({statuses})", name="status"),
        CheckConstraint("(email IS NULL) OR (email_consent_at IS NOT NULL)", name="consent"),
        CheckConstraint("char_length(description) <= 20000", name="description_length"),
        comment="Signalements des résidents (« Signaler un problème »)",
    )
    Index("uq_reports_public_id", reports.c.public_id, unique=True)
    Index("uq_reports_token_hash", reports.c.token_hash, unique=True)
    Index("ix_reports_status", reports.c.status, reports.c.created_at)
    Index("ix_reports_epci_siren", reports.c.epci_siren)
    Index("ix_reports_ip_hash", reports.c.ip_hash, reports.c.created_at)
    history = Table(
        "report_status_history", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("report_id", BigInteger, ForeignKey("reports.id", ondelete="CASCADE"), nullable=False),
        Column("actor", Text, nullable=False, comment="Compte de l'agent"),
        Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("from_status", Text, nullable=False),
        Column("to_status", Text, nullable=False),
        Column("public_answer", Text),
        comment="Historique des changements d'état des signalements",
    )
    Index("ix_report_status_history_report", history.c.report_id, history.c.id)
    confirmations = Table(
        "report_confirmations", metadata,
        Column("id", BigInteger, Identity(), primary_key=True),
        Column("report_id", BigInteger, ForeignKey("reports.id", ondelete="CASCADE"), nullable=False),
        Column("token_hash", Text, nullable=False, comment="SHA-256 du lien de suivi donné à cette personne"),
        Column("ip_hash", Text, comment="Empreinte de l'adresse IP, effacée après un jour"),
        Column("geom", Geometry("Point", srid=SRID, spatial_index=True), nullable=False),
        Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        comment="« Déjà signalé » : les personnes qui ont signalé le même problème",
    )
    Index("uq_report_confirmations_token_hash", confirmations.c.token_hash, unique=True)
    Index("ix_report_confirmations_report", confirmations.c.report_id)
    Index("ix_report_confirmations_ip_hash", confirmations.c.ip_hash, confirmations.c.at)


# -- the observatory's dated snapshots (migration 0008; services/observatory/snapshots.py) ---------------------------
def _observatory_tables(metadata: MetaData) -> None:
    """Dated indicator snapshots: what ``geo-service snapshot`` computed, one per day, read by the pages and API.

    The *measures* per area are stored (counts, sums, denominators), not the indicators' values: shares and rates
    are derived from them at read time (``indicator_values.IndicatorTable``), so a snapshot taken before an
    indicator was declared still yields it when its measures were there, and a back-filled snapshot holds only the
    measures the history can rebuild (``measures``).
    """
    snapshots = Table(
        "indicator_snapshots", metadata,
        Column("taken_on", Date, primary_key=True, comment="Jour de l'instantané (un par jour)"),
        Column("taken_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("kind", Text, nullable=False, comment="computed (calculé sur les couches) ou backfilled (reconstitué)"),
        Column("source_state", BigInteger, comment="État des couches sources au calcul (somme des compteurs)"),
        Column("computed_in_s", Float, nullable=False, server_default=text("0")),
        Column("measures", ARRAY(Text), nullable=False, comment="Mesures présentes dans cet instantané"),
        Column("areas", JSONB, nullable=False, comment="Territoires : [échelon, code, nom, SIREN de l'EPCI]"),
        Column("as_of", JSONB, nullable=False, server_default=text("'{}'::jsonb"),
               comment="Date de dernière modification de chaque couche source"),
        CheckConstraint("kind IN ('computed', 'backfilled')", name="kind"),
        comment="Instantanés datés des indicateurs de l'observatoire",
    )
    Table(
        "indicator_snapshot_measures", metadata,
        Column("taken_on", Date, ForeignKey(snapshots.c.taken_on, ondelete="CASCADE"), primary_key=True),
        Column("level", Text, primary_key=True),
        Column("code", Text, primary_key=True),
        Column("measure", Text, primary_key=True),
        Column("category", Text, primary_key=True, server_default=text("''")),
        Column("amount", Float, nullable=False),
        comment="Mesures par territoire d'un instantané (sommes par commune, EPCI, département)",
    )
