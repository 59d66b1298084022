"""Feed qualifiers: the words that make a regional or time-shifted feed another channel.

Theory of operation
-------------------
``HBO West`` is not a backup of ``HBO East``, ``BBC Two Wales`` is not one of
``BBC Two`` and ``Teletoon (FR)`` is not one of the English ``Teletoon``:
after a failover the viewer would watch a programme three hours off, another
region's schedule or another language under the guide of the channel they
chose. This module is the one home of the vocabulary that says so, and
:func:`feed_of` splits a normalised name into

* ``core`` - the tokens that name the channel (``bbc 2``);
* ``qualifiers`` - canonical feed qualifiers: time-zone feeds (``east``,
  ``west``, ``pacific``, ``mountain``, ``central``, ``atlantic``), the
  timeshift (``+1``, ``+24``), regions and cities (``wales``, ``northern
  ireland``, ``granada``, ``toronto``, ``hamburg``, ``bretagne``…). Several
  spellings share one canonical form (``NI``/``N Ireland``/``Northern
  Ireland``, ``Cymru``/``Wales``, ``Eastern``/``East``, ``Paris``/``IDF``/
  ``Île-de-France``), so they still meet;
* ``locales`` - language or country suffixes (``ENG``, ``(FR)``, ``DE``,
  ``Latino``), from the normalised tokens and from bracketed codes that the
  normaliser drops (``Eurosport 1 (DE)``). Two-letter codes count only as the
  last word of a name, where they cannot be part of it (``ile de france``).

:func:`feeds_agree` is the matcher's guard: two names are the same feed only
if their qualifier sets are equal - in both directions, so a plain stream is
not mapped onto a regional guide channel either - and every locale one side
has and the other lacks is implied by a country: the guide channel's (the
XMLTV id suffix) or the stream's own prefix (``UK: CNN ENG``, ``ESPN US`` on
``ESPN.us``, ``Teletoon ENG`` on ``Teletoon.ca``). A qualifier both sides
carry (``Sky Atlantic``, ``Comedy Central``, ``CBC Toronto``) agrees as any
other word does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from streamforge.matching.normalize import NormalizedName, country_code, normalize_name


def _table(groups: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """``{canonical: spellings}`` → ``{spelling: canonical}``; a canonical spells itself."""
    table: dict[str, str] = {}
    for canonical, spellings in groups.items():
        for spelling in (canonical, *spellings):
            table[spelling] = canonical
    return table


def _plain(words: str) -> dict[str, tuple[str, ...]]:
    """Qualifiers spelt only one way, one a line (multi-word regions allowed)."""
    return {line.strip(): () for line in words.strip().splitlines() if line.strip()}


# Normalised spellings (accents stripped, case-folded, hyphens as spaces).
QUALIFIERS: dict[str, str] = _table(
    {
        # time-zone feeds
        "east": ("eastern",),
        "west": ("western",),
        "pacific": (),
        "mountain": (),
        "central": (),
        "atlantic": (),
        # Britain and Ireland
        "northern ireland": ("n ireland", "ni"),
        "wales": ("cymru", "cymru wales"),
        "west country": ("westcountry",),
        **_plain(
            """
            london
            scotland
            ireland
            yorkshire
            east yorkshire
            granada
            tyne tees
            border
            meridian
            anglia
            midlands
            east midlands
            west midlands
            north
            south
            north east
            north west
            south east
            south west
            channel islands
            cumbria
            oxford
            lincolnshire
            """
        ),
        # Germany: regional windows of ARD third programmes and private channels
        "baden wurttemberg": ("bw",),
        "rheinland pfalz": ("rp",),
        "nordrhein westfalen": ("nrw",),
        "thuringen": ("thueringen",),
        "koln": ("koeln", "cologne"),
        "munchen": ("muenchen", "munich"),
        **_plain(
            """
            hamburg
            niedersachsen
            schleswig holstein
            mecklenburg vorpommern
            sachsen
            sachsen anhalt
            berlin
            brandenburg
            bayern
            hessen
            nord
            sud
            dusseldorf
            dortmund
            munster
            bielefeld
            aachen
            bonn
            duisburg
            siegen
            wuppertal
            """
        ),
        # France 3 regions and overseas feeds
        "ile de france": ("idf", "paris", "paris ile de france"),
        "corse": ("viastella", "corse viastella"),
        "provence alpes cote d azur": ("paca", "provence alpes", "cote d azur"),
        "afrique": ("africa",),
        **_plain(
            """
            alpes
            alsace
            aquitaine
            nouvelle aquitaine
            auvergne
            auvergne rhone alpes
            rhone alpes
            bourgogne
            franche comte
            bourgogne franche comte
            bretagne
            centre val de loire
            champagne ardenne
            grand est
            hauts de france
            languedoc
            languedoc roussillon
            limousin
            lorraine
            midi pyrenees
            nord pas de calais
            normandie
            occitanie
            pays de la loire
            picardie
            poitou charentes
            provence
            antilles
            reunion
            """
        ),
        # Canada
        **_plain(
            """
            montreal
            toronto
            vancouver
            ottawa
            calgary
            edmonton
            winnipeg
            regina
            saskatoon
            halifax
            victoria
            kitchener
            windsor
            hamilton
            ontario
            quebec
            alberta
            manitoba
            saskatchewan
            british columbia
            nova scotia
            new brunswick
            newfoundland
            maritimes
            """
        ),
        # United States: local stations are named by city
        "new york": ("ny", "nyc"),
        **_plain(
            """
            los angeles
            chicago
            philadelphia
            boston
            san francisco
            dallas
            houston
            atlanta
            miami
            seattle
            denver
            detroit
            minneapolis
            tampa
            orlando
            las vegas
            """
        ),
    }
)

# Language and country suffixes → a locale (a language or an ISO country code).
LOCALES: dict[str, str] = _table(
    {
        "en": ("eng", "english"),
        "fr": ("fra", "fre", "french", "francais", "vf"),
        "de": ("ger", "deu", "german", "deutsch"),
        "es": ("esp", "spa", "spanish", "espanol", "latino", "latin"),
        "nl": ("ned", "dutch", "nederlands"),
        "pt": ("por", "portugues", "portuguese"),
        "pl": ("pol", "polski", "polish"),
        "tr": ("tur", "turk", "turkish"),
        "it": ("ita", "italia", "italiano", "italian"),
        "ar": ("ara", "arabic", "arab"),
        "us": (),  # not "USA": a brand word ("5USA", "USA Network")
        "uk": ("gb", "gbr"),
        "ca": ("can",),
        "at": ("austria", "osterreich"),
        "ch": ("schweiz", "suisse", "swiss"),
    }
)

# Spellings that name a locale only as a name's last word or in brackets:
# anywhere else they may be part of the name ("Canal de ...", "Nick at Nite").
_SUFFIX_ONLY = frozenset(
    spelling for spelling in LOCALES if len(spelling) <= 3 and spelling != "eng"
)

# Bracketed region codes the normaliser reads as Britain ("BBC One (SCO)").
_BRACKETED_REGIONS = {"sco": "scotland", "wal": "wales", "ni": "northern ireland"}

# The languages a guide channel of a country carries without saying so.
_LANGUAGES_OF: dict[str, frozenset[str]] = {
    "uk": frozenset({"en"}),
    "us": frozenset({"en"}),
    "ca": frozenset({"en"}),
    "au": frozenset({"en"}),
    "ie": frozenset({"en"}),
    "nz": frozenset({"en"}),
    "de": frozenset({"de"}),
    "at": frozenset({"de"}),
    "ch": frozenset({"de"}),
    "fr": frozenset({"fr"}),
    "es": frozenset({"es"}),
    "mx": frozenset({"es"}),
    "nl": frozenset({"nl"}),
    "be": frozenset({"nl", "fr"}),
    "pt": frozenset({"pt"}),
    "br": frozenset({"pt"}),
    "pl": frozenset({"pl"}),
    "tr": frozenset({"tr"}),
    "it": frozenset({"it"}),
}

_MAX_PHRASE = max(len(spelling.split()) for spelling in (*QUALIFIERS, *LOCALES))
_FIRST_WORDS = frozenset(spelling.split()[0] for spelling in (*QUALIFIERS, *LOCALES))
_BRACKETED_RE = re.compile(r"[\[(]\s*([^\])]{1,12}?)\s*[\])]")
_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Feed:
    """A name split into the channel (``core``) and what makes it one feed of it."""

    core: str
    qualifiers: frozenset[str]
    locales: frozenset[str]

    @property
    def key(self) -> str:
        """``core`` plus the sorted canonical qualifiers: equal for alias spellings."""
        return " | ".join([self.core, *sorted(self.qualifiers)])


def _bracketed_suffixes(raw: str) -> list[str]:
    """Bracketed codes after the start of the name (``ESPN (US)``, not ``[DE] ZDF``)."""
    if "(" not in raw and "[" not in raw:
        return []
    folded = raw.casefold()
    found: list[str] = []
    for match in _BRACKETED_RE.finditer(folded):
        code = match.group(1).strip().strip(".")
        if code not in LOCALES and code not in _BRACKETED_REGIONS:
            continue
        before = normalize_name(folded[: match.start()])
        if all(country_code(token) is not None for token in before.tokens):
            continue  # nothing but prefixes before it: a prefix itself
        found.append(code)
    return found


def _stands_alone(code: str, raw: str) -> bool:
    """Whether ``code`` is a word of its own in ``raw`` (``Eurosport 2 FR``, not ``5USA``)."""
    return re.search(rf"(?<![^\W_]){code}(?![^\W_])", raw.casefold()) is not None


def feed_of(raw: str, name: NormalizedName) -> Feed:
    """Split ``name`` (the normalised ``raw``) into core, qualifiers and locales."""
    tokens = name.tokens
    if (
        name.timeshift is None
        and "(" not in raw
        and "[" not in raw
        and _FIRST_WORDS.isdisjoint(tokens)
    ):
        return Feed(name.key, _NONE, _NONE)  # the common case: a plain name
    qualifiers: set[str] = {name.timeshift} if name.timeshift else set()
    locales: set[str] = set()
    core: list[str] = []
    index = 0
    last = len(tokens) - 1
    while index < len(tokens):
        if tokens[index] not in _FIRST_WORDS:
            core.append(tokens[index])
            index += 1
            continue
        for length in range(min(_MAX_PHRASE, len(tokens) - index), 0, -1):
            phrase = " ".join(tokens[index : index + length])
            if phrase in QUALIFIERS:
                qualifiers.add(QUALIFIERS[phrase])
                break
            if phrase in LOCALES and (
                phrase not in _SUFFIX_ONLY or (index == last and _stands_alone(phrase, raw))
            ):
                locales.add(LOCALES[phrase])
                break
        else:
            core.append(tokens[index])
            length = 1
        index += length
    if not core:
        # The whole name is qualifier words ("London Live", "Central"): it is
        # a channel's own name, not a feed of another one.
        shift = frozenset({name.timeshift}) if name.timeshift else _NONE
        return Feed(" ".join(tokens), shift, _NONE)
    for code in _bracketed_suffixes(raw):
        if code in _BRACKETED_REGIONS:
            qualifiers.add(_BRACKETED_REGIONS[code])
        elif code in LOCALES:
            locales.add(LOCALES[code])
    return Feed(
        " ".join(core),
        frozenset(qualifiers) if qualifiers else _NONE,
        frozenset(locales) if locales else _NONE,
    )


def _implied(country: str | None) -> frozenset[str]:
    if country is None:
        return frozenset()
    return _LANGUAGES_OF.get(country, frozenset()) | {country}


def feeds_agree(
    stream: Feed, stream_country: str | None, guide: Feed, guide_country: str | None
) -> bool:
    """Whether a stream feed and a guide name's feed are the same feed.

    ``stream_country`` is the stream's country prefix, ``guide_country`` the
    country of the guide channel's XMLTV id (either may be ``None``).
    """
    if stream.qualifiers != guide.qualifiers:
        return False
    if stream.locales == guide.locales:
        return True
    return (stream.locales ^ guide.locales) <= _implied(stream_country) | _implied(guide_country)
