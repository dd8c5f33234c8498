"""The errors a person (or a client) can cause, raised by the domain and the command line alike.

Each says what went wrong in French (``title``, ``detail``), which ``parameter`` or field is at fault and what
else a client needs to try again (``retry_after_s``, ``allowed`` methods, the ``current_version``). They know
nothing of HTTP: ``geo_service/api/problems.py`` turns them into RFC 9457 problem details, with the status code
and headers of each kind; the command line prints their ``detail``. Database errors a client can do something
about (a statement over its time limit, a lock wait, a NUL in text, the database away) are named here too.
"""

from __future__ import annotations

import psycopg
from sqlalchemy.exc import DBAPIError


class ServiceError(Exception):
    """Base of the errors a user can cause; ``title`` and ``detail`` are the French words of the answer."""

    title = "Requête invalide"

    def __init__(self, detail: str, *, parameter: str | None = None, retry_after_s: int | None = None,
                 **extra: object):
        super().__init__(detail)
        self.detail = detail
        self.parameter = parameter
        # When trying again may work (the database restarts, an account is locked for a while).
        self.retry_after_s = retry_after_s
        # More problem-details members, e.g. ``field`` and ``errors`` of an invalid feature.
        self.extra = extra


class InvalidParameter(ServiceError):
    title = "Paramètre invalide"


class NotFound(ServiceError):
    title = "Introuvable"


class OutsideTerritory(ServiceError):
    title = "Hors du territoire"


# -- editing, accounts and rights (services/editing/: feature_writes, rights, accounts) ----------------------------
class Unauthenticated(ServiceError):
    title = "Authentification requise"


class Forbidden(ServiceError):
    title = "Action non autorisée"


class MethodNotAllowed(ServiceError):
    title = "Méthode non autorisée"

    def __init__(self, detail: str, *, allowed: tuple[str, ...] = ("GET", "HEAD", "OPTIONS"), **kwargs: object):
        super().__init__(detail, **kwargs)
        self.allowed = allowed


class Conflict(ServiceError):
    title = "Conflit"


class PreconditionFailed(ServiceError):
    """The client's version (If-Match) is not the stored one; ``current_version`` is, for the client to reload."""

    title = "Version périmée"

    def __init__(self, detail: str, *, current_version: int | None = None, **kwargs: object):
        super().__init__(detail, **kwargs)
        self.current_version = current_version


class PayloadTooLarge(ServiceError):
    title = "Contenu trop volumineux"


class UnsupportedMediaType(ServiceError):
    title = "Type de contenu non pris en charge"


class InvalidFeature(ServiceError):
    """A property or the geometry breaks the layer declaration; ``field`` names it (``geometry`` for the shape)."""

    title = "Entité invalide"


class PreconditionRequired(ServiceError):
    title = "En-tête If-Match requis"


class TooManyRequests(ServiceError):
    title = "Trop de tentatives"


class TerritoryNotLoaded(ServiceError):
    """The territory outline is not loaded yet: no point can be placed in or out of it."""

    title = "Territoire non chargé"


class DatabaseUnavailable(ServiceError):
    title = "Base de données indisponible"


class QueryTimeout(ServiceError):
    """PostgreSQL cancelled a statement that ran longer than the session allows (``settings.db``)."""

    title = "Requête trop longue"


class LockTimeout(ServiceError):
    """A statement waited too long for a lock held by another change (an edit, an import)."""

    title = "Données en cours de modification"


# -- open-data imports (services/importers/) -------------------------------------------------------------------
class ImportFileError(ServiceError):
    """A file (or URL) an import cannot use at all: unreadable, wrong format, missing columns. Nothing is written."""

    title = "Fichier d'import inutilisable"


# SQLSTATEs of a database that cannot be reached, is shutting down or starting, or has no connection left
# (PostgreSQL, appendix A: class 08, 57P01–57P03, 53300). A driver error without SQLSTATE is a failed connection.
_UNREACHABLE = ("08", "57P01", "57P02", "57P03", "53300")
# Seconds a client should wait before trying again while the database is away (a restart takes a few).
RETRY_AFTER_S = 5


def database_unavailable(exc: BaseException) -> bool:
    """Whether a database error means "the database is away" (503, try again) rather than a fault of ours."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        exc = exc.orig
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = getattr(exc, "sqlstate", None)
    return state is None or state.startswith(_UNREACHABLE)


def database_problem(exc: Exception, statement_timeout_ms: int) -> ServiceError | None:
    """The error a database error stands for, when a client can do something about it; ``None`` for a fault.

    ``exc`` is psycopg's error, raw or wrapped by SQLAlchemy. A cancelled statement names the time limit: the
    one carried by the error (``timeout_ms``, set where the read engine is used), else ``statement_timeout_ms``.
    """
    error = exc.orig if isinstance(exc, DBAPIError) else exc
    if isinstance(error, psycopg.errors.QueryCanceled):
        ms = getattr(error, "timeout_ms", None) or statement_timeout_ms
        seconds = f"{ms / 1000:g}".replace(".", ",")
        return QueryTimeout(f"La requête a dépassé le temps maximal accordé ({seconds} s) : restreignez la zone "
                            "ou le filtre, ou réessayez dans un moment")
    if isinstance(error, psycopg.errors.LockNotAvailable):
        return LockTimeout("Ces données sont en cours de modification par une autre opération : réessayez dans un "
                           "instant", retry_after_s=2)
    if isinstance(error, psycopg.DataError) and "NUL" in str(error):
        # psycopg refuses the NUL character in text before sending it; no text of ours can hold one.
        return InvalidParameter("Caractère NUL (\\0, %00) interdit dans une valeur")
    if database_unavailable(exc):
        return DatabaseUnavailable("La base de données est momentanément injoignable : réessayez dans quelques "
                                   "secondes", retry_after_s=RETRY_AFTER_S)
    return None
