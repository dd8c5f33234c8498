"""QGIS as a client, with QGIS itself: the service's project opened headless, its layers read, a feature created,
moved and deleted through QGIS's own editing API; and the styles (SLD 1.0/1.1, QML) every client can fetch.

QGIS 3.40 runs in the Debian 13 root of ``make qgis-root`` (``tests/.qgis-root``, through ``chroot``: same network,
so it reaches the service this module starts on 127.0.0.1). Debian 12's QGIS 3.22 on the machine itself is used
when there is no root (it reads, but its OGC API – Features provider cannot edit: the editing tests then skip).
Without either, the module skips, and fails under CI.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import httpx
import pytest
from browser_support import serve_app
from factories import EDIT_SOURCE, convention, epci_points, wipe_editing
from sqlalchemy import Engine, text

from geo_service.layers import LayerRegistry
from geo_service.main import create_app
from geo_service.services.editing import accounts, conventions
from geo_service.services.qgis import layer_styles, qgis_project
from geo_service.settings import Settings

QGIS_ROOT = Path(__file__).parent / ".qgis-root"
SCRIPTS = Path(__file__).parent / "qgis_scripts"
RESULT_MARK = "QGIS-RESULT:"
CLI = str(Path(sys.executable).parent / "geo-service")
# A box in Cahors (lon/lat): every kind of layer has features there in the demo territory.
BBOX = (1.40, 44.42, 1.48, 44.47)
SLD_NS = {"sld": layer_styles.SLD_NS, "se": layer_styles.SE_NS, "ogc": layer_styles.OGC_NS}
_n = itertools.count(1)
WIFI = "wifi_hotspots_collection"  # the Wi-Fi layer in the project (qgis_project.layer_id)


# -- running QGIS -------------------------------------------------------------------------------------------------
class Qgis:
    """QGIS's Python, in the Debian 13 root (chroot) or on the machine; scripts and files exchanged in a folder
    both sides see (``host`` here, ``inside`` for QGIS)."""

    def __init__(self, chroot: Path | None):
        self.chroot = chroot
        base = (chroot / "tmp") if chroot else Path("/tmp")
        self.host = base / f"geo-service-qgis-{uuid.uuid4().hex[:8]}"
        self.inside = Path("/tmp") / self.host.name
        shutil.copytree(SCRIPTS, self.host)
        self.version = self.run("qgis_version.py", {})["qgis_version"]

    @property
    def can_edit(self) -> bool:
        """OGC API – Features editing arrived in QGIS 3.32."""
        major, minor = (int(part) for part in self.version.split(".")[:2])
        return (major, minor) >= (3, 32)

    def put(self, name: str, content: bytes) -> str:
        """A file for QGIS; its path as QGIS sees it."""
        (self.host / name).write_bytes(content)
        return str(self.inside / name)

    def run(self, script: str, arguments: dict) -> dict:
        profile = self.inside / f"profil-{next(_n)}"
        env = ["env", "QT_QPA_PLATFORM=offscreen", f"HOME={profile}", f"QGIS_AUTH_DB_DIR_PATH={profile}/",
               f"XDG_RUNTIME_DIR={profile}", f"PYTHONPATH={self.inside}", "LANG=C.UTF-8"]
        command = [*(["chroot", str(self.chroot)] if self.chroot else []), *env, "python3",
                   str(self.inside / script)]
        (self.host / profile.name).mkdir(mode=0o700)
        done = subprocess.run(command, input=json.dumps(arguments), capture_output=True, text=True, timeout=600)
        for line in done.stdout.splitlines():
            if line.startswith(RESULT_MARK):
                return json.loads(line[len(RESULT_MARK):])
        pytest.fail(f"QGIS n'a pas rendu de résultat ({script}, code {done.returncode}) :\n{done.stderr[-3000:]}")
        raise AssertionError  # not reached

    def close(self) -> None:
        shutil.rmtree(self.host, ignore_errors=True)


def _host_has_qgis() -> bool:
    return subprocess.run(["python3", "-c", "import qgis.core"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def qgis() -> Iterator[Qgis]:
    if (QGIS_ROOT / ".geo-service-qgis-root").exists() and os.geteuid() == 0:
        runner = Qgis(QGIS_ROOT)
    elif _host_has_qgis():
        runner = Qgis(None)
    else:
        message = "QGIS absent : « make qgis-root » (en root) construit la racine Debian 13 avec QGIS 3.40"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield runner
    runner.close()


def qgis_editing(qgis: Qgis) -> None:
    if not qgis.can_edit:
        message = f"QGIS {qgis.version} ne modifie pas en OGC API – Features (3.32 ou plus) : « make qgis-root »"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# -- the service and its accounts ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world(demo_territory, engine: Engine, registry: LayerRegistry) -> Iterator[dict]:
    with engine.begin() as conn:
        wipe_editing(conn, registry)
        points = epci_points(conn)
        accounts.create_account(conn, "sig-qgis", "editor", password=None)
        accounts.create_account(conn, "epci-qgis", "epci_contributor", password=None, epci_siren=points.mine)
        convention(conn, registry, points.mine, "ascendante", ["wifi_hotspots"],
                   starts_on=conventions.local_day() - timedelta(days=1), reference="CONV-QGIS")
        tokens = {"editor": accounts.create_token(conn, "sig-qgis", "QGIS", if_match_optional=True),
                  "contributor": accounts.create_token(conn, "epci-qgis", "QGIS", if_match_optional=True)}
    yield {"inside": points.inside, **tokens}
    with engine.begin() as conn:
        wipe_editing(conn, registry)


@pytest.fixture(scope="module")
def server(settings: Settings, world: dict) -> Iterator[str]:
    with serve_app(create_app(settings)) as url:
        yield url


def api_count(server: str, layer_id: str, whole: bool = False) -> int:
    """numberMatched of the API, in the test's box (or in the whole collection)."""
    answer = httpx.get(f"{server}/ogc/collections/{layer_id}/items",
                       params={"limit": 1} if whole else {"bbox": ",".join(map(str, BBOX)), "limit": 1})
    assert answer.status_code == 200, answer.text
    return answer.json()["numberMatched"]


