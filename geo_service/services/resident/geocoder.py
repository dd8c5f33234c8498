"""Address and commune search (``/api/geocode``), over the search index built from premises, BAN addresses
and communes.

How a query is answered, the way French geocoders (addok, the BAN's) do it:
1. normalise it like the indexed text (no accents, lower case, punctuation as spaces), expand the usual
   abbreviations ("av" → "avenue", "st" → "saint"…), and take apart a leading house number ("12 bis")
   and a postcode;
2. find the streets and communes whose normalised text holds the rest, with ``pg_trgm``'s word similarity
   (``<%``, trigram GIN index on ``geocode_names.search_text``) — tolerant of small typos;
3. look the house number up in the candidate streets (``geocode_numbers``) and rank.

The index is derived data: ``refresh_search_index(conn)`` rebuilds it and must run after anything that
writes ``premises``, ``addresses`` or ``communes`` (the demo generator, the BAN and ARCEP importers, the
boundary loader).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, fields, replace
from functools import lru_cache

from sqlalchemy import Connection, text

from geo_service.errors import InvalidParameter

MAX_QUERY_LENGTH = 200
DEFAULT_LIMIT, MAX_LIMIT = 8, 20
# Word-similarity thresholds: a strict first pass, then a looser one for typos when nothing matched.
THRESHOLDS = (0.5, 0.3)
CANDIDATES = 60  # streets and communes fetched before house numbers are looked up and results ranked
PREFILTERED = 300  # prefix matches ranked by similarity (a one-letter query matches thousands)
# Two results closer than this in score are a tie: ``?address=`` then calls the answer ambiguous.
TIE = 0.02

# Abbreviations of French street types and saints' names, as people and the BAN's "type de voie" write them.
ABBREVIATIONS = {
    "av": "avenue", "ave": "avenue", "bd": "boulevard", "bld": "boulevard", "bvd": "boulevard",
    "st": "saint", "ste": "sainte", "sts": "saints", "stes": "saintes",
    "rte": "route", "chem": "chemin", "ch": "chemin", "chm": "chemin", "imp": "impasse",
    "pl": "place", "r": "rue", "all": "allee", "fg": "faubourg", "fbg": "faubourg", "qu": "quai",
    "sq": "square", "crs": "cours", "res": "residence", "ham": "hameau", "lot": None, "lt": "lotissement",
    "prom": "promenade", "esp": "esplanade", "mte": "montee", "sen": "sentier", "gde": "grande",
    "gd": "grand", "pte": "petite", "ld": "lieu dit", "lieudit": "lieu dit",
}
REPETITIONS = ("bis", "ter", "quater", "quinquies")
_NUMBER = re.compile(r"^(\d{1,5})(?:\s*(bis|ter|quater|quinquies)\b|([a-z])\b|\s([a-h])\b(?=\s))?\s*(.*)$")
_POSTCODE = re.compile(r"\b(\d{5})\b")


@dataclass(frozen=True)
class ParsedQuery:
    """A query taken apart: house number and repetition, postcode, and the words to match."""

    numero: int | None
    rep: str | None
    postcode: str | None
    words: str
    # The last word as typed when it was expanded ("sen" → "sentier"): it may be the start of another word
    # ("Sénaillac"), so the prefix search tries both.
    typed_last: str | None = None


@dataclass(frozen=True)
class GeocodeResult:
    """One answer: an address (with a number), a street, or a commune, with its point and score (0–1)."""

    id: str
    type: str  # "adresse", "voie" or "commune"
    label: str
    name: str
    numero: str | None
    nom_voie: str | None
    code_postal: str | None
    code_insee: str
    commune: str
    lon: float
    lat: float
    score: float
    source: str

    def as_dict(self) -> dict:
        # Flat values only: no need for dataclasses.asdict's recursive deep copy (a tenth of a search's time).
        return {name: getattr(self, name) for name in _RESULT_FIELDS}


_RESULT_FIELDS = tuple(f.name for f in fields(GeocodeResult))


# Pure, and called on every candidate's label (60 per search, mostly the same streets from one keystroke to the
# next): kept for the most recent values.
@lru_cache(maxsize=16384)
def normalize(value: str) -> str:
    """Lower case, no accents, punctuation as single spaces — what ``search_normalize`` does in SQL.

    >>> normalize("Saint-Céré, l’Œuvre")
    'saint cere l oeuvre'
    """
    s = value.replace("œ", "oe").replace("Œ", "OE").replace("æ", "ae").replace("Æ", "AE").replace("ß", "ss")
    s = "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def expand(words: str) -> str:
    """Replace abbreviations word by word ("av jean jaures" → "avenue jean jaures").

    >>> expand("12 av j jaures st cere")
    '12 avenue j jaures saint cere'
    """
    out = []
    for word in words.split():
        full = ABBREVIATIONS.get(word, word)
        out.append(full if full is not None else word)
    return " ".join(out)


def check_query(q: str | None) -> str:
    """The query, trimmed; empty or longer than ``MAX_QUERY_LENGTH`` raises a French ``InvalidParameter``."""
    value = (q or "").strip()
    if not value:
        raise InvalidParameter("La recherche est vide : tapez une adresse ou le nom d'une commune.", parameter="q")
    if len(value) > MAX_QUERY_LENGTH:
        raise InvalidParameter(f"La recherche dépasse {MAX_QUERY_LENGTH} caractères : raccourcissez-la.",
                               parameter="q")
    return value


def parse(q: str) -> ParsedQuery:
    """Take apart number, repetition and postcode.

    >>> parse("12 bis av de la Gare 46100 Figeac")
    ParsedQuery(numero=12, rep='bis', postcode='46100', words='avenue de la gare figeac', typed_last=None)
    >>> parse("rue du 11 novembre")
    ParsedQuery(numero=None, rep=None, postcode=None, words='rue du 11 novembre', typed_last=None)
    """
    s = normalize(q)
    postcode = None
    found = _POSTCODE.search(s)
    if found:
        postcode = found.group(1)
        s = (s[:found.start()] + s[found.end():]).strip()
    numero = rep = None
    m = _NUMBER.match(s)
    if m and m.group(5) and not m.group(5).isdigit():
        numero = int(m.group(1))
        rep = m.group(2) or m.group(3) or m.group(4)
        if rep and rep in ABBREVIATIONS:  # "12 r de la gare": "r" is "rue", not a repetition
            rep, s = None, f"{rep} {m.group(5)}"
        else:
            s = m.group(5)
    words = re.sub(r"\s+", " ", expand(s)).strip()
    typed = s.split()
    last = typed[-1] if typed and ABBREVIATIONS.get(typed[-1]) and " " not in ABBREVIATIONS[typed[-1]] else None
    return ParsedQuery(numero, rep, postcode, words, last)


# Stage 1: every word typed, the last one possibly unfinished (prefix), through the tsvector GIN index.
# The most populous communes and busiest streets come first among the matches, then similarity ranks them.
_PREFIX_SQL = """
    SELECT id, kind, name, code_insee, code_postal, nom_commune, weight, lon, lat,
           1.0::float8 AS ws, similarity(:words, search_text) AS sim
    FROM (
        SELECT id, kind, name, code_insee, code_postal, nom_commune, weight, search_text,
               ST_X(geom) AS lon, ST_Y(geom) AS lat
        FROM geocode_names
        WHERE search_vector @@ to_tsquery('simple', :tsquery) {postcode}
        ORDER BY weight DESC LIMIT :prefiltered
    ) matches
    ORDER BY sim DESC, weight DESC
    LIMIT :candidates
