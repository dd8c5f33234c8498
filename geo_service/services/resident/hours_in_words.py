"""OSM opening hours put into French words for residents.

« Mo-Fr 08:30-19:00; Sa 09:00-12:00; PH off » → « du lundi au vendredi, de 8 h 30 à 19 h ; le samedi de 9 h à
12 h ; fermé les jours fériés ».

opening-hours-py checks the expression and, where a later rule overrides an earlier one (« Mo-Sa 09:00-18:00;
Sa 09:00-12:00 ») or an additional rule adds to it (« Mo-Fr 08:00-12:00, We 14:00-18:00 »), normalises it into
rules that do not overlap; but it exposes no syntax tree. The words come from a Lark grammar of the syntax
residents' places use (rules, fallback ``||``, years, months and dates, weeks, weekdays with their n-th in the
month, public and school holidays, times, open ends, sun events, states and comments), walked rule by rule.
Anything else (offsets on sun events or holidays, steps in times…) reads as a French sentence with the raw
expression: wording never raises.

French habits followed: « 8 h 30 », « 19 h », « minuit »; « de … à … »; « et » between the last two items of a
list; a comma after a range or list of days, none after one day (« le samedi de 9 h à 12 h »); « 24 h/24, 7 j/7 »;
comments in « guillemets »; non-breaking spaces inside « 8 h 30 » and « 24 h/24 ».
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import LarkError
from opening_hours import OpeningHours, ParserError

WEEKDAYS = {"Mo": "lundi", "Tu": "mardi", "We": "mercredi", "Th": "jeudi", "Fr": "vendredi", "Sa": "samedi",
            "Su": "dimanche"}
DAY_ORDER = list(WEEKDAYS)
MONTHS = {"Jan": "janvier", "Feb": "février", "Mar": "mars", "Apr": "avril", "May": "mai", "Jun": "juin",
          "Jul": "juillet", "Aug": "août", "Sep": "septembre", "Oct": "octobre", "Nov": "novembre",
          "Dec": "décembre"}
NBSP = "\u00a0"
ALWAYS_OPEN = f"24{NBSP}h/24, 7{NBSP}j/7"
ALL_DAY = f"24{NBSP}h/24"
ORDINALS = {1: "premier", 2: "deuxième", 3: "troisième", 4: "quatrième", 5: "cinquième"}
LAST = {-1: "dernier", -2: "avant-dernier"}
# Sun events with their article, so that « de » and « à » contract: du lever du soleil, au coucher du soleil.
EVENTS = {"sunrise": ("le", "lever du soleil"), "sunset": ("le", "coucher du soleil"), "dawn": ("l'", "aube"),
          "dusk": ("la", "tombée de la nuit")}

GRAMMAR = r"""
start: rule (_sep rule)*
_sep: ";" | FALLBACK
FALLBACK: "||"

rule: ALWAYS modifier?                    -> always
    | wide? small modifier?
    | wide modifier?                      -> wide_only
    | modifier                            -> modifier_only
ALWAYS: "24/7"

wide: wide_item+ ":"?
?wide_item: years | monthdays | weeks
years: year_range ("," year_range)*
year_range: YEAR "-" YEAR                 -> years_between
          | YEAR "+"                      -> years_from
          | YEAR                          -> one_year
monthdays: monthday ("," monthday)*
?monthday: date "-" date                  -> date_range
         | date "-" DAY                   -> days_in_month
         | date                           -> one_date
         | YEAR? MONTH "-" MONTH          -> month_range
         | YEAR? MONTH                    -> one_month
date: YEAR? MONTH DAY
    | YEAR? EASTER
weeks: "week" week_range ("," week_range)*
week_range: WEEK ("-" WEEK ("/" STEP)?)?

small: days times?
     | times
days: day_item ("," day_item)*
?day_item: WEEKDAY "-" WEEKDAY            -> day_range
         | WEEKDAY "[" nth ("," nth)* "]" -> nth_days
         | WEEKDAY                        -> one_day
         | HOLIDAY                        -> holiday
