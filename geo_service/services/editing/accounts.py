"""Accounts and credentials: argon2id passwords, personal access tokens, web sessions, login throttling.

Nothing secret is stored in clear: passwords as argon2id hashes (argon2-cffi), tokens and session cookies as
SHA-256 digests (they are 256-bit random strings, so a fast hash is enough and lookups stay indexed). A token
is shown once, when created. Login failures are counted in the database (``login_attempts``), per account
and per IP address, so the limit holds across workers and restarts.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, text

from geo_service.errors import Conflict, InvalidParameter, NotFound, TooManyRequests
from geo_service.settings import AuthSettings
from geo_service.tables import EPCI_ROLES, ROLES

ROLE_LABELS = {"admin": "administrateur", "editor": "éditeur", "epci_contributor": "contributeur EPCI",
               "epci_reader": "lecteur EPCI"}
USERNAME = re.compile(r"^[a-z][a-z0-9_.-]{1,62}$")
MIN_PASSWORD_LENGTH = 12
TOKEN_PREFIX = "gsk_"
_HASHER = PasswordHasher()
# Verified against when the account does not exist, so that answering takes as long either way.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Principal:
    """Who is acting: an account reached by session, token or the CLI, or the anonymous public."""

    username: str
    role: str | None = None
    account_id: int | None = None
    epci_siren: str | None = None
    via: str = "anonymous"  # session, token, cli
    # The session's anti-CSRF token (only for ``via == "session"``).
    csrf_token: str | None = None
    # A token for a client that never sends If-Match (QGIS): its changes are accepted without it.
    if_match_optional: bool = False

    @property
    def authenticated(self) -> bool:
        return self.role is not None

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role or "", "public")


ANONYMOUS_PRINCIPAL = Principal("anonyme")


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    role: str
    epci_siren: str | None
    display_name: str | None
    email: str | None
    active: bool
    created_at: datetime
    last_login_at: datetime | None


def digest(secret: str) -> str:
    """SHA-256 of a token or session cookie: what the database keeps instead of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_password() -> str:
    """A random password (≈144 bits) for accounts created without one; shown once."""
    return secrets.token_urlsafe(18)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidParameter(f"Mot de passe trop court : {MIN_PASSWORD_LENGTH} caractères au moins",
                               parameter="password")


def normalise_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME.match(name):
        raise InvalidParameter("Identifiant invalide : lettres minuscules, chiffres, « . », « _ » ou « - », "
                               "2 à 63 caractères, commençant par une lettre", parameter="username")
    return name


def _epci_exists(conn: Connection, siren: str) -> bool:
    return conn.execute(text("SELECT EXISTS (SELECT 1 FROM epci WHERE siren = :s)"), {"s": siren}).scalar_one()


def create_account(conn: Connection, username: str, role: str, *, password: str | None,
                   epci_siren: str | None = None, display_name: str | None = None,
                   email: str | None = None) -> int:
    """Create an account; EPCI roles need an EPCI of the territory, the others none."""
    name = normalise_username(username)
    if role not in ROLES:
        raise InvalidParameter(f"Rôle inconnu « {role} » ; rôles : {', '.join(ROLES)}", parameter="role")
    if role in EPCI_ROLES:
        if not epci_siren:
            raise InvalidParameter(f"Le rôle {ROLE_LABELS[role]} exige un EPCI (SIREN)", parameter="epci")
        if not _epci_exists(conn, epci_siren):
            raise InvalidParameter(f"Aucun EPCI de SIREN {epci_siren} dans le territoire", parameter="epci")
    elif epci_siren:
        raise InvalidParameter(f"Le rôle {ROLE_LABELS[role]} n'est rattaché à aucun EPCI", parameter="epci")
    if password is not None:
        _check_password(password)
    exists = conn.execute(text("SELECT 1 FROM accounts WHERE username = :u"), {"u": name}).first()
    if exists:
        raise Conflict(f"Le compte « {name} » existe déjà")
    return conn.execute(text(
        "INSERT INTO accounts (username, role, epci_siren, display_name, email, password_hash) "
        "VALUES (:u, :r, :e, :d, :m, :h) RETURNING id"),
        {"u": name, "r": role, "e": epci_siren if role in EPCI_ROLES else None, "d": display_name, "m": email,
         "h": _HASHER.hash(password) if password is not None else None}).scalar_one()


