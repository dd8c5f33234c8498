"""The base map: presets → tile URL, attribution and CSP; the MBTiles checks; ``geo-service basemap install``;
the ``/basemap`` tile route (ETag, 304, 404, TMS rows flipped, hostile addresses). Offline: the only tiles are
those of a small MBTiles made by tests/mbtiles_maker.py."""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CLI
from fastapi.testclient import TestClient
from mbtiles_maker import make_mbtiles, png_tile
from sqlalchemy import Engine

from geo_service.main import create_app
from geo_service.services.basemap import basemap_choice, mbtiles_archive
from geo_service.services.resident import map_page
from geo_service.settings import MapSettings, Settings

IGN_HOST = "https://data.geopf.fr"


def csp(response) -> dict[str, str]:
    directives = (d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives if d[0]}


# -- presets ------------------------------------------------------------------------------------------------------
def test_ign_plan_is_the_geoplateforme_wmts_with_its_photographs():
    choice = basemap_choice.resolve(MapSettings(basemap="ign-plan"))
    plan, photo = choice.plan, choice.photo
    assert plan.url.startswith("https://data.geopf.fr/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&")
    for part in ("LAYER=GEOGRAPHICALGRIDSYSTEMS.PLANIGNV2", "STYLE=normal", "TILEMATRIXSET=PM", "FORMAT=image/png",
                 "TILEMATRIX={z}", "TILEROW={y}", "TILECOL={x}"):
        assert part in plan.url, part
    assert "LAYER=ORTHOIMAGERY.ORTHOPHOTOS&" in photo.url and "FORMAT=image/jpeg" in photo.url
    assert "IGN" in plan.attribution and "Licence Ouverte" in plan.attribution
    assert "Photographies aériennes" in photo.attribution
    assert choice.image_sources() == [IGN_HOST]  # one host for the plan and the photographs
    assert choice.problems == []


def test_osm_preset_cites_openstreetmap_and_may_name_another_server():
    choice = basemap_choice.resolve(MapSettings(basemap="osm"))
    assert choice.plan.url == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert "contributeurs d'OpenStreetMap" in choice.plan.attribution
    assert choice.photo is None and choice.image_sources() == ["https://tile.openstreetmap.org"]
    own = basemap_choice.resolve(MapSettings(basemap="osm", basemap_url="https://{s}.tuiles.example.fr/{z}/{x}/{y}.png"))
    assert own.image_sources() == ["https://*.tuiles.example.fr"]
    assert "OpenStreetMap" in own.plan.attribution


def test_a_url_alone_is_a_custom_base_map_as_before():
    choice = basemap_choice.resolve(MapSettings(basemap_url="https://tuiles.example.fr/{z}/{x}/{y}.png",
                                                basemap_attribution="Fond : Example"))
    assert choice.plan.url == "https://tuiles.example.fr/{z}/{x}/{y}.png"
    assert choice.plan.attribution == "Fond : Example" and choice.photo is None
    assert basemap_choice.resolve(MapSettings(basemap="custom")).problems  # custom needs its URL


def test_none_and_a_missing_self_hosted_file_ask_nothing_outside(tmp_path: Path):
    for settings in (MapSettings(basemap="none"), MapSettings(basemap="self-hosted", basemap_dir=tmp_path)):
        choice = basemap_choice.resolve(settings)
        assert choice.plan is None and choice.photo is None and choice.image_sources() == []
    missing = basemap_choice.resolve(MapSettings(basemap="self-hosted", basemap_dir=tmp_path))
    assert "introuvable" in missing.problems[0]
    assert any("production sans fond de carte" in w for w in basemap_choice.start_up_warnings(missing, "production"))
    assert not any("production" in w for w in basemap_choice.start_up_warnings(missing, "development"))


