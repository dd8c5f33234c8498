"""The private PostgreSQL + PostGIS cluster of a development checkout (``geo-service db up|down|status``).

It uses Debian's PostgreSQL binaries, keeps its data in ``.pgdata/`` and listens on 127.0.0.1 and on a
socket inside the data folder. PostgreSQL refuses to run as root, so as root the cluster belongs to an
unprivileged system user (``postgres`` by default). Local connections through the socket are trusted:
only users who can enter the data folder (its owner and root) can reach that socket; TCP needs a password.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg

from geo_service.settings import ClusterSettings

POSTGIS_PACKAGE = "postgresql-15-postgis-3"
POSTGRES_PACKAGE = "postgresql-15"


class ClusterError(RuntimeError):
    """A problem with the private cluster, worded for the person at the terminal."""


@dataclass(frozen=True)
class ClusterStatus:
    running: bool
    data_dir: Path
    port: int
    pid: int | None
    message: str


def _is_root() -> bool:
    return os.geteuid() == 0


def _pg_bin_dirs() -> list[Path]:
    return sorted((Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")),
                  key=lambda p: int(p.parent.name), reverse=True)


def _postgis_installed(bin_dir: Path) -> bool:
    version = bin_dir.parent.name
    return Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists()


def _apt_install(*packages: str) -> None:
    print(f"Installation de {' '.join(packages)} avec apt-get…", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", *packages]
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False)
        if subprocess.run(install, env=env).returncode != 0:
            raise ClusterError(f"apt-get n'a pas pu installer {' '.join(packages)}")


def find_bin_dir(settings: ClusterSettings, install: bool = True) -> Path:
    """The PostgreSQL binaries to use, installing PostGIS with apt when root and it is missing."""
    if settings.bin_dir:
        return settings.bin_dir
    candidates = [d for d in _pg_bin_dirs() if _postgis_installed(d)]
    if candidates:
        return candidates[0]
    missing = [POSTGIS_PACKAGE] if _pg_bin_dirs() else [POSTGRES_PACKAGE, POSTGIS_PACKAGE]
    if not (install and _is_root()):
        raise ClusterError(
            "PostgreSQL avec PostGIS n'est pas installé. Installez-le avec :\n"
            f"    sudo apt-get install -y {' '.join(missing)}\n"
            "ou indiquez une base existante avec GEO_SERVICE_DATABASE_URL."
        )
    _apt_install(*missing)
    candidates = [d for d in _pg_bin_dirs() if _postgis_installed(d)]
    if not candidates:
        raise ClusterError("PostGIS reste introuvable après l'installation")
    return candidates[0]


class PrivateCluster:
    """One PostgreSQL cluster in a folder of the checkout."""

    def __init__(self, settings: ClusterSettings):
        self.settings = settings
        self.data_dir = settings.data_dir.absolute()
        self.port = settings.port

    # --- who runs the server -------------------------------------------------------------------
    @property
    def owner(self) -> str:
        return self.settings.system_user if _is_root() else pwd.getpwuid(os.geteuid()).pw_name

    def _as_owner(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        if _is_root():
            argv = ["runuser", "-u", self.owner, "--", *argv]
        return subprocess.run(argv, capture_output=True, text=True, **kwargs)

    def _owner_can_reach(self, path: Path) -> bool:
        if not _is_root():
            return True
        return self._as_owner(["test", "-x", str(path)]).returncode == 0

    def _real_data_dir(self) -> Path:
        """Where the cluster files live: ``.pgdata`` itself, or a folder the owner can reach.

        A checkout under a private home (e.g. /root) is not reachable by the ``postgres`` user; the
        cluster then lives under /var/lib/geo-service and ``.pgdata`` is a symbolic link to it.
        """
        if self.data_dir.is_symlink() or self.data_dir.exists():
            return self.data_dir.resolve()
        if self._owner_can_reach(self.data_dir.parent):
            return self.data_dir
        digest = hashlib.sha1(str(self.data_dir).encode()).hexdigest()[:12]
        return Path("/var/lib/geo-service/clusters") / digest

    # --- status --------------------------------------------------------------------------------
    def _pid(self) -> int | None:
        pid_file = self.data_dir / "postmaster.pid"
        try:
            return int(pid_file.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _pid_alive(self, pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except OSError as exc:
            return exc.errno == errno.EPERM
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return True
        return b"postgres" in cmdline

    def status(self) -> ClusterStatus:
        if not (self.data_dir / "PG_VERSION").exists():
            return ClusterStatus(False, self.data_dir, self.port, None,
                                 f"aucun cluster dans {self.data_dir} (lancez « geo-service db up »)")
        pid = self._pid()
        if pid and self._pid_alive(pid):
            return ClusterStatus(True, self.data_dir, self.port, pid,
                                 f"PostgreSQL tourne (pid {pid}) sur 127.0.0.1:{self.port} "
                                 f"et le socket {self.data_dir}, données dans {self.data_dir}")
        return ClusterStatus(False, self.data_dir, self.port, None,
                             f"PostgreSQL est arrêté (données dans {self.data_dir})")

    def _port_taken(self) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    # --- life cycle ----------------------------------------------------------------------------
    def _init(self, bin_dir: Path) -> None:
        real = self._real_data_dir()
        real.mkdir(parents=True, exist_ok=True)
        if real != self.data_dir:
            self.data_dir.symlink_to(real, target_is_directory=True)
            if (real / "PG_VERSION").exists():
                return  # a fresh clone at the same path finds its earlier cluster again
        if _is_root():
            shutil.chown(real, user=self.owner)
        real.chmod(0o700)
        result = self._as_owner([
            str(bin_dir / "initdb"), "-D", str(real), "--encoding=UTF8", "--locale=C.UTF-8",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--username", self.owner,
        ])
        if result.returncode != 0:
            raise ClusterError(f"initdb a échoué :\n{result.stderr.strip()}")
        with open(real / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                "\n# geo-service private cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{real}'\n"
                "shared_buffers = 256MB\n"
                "work_mem = 32MB\n"
                "maintenance_work_mem = 256MB\n"
                "max_wal_size = 2GB\n"
                "logging_collector = off\n"
            )

    def up(self) -> str:
        """Create (first time) and start the cluster, then its database with PostGIS. Idempotent."""
        bin_dir = find_bin_dir(self.settings)
        if not (self.data_dir / "PG_VERSION").exists():
            self._init(bin_dir)
        if not self.status().running:
            self._start(bin_dir)
        self._ensure_database()
        return self.status().message

    def _start(self, bin_dir: Path) -> None:
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():
            print(f"Fichier {pid_file} périmé (aucun serveur ne tourne) : supprimé.", flush=True)
            pid_file.unlink()
        if self._port_taken():
            raise ClusterError(
                f"le port {self.port} de 127.0.0.1 est déjà utilisé par un autre programme ; "
                "choisissez-en un autre avec GEO_SERVICE_CLUSTER__PORT=…"
            )
        log = self.data_dir / "server.log"
        result = self._as_owner([
            str(bin_dir / "pg_ctl"), "-D", str(self.data_dir.resolve()), "-l", str(log.resolve()),
            "-o", f"-p {self.port}", "-w", "-t", "60", "start",
        ])
        if result.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-10:] if log.exists() else []
            raise ClusterError("PostgreSQL n'a pas démarré :\n" + "\n".join(tail or [result.stderr]))

    def start(self) -> str:
        """Start an existing cluster (a standby: ``up`` would try to create its database on a read-only server)."""
        if not self.status().running:
            self._start(find_bin_dir(self.settings, install=False))
        return self.status().message

    def make_standby(self, data_dir: Path, port: int) -> PrivateCluster:
        """A hot standby of this running cluster in ``data_dir`` (``pg_basebackup -R``: streaming replication),
        listening on ``port``; not started. Local only: it replicates through this cluster's socket, which
        trusts its owner alone (initdb's ``local replication`` line), never over TCP."""
        bin_dir = find_bin_dir(self.settings, install=False)
        data_dir = data_dir.absolute()
        data_dir.mkdir(parents=True, exist_ok=False)
        if _is_root():
            shutil.chown(data_dir, user=self.owner)
        data_dir.chmod(0o700)
        result = self._as_owner([str(bin_dir / "pg_basebackup"), "-h", str(self.data_dir.resolve()),
                                 "-p", str(self.port), "-U", self.owner, "-D", str(data_dir), "-R",
                                 "-X", "stream", "-c", "fast"])
        if result.returncode != 0:
            raise ClusterError(f"pg_basebackup a échoué :\n{result.stderr.strip()}")
        # Its own socket folder (the copied configuration names the primary's); the last line read wins.
        with open(data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:  # stays the owner's file
            conf.write(f"\n# hot standby of {self.data_dir}\nunix_socket_directories = '{data_dir}'\n")
        standby = ClusterSettings(**{**self.settings.model_dump(), "data_dir": data_dir, "port": port})
        return PrivateCluster(standby)

    def down(self) -> str:
        current = self.status()
        if not current.running:
            return current.message
        bin_dir = find_bin_dir(self.settings, install=False)
        result = self._as_owner([str(bin_dir / "pg_ctl"), "-D", str(self.data_dir.resolve()),
                                 "-m", "fast", "-w", "stop"])
        if result.returncode != 0:
            raise ClusterError(f"arrêt impossible : {result.stderr.strip()}")
        return "PostgreSQL arrêté"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(host=str(self.data_dir.resolve()), port=self.port, user=self.owner,
                               dbname=database, autocommit=True)

    def _ensure_database(self) -> None:
        create_database(lambda db: self.connect(db), self.settings.database)


def create_database(connect, name: str, drop_first: bool = False) -> None:
    """Create database ``name`` (if absent) with the PostGIS extension; ``connect(db)`` opens a connection."""
    with connect("postgres") as conn:
        if drop_first:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    with connect(name) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