"""

# Stage 2, only when stage 1 finds nothing (a typo): pg_trgm word similarity through the trigram GIN index.
_TRIGRAM_SQL = """
    SELECT id, kind, name, code_insee, code_postal, nom_commune, weight, ST_X(geom) AS lon, ST_Y(geom) AS lat,
           ws, similarity(:words, search_text) AS sim
    FROM (
        SELECT *, word_similarity(:words, search_text) AS ws
        FROM geocode_names WHERE search_text %> :words {postcode}
        OFFSET 0
    ) matches
    ORDER BY ws DESC, weight DESC
    LIMIT :candidates
"""

_POSTCODE_ONLY_SQL = """
    SELECT id, kind, name, code_insee, code_postal, nom_commune, weight, ST_X(geom) AS lon, ST_Y(geom) AS lat,
           1.0::float8 AS ws, 1.0::float8 AS sim
    FROM geocode_names WHERE kind = 'commune' AND code_postal = :postcode
    ORDER BY weight DESC LIMIT :candidates
"""

_NUMBERS_SQL = """
    SELECT DISTINCT ON (name_id) name_id, numero, rep, ref, source, ST_X(geom), ST_Y(geom)
    FROM geocode_numbers
    WHERE name_id = ANY(:ids) AND numero = :numero
    ORDER BY name_id, (rep IS NOT DISTINCT FROM :rep) DESC, rep NULLS FIRST, (source = 'premises') DESC