nth: NTH "-" NTH                          -> nth_range
   | NTH
   | "-" NTH                              -> nth_last
times: timespan ("," timespan)*
timespan: time "-" time                   -> span
        | time "+"                        -> open_end
?time: CLOCK | EVENT

modifier: STATE COMMENT? | COMMENT

YEAR: /\d{4}/
DAY: /\d{1,2}/
WEEK: /\d{1,2}/
STEP: /\d{1,2}/
NTH: /[1-5]/
CLOCK: /\d{1,2}:\d{2}/
MONTH: "Jan" | "Feb" | "Mar" | "Apr" | "May" | "Jun" | "Jul" | "Aug" | "Sep" | "Oct" | "Nov" | "Dec"
EASTER: "easter"
WEEKDAY: "Mo" | "Tu" | "We" | "Th" | "Fr" | "Sa" | "Su"
HOLIDAY: "PH" | "SH"
EVENT: "sunrise" | "sunset" | "dawn" | "dusk"
STATE: "open" | "closed" | "off" | "unknown"
COMMENT: /"[^"]*"/

%ignore " "
"""



@lru_cache(maxsize=1)
def _parser() -> Lark:
    """Built on first use (a fifth of a second): commands that never word hours do not pay for it."""
    return Lark(GRAMMAR, parser="earley", lexer="dynamic", ambiguity="resolve")


class Unsupported(Exception):
    """The expression parses but cannot be put into words (an offset, a step, an impossible date…)."""


@dataclass(frozen=True)
class HoursInWords:
    """The French sentence of an expression; ``worded`` is False when it is the fall-back sentence."""

    text: str
    worded: bool


def join_fr(items: list[str]) -> str:
    """``a``, ``a et b``, ``a, b et c``."""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " et " + items[-1]


def de(word: str) -> str:
    """« de juin », « d'avril », « d'août »: elided before a vowel."""
    return f"d'{word}" if word[0] in "aeiouyàâéèêîôû" else f"de {word}"


def clock(value: str) -> str:
    """``08:30`` → ``8 h 30``, ``19:00`` → ``19 h``, ``24:00`` and ``00:00`` → ``minuit``, ``26:00`` → ``2 h``.

    The spaces are non-breaking (U+00A0), as French typography wants: « 19 h » never breaks across two lines."""
    hours, minutes = (int(part) for part in value.split(":"))
    if minutes >= 60:
        raise Unsupported(value)
    if hours in (0, 24) and minutes == 0:
        return "minuit"
    hours %= 24
    return f"{hours}{NBSP}h" if minutes == 0 else f"{hours}{NBSP}h{NBSP}{minutes:02d}"


def _from(time: str) -> str:
    """« de 8 h », « de minuit », « du lever du soleil », « de l'aube »."""
    if time in EVENTS:
        article, noun = EVENTS[time]
        return f"du {noun}" if article == "le" else f"de {article}{noun}" if article == "l'" else f"de la {noun}"
    return f"de {clock(time)}"


def _to(time: str) -> str:
    """« à 19 h », « à minuit », « au coucher du soleil », « à la tombée de la nuit »."""
    if time in EVENTS:
        article, noun = EVENTS[time]
        return f"au {noun}" if article == "le" else f"à {article}{noun}" if article == "l'" else f"à la {noun}"
    return f"à {clock(time)}"


def _day_of_month(day: int) -> str:
    return "1er" if day == 1 else str(day)


@dataclass
class Days:
    """A day selector: its phrases (joined with « et »), whether it names a single weekday (then no comma before
    its times), and the weekdays (Mo…Su) and holidays (PH, SH) it selects."""

    phrases: list[str]
    members: frozenset[str]
    single: bool = False
    everyday: bool = False

    @property
    def text(self) -> str:
        return join_fr(self.phrases)


@dataclass
class Rule:
    wide: str | None = None
    days: Days | None = None
    times: list[str] | None = None
    all_day: bool = False
    state: str = "open"
    comment: str | None = None
    always: bool = False


