"""Quality tier, tags, country and clean base name from an IPTV stream name.

Provider stream names pack several facts around the channel's real name:
``"UK: Sky Sports Main Event FHD ᴿᴬᵂ ◉"`` is the channel *Sky Sports Main
Event*, in the UK, in 1080p, an unprocessed ("raw") feed, plus decoration.
:func:`detect_quality` takes such a name apart so that the matching module
can compare clean names and rank a channel's streams by tier.

Theory of operation
-------------------
1. **Unicode normalisation.** Superscript runs (``ᴴᴰ``, ``ᴿᴬᵂ``, ``⁵⁰ᶠᵖˢ``)
   are first set apart by spaces, because NFKC turns them into plain letters
   that would otherwise glue onto the preceding word (``Cinemaᴴᴰ`` →
   ``Cinema HD``). Then NFKC folds full-width, circled and mathematical
   letters to ASCII, small capitals (``ʜᴅ``) are mapped by hand (NFKC leaves
   them alone), flag emoji become bracketed country codes (🇬🇧 → ``[GB]``) and
   every other symbol (``◉ ★ ● ┃ ➤`` …, emoji) becomes a ``|`` separator.
   Format characters (zero-width joiners, variation selectors) vanish.
2. **Phrases.** Multi-word markers are folded into single tokens:
   ``Full HD`` → ``FHD``, ``H.265`` → ``H265``, ``50 fps`` → ``50FPS``,
   ``1080p50`` → ``1080P 50FPS``, ``Multi-Audio`` → ``MULTI``,
   ``(backup 2)`` → ``BACKUP``.
3. **Brackets.** A ``(…)``/``[…]``/``{…}`` group whose words are all markers
   or country codes (``[DE]``, ``(backup)``, ``[Multi-Audio]``) is consumed;
   any other group keeps its words and loses the brackets (``(+1)`` → ``+1``).
4. **Segments.** The name is split at separators — ``|``, ``:`` (not between
   digits, so ``13:00`` survives), and dashes with a space after them. A
   segment made only of markers and country codes (``UK``, ``|US|``,
   ``VIP UK``, ``FHD``) is consumed wherever it is; the others form the name.
5. **Tokens.** Inside name segments, each word that is a marker — exactly
   (``HD``, ``HDTV``, ``4K``, ``HEVC`` …), as a run of glued markers
   (``HDRAW``, ``FHD/HEVC``) or as a camel-case suffix (``SkySportsHD``) — is
   removed and recorded. Everything else, numbers included (``ESPN 2``,
   ``Channel 5``, ``+1``, ``BBC Four``), is kept verbatim. ``4K`` is a marker
   only as a whole word, and ``SHD`` is no marker at all. Markers that are
   also ordinary words (``RAW``, ``VIP``, ``ALT``, ``MULTI`` …) count only in
   capitals or inside brackets, so ``WWE Raw`` keeps its name.

Country codes are recognised only in upper case (``UK``, ``DE``, ``USA``,
``UK/IE``) and only where a whole segment or bracket consists of them, so
``It``, ``Me`` or a trailing ``UK`` in ``Dave UK`` are left in the name. Codes
are reported in two-letter form with ``GB`` spelled ``UK`` (the XMLTV habit).
The tier is the highest one any marker names; tier markers are not repeated
in ``tags``.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "COUNTRY_ALIASES",
    "COUNTRY_CODES",
    "REGIONS",
    "QualityInfo",
    "QualityTier",
    "country_code",
    "detect_quality",
]

# QualityTier.preference by tier value: UNKNOWN, SD, HD, FHD, UHD.
_PREFERENCE = (2, 1, 3, 4, 5)


class QualityTier(enum.IntEnum):
    """StreamForge's one quality-tier scale, ordered so that ``max()`` picks the best stream.

    Every layer names tiers with it: the ``qualities`` column (``tier`` is the
    member's name), the streaming quality cap, the lineup's ``HD`` flag
    (:attr:`is_hd`) and the matcher's ranking (:attr:`preference`).
    ``UNKNOWN`` is a name that says nothing about its resolution.
    """

    UNKNOWN = 0
    SD = 1
    HD = 2
    FHD = 3
    UHD = 4

    @property
    def label(self) -> str:
        """Lower-case name for events and the API (``"fhd"``)."""
        return self.name.lower()

    @property
    def is_hd(self) -> bool:
        """HD or better (what the HDHomeRun lineup's ``HD`` flag says)."""
        return self >= QualityTier.HD

    @property
    def preference(self) -> int:
        """Rank for choosing between streams, higher is better (SD 1 … UHD 5).

        An untagged stream (``UNKNOWN``) ranks 2, between SD and HD, because
        untagged panel streams are usually 720p/1080i but sometimes SD.
        """
        return _PREFERENCE[self]

    @classmethod
    def parse(cls, value: object) -> QualityTier:
        """A tier from its name (``"FHD"``) or rank (``3``); ``UNKNOWN`` for anything else."""
        if isinstance(value, int) and not isinstance(value, bool):
            try:
                return cls(value)
            except ValueError:
                return cls.UNKNOWN
        if isinstance(value, str):
            return cls.__members__.get(value.strip().upper(), cls.UNKNOWN)
        return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class QualityInfo:
    """What a stream name says: tier, tags (codec, fps, RAW …), clean name and country."""

    tier: QualityTier
    tags: frozenset[str]
    base_name: str
    country: str | None

    def to_json(self) -> dict[str, object]:
        """A JSON-serialisable dict (the ``qualities`` column); tags sorted for stable output."""
        return {
            "tier": self.tier.name,
            "rank": int(self.tier),
            "tags": sorted(self.tags),
            "base_name": self.base_name,
            "country": self.country,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> QualityInfo:
        """Rebuild from :meth:`to_json` output; unknown keys are ignored, bad values tolerated."""
        raw_tags = data.get("tags")
        tags = (
            frozenset(str(tag) for tag in raw_tags)
            if isinstance(raw_tags, (list, tuple))
            else frozenset()
        )
        country = data.get("country")
        return cls(
            tier=QualityTier.parse(data.get("tier")),
            tags=tags,
            base_name=str(data.get("base_name") or ""),
            country=country if isinstance(country, str) and country else None,
        )


# -- vocabulary ---------------------------------------------------------------------

_TIER_WORDS: Mapping[str, QualityTier] = {
    "UHD": QualityTier.UHD,
    "UHD+": QualityTier.UHD,
    "UHDTV": QualityTier.UHD,
    "4K": QualityTier.UHD,
    "8K": QualityTier.UHD,
    "4KUHD": QualityTier.UHD,
    "UHD4K": QualityTier.UHD,
    "2160P": QualityTier.UHD,
    "2160": QualityTier.UHD,
    "FHD": QualityTier.FHD,
    "FHD+": QualityTier.FHD,
    "FULLHD": QualityTier.FHD,
    "1080P": QualityTier.FHD,
    "1080I": QualityTier.FHD,
    "1080": QualityTier.FHD,
    "HD": QualityTier.HD,
    "HD+": QualityTier.HD,
    "HDTV": QualityTier.HD,
    "HDREADY": QualityTier.HD,
    "720P": QualityTier.HD,
    "SD": QualityTier.SD,
    "SDTV": QualityTier.SD,
    "LQ": QualityTier.SD,
    "576P": QualityTier.SD,
    "576I": QualityTier.SD,
    "480P": QualityTier.SD,
    "480I": QualityTier.SD,
}

_TAG_WORDS: Mapping[str, str] = {
    "HEVC": "HEVC",
    "H265": "HEVC",
    "X265": "HEVC",
    "H264": "H264",
    "X264": "H264",
    "AVC": "H264",
    "AV1": "AV1",
    "HDR": "HDR",
    "HDR10": "HDR",
    "HDR10+": "HDR",
    "RAW": "RAW",
    "VIP": "VIP",
    "BACKUP": "BACKUP",
    "ALT": "BACKUP",
    "ALTERNATIVE": "BACKUP",
    "MULTI": "MULTI",
    "HQ": "HQ",
}

# Markers that are also ordinary words ("WWE Raw", "Alternative Rock Radio"):
# outside brackets they count only when written in capitals.
_CAPITALS_ONLY = frozenset({"RAW", "VIP", "ALT", "ALTERNATIVE", "MULTI", "HQ", "LQ"})

# Pieces that may be glued together in one word ("HDRAW", "FHDHEVC"), longest first.
_GLUE_PIECES: tuple[str, ...] = tuple(
    sorted(
        (w for w in (*_TIER_WORDS, *_TAG_WORDS) if not w.isdigit()),
        key=len,
        reverse=True,
    )
)
# The same as one regex: a quick test before the piece-by-piece split.
_GLUED = re.compile("(?:" + "|".join([*map(re.escape, _GLUE_PIECES), r"\d{2,3}FPS"]) + ")+")

_COUNTRY_CODES_TEXT = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK
    DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR
    GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM
    KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP
    MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL
    PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TW TZ UA UG UM US UY UZ VA VC VE VG VI VN
    VU WF WS YE YT ZA ZM ZW UK XK"""
COUNTRY_CODES = frozenset(_COUNTRY_CODES_TEXT.split())
"""Two-letter country codes: ISO 3166-1 alpha-2, plus ``UK`` (the XMLTV habit) and
``XK``. ("SD" is Sudan and "TV" Tuvalu, but in stream names they are a tier and a
word.)"""

COUNTRY_ALIASES: Mapping[str, str] = {
    "GB": "UK",
    "GBR": "UK",
    "ENG": "UK",
    "SCO": "UK",
    "WAL": "UK",
    "UKI": "UK",
    "USA": "US",
    "GER": "DE",
    "DEU": "DE",
    "FRA": "FR",
    "ITA": "IT",
    "ESP": "ES",
    "POR": "PT",
    "PRT": "PT",
    "NED": "NL",
    "NLD": "NL",
    "BEL": "BE",
    "SUI": "CH",
    "CHE": "CH",
    "AUT": "AT",
    "POL": "PL",
    "TUR": "TR",
    "GRE": "GR",
    "GRC": "GR",
    "ROM": "RO",
    "ROU": "RO",
    "SWE": "SE",
    "NOR": "NO",
    "DEN": "DK",
    "DNK": "DK",
    "FIN": "FI",
    "RUS": "RU",
    "UKR": "UA",
    "ALB": "AL",
    "BRA": "BR",
    "MEX": "MX",
    "ARG": "AR",
    "CAN": "CA",
    "AUS": "AU",
    "NZL": "NZ",
    "IRL": "IE",
    "IND": "IN",
    "PAK": "PK",
    "KSA": "SA",
    "UAE": "AE",
    "QAT": "QA",
    "ISR": "IL",
    "CHN": "CN",
    "JPN": "JP",
    "KOR": "KR",
    "PHI": "PH",
    "PHL": "PH",
    "THA": "TH",
    "VIE": "VN",
    "VNM": "VN",
    "IDN": "ID",
    "ZAF": "ZA",
    "RSA": "ZA",
    "NGA": "NG",
    "EGY": "EG",
    "MAR": "MA",
    "TUN": "TN",
    "ALG": "DZ",
    "IRN": "IR",
    "IRQ": "IQ",
    "CZE": "CZ",
    "SVK": "SK",
    "HUN": "HU",
    "BUL": "BG",
    "BGR": "BG",
    "SRB": "RS",
    "CRO": "HR",
    "HRV": "HR",
    "SLO": "SI",
    "SVN": "SI",
    "BIH": "BA",
    "MKD": "MK",
    "LTU": "LT",
    "LVA": "LV",
    "EST": "EE",
    "ISL": "IS",
    "LUX": "LU",
    "CYP": "CY",
    "ARM": "AM",
    "GEO": "GE",
    "KAZ": "KZ",
    "CHL": "CL",
    "COL": "CO",
    "PER": "PE",
    "VEN": "VE",
    "CUB": "CU",
    "DOM": "DO",
    "JAM": "JM",
    "AFG": "AF",
    "BGD": "BD",
}
"""Other spellings of a country (three-letter codes, sports abbreviations) → its code."""

REGIONS = frozenset(
    {
        "EU",
        "EXYU",
        "EX-YU",
        "YU",
        "LATAM",
        "LATINO",
        "LAT",
        "ARAB",
        "ARB",
        "ARA",
        "AFR",
        "AFRICA",
        "ASIA",
        "CARIB",
    }
)
"""Region words that label a stream group the way a country does."""


def country_code(word: str) -> str | None:
    """The country code (upper case, ``UK`` for Britain) ``word`` names in any case, else None.

    This is StreamForge's one country table: :data:`COUNTRY_CODES`,
    :data:`COUNTRY_ALIASES` and :data:`REGIONS` (a region names no country).
    """
    upper = word.upper()
    code = COUNTRY_ALIASES.get(upper, upper)
    return code if code in COUNTRY_CODES else None


# Small capitals have no compatibility decomposition, so NFKC leaves them alone.
_SMALL_CAPS: Mapping[int, str] = str.maketrans(
    {
        "\u1d00": "A", "\u0299": "B", "\u1d04": "C", "\u1d05": "D", "\u1d07": "E",
        "\ua730": "F", "\u0262": "G", "\u029c": "H", "\u026a": "I", "\u1d0a": "J",
        "\u1d0b": "K", "\u029f": "L", "\u1d0d": "M", "\u0274": "N", "\u1d0f": "O",
        "\u1d18": "P", "\u01eb": "Q", "\u0280": "R", "\ua731": "S", "\u1d1b": "T",
        "\u1d1c": "U", "\u1d20": "V", "\u1d21": "W", "\u028f": "Y", "\u1d22": "Z",
    }
)  # fmt: skip

_REGIONAL_A = 0x1F1E6
_REGIONAL_Z = 0x1F1FF

# -- phrase rewriting (applied to the NFKC text) ------------------------------------------

# Each phrase: lower-case trigger substrings (a cheap pre-check), pattern, replacement.
_PHRASES: tuple[tuple[tuple[str, ...], re.Pattern[str], str], ...] = (
    (("1080", "720", "2160"), re.compile(r"\b(1080|720|2160)[pi](\d{2})\b", re.I), r" \1P \2FPS "),
    (("fps", "hz"), re.compile(r"\b(\d{2,3})\s*-?\s*(?:fps|hz)\b", re.I), r" \1FPS "),
    (("full",), re.compile(r"\bfull[\s_-]*hd\b", re.I), " FHD "),
    (("ultra",), re.compile(r"\bultra[\s_-]*hd\b", re.I), " UHD "),
    (("ready",), re.compile(r"\bhd[\s_-]*ready\b", re.I), " HD "),
    (("26",), re.compile(r"\b[hx][\s.-]?26([45])\b", re.I), r" H26\1 "),
    (
        ("multi",),
        re.compile(r"\bmulti[\s_-]*(?:audio|lang(?:uage)?s?|subs?|subtitles?)\b", re.I),
        " MULTI ",
    ),
    (("backup", "bkp"), re.compile(r"\b(?:backup|bkp)(?:\s*#?\d{1,2})?\b", re.I), " BACKUP "),
    (("alt",), re.compile(r"\bALT(?:\s*#?\d{1,2})?\b"), " BACKUP "),
)

_PHRASE_TRIGGER = re.compile(
    "|".join(re.escape(trigger) for triggers, _, _ in _PHRASES for trigger in triggers), re.I
)
_ANY_BRACKET = re.compile(r"[\[\](){}]")
_FPS_PREFIX = re.compile(r"\d{2,3}FPS")
_JOINERS = re.compile(r"[/_+-]")
_JOINER_PRESENT = re.compile(r"[/_-]")
_COUNTRY_JOINERS = re.compile(r"[/&+]")
_BRACKET = re.compile(r"[\[({]([^\[\](){}]*)[\])}]")
_DASHES = "\u2013\u2014"  # en and em dash
_QUOTE_ARROWS = "\u00ab\u00bb\u2039\u203a"  # guillemets used as separators
_SEPARATOR = re.compile(
    rf"\||(?<!\d):|:(?!\d)|[-{_DASHES}](?=\s)|(?<=\s)[{_DASHES}]|[{_QUOTE_ARROWS}]"
)
_WORD_SPLIT = re.compile(r"[\s,]+")
_FPS_WORD = re.compile(r"(\d{2,3})FPS")
_CAMEL_SUFFIX = re.compile(r"(?P<name>.*[a-z])(?P<marker>UHD|FHD|HD)")
_EDGE_JUNK = f"*#~=_;,|:-{_DASHES}\u2022\u00b7"
_LONE_SYMBOLS = frozenset({"+", "&", "!"})
_SPACES = re.compile(r"\s+")


@dataclass(slots=True)
class _Found:
    """What has been recognised so far while taking one name apart."""

    tier: QualityTier = QualityTier.UNKNOWN
    tags: set[str] | None = None
    country: str | None = None

    def add_marker(self, word: str) -> None:
        tier = _TIER_WORDS.get(word)
        if tier is not None:
            self.tier = max(self.tier, tier)
            return
        tag = _TAG_WORDS.get(word)
        if tag is None:
            fps = _FPS_WORD.fullmatch(word)
            if fps is None:
                return
            tag = f"{int(fps.group(1))}FPS"
        if self.tags is None:
            self.tags = set()
        self.tags.add(tag)

    def add_country(self, code: str) -> None:
        if self.country is None:
            self.country = COUNTRY_ALIASES.get(code, code)


# -- classification -------------------------------------------------------------------


def _split_glued(word: str) -> list[str] | None:
    """``word`` as a sequence of marker pieces (``HDRAW`` → ``[HD, RAW]``), else ``None``."""
    if not word:
        return []
    fps = _FPS_PREFIX.match(word)
    if fps is not None:
        rest = _split_glued(word[fps.end() :])
        if rest is not None:
            return [fps.group(0), *rest]
    for piece in _GLUE_PIECES:
        if word.startswith(piece):
            rest = _split_glued(word[len(piece) :])
            if rest is not None:
                return [piece, *rest]
    return None


def _markers_of(word: str, *, strict_case: bool = True) -> list[str] | None:
    """The markers ``word`` consists of (upper-cased), or ``None`` if it is name material.

    With ``strict_case``, a word not written in capitals is no marker if any of
    its markers is in :data:`_CAPITALS_ONLY` (``Raw`` is a word, ``RAW`` a tag).
    """
    markers = _marker_parts(word)
    if (
        markers is not None
        and strict_case
        and word != word.upper()
        and any(m in _CAPITALS_ONLY for m in markers)
    ):
        return None
    return markers


def _marker_parts(word: str) -> list[str] | None:
    upper = word.upper()
    if upper in _TIER_WORDS or upper in _TAG_WORDS or _FPS_WORD.fullmatch(upper):
        return [upper]
    parts = [p for p in _JOINERS.split(upper) if p] if _JOINER_PRESENT.search(upper) else []
    if len(parts) > 1:
        nested = [_marker_parts(part) for part in parts]
        if all(n is not None for n in nested):
            return [m for n in nested if n is not None for m in n]
        return None
    if not upper.isalnum() or upper.isdigit() or _GLUED.fullmatch(upper) is None:
        return None
    return _split_glued(upper)


def _countries_of(word: str) -> list[str] | None:
    """Country codes in ``word`` (``UK``, ``UK/IE``, ``EX-YU``), or ``None``. Upper case only."""
    if word in REGIONS:
        return [word]
    parts = _COUNTRY_JOINERS.split(word) if len(word) > 3 else [word]
    codes: list[str] = []
    for part in parts:
        if not (2 <= len(part) <= 3 and part.isascii() and part.isalpha() and part.isupper()):
            return None
        if part not in COUNTRY_CODES and part not in COUNTRY_ALIASES and part not in REGIONS:
            return None
        codes.append(part)
    return codes


def _consume_if_meta(text: str, found: _Found, *, in_brackets: bool = False) -> bool:
    """If every word of ``text`` is a marker or country code, record them and return True.

    Inside brackets the capitals-only rule is relaxed: ``(backup)``, ``(Raw)``.
    """
    words = [w.strip(_EDGE_JUNK) for w in _WORD_SPLIT.split(text)]
    words = [w for w in words if w]
    if not words:
        return False
    plan: list[tuple[str, list[str]]] = []
    for word in words:
        countries = _countries_of(word)
        if countries is not None:
            plan.append(("country", countries))
            continue
        markers = _markers_of(word, strict_case=not in_brackets)
        if markers is None:
            return False
        plan.append(("marker", markers))
    for kind, values in plan:
        for value in values:
            if kind == "country":
                found.add_country(value)
            else:
                found.add_marker(value)
    return True


# -- normalisation -----------------------------------------------------------------


def _normalise(name: str) -> str:
    """Steps 1 and 2 of the module docstring: plain text with separators and folded phrases."""
    if name.isascii() and name.isprintable():
        return _fold_phrases(name)  # nothing for Unicode normalisation to do
    out: list[str] = []
    in_super = False
    chars = list(name)
    i = 0
    while i < len(chars):
        ch = chars[i]
        code = ord(ch)
        if _REGIONAL_A <= code <= _REGIONAL_Z:
            nxt = chars[i + 1] if i + 1 < len(chars) else ""
            if nxt and _REGIONAL_A <= ord(nxt) <= _REGIONAL_Z:
                letters = chr(code - _REGIONAL_A + 65) + chr(ord(nxt) - _REGIONAL_A + 65)
                out.append(f" [{letters}] ")
                i += 2
                continue
            out.append(" | ")
            i += 1
            continue
        is_super = unicodedata.decomposition(ch).startswith(("<super>", "<sub>", "<small>"))
        if is_super != in_super:
            out.append(" ")
            in_super = is_super
        out.append(ch)
        i += 1
    text = unicodedata.normalize("NFKC", "".join(out)).translate(_SMALL_CAPS)
    cleaned: list[str] = []
    for ch in text:
        if ch.isascii():
            cleaned.append(ch if ch.isprintable() else " ")
            continue
        category = unicodedata.category(ch)
        if category[0] in "LN" or category in {"Mc", "Pd"}:
            cleaned.append(ch)
        elif category == "Mn":
            # Combining accents stay; variation selectors and keycaps go.
            if not (0xFE00 <= ord(ch) <= 0xFE0F or ch == "\u20e3"):
                cleaned.append(ch)
        elif category in {"Cf", "Cc"}:
            continue
        elif category[0] == "Z":
            cleaned.append(" ")
        elif ch in _QUOTE_ARROWS:
            cleaned.append(ch)
        else:
            cleaned.append(" | ")
    return _fold_phrases("".join(cleaned))


def _fold_phrases(text: str) -> str:
    if _PHRASE_TRIGGER.search(text) is None:
        return text
    lowered = text.lower()
    for triggers, pattern, replacement in _PHRASES:
        if any(trigger in lowered for trigger in triggers):
            text = pattern.sub(replacement, text)
    return text


# -- public entry point --------------------------------------------------------------


def detect_quality(name: str, *, default_tier: QualityTier = QualityTier.UNKNOWN) -> QualityInfo:
    """Take a provider stream name apart (see the module docstring for the rules).

    ``default_tier`` is the tier reported when the name names none.
    """
    found = _Found()
    text = _normalise(name)

    def bracket(match: re.Match[str]) -> str:
        if _consume_if_meta(match.group(1), found, in_brackets=True):
            return " "
        return f" {match.group(1)} "

    if _ANY_BRACKET.search(text) is not None:
        previous = None
        while previous != text:  # nested brackets: innermost first
            previous = text
            text = _BRACKET.sub(bracket, text)
        text = _ANY_BRACKET.sub(" ", text)  # unbalanced leftovers

    kept: list[str] = []
    for segment in _SEPARATOR.split(text):
        if not segment.strip() or _consume_if_meta(segment, found):
            continue
        for raw in segment.split():
            word = raw.strip(_EDGE_JUNK)
            if not any(ch.isalnum() for ch in word) and word not in _LONE_SYMBOLS:
                continue
            markers = _markers_of(word)
            if markers is not None:
                for marker in markers:
                    found.add_marker(marker)
                continue
            camel = _CAMEL_SUFFIX.fullmatch(word)
            if camel is not None:
                found.add_marker(camel.group("marker"))
                word = camel.group("name")
            kept.append(word)

    base = _SPACES.sub(" ", " ".join(kept)).strip(_EDGE_JUNK + " ")
    if not base:
        fallback = " ".join(" ".join(_SEPARATOR.split(text)).split()).strip(_EDGE_JUNK + " ")
        base = fallback or name.strip()
    tier = found.tier if found.tier is not QualityTier.UNKNOWN else default_tier
    return QualityInfo(
        tier=tier,
        tags=frozenset(found.tags or ()),
        base_name=base,
        country=found.country,
    )