def test_the_default_depends_on_the_mode():
    # Tests never leave the machine; a developer and a deployment see the IGN Plan unless they chose otherwise.
    assert Settings(mode="test").map.basemap == "none"
    assert Settings(mode="development").map.basemap == "ign-plan"
    assert Settings(mode="development", map=MapSettings(basemap="osm")).map.basemap == "osm"
    kept = Settings(mode="development", map=MapSettings(basemap_url="https://t.example.fr/{z}/{x}/{y}.png"))
    assert basemap_choice.resolve(kept.map).plan.url == "https://t.example.fr/{z}/{x}/{y}.png"


def test_production_without_a_base_map_warns_at_start_up(settings: Settings, caplog):
    production = settings.model_copy(update={"mode": "production", "secret_key": "s" * 32,
                                             "public_base_url": "https://carto.example.fr",
                                             "map": MapSettings(basemap="none")})
    with caplog.at_level(logging.WARNING, logger="geo_service"):
        create_app(production)
    assert any("production sans fond de carte" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="geo_service"):
        create_app(production.model_copy(update={"map": MapSettings(basemap="ign-plan")}))
    assert not caplog.records


def test_the_csp_allows_the_configured_tile_host_only(settings: Settings, loaded_boundaries: Engine, tmp_path: Path):
    cases = {"ign-plan": f"'self' data: {IGN_HOST}", "osm": "'self' data: https://tile.openstreetmap.org",
             "none": "'self' data:", "self-hosted": "'self' data:"}
    for preset, images in cases.items():
        app = create_app(settings.model_copy(update={"map": MapSettings(basemap=preset, basemap_dir=tmp_path)}))
        with TestClient(app) as client:
            for path in ("/map", "/map/embed", "/admin/login"):
                policy = csp(client.get(path))
                assert policy["img-src"] == images, (preset, path)
                assert policy["connect-src"] == "'self'", (preset, path)


# -- the MBTiles file -------------------------------------------------------------------------------------------
LOT = (1.0, 44.2, 2.2, 45.05)  # west, south, east, north: about the Lot


@pytest.fixture
def lot_mbtiles(tmp_path: Path) -> tuple[Path, dict]:
    path = tmp_path / "lot.mbtiles"
    return path, make_mbtiles(path, LOT)


def test_a_valid_file_is_described(lot_mbtiles):
    path, tiles = lot_mbtiles
    info = mbtiles_archive.read_info(path)
    assert (info.format, info.min_zoom, info.max_zoom, info.tile_count) == ("png", 8, 10, len(tiles))
    assert info.bounds == pytest.approx(LOT) and info.attribution == "Fond de test © Lot numérique"
    mbtiles_archive.check_covers(info, LOT)
    with pytest.raises(mbtiles_archive.MbtilesError, match="ne couvre pas"):
        mbtiles_archive.check_covers(info, (0.5, 44.0, 2.5, 45.5))


def test_bounds_come_from_the_tiles_when_the_metadata_has_none(lot_mbtiles):
    path, _ = lot_mbtiles
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM metadata WHERE name = 'bounds'")
    west, south, east, north = mbtiles_archive.read_info(path).bounds
    assert west <= LOT[0] and south <= LOT[1] and east >= LOT[2] and north >= LOT[3]
    assert east - west < 2 and north - south < 1.5  # the z10 tiles' extent, not the z8 ones nor the world


@pytest.mark.parametrize(("spoil", "message"), [
    ("DROP TABLE metadata", "metadata"),
    ("DROP TABLE tiles", "tiles"),
    ("UPDATE metadata SET value = 'gif' WHERE name = 'format'", "format de tuiles « gif »"),
    ("DELETE FROM metadata WHERE name = 'format'", "(absent)"),
    ("DELETE FROM tiles", "aucune tuile"),
    ("UPDATE metadata SET value = '1,2,x' WHERE name = 'bounds'", "bounds"),
    ("UPDATE metadata SET value = '10,50,1,40' WHERE name = 'bounds'", "bounds"),
    ("UPDATE tiles SET zoom_level = 'huit' WHERE zoom_level = 8", "niveaux de zoom"),
    ("UPDATE tiles SET zoom_level = 40 WHERE zoom_level = 10", "niveaux de zoom"),
])
def test_files_that_are_not_usable_mbtiles_are_refused(lot_mbtiles, spoil: str, message: str):
    path, _ = lot_mbtiles
    with sqlite3.connect(path) as db:
        db.execute(spoil)
    with pytest.raises(mbtiles_archive.MbtilesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        mbtiles_archive.read_info(path)


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path):
    junk = tmp_path / "faux.mbtiles"
    junk.write_bytes(b"PK\x03\x04 pas une base SQLite" * 100)
    with pytest.raises(mbtiles_archive.MbtilesError, match="pas une base MBTiles"):
        mbtiles_archive.read_info(junk)
    with pytest.raises(mbtiles_archive.MbtilesError, match="introuvable"):
        mbtiles_archive.read_info(tmp_path / "absent.mbtiles")
    assert not (tmp_path / "absent.mbtiles").exists()  # opened read-only: nothing created