@v_args(inline=True)
class _ToWords(Transformer):
    """Each grammar node becomes French words (selectors) or a ``Rule`` (rules)."""

    # ---- wide selectors: years, months and dates, weeks -------------------------------------------------
    def one_year(self, year: Token) -> str:
        return f"en {year}"

    def years_between(self, first: Token, last: Token) -> str:
        return f"de {first} à {last}"

    def years_from(self, year: Token) -> str:
        return f"à partir de {year}"

    def years(self, *ranges: str) -> str:
        return join_fr(list(ranges))

    def date(self, *parts: Token) -> tuple[str | None, str, int | None]:
        year = str(parts[0]) if len(parts) == 3 or (len(parts) == 2 and parts[1].type == "EASTER") else None
        rest = parts[1:] if year else parts
        if rest[0].type == "EASTER":
            return year, "easter", None
        day = int(rest[1])
        if not 1 <= day <= 31:
            raise Unsupported(str(day))
        return year, str(rest[0]), day

    @staticmethod
    def _date_words(date: tuple[str | None, str, int | None], with_month: bool = True) -> str:
        year, month, day = date
        if month == "easter":
            words = "le dimanche de Pâques"
            return f"{words} {year}" if year else words
        words = _day_of_month(day) + (f" {MONTHS[month]}" if with_month else "")
        return f"{words} {year}" if year and with_month else words

    def one_date(self, date: tuple) -> str:
        words = self._date_words(date)
        return words if date[1] == "easter" else f"le {words}"

    def date_range(self, first: tuple, last: tuple) -> str:
        if "easter" in (first[1], last[1]):
            raise Unsupported("easter range")
        if first[0] == last[0]:  # the same year (or none): named once, at the end
            first = (None, first[1], first[2])
        same_month = first[1] == last[1]
        return f"du {self._date_words(first, with_month=not same_month)} au {self._date_words(last)}"

    def days_in_month(self, first: tuple, last_day: Token) -> str:
        if first[1] == "easter":
            raise Unsupported("easter range")
        return self.date_range(first, (first[0], first[1], int(last_day)))

    def month_range(self, *parts: Token) -> str:
        year = f" {parts[0]}" if len(parts) == 3 else ""
        first, last = (str(p) for p in parts[-2:])
        order = list(MONTHS)
        if (order.index(last) - order.index(first)) % 12 == 1:
            return f"en {MONTHS[first]} et en {MONTHS[last]}{year}"
        return f"{de(MONTHS[first])} à {MONTHS[last]}{year}"

    def one_month(self, *parts: Token) -> str:
        year = f" {parts[0]}" if len(parts) == 2 else ""
        return f"en {MONTHS[str(parts[-1])]}{year}"

    def monthdays(self, *items: str) -> str:
        return join_fr(list(items))

    def week_range(self, first: Token, last: Token | None = None, step: Token | None = None) -> tuple[str, bool]:
        start = int(first)
        if last is None:
            return f"{start}", False
        end = int(last)
        if step is None:
            return f"{start} à {end}", True
        if int(step) == 2 and start in (1, 2) and end >= 52:
            return ("impaires" if start == 1 else "paires"), True
        raise Unsupported(f"week step {step}")

    def weeks(self, *ranges: tuple[str, bool]) -> str:
        if len(ranges) == 1 and ranges[0][0] in ("impaires", "paires"):
            return f"les semaines {ranges[0][0]}"
        plural = len(ranges) > 1 or ranges[0][1]
        return ("les semaines " if plural else "la semaine ") + join_fr([r[0] for r in ranges])

    def wide(self, *items: str) -> str:
        return ", ".join(items)

    # ---- small selectors: days and times ----------------------------------------------------------------
    def one_day(self, day: Token) -> Days:
        return Days([f"le {WEEKDAYS[str(day)]}"], frozenset({str(day)}), single=True)

    def day_range(self, first: Token, last: Token) -> Days:
        a, span = DAY_ORDER.index(str(first)), (DAY_ORDER.index(str(last)) - DAY_ORDER.index(str(first))) % 7
        members = frozenset(DAY_ORDER[(a + i) % 7] for i in range(span + 1))
        if span == 6:
            return Days(["tous les jours"], members, everyday=True)
        if span == 1:
            return Days([f"le {WEEKDAYS[str(first)]}", f"le {WEEKDAYS[str(last)]}"], members)
        return Days([f"du {WEEKDAYS[str(first)]} au {WEEKDAYS[str(last)]}"], members)

    def nth(self, n: Token) -> list[int]:
        return [int(n)]

    def nth_range(self, first: Token, last: Token) -> list[int]:
        return list(range(int(first), int(last) + 1))

    def nth_last(self, n: Token) -> list[int]:
        return [-int(n)]

    def nth_days(self, day: Token, *nths: list[int]) -> Days:
        numbers = [n for group in nths for n in group]
        if any(n not in ORDINALS and n not in LAST for n in numbers):
            raise Unsupported("nth")
        words = [f"le {ORDINALS.get(n) or LAST[n]}" for n in numbers]
        words = [w.replace("le avant", "l'avant") for w in words]
        return Days([f"{join_fr(words)} {WEEKDAYS[str(day)]} du mois"], frozenset({str(day)}))

    def holiday(self, name: Token) -> Days:
        words = "les jours fériés" if name == "PH" else "pendant les vacances scolaires"
        return Days([words], frozenset({str(name)}))

    def days(self, *items: Days) -> Days:
        if len(items) == 1:
            return items[0]
        return Days([p for d in items for p in d.phrases], frozenset().union(*(d.members for d in items)))

    def span(self, start: Token, end: Token) -> tuple[str, str]:
        return str(start), str(end)

    def open_end(self, start: Token) -> tuple[str, None]:
        return str(start), None

    def times(self, *spans: tuple[str, str | None]) -> tuple[list[str], bool]:
        if len(spans) == 1 and spans[0] in (("00:00", "24:00"), ("00:00", "00:00")):
            return [], True
        words = [f"à partir {_from(a)}" if b is None else f"{_from(a)} {_to(b)}" for a, b in spans]
        return words, False

    def small(self, first: Days | tuple, second: tuple | None = None) -> Rule:
        days, times = (first, second) if isinstance(first, Days) else (None, first)
        rule = Rule(days=days)
        if times is not None:
            rule.times, rule.all_day = times
        return rule

    # ---- rules ------------------------------------------------------------------------------------------
    def modifier(self, *parts: Token) -> tuple[str, str | None]:
        state, comment = "open", None
        for part in parts:
            if part.type == "STATE":
                state = {"off": "closed"}.get(str(part), str(part))
            else:
                comment = str(part)[1:-1].strip() or None
        return state, comment

    @staticmethod
    def _modified(rule: Rule, modifier: tuple[str, str | None] | None) -> Rule:
        if modifier is not None:
            rule.state, rule.comment = modifier
        return rule

    def rule(self, *parts: str | Rule | tuple) -> Rule:
        wide = parts[0] if isinstance(parts[0], str) else None
        rest = parts[1:] if wide is not None else parts
        rule = rest[0]
        rule.wide = wide
        return self._modified(rule, rest[1] if len(rest) > 1 else None)

    def always(self, _token: Token, modifier: tuple | None = None) -> Rule:
        return self._modified(Rule(always=True), modifier)

    def wide_only(self, wide: str, modifier: tuple | None = None) -> Rule:
        return self._modified(Rule(wide=wide), modifier)

    def modifier_only(self, modifier: tuple) -> Rule:
        return self._modified(Rule(), modifier)

    def start(self, *parts: Rule | Token) -> list[tuple[bool, Rule]]:
        """The rules, each with whether it is a fallback (``||``) rule."""
        out, fallback = [], False
        for part in parts:
            if isinstance(part, Token):
                fallback = True
                continue
            out.append((fallback, part))
            fallback = False
        return out