def project_document(archive: bytes) -> ET.Element:
    with zipfile.ZipFile(io.BytesIO(archive)) as qgz:
        assert qgz.namelist() == ["lot-numerique.qgs"]
        return ET.fromstring(qgz.read("lot-numerique.qgs"))


# -- styles: every client ------------------------------------------------------------------------------------------
def test_collection_links_its_styles_and_they_follow_the_layer_file(server: str, registry: LayerRegistry):
    layer = registry.get("wifi_hotspots")
    doc = httpx.get(f"{server}/ogc/collections/wifi_hotspots").json()
    described = [link for link in doc["links"] if link["rel"] == "describedby"]
    assert [link["type"] for link in described] == ["application/vnd.ogc.sld+xml;version=1.0"]
    styles = httpx.get(next(link["href"] for link in doc["links"] if link["rel"].endswith("/styles"))).json()
    assert styles["default"] == "carte"
    hrefs = {link["href"].rsplit("=", 1)[1]: link["href"] for link in styles["styles"][0]["links"]}
    assert set(hrefs) == {"sld10", "sld11", "qml"}

    sld10 = httpx.get(described[0]["href"])
    assert sld10.status_code == 200 and sld10.headers["content-type"].startswith("application/vnd.ogc.sld+xml")
    rules = ET.fromstring(sld10.content).findall(".//sld:Rule", SLD_NS)
    filtered = {rule.find(".//ogc:Literal", SLD_NS).text: rule.find(".//sld:CssParameter[@name='fill']", SLD_NS).text
                for rule in rules if rule.find(".//ogc:Literal", SLD_NS) is not None}
    assert filtered == {c.value: c.color for c in layer.field("statut").codes}
    titles = [rule.find("sld:Title", SLD_NS).text for rule in rules if rule.find("sld:Title", SLD_NS) is not None]
    assert titles[:3] == ["En service", "Installation programmée", "Hors service"]
    assert any(rule.find("sld:ElseFilter", SLD_NS) is not None for rule in rules)
    label = ET.fromstring(sld10.content).find(".//sld:TextSymbolizer/sld:Label/ogc:PropertyName", SLD_NS)
    assert label is not None and label.text == "lieu"

    sld11 = ET.fromstring(httpx.get(hrefs["sld11"]).content)
    assert sld11.get("version") == "1.1.0"
    assert [p.text for p in sld11.findall(".//se:Fill/se:SvgParameter[@name='fill']", SLD_NS)][:3] == \
        ["#1f78b4", "#8c8c8c", "#b2182b"]
    qml = ET.fromstring(httpx.get(hrefs["qml"]).content)
    assert qml.find("renderer-v2").get("attr") == "statut"
    assert {a.get("field"): a.get("name") for a in qml.iter("alias")}["rayon_m"] == "Portée du signal (m)"