def test_rows_are_flipped_between_xyz_and_tms(lot_mbtiles):
    path, tiles = lot_mbtiles
    for (z, x, y), data in tiles.items():
        assert mbtiles_archive.read_tile(path, z, x, y) == data
    assert mbtiles_archive.flip_row(8, 92) == 163 and mbtiles_archive.flip_row(0, 0) == 0


# -- the command line -------------------------------------------------------------------------------------------
def cli(settings: Settings, basemap_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url, "GEO_SERVICE_MODE": "test",
           "GEO_SERVICE_MAP__BASEMAP_DIR": str(basemap_dir)}
    return subprocess.run([CLI, "basemap", *args], capture_output=True, text=True, env=env, timeout=120)


def territory_box(engine: Engine, registry) -> tuple[float, float, float, float]:
    boundaries = [layer for layer in registry if layer.kind == "base" and layer.geometry in map_page.POLYGONS]
    with engine.connect() as conn:
        (south, west), (north, east) = map_page.territory_bounds(conn, boundaries)
    return west, south, east, north


def test_install_checks_the_file_and_its_cover_then_copies_it(settings: Settings, loaded_boundaries: Engine,
                                                            registry, tmp_path: Path):
    west, south, east, north = territory_box(loaded_boundaries, registry)
    source = tmp_path / "territoire.mbtiles"
    tiles = make_mbtiles(source, (west - 0.05, south - 0.05, east + 0.05, north + 0.05))
    target_dir = tmp_path / "fonds"

    described = cli(settings, target_dir, "info", str(source))
    assert described.returncode == 0, described.stderr
    assert "Format des tuiles : png" in described.stdout and "Niveaux de zoom : 8 à 10" in described.stdout

    small = tmp_path / "cahors.mbtiles"
    make_mbtiles(small, (1.40, 44.40, 1.50, 44.50))
    refused = cli(settings, target_dir, "install", str(small))
    assert refused.returncode == 1 and "ne couvre pas le territoire" in refused.stderr
    assert not (target_dir / "plan.mbtiles").exists()

    junk = tmp_path / "faux.mbtiles"
    junk.write_text("ceci n'est pas une base")
    refused = cli(settings, target_dir, "install", str(junk))
    assert refused.returncode == 1 and "pas une base MBTiles" in refused.stderr and "Traceback" not in refused.stderr

    installed = cli(settings, target_dir, "install", str(source))
    assert installed.returncode == 0, installed.stderr
    assert "GEO_SERVICE_MAP__BASEMAP=self-hosted" in installed.stdout
    copy = target_dir / "plan.mbtiles"
    assert copy.read_bytes() == source.read_bytes()
    assert mbtiles_archive.read_info(copy).tile_count == len(tiles)
    assert [p.name for p in target_dir.iterdir()] == ["plan.mbtiles"]  # no temporary file left

    photo = cli(settings, target_dir, "install", "--photo", "--skip-territory-check", str(small))
    assert photo.returncode == 0, photo.stderr
    assert (target_dir / "photo.mbtiles").is_file()


