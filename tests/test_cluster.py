"""The private cluster: ``db up`` twice is harmless, ``db status`` says when it is down, clear errors."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from geo_service.cluster import ClusterError, PrivateCluster
from geo_service.settings import PROJECT_ROOT, ClusterSettings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def scratch_cluster(tmp_path: Path):
    """A throw-away cluster on its own port and folder, stopped and removed afterwards."""
    cluster = PrivateCluster(ClusterSettings(data_dir=tmp_path / "pgdata", port=_free_port(), database="scratch"))
    yield cluster
    try:
        cluster.down()
    finally:
        real = cluster.data_dir.resolve()
        shutil.rmtree(real, ignore_errors=True)


def _cli(cluster: PrivateCluster, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
           "GEO_SERVICE_CLUSTER__DATA_DIR": str(cluster.data_dir),
           "GEO_SERVICE_CLUSTER__PORT": str(cluster.port),
           "GEO_SERVICE_CLUSTER__DATABASE": "scratch"}
    return subprocess.run([sys.executable, "-m", "geo_service.cli", *args], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=180)


def test_status_before_creation_and_when_down(scratch_cluster):
    result = _cli(scratch_cluster, "db", "status")
    assert result.returncode == 0
    assert "aucun cluster" in result.stdout
    assert _cli(scratch_cluster, "db", "up").returncode == 0
    down = _cli(scratch_cluster, "db", "down")
    assert down.returncode == 0 and "arrêté" in down.stdout
    status = _cli(scratch_cluster, "db", "status")
    assert "arrêté" in status.stdout and "Traceback" not in status.stderr


def test_db_up_twice_is_harmless(scratch_cluster):
    first = _cli(scratch_cluster, "db", "up")
    assert first.returncode == 0, first.stderr
    pid = scratch_cluster.status().pid
    second = _cli(scratch_cluster, "db", "up")
    assert second.returncode == 0, second.stderr
    assert scratch_cluster.status().pid == pid  # same server, not restarted
    with scratch_cluster.connect("scratch") as conn:
        assert conn.execute("SELECT postgis_lib_version()").fetchone()[0].startswith("3.")
    status = _cli(scratch_cluster, "db", "status")
    assert f"127.0.0.1:{scratch_cluster.port}" in status.stdout


def test_stale_pid_file_is_cleared(scratch_cluster):
    scratch_cluster.up()
    scratch_cluster.down()
    pid_file = scratch_cluster.data_dir / "postmaster.pid"
    dead = subprocess.Popen(["true"])
    dead.wait()
    pid_file.write_text(f"{dead.pid}\n{scratch_cluster.data_dir}\n")
    result = _cli(scratch_cluster, "db", "up")
    assert result.returncode == 0, result.stderr
    assert "périmé" in result.stdout
    assert scratch_cluster.status().running


def test_port_already_taken_gives_a_clear_message(scratch_cluster):
    scratch_cluster.up()
    scratch_cluster.down()
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", scratch_cluster.port))
        squatter.listen(1)
        with pytest.raises(ClusterError, match="déjà utilisé"):
            scratch_cluster.up()
        result = _cli(scratch_cluster, "db", "up")
    assert result.returncode == 1
    assert "déjà utilisé" in result.stderr and "Traceback" not in result.stderr
    assert not scratch_cluster.status().running