def get_account(conn: Connection, username: str) -> Account:
    row = conn.execute(text(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts WHERE username = :u"),
                       {"u": username.strip().lower()}).first()
    if row is None:
        raise NotFound(f"Aucun compte « {username} »")
    return Account(*row)


_ACCOUNT_COLUMNS = "id, username, role, epci_siren, display_name, email, active, created_at, last_login_at"


def list_accounts(conn: Connection) -> list[Account]:
    rows = conn.execute(text(f"SELECT {_ACCOUNT_COLUMNS} FROM accounts ORDER BY username"))
    return [Account(*row) for row in rows]


def set_active(conn: Connection, username: str, active: bool) -> None:
    """Disable (or re-enable) an account; disabling also closes its sessions and revokes its tokens at once,
    so that re-enabling it later brings none of them back."""
    account = get_account(conn, username)
    conn.execute(text("UPDATE accounts SET active = :a WHERE id = :i"), {"a": active, "i": account.id})
    if not active:
        _forget_credentials(conn, account.id)


def set_password(conn: Connection, username: str, password: str) -> None:
    """A new password; every session and token of the account ends with the old one (it may have leaked)."""
    _check_password(password)
    account = get_account(conn, username)
    conn.execute(text("UPDATE accounts SET password_hash = :h WHERE id = :i"),
                 {"h": _HASHER.hash(password), "i": account.id})
    _forget_credentials(conn, account.id)


def _forget_credentials(conn: Connection, account_id: int) -> None:
    conn.execute(text("DELETE FROM account_sessions WHERE account_id = :i"), {"i": account_id})
    conn.execute(text("UPDATE account_tokens SET revoked_at = now() WHERE account_id = :a AND revoked_at IS NULL"),
                 {"a": account_id})


def ensure_admin(conn: Connection, username: str, password: str | None) -> str | None:
    """Create the first administrator unless an active one exists; returns the password if it was generated.

    Returns ``None`` both when nothing was done and when the given password was used; callers tell the two
    apart with ``active_admin_exists`` beforehand.
    """
    if active_admin_exists(conn):
        return None
    generated = None if password else generate_password()
    create_account(conn, username, "admin", password=password or generated, display_name="Administrateur SIG")
    return generated


def active_admin_exists(conn: Connection) -> bool:
    return conn.execute(text("SELECT EXISTS (SELECT 1 FROM accounts WHERE role = 'admin' AND active)")).scalar_one()


# -- personal access tokens ------------------------------------------------------------------------------------
DEFAULT_TOKEN_DAYS = 365


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: the secret (shown once, never stored) and when it stops working."""

    secret: str
    name: str
    expires_at: datetime | None


@dataclass(frozen=True)
class TokenInfo:
    """What is kept of a token: never the token itself, only its first characters to recognise it."""

    id: int
    username: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    if_match_optional: bool
    expired: bool


def issue_token(conn: Connection, username: str, name: str, days: int | None = DEFAULT_TOKEN_DAYS, *,
                if_match_optional: bool = False) -> IssuedToken:
    """A new personal access token for ``username``, valid ``days`` days (``None``: until revoked).

    ``if_match_optional``: for a client that never sends If-Match (QGIS 3.x); its changes are then accepted
    without it — the last writer wins — instead of being refused with 428.
    """
    account = get_account(conn, username)
    if not account.active:
        raise Conflict(f"Le compte « {account.username} » est désactivé")
    if days is not None and days < 1:
        raise InvalidParameter("Durée de validité d'un jeton : un jour au moins", parameter="days")
    if not name.strip():
        raise InvalidParameter("Indiquez l'usage du jeton (QGIS, script…)", parameter="name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    expires_at = conn.execute(text(
        "INSERT INTO account_tokens (account_id, name, token_hash, prefix, expires_at, if_match_optional) "
        "VALUES (:a, :n, :h, :p, CASE WHEN CAST(:d AS integer) IS NULL THEN NULL "
        "ELSE now() + make_interval(days => CAST(:d AS integer)) END, :lenient) RETURNING expires_at"),
        {"a": account.id, "n": name.strip(), "h": digest(token), "p": token[:10], "d": days,
         "lenient": if_match_optional}).scalar_one()
    return IssuedToken(token, name.strip(), expires_at)


def create_token(conn: Connection, username: str, name: str, days: int | None = DEFAULT_TOKEN_DAYS, *,
                 if_match_optional: bool = False) -> str:
    """``issue_token``, returning only the token (for scripts and tests)."""
    return issue_token(conn, username, name, days, if_match_optional=if_match_optional).secret


def list_tokens(conn: Connection) -> list[TokenInfo]:
    """Every token not revoked, expired ones included (flagged), newest first."""
    rows = conn.execute(text(
        "SELECT t.id, a.username, t.name, t.prefix, t.created_at, t.expires_at, t.last_used_at, "
        "t.if_match_optional, coalesce(t.expires_at <= now(), false) FROM account_tokens t "
        "JOIN accounts a ON a.id = t.account_id WHERE t.revoked_at IS NULL ORDER BY t.created_at DESC, t.id DESC"))
    return [TokenInfo(*row) for row in rows]


def revoke_token(conn: Connection, token_id: int) -> None:
    """Revoke one token (by its number in ``list_tokens``); it is refused from the next request on."""
    done = conn.execute(text("UPDATE account_tokens SET revoked_at = now() WHERE id = :i AND revoked_at IS NULL"),
                        {"i": token_id}).rowcount
    if not done:
        raise NotFound(f"Aucun jeton n° {token_id} en cours")


def revoke_tokens(conn: Connection, username: str) -> int:
    account = get_account(conn, username)
    return conn.execute(text("UPDATE account_tokens SET revoked_at = now() WHERE account_id = :a "
                             "AND revoked_at IS NULL"), {"a": account.id}).rowcount


def principal_from_token(conn: Connection, token: str) -> Principal | None:
    """The account of a valid (not expired, not revoked) token of an active account, else ``None``."""
    row = conn.execute(text(
        "SELECT t.id, a.id, a.username, a.role, a.epci_siren, t.if_match_optional FROM account_tokens t "
        "JOIN accounts a ON a.id = t.account_id WHERE t.token_hash = :h AND t.revoked_at IS NULL "
        "AND (t.expires_at IS NULL OR t.expires_at > now()) AND a.active"), {"h": digest(token)}).first()
    if row is None:
        return None
    # Written at most every few minutes: a busy QGIS session must not turn every read into a write.
    conn.execute(text("UPDATE account_tokens SET last_used_at = now() WHERE id = :i AND "
                      "(last_used_at IS NULL OR last_used_at < now() - interval '5 minutes')"), {"i": row[0]})
    return Principal(row[2], row[3], row[1], row[4], via="token", if_match_optional=bool(row[5]))


# -- password login and its throttling ------------------------------------------------------------------------
def _failures(conn: Connection, column: str, value: str, window_min: int) -> tuple[int, datetime | None]:
    # For an account, failures count only after its last success; for an IP, all failures in the window.
    since_success = ("AND at > coalesce((SELECT max(at) FROM login_attempts WHERE username = :v AND success), "
                     "'-infinity')") if column == "username" else ""
    row = conn.execute(text(
        f"SELECT count(*), min(at) FROM login_attempts WHERE {column} = :v AND NOT success "
        f"AND at > now() - make_interval(mins => :w) {since_success}"), {"v": value, "w": window_min}).one()
    return int(row[0]), row[1]


def _throttle(conn: Connection, username: str, ip: str, auth: AuthSettings) -> None:
    now = conn.execute(text("SELECT now()")).scalar_one()
    window = timedelta(minutes=auth.login_window_min)
    for column, value, limit in (("username", username, auth.max_failures_per_account),
                                 ("ip", ip, auth.max_failures_per_ip)):
        count, oldest = _failures(conn, column, value, auth.login_window_min)
        if count >= limit and oldest is not None:
            wait = max(60, int((oldest + window - now).total_seconds()))
            who = "ce compte" if column == "username" else "cette adresse"
            raise TooManyRequests(
                f"Trop de tentatives de connexion échouées pour {who} ({count} en {auth.login_window_min} min). "
                f"Réessayez dans {wait // 60 + (1 if wait % 60 else 0)} min.",
                retry_after_s=wait)


def login(conn: Connection, username: str, password: str, ip: str, auth: AuthSettings) -> Principal | None:
    """Check a password login, throttled per account and per IP; every attempt is recorded.

    Returns ``None`` on a wrong identifier or password (the caller commits, so the failure counts, then
    answers without saying whether the account exists); raises ``TooManyRequests`` when throttled.
    """
    name = username.strip().lower()
    _throttle(conn, name, ip, auth)
    row = conn.execute(text("SELECT id, password_hash, role, epci_siren, active FROM accounts WHERE username = :u"),
                       {"u": name}).first()
    ok = False
    try:
        ok = _HASHER.verify(row[1] if row is not None and row[1] else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    ok = ok and row is not None and bool(row[1]) and bool(row[4])
    conn.execute(text("INSERT INTO login_attempts (username, ip, success) VALUES (:u, :ip, :s)"),
                 {"u": name, "ip": ip, "s": ok})
    if not ok or row is None:
        return None
    if _HASHER.check_needs_rehash(row[1]):
        conn.execute(text("UPDATE accounts SET password_hash = :h WHERE id = :i"),
                     {"h": _HASHER.hash(password), "i": row[0]})
    conn.execute(text("UPDATE accounts SET last_login_at = now() WHERE id = :i"), {"i": row[0]})
    return Principal(name, row[2], row[0], row[3], via="session")


# -- web sessions ----------------------------------------------------------------------------------------------
def open_session(conn: Connection, account_id: int, ip: str, hours: float) -> tuple[str, str]:
    """A new session: returns (cookie value, anti-CSRF token). Only the cookie's digest is stored."""
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute(text(
        "INSERT INTO account_sessions (id_hash, account_id, csrf_token, expires_at, ip) "
        "VALUES (:h, :a, :c, now() + make_interval(secs => :s), :ip)"),
        {"h": digest(cookie), "a": account_id, "c": csrf, "s": hours * 3600, "ip": ip})
    # Expired sessions of everyone are swept here rather than by a scheduler.
    conn.execute(text("DELETE FROM account_sessions WHERE expires_at < now()"))
    return cookie, csrf


def principal_from_session(conn: Connection, cookie: str) -> Principal | None:
    row = conn.execute(text(
        "SELECT a.id, a.username, a.role, a.epci_siren, s.csrf_token FROM account_sessions s "
        "JOIN accounts a ON a.id = s.account_id WHERE s.id_hash = :h AND s.expires_at > now() AND a.active"),
        {"h": digest(cookie)}).first()
    if row is None:
        return None
    return Principal(row[1], row[2], row[0], row[3], via="session", csrf_token=row[4])


def close_session(conn: Connection, cookie: str) -> None:
    conn.execute(text("DELETE FROM account_sessions WHERE id_hash = :h"), {"h": digest(cookie)})