def _open_words(rule: Rule) -> str:
    """An open rule: « du lundi au vendredi, de 8 h 30 à 19 h », « le samedi de 9 h à 12 h »…"""
    days, times = rule.days, rule.times
    if rule.always or ((days is None or days.everyday) and (rule.all_day or not times)):
        when = ALWAYS_OPEN
    elif times is None or rule.all_day:
        when = f"{days.text}, {ALL_DAY}" if days else ALL_DAY
    else:
        hours = join_fr(times)
        if days is None:
            when = f"tous les jours, {hours}"
        elif days.single:
            when = f"{days.text} {hours}"
        else:
            when = f"{days.text}, {hours}"
    if rule.wide:
        return f"{rule.wide} : {when}"
    return when


def _rule_words(rule: Rule) -> str:
    if rule.state == "open" and (rule.comment is None or rule.days or rule.times or rule.wide or rule.always):
        words = _open_words(rule)
    elif rule.state == "open":
        return f"« {rule.comment} »"
    else:
        lead = "fermé" if rule.state == "closed" else "horaires non précisés"
        parts = [lead]
        if rule.days and not rule.days.everyday:
            parts.append(rule.days.text)
        if rule.times and not rule.all_day:
            parts.append(join_fr(rule.times))
        if rule.wide:
            parts.append(rule.wide)
        words = " ".join(parts)
    return f"{words} (« {rule.comment} »)" if rule.comment else words