def test_polygon_and_single_colour_styles(server: str, registry: LayerRegistry):
    communes = ET.fromstring(httpx.get(f"{server}/ogc/collections/communes/styles/carte?f=sld11").content)
    symbolizer = communes.find(".//se:PolygonSymbolizer", SLD_NS)
    assert symbolizer.find("se:Fill", SLD_NS) is None  # fill_opacity 0: outlines only, as on the map
    assert symbolizer.find("se:Stroke/se:SvgParameter[@name='stroke']", SLD_NS).text == "#4a4a4a"
    assert communes.find(".//ogc:Filter", SLD_NS) is None
    zones = ET.fromstring(httpx.get(f"{server}/ogc/collections/white_zones/styles/carte").content)
    opacities = {p.text for p in zones.findall(".//sld:CssParameter[@name='fill-opacity']", SLD_NS)}
    assert opacities == {"0.35"}


@pytest.mark.parametrize(("path", "status"), [
    ("/ogc/collections/wifi_hotspots/styles/carte?f=svg", 400),
    ("/ogc/collections/wifi_hotspots/styles/autre", 404),
    ("/ogc/collections/inconnue/styles", 404),
    ("/ogc/collections/inconnue/styles/carte", 404),
])
def test_bad_style_requests_are_refused_in_french(server: str, path: str, status: int):
    answer = httpx.get(server + path)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["detail"]


def test_styles_answer_304_when_unchanged(server: str):
    url = f"{server}/ogc/collections/mobile_masts/styles/carte?f=qml"
    first = httpx.get(url)
    again = httpx.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert (first.status_code, again.status_code) == (200, 304)


# -- the project ---------------------------------------------------------------------------------------------------
def test_project_file_holds_no_secret_and_names_the_service(server: str, world: dict, registry: LayerRegistry):
    answer = httpx.get(f"{server}/qgis/lot-numerique-edition.qgz",
                       headers={"Authorization": f"Bearer {world['editor']}"})
    assert answer.status_code == 200
    assert answer.headers["content-disposition"] == 'attachment; filename="lot-numerique-edition.qgz"'
    document = project_document(answer.content)
    sources = [element.text for element in document.iter("datasource")]
    public = [layer for layer in registry if layer.is_public]
    assert len([s for s in sources if "typename=" in s]) == len(public)
    assert all(f"url='{server}/ogc'" in s and f"authcfg='{qgis_project.AUTHCFG_ID}'" in s
               for s in sources if "typename=" in s)
    assert world["editor"] not in answer.content.decode("latin-1")
    reading = project_document(httpx.get(f"{server}/qgis/lot-numerique.qgz").content)
    assert not any("authcfg" in (e.text or "") for e in reading.iter("datasource"))


