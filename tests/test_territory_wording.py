"""Any département: the territory's name is written with its article in each form French needs, and who runs the
service (name, site, logo) is a setting. An application set for the Aveyron (12) words its pages for the Aveyron;
only the wording is checked here, so the Lot's boundaries of the test database are enough."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from geo_service.main import create_app
from geo_service.settings import OperatorSettings, Settings, TerritorySettings

AVEYRON = TerritorySettings(departement="12", name="Aveyron")
OPERATOR = OperatorSettings(name="Aveyron Numérique", url="https://numerique.example.org/",
                            logo="img/logo-operateur.svg")


@pytest.mark.parametrize("name,article,forms", [
    ("Lot", None, ("le Lot", "du Lot", "dans le Lot")),
    ("Aveyron", None, ("l'Aveyron", "de l'Aveyron", "dans l'Aveyron")),
    ("Hérault", None, ("l'Hérault", "de l'Hérault", "dans l'Hérault")),
    ("Corrèze", "la", ("la Corrèze", "de la Corrèze", "en Corrèze")),
    ("Landes", "les", ("les Landes", "des Landes", "dans les Landes")),
    ("Ardèche", "l'", ("l'Ardèche", "de l'Ardèche", "dans l'Ardèche")),
])
def test_the_name_comes_with_its_article(name: str, article: str | None, forms: tuple[str, str, str]):
    territory = TerritorySettings(name=name, article=article)
    assert (territory.with_article, territory.of_name, territory.in_name) == forms


@pytest.mark.parametrize("logo", ["../secret.svg", "img/../../x.png", "/etc/logo.svg", "https://ailleurs.example/l.svg",
                                  "logo.exe"])
def test_the_logo_is_a_file_the_service_serves(logo: str):
    with pytest.raises(ValidationError):
        OperatorSettings(logo=logo)


@pytest.fixture(scope="module")
def aveyron(settings: Settings, demo_territory) -> Iterator[TestClient]:
    with TestClient(create_app(settings.model_copy(update={"territory": AVEYRON, "operator": OPERATOR}))) as client:
        yield client


def title_of(html: str) -> str:
    return re.search(r"<title>(.*?)</title>", html, re.S).group(1).strip().replace("&#39;", "'")


def test_the_pages_name_the_aveyron_and_its_operator(aveyron: TestClient):
    titles = {path: title_of(aveyron.get(path).text) for path in
              ("/map", "/map/report", "/map/embed", "/map/embed/snippet", "/ogc?f=html", "/admin/login", "/docs")}
    assert titles["/map"] == "Services près de chez vous — carte de l'Aveyron — Aveyron Numérique"
    assert titles["/map/report"] == "Rapport près de chez vous, dans l'Aveyron — Aveyron Numérique"
    assert titles["/map/embed"] == "Carte des services numériques de l'Aveyron — Aveyron Numérique"
    assert titles["/ogc?f=html"].startswith("Données ouvertes de l'Aveyron")
    for path, title in titles.items():
        assert "Lot" not in title and "Aveyron Numérique" in title, (path, title)
    page = aveyron.get("/map").text
    header = page[page.index('<header class="site-header">'):page.index("</header>")]
    assert '<a class="site-header__org-link" href="https://numerique.example.org/"' in header
    assert '<img class="site-header__logo" src="/static/img/logo-operateur.svg" alt=""' in header
    assert "Lot" not in header
    assert 'aria-label="Carte de l&#39;Aveyron : infrastructures et services numériques"' in page


def test_the_embed_snippet_and_the_api_documents_name_the_aveyron(aveyron: TestClient):
    code = aveyron.get("/map/embed/snippet").text
    # The iframe code is escaped once as HTML, then once more inside the page's textarea.
    assert 'title=&#34;Carte des services numériques de l&amp;#x27;Aveyron — Aveyron Numérique&#34;' in code
    assert aveyron.get("/openapi.json").json()["info"]["title"] == "Aveyron Numérique — service géographique"
    assert aveyron.get("/ogc?f=json").json()["title"] == "Aveyron Numérique — OGC API – Features (Aveyron)"
    assert aveyron.get("/ogc/tiles?f=json").json()["tilesets"][0]["title"] \
        .startswith("Couches publiques de l'Aveyron")


def test_a_point_outside_is_outside_the_aveyron(aveyron: TestClient):
    answer = aveyron.get("/api/nearby", params={"lon": 2.35, "lat": 48.85})
    assert answer.status_code == 422, answer.text
    assert "hors du territoire de l'Aveyron" in answer.json()["detail"]
    assert "que les adresses de l'Aveyron" in answer.json()["detail"]


def test_the_lot_stays_the_default(settings: Settings):
    assert Settings().territory.of_name == "du Lot" and Settings().operator.name == "Lot numérique"