"""


def _tsquery(parsed: ParsedQuery) -> str:
    """``rue & de & la & mai:*`` — words are already normalised to [a-z0-9], so nothing needs escaping.

    >>> _tsquery(parse("1 place du foirail sen"))
    'place & du & foirail & (sentier:* | sen:*)'
    """
    tokens = parsed.words.split()
    last = f"{tokens[-1]}:*"
    if parsed.typed_last:
        last = f"({last} | {parsed.typed_last}:*)"
    return " & ".join(tokens[:-1] + [last])


def _candidates(conn: Connection, parsed: ParsedQuery) -> tuple[list, bool]:
    """Rows of ``geocode_names`` that may answer, and whether they came from the typo-tolerant stage."""
    if not parsed.words:
        if not parsed.postcode:
            return [], False
        return conn.execute(text(_POSTCODE_ONLY_SQL),
                            {"postcode": parsed.postcode, "candidates": CANDIDATES}).all(), False
    postcode = "AND code_postal = :postcode" if parsed.postcode else ""
    params = {"words": parsed.words, "tsquery": _tsquery(parsed), "postcode": parsed.postcode,
              "candidates": CANDIDATES, "prefiltered": PREFILTERED}
    rows = conn.execute(text(_PREFIX_SQL.format(postcode=postcode)), params).all()
    if rows:
        return rows, False
    sql = text(_TRIGRAM_SQL.format(postcode=postcode))
    try:
        for threshold in THRESHOLDS:
            # Session settings (the read engine is in autocommit, where a transaction-local one would end with
            # its own statement), reset below: the trigram index answers `%>` at this threshold, and the planner,
            # which costs word_similarity like an addition, must not prefer a sequential scan (5–10× slower).
            conn.execute(text("SELECT set_config('pg_trgm.word_similarity_threshold', :t, false),"
                              " set_config('enable_seqscan', 'off', false)"), {"t": str(threshold)})
            rows = conn.execute(sql, params).all()
            if rows:
                break
    finally:
        conn.execute(text("RESET enable_seqscan"))
        conn.execute(text("RESET pg_trgm.word_similarity_threshold"))
    return rows, True


def _commune_label(name: str, commune: str, postcode: str | None) -> str:
    base = name if name == commune else f"{name}, {commune}"
    return f"{base} ({postcode})" if postcode else base


def _street_label(street: str, commune: str, postcode: str | None, numero: str | None = None) -> str:
    head = f"{numero} {street}" if numero else street
    return f"{head}, {postcode} {commune}" if postcode else f"{head}, {commune}"


def search(conn: Connection, q: str | None, limit: int = DEFAULT_LIMIT) -> list[GeocodeResult]:
    """Addresses, streets and communes matching ``q``, best first (at most ``limit``)."""
    query = check_query(q)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidParameter(f"limit doit être compris entre 1 et {MAX_LIMIT}.", parameter="limit")
    parsed = parse(query)
    rows, fuzzy = _candidates(conn, parsed)
    if not rows:
        return []
    numbers = {}
    if parsed.numero is not None:
        streets = [r.id for r in rows if r.kind == "voie"]
        if streets:
            numbers = {n[0]: n for n in conn.execute(text(_NUMBERS_SQL), {
                "ids": streets, "numero": parsed.numero, "rep": parsed.rep}).all()}
    results: dict[str, GeocodeResult] = {}
    for r in rows:
        # Every word found: 0.7 to 1, by similarity then size (a prefix "cah" means Cahors before Cahus);
        # found through a typo: at most 0.7.
        size = min(r.weight / 12.0, 1.0)
        score = 0.7 * (0.75 * r.ws + 0.25 * r.sim) if fuzzy else 0.7 + 0.26 * r.sim + 0.04 * size
        number = numbers.get(r.id)
        if r.kind == "commune":
            if parsed.numero is not None:
                score *= 0.85  # a number was typed: its street beats the bare commune
            result = GeocodeResult(
                id=f"commune:{r.code_insee}", type="commune",
                label=_commune_label(r.name, r.nom_commune, r.code_postal),
                name=r.name, numero=None, nom_voie=None, code_postal=r.code_postal, code_insee=r.code_insee,
                commune=r.nom_commune, lon=r.lon, lat=r.lat, score=0.0, source="communes")
        elif number is not None:
            numero = f"{number[1]} {number[2]}" if number[2] else str(number[1])
            result = GeocodeResult(
                id=f"{number[4]}:{number[3]}", type="adresse",
                label=_street_label(r.name, r.nom_commune, r.code_postal, numero),
                name=f"{numero} {r.name}", numero=numero, nom_voie=r.name, code_postal=r.code_postal,
                code_insee=r.code_insee, commune=r.nom_commune, lon=number[5], lat=number[6], score=0.0,
                source=number[4])
        else:
            if parsed.numero is not None:
                score *= 0.9  # the street exists, the number does not
            result = GeocodeResult(
                id=f"voie:{r.code_insee}:{normalize(r.name).replace(' ', '-')}", type="voie",
                label=_street_label(r.name, r.nom_commune, r.code_postal), name=r.name, numero=None,
                nom_voie=r.name, code_postal=r.code_postal, code_insee=r.code_insee, commune=r.nom_commune,
                lon=r.lon, lat=r.lat, score=0.0, source="index")
        key = normalize(result.label)
        score = round(min(1.0, max(0.0, score)), 3)
        if key not in results or results[key].score < score:
            results[key] = replace(result, score=score)
    # Ties keep the SQL order (word similarity, similarity, weight): sorted() is stable.
    ranked = sorted(results.values(), key=lambda res: -res.score)
    return ranked[:limit]


@dataclass(frozen=True)
class AddressMatch:
    """The best answer for ``?address=``, the runners-up, and whether they tie with it."""

    query: str
    best: GeocodeResult | None
    alternatives: list[GeocodeResult]
    ambiguous: bool


def best_match(conn: Connection, q: str | None, limit: int = 6) -> AddressMatch:
    """The address a report is about: exact label first; a near tie between different places is ambiguous."""
    query = check_query(q)
    results = search(conn, query, limit=limit)
    if not results:
        return AddressMatch(query, None, [], False)
    wanted = normalize(query)
    exact = [r for r in results if normalize(r.label) == wanted]
    if exact:
        best = exact[0]
        return AddressMatch(query, best, [r for r in results if r is not best], False)
    best, rest = results[0], results[1:]
    ambiguous = bool(rest) and rest[0].score >= best.score - TIE
    return AddressMatch(query, best, rest, ambiguous)


_REFRESH_SQL = (
    "TRUNCATE geocode_numbers, geocode_names RESTART IDENTITY",
    # Every source of addresses, with the house number split into number and repetition.
    """
    CREATE TEMP TABLE geocode_source ON COMMIT DROP AS
    SELECT s.source, s.ref, s.numero, s.rep, s.nom_voie, s.code_postal, s.code_insee,
           coalesce(s.nom_commune, c.nom_actuel, s.code_insee) AS nom_commune,
           CASE WHEN c.nom IS DISTINCT FROM coalesce(s.nom_commune, c.nom_actuel) THEN c.nom END AS ancien_nom,
           search_normalize(s.nom_voie) AS voie_key, s.geom
    FROM (
        SELECT 'premises' AS source, imb_id AS ref,
               substring(numero FROM '^\\s*(\\d{1,6})')::int AS numero,
               nullif(lower(btrim(substring(numero FROM '^\\s*\\d+\\s*(.*)$'))), '') AS rep,
               nom_voie, code_postal, code_insee, nom_commune, geom
        -- the rows the public sees: publish/visibility.PUBLISHED_ROWS_SQL (tests/test_visibility.py checks it)
        FROM premises WHERE validation_state = 'published' AND deleted_at IS NULL
                        AND btrim(coalesce(nom_voie, '')) <> ''
        UNION ALL
        SELECT 'addresses', id, numero, nullif(lower(btrim(rep)), ''), nom_voie, code_postal, code_insee,
               nom_commune, geom
        FROM addresses WHERE btrim(nom_voie) <> ''
    ) s LEFT JOIN communes c ON c.code_insee = s.code_insee
    """,
    """
    INSERT INTO geocode_names (kind, name, code_insee, code_postal, nom_commune, search_text, search_vector,
                               weight, geom)
    SELECT 'voie', mode() WITHIN GROUP (ORDER BY nom_voie), code_insee,
           mode() WITHIN GROUP (ORDER BY code_postal), min(nom_commune),
           search_normalize(concat_ws(' ', voie_key, mode() WITHIN GROUP (ORDER BY code_postal), min(nom_commune),
                                      min(ancien_nom))), ''::tsvector,
           ln(1 + count(*)),
           ST_ClosestPoint(ST_Collect(geom), ST_Centroid(ST_Collect(geom)))
    FROM geocode_source GROUP BY code_insee, voie_key
    """,
    """
    INSERT INTO geocode_numbers (name_id, numero, rep, ref, source, geom)
    SELECT DISTINCT ON (n.id, s.numero, s.rep) n.id, s.numero, s.rep, s.ref, s.source, s.geom
    FROM geocode_source s JOIN geocode_names n
      ON n.kind = 'voie' AND n.code_insee = s.code_insee AND search_normalize(n.name) = s.voie_key
    WHERE s.numero IS NOT NULL
    ORDER BY n.id, s.numero, s.rep, (s.source = 'premises') DESC, s.ref
    """,
    # The usual postcode of each 2018 commune, for the commune entries.
    """
    CREATE TEMP TABLE geocode_postcodes ON COMMIT DROP AS
    SELECT code_insee, mode() WITHIN GROUP (ORDER BY code_postal) AS code_postal
    FROM geocode_source WHERE code_postal IS NOT NULL GROUP BY code_insee
    """,
    # Current communes (one entry, all their 2018 names searchable), then merged 2018 communes on their own.
    """
    INSERT INTO geocode_names (kind, name, code_insee, code_postal, nom_commune, search_text, search_vector,
                               weight, geom)
    SELECT 'commune', c.nom_actuel, c.code_insee_actuel, pc.code_postal, c.nom_actuel,
           search_normalize(concat_ws(' ', c.nom_actuel, string_agg(DISTINCT c.nom, ' ')
                                      FILTER (WHERE c.nom <> c.nom_actuel), pc.code_postal)), ''::tsvector,
           ln(1 + coalesce(sum(c.population), 0)), ST_PointOnSurface(ST_Union(c.geom))
    FROM communes c LEFT JOIN geocode_postcodes pc ON pc.code_insee = c.code_insee_actuel
    GROUP BY c.code_insee_actuel, c.nom_actuel, pc.code_postal
    """,
    """
    INSERT INTO geocode_names (kind, name, code_insee, code_postal, nom_commune, search_text, search_vector,
                               weight, geom)
    SELECT 'commune', c.nom, c.code_insee, pc.code_postal, c.nom_actuel,
           search_normalize(concat_ws(' ', c.nom, c.nom_actuel, pc.code_postal)), ''::tsvector,
           ln(1 + coalesce(c.population, 0)), ST_PointOnSurface(c.geom)
    FROM communes c LEFT JOIN geocode_postcodes pc ON pc.code_insee = c.code_insee
    WHERE c.code_insee <> c.code_insee_actuel
    """,
    "UPDATE geocode_names SET search_vector = to_tsvector('simple', search_text)",
    "DROP TABLE geocode_source, geocode_postcodes",
    "ANALYZE geocode_names",
    "ANALYZE geocode_numbers",
)


def refresh_search_index(conn: Connection) -> dict[str, int]:
    """Rebuild the geocoder's index from premises, BAN addresses and communes, in the caller's transaction.

    Call it after writing any of them (demo, importers, boundary loader); returns the row counts.
    """
    for statement in _REFRESH_SQL:
        conn.execute(text(statement))
    counts = conn.execute(text(
        "SELECT (SELECT count(*) FROM geocode_names WHERE kind = 'commune'),"
        " (SELECT count(*) FROM geocode_names WHERE kind = 'voie'), (SELECT count(*) FROM geocode_numbers)")).one()
    return {"communes": counts[0], "voies": counts[1], "numeros": counts[2]}


def index_is_empty(conn: Connection) -> bool:
    """Whether the search index holds nothing yet (then ``refresh_search_index`` has never run)."""
    return not conn.execute(text("SELECT EXISTS (SELECT 1 FROM geocode_names)")).scalar()