def test_cli_writes_the_project_on_the_public_address(settings: Settings, demo_territory, tmp_path: Path):
    env = {**os.environ, "GEO_SERVICE_DATABASE_URL": settings.database_url,
           "GEO_SERVICE_PUBLIC_BASE_URL": "https://carto.lot.fr"}
    out = tmp_path / "projet.qgz"
    done = subprocess.run([CLI, "qgis", "project", "--editing", "-o", str(out)], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "lotnum1" in done.stdout
    sources = [e.text for e in project_document(out.read_bytes()).iter("datasource") if "typename=" in e.text]
    assert sources and all("url='https://carto.lot.fr/ogc'" in s for s in sources)
    refused = subprocess.run([CLI, "qgis", "project", "-o", str(tmp_path / "projet.txt")], capture_output=True,
                             text=True, env=env, timeout=120)
    assert refused.returncode == 1 and "Erreur" in refused.stderr and "Traceback" not in refused.stderr


def test_qgis_opens_the_project_styled_as_the_map(server: str, qgis: Qgis, registry: LayerRegistry):
    project = qgis.put("lot-numerique.qgz", httpx.get(f"{server}/qgis/lot-numerique.qgz").content)
    result = qgis.run("read_project.py", {"project": project, "bbox": list(BBOX)})
    assert result["read"] is True
    assert result["crs"] == "EPSG:2154"
    xmin, ymin, xmax, ymax = result["extent"]
    assert result["extent_crs"] == "EPSG:2154"
    assert 500_000 < xmin < xmax < 700_000 and 6_300_000 < ymin < ymax < 6_500_000  # the Lot in Lambert-93
    public = [layer for layer in registry if layer.is_public]
    layers = result["layers"]
    ids = {layer.id: qgis_project.layer_id(layer) for layer in public}
    assert set(layers) == {*ids.values(), "premises_tuiles"}
    assert {name: set(members) for name, members in result["groups"].items()} == {
        group: {ids[la.id] for la in public if la.group == group}
        | ({"premises_tuiles"} if group == "Fibre optique (FTTH)" else set())
        for group in {la.group for la in public}}
    for layer in public:
        got = layers[ids[layer.id]]
        assert got["valid"] is True, (layer.id, got)
        assert got["provider"] == "OAPIF"
        if api_count(server, layer.id, whole=True) == 0:
            # An empty collection: QGIS learns the geometry type from the first features, so it opens without one.
            continue
        assert got["count_in_bbox"] == api_count(server, layer.id), layer.id
        aliases = {f.name: layer_styles.field_alias(f) for f in layer.public_fields()}
        assert {k: v for k, v in got["aliases"].items() if k in aliases} == aliases, layer.id
        assert set(got["value_maps"]) == {f.name for f in layer_styles.value_map_fields(layer)}, layer.id
        for field in layer_styles.value_map_fields(layer):
            pairs = {label: value for entry in got["value_maps"][field.name] for label, value in entry.items()}
            assert pairs == {c.label: str(c.value) for c in field.codes}, (layer.id, field.name)
        assert got["labels"] == (layer.label_field is not None)
        if layer.label_field:
            assert got["label_field"] == layer.label_field
        if layer.style.by:
            assert got["renderer"] == "categorizedSymbol" and got["attribute"] == layer.style.by
            expected = [(str(c.value), c.label, (c.color or layer.style.color).lower())
                        for c in layer.field(layer.style.by).codes]
            assert [tuple(c) for c in got["categories"][:-1]] == expected, layer.id
        else:
            assert got["renderer"] == "singleSymbol" and got["colour"] == layer.style.color.lower()
    assert sum(layers[ids[la.id]].get("count_in_bbox", 0) for la in public) > 100  # the box is not empty
    # Premises: features from 1:25,000, the vector tiles above.
    tiles, premises = layers["premises_tuiles"], layers[ids["premises"]]
    assert tiles["valid"] is True and tiles["provider"] == "xyzvectortiles"
    assert "/ogc/collections/premises/tiles/WebMercatorQuad/" in tiles["source"]
    assert [s[2] for s in tiles["styles"]][:2] == ["#8c8c8c", "#a6761d"]
    assert premises["scale_based"] and premises["min_scale"] == qgis_project.PREMISES_FEATURES_MIN_SCALE


def test_a_created_feature_s_location_reaches_the_client_capitalised(server: str, world: dict):
    """QGIS looks for ``Location`` with that exact case (uvicorn's httptools writes names in lower case)."""
    import http.client
    from urllib.parse import urlsplit

    lon, lat = world["inside"]
    body = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": _borne(f"casse-{uuid.uuid4().hex[:8]}")}
    address = urlsplit(server)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    connection.request("POST", "/ogc/collections/wifi_hotspots/items", json.dumps(body),
                       {"Authorization": f"Bearer {world['editor']}", "Content-Type": "application/geo+json"})
    answer = connection.getresponse()
    names = [name for name, _ in answer.getheaders()]
    connection.close()
    assert answer.status == 201
    assert "Location" in names


def test_qgis_loads_the_served_styles(server: str, qgis: Qgis, registry: LayerRegistry):
    """« Charger le style » in QGIS with the files the service serves: the map's classes and colours come back."""
    styles = {}
    for layer_id, geometry in (("wifi_hotspots", "Point"), ("white_zones", "MultiPolygon")):
        layer = registry.get(layer_id)
        for f in ("qml", "sld10", "sld11"):
            body = httpx.get(f"{server}/ogc/collections/{layer_id}/styles/carte", params={"f": f}).content
            styles[f"{layer_id}.{f}"] = {"path": qgis.put(f"{layer_id}-{f}.xml", body), "geometry": geometry,
                                         "format": "qml" if f == "qml" else "sld",
                                         "fields": [field.name for field in layer.public_fields()]}
    result = qgis.run("load_styles.py", {"styles": styles})
    for layer_id in ("wifi_hotspots", "white_zones"):
        layer = registry.get(layer_id)
        colours = [(c.color or layer.style.color).lower() for c in layer.field(layer.style.by).codes]
        labels = [c.label for c in layer.field(layer.style.by).codes]
        qml = result[f"{layer_id}.qml"]
        assert qml["ok"] and qml["renderer"] == "categorizedSymbol" and qml["attribute"] == layer.style.by
        assert [c[2] for c in qml["classes"][:-1]] == colours and [c[1] for c in qml["classes"][:-1]] == labels
        assert qml["labels"] == (layer.label_field is not None)
        for f in ("sld10", "sld11"):
            sld = result[f"{layer_id}.{f}"]
            assert sld["ok"], sld
            assert sld["renderer"] == "RuleRenderer", sld
            assert [c[2] for c in sld["classes"]][:len(colours)] == colours, (f, sld)
            assert [c[1] for c in sld["classes"]][:len(labels)] == labels, (f, sld)


def _history(engine: Engine, key: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT h.action, h.actor, ST_X(h.geom_after), ST_Y(h.geom_after) FROM feature_history h "
            "WHERE h.layer_id = 'wifi_hotspots' AND h.fid = (SELECT fid FROM wifi_hotspots WHERE borne_id = :k) "
            "ORDER BY h.id"), {"k": key}).all()