# -- the tile route -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hosted(settings: Settings, loaded_boundaries: Engine, tmp_path_factory) -> Iterator[tuple[TestClient, dict]]:
    folder = tmp_path_factory.mktemp("fonds")
    tiles = make_mbtiles(folder / "plan.mbtiles", LOT)
    app = create_app(settings.model_copy(update={"map": MapSettings(basemap="self-hosted", basemap_dir=folder)}))
    with TestClient(app) as client:
        yield client, tiles


def test_hosted_tiles_are_served_with_their_rows_flipped(hosted):
    client, tiles = hosted
    for (z, x, y), data in tiles.items():
        response = client.get(f"/basemap/plan/{z}/{x}/{y}.png")
        assert response.status_code == 200, (z, x, y, response.text)
        assert response.content == data  # the tile of that address, not the one mirrored north-south
        assert response.headers["content-type"] == "image/png"
    assert png_tile((1, 2, 3)) != png_tile((1, 2, 4))  # the tiles can be told apart


def test_hosted_tiles_revalidate_with_their_etag(hosted):
    client, tiles = hosted
    z, x, y = next(iter(tiles))
    first = client.get(f"/basemap/plan/{z}/{x}/{y}.png")
    assert first.headers["cache-control"].startswith("public, max-age=")
    again = client.get(f"/basemap/plan/{z}/{x}/{y}.png", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    other = client.get(f"/basemap/plan/{z}/{x + 1}/{y}.png")
    assert other.headers["etag"] != first.headers["etag"]


@pytest.mark.parametrize(("path", "status"), [
    ("/basemap/plan/8/0/0.png", 404),  # in the grid, not in the file
    ("/basemap/plan/12/2090/1500.png", 404),  # a zoom the file does not hold
    ("/basemap/plan/8/128/92.jpg", 404),  # not the file's format
    ("/basemap/photo/8/128/92.png", 404),  # no photographs installed
    ("/basemap/satellite/8/128/92.png", 404),
    ("/basemap/plan/8/256/92.png", 404),  # outside the grid of zoom 8
    ("/basemap/plan/31/0/0.png", 404),
    ("/basemap/plan/abc/1/1.png", 400),
    ("/basemap/plan/8/-1/92.png", 400),
    ("/basemap/plan/8/1e2/92.png", 400),
    ("/basemap/plan/8/128/92.5.png", 400),
    ("/basemap/plan/8/128/%EF%BC%99.png", 400),  # a full-width digit
    ("/basemap/plan/8/99999999999999999999/92.png", 400),
    ("/basemap/plan/8/128/92.png%00", 404),
    ("/basemap/..%2F..%2Fetc/8/128/92.png", 404),
    ("/basemap/plan/8/128/92.png?x=%27%3B--", 200),  # unknown query parameters are ignored
])
def test_hostile_or_missing_tiles_get_a_french_4xx(hosted, path: str, status: int):
    client, _ = hosted
    response = client.get(path)
    assert response.status_code == status, (path, response.text)
    if status >= 400 and response.headers["content-type"].startswith("application/problem+json"):
        assert response.json()["detail"]


def test_no_tiles_are_served_when_the_base_map_is_not_self_hosted(settings: Settings, loaded_boundaries: Engine,
                                                                  tmp_path: Path):
    make_mbtiles(tmp_path / "plan.mbtiles", LOT)  # installed, but not chosen: not served
    for preset in ("none", "ign-plan"):
        app = create_app(settings.model_copy(update={"map": MapSettings(basemap=preset, basemap_dir=tmp_path)}))
        with TestClient(app) as client:
            response = client.get("/basemap/plan/8/128/92.png")
            assert response.status_code == 404 and "Pas de fond de carte hébergé" in response.json()["detail"]


def test_pages_draw_the_hosted_plan_and_name_its_source(hosted):
    client, _ = hosted
    page = client.get("/map").text
    assert "/basemap/plan/{z}/{x}/{y}.png" in page and "Fond de test © Lot numérique" in page
    assert "data.geopf.fr" not in page and "openstreetmap" not in page
    login = client.get("/admin/login").text
    assert "/basemap/plan/{z}/{x}/{y}.png" in login  # the admin frame carries it for the editor and the queues