# OSM keeps a tag's value within 255 characters; a longer one is not walked (the grammar's parser is cubic).
MAX_WORDED_CHARS = 255


def _rules(expression: str) -> list[tuple[bool, Rule]]:
    """The expression's rules, each with whether it is a fallback (``||``) rule; raises on what has no words."""
    rules = _ToWords().transform(_parser().parse(expression))
    if any(r.state == "open" and not (r.days or r.times or r.wide or r.always or r.comment) for _, r in rules):
        raise Unsupported("open rule without selector")
    return rules


def _words(rules: list[tuple[bool, Rule]]) -> str:
    return " ; ".join(f"sinon {_rule_words(rule)}" if fallback else _rule_words(rule) for fallback, rule in rules)


def _overlaps(rules: list[tuple[bool, Rule]]) -> bool:
    """Whether a rule reopens days an earlier open rule already set (it then overrides them): the words would
    read as if both applied. Only rules without wide selectors are compared (« Jul-Aug … » reads as the
    exception it is)."""
    seen: frozenset[str] = frozenset()
    for fallback, rule in rules:
        if fallback or rule.state != "open" or rule.wide or not (rule.days or rule.times or rule.always):
            continue
        days = frozenset(DAY_ORDER) if rule.always or rule.days is None else rule.days.members
        if days & seen:
            return True
        seen |= days
    return False


def fallback_sentence(expression: str, valid: bool) -> str:
    """What a resident reads when the words fail: a valid expression still has its week's table."""
    if valid:
        return ("horaires particuliers, détaillés dans le tableau de la semaine "
                f"(au format OpenStreetMap : « {expression} »)")
    return f"horaires dans un format non reconnu, à vérifier auprès du lieu (« {expression} »)"


@lru_cache(maxsize=1024)
def in_words(expression: str) -> HoursInWords:
    """The French sentence of an OSM opening_hours expression; a fall-back sentence with the raw expression when
    it is not valid OSM syntax or cannot be put into words. Never raises.

    The expression is read as written when its rules do not overlap, else (and when the grammar does not know
    it, e.g. an additional ``,`` rule) as opening-hours-py normalises it."""
    expression = " ".join(expression.split())
    try:
        normalized = str(OpeningHours(expression).normalize())
    except (ParserError, ValueError):
        return HoursInWords(fallback_sentence(expression, valid=False), worded=False)
    if len(expression) <= MAX_WORDED_CHARS:
        for candidate in dict.fromkeys([expression, normalized]):
            try:
                rules = _rules(candidate)
            except (LarkError, Unsupported, KeyError, ValueError):
                continue
            if candidate == normalized or not _overlaps(rules):
                return HoursInWords(_words(rules), worded=True)
    return HoursInWords(fallback_sentence(expression, valid=True), worded=False)