def _borne(key: str) -> dict:
    return {"borne_id": key, "code_insee": "46042", "lieu": "Mairie", "ssid": "WIFI public lotois",
            "statut": "installee", "source": EDIT_SOURCE}


def test_qgis_creates_moves_and_deletes_a_feature_with_its_history(server: str, qgis: Qgis, world: dict,
                                                                   engine: Engine):
    qgis_editing(qgis)
    project = qgis.put("edition.qgz", httpx.get(f"{server}/qgis/lot-numerique-edition.qgz").content)
    lon, lat = world["inside"]
    key = f"qgis-{uuid.uuid4().hex[:8]}"
    result = qgis.run("edit_layer.py", {
        "project": project, "authcfg": qgis_project.AUTHCFG_ID, "token": world["editor"], "layer": WIFI,
        "key_field": "borne_id", "properties": _borne(key), "at": [lon, lat], "move_to": [lon + 0.001, lat + 0.001]})
    assert result["valid"] and result["auth_stored"]
    assert result["can"] == {"add": True, "move": True, "change": True, "delete": True}
    assert result["create"]["committed"] is True, result
    assert result["found_after_create"] is True
    assert result["move"]["committed"] is True, result
    assert result["position_after_move"] == pytest.approx([lon + 0.001, lat + 0.001], abs=1e-6)
    assert result["delete"]["committed"] is True, result
    history = _history(engine, key)
    assert [(action, actor) for action, actor, _, _ in history] == [
        ("create", "sig-qgis"), ("update", "sig-qgis"), ("delete", "sig-qgis")]
    # QGIS writes GeoJSON coordinates with 6 decimals (about 10 cm).
    assert history[0][2:] == pytest.approx((lon, lat), abs=1e-6)
    assert history[1][2:] == pytest.approx((lon + 0.001, lat + 0.001), abs=1e-6)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT deleted_at IS NOT NULL FROM wifi_hotspots WHERE borne_id = :k"),
                            {"k": key}).scalar() is True


def test_an_epci_contributor_proposes_from_qgis(server: str, qgis: Qgis, world: dict, engine: Engine):
    """Under a convention, a contributor's feature created in QGIS is a proposal waiting for validation: it is
    not published, and the validation queue holds it with its author and EPCI."""
    qgis_editing(qgis)
    project = qgis.put("edition-epci.qgz", httpx.get(f"{server}/qgis/lot-numerique-edition.qgz").content)
    key = f"qgis-epci-{uuid.uuid4().hex[:8]}"
    result = qgis.run("edit_layer.py", {
        "project": project, "authcfg": qgis_project.AUTHCFG_ID, "token": world["contributor"],
        "layer": WIFI, "key_field": "borne_id", "properties": _borne(key), "at": list(world["inside"]),
        "steps": ["create"]})
    assert result["can"]["add"] is True
    with engine.connect() as conn:
        proposal = conn.execute(text(
            "SELECT kind, status, submitted_by, properties->>'borne_id' FROM change_requests "
            "WHERE properties->>'borne_id' = :k"), {"k": key}).all()
        published = conn.execute(text("SELECT count(*) FROM wifi_hotspots WHERE borne_id = :k "
                                      "AND validation_state = 'published'"), {"k": key}).scalar()
    assert proposal == [("create", "pending", "epci-qgis", key)]
    assert published == 0
    # What QGIS tells the contributor: the commit went through (202 Accepted), the feature waits for validation.
    assert result["create"]["committed"] is True, result
