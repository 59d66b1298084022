"""Channel-name normalisation for matching provider streams to guide channels.

Theory of operation
-------------------
Provider stream names carry a lot that is not the channel's identity:
country/group prefixes (``UK:``, ``|US|``, ``[DE]``, ``US -``, ``DE |``),
quality and codec tags (``FHD``, ``1080p``, ``HEVC``, ``50FPS``, ``ᴴᴰ``…),
decoration (``◉``, ``★``), case, accents and punctuation. Guide display names
carry less, but the same rules apply to them, so both sides are reduced to a
comparable :class:`NormalizedName`:

1. Unicode NFKC folds look-alike forms (``ᴴᴰ`` → ``HD``, full-width letters);
   then accents are stripped and the text is case-folded.
2. Leading prefixes that are country codes or channel-group words are removed
   repeatedly (``UK: VIP: BBC One`` → ``BBC One``); bracketed country codes
   anywhere (``ESPN (US)``) are removed too. The first country seen is kept
   (:attr:`NormalizedName.country`) so the matcher can keep a US feed off a
   British guide channel.
3. Timeshift markers (``+1``, ``+ 2``, ``plus1``, ``(+1)``) are pulled out
   into :attr:`NormalizedName.timeshift`; any other ``+`` becomes the word
   ``plus`` (``Canal+`` ≠ ``Canal``); ``&``, ``and`` and ``the`` are dropped.
4. Quality/codec tags are removed, the best one seen is remembered as the
   quality tier (:func:`quality_tier_of`).
5. A few abbreviations are spelt out (``Jr`` → ``junior``, ``Intl`` →
   ``international``). Number words (English, German, Roman ``ii``/``iii``) become digits
   (``BBC One`` → ``bbc 1``, ``RTL Zwei`` → ``rtl 2``) and letters and
   digits glued together are split (``ESPN2`` → ``espn 2``, ``E4`` → ``e 4``),
   so both spellings meet.
6. What remains is split into alphanumeric tokens; :attr:`numbers` holds the
   numeric tokens, which the matcher requires to agree *exactly* (``ESPN`` vs
   ``ESPN 2``, ``Channel 4`` vs ``Channel 5``, ``BBC One`` vs ``BBC Two``).

Quality tiers are :class:`~streamforge.xtream.quality.QualityTier`'s; a
name's :attr:`NormalizedName.tier` is its rank for choosing between streams
(:attr:`QualityTier.preference`, higher is better): :data:`TIER_SD` 1,
:data:`TIER_UNTAGGED` 2, :data:`TIER_HD` 3, :data:`TIER_FHD` 4,
:data:`TIER_UHD` 5. An untagged name ranks between SD and HD because untagged
panel streams are usually 720p/1080i but sometimes SD. Country codes come
from the one country table in :mod:`streamforge.xtream.quality`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from streamforge.xtream.quality import (
    COUNTRY_ALIASES,
    COUNTRY_CODES,
    REGIONS,
    QualityTier,
)
from streamforge.xtream.quality import country_code as shared_country_code

TIER_SD = QualityTier.SD.preference
TIER_UNTAGGED = QualityTier.UNKNOWN.preference
TIER_HD = QualityTier.HD.preference
TIER_FHD = QualityTier.FHD.preference
TIER_UHD = QualityTier.UHD.preference

# How guide and stream names spell a tier (matching's own vocabulary; the
# scale is QualityTier's).
_QUALITY_TAGS: dict[str, QualityTier] = {
    "uhd": QualityTier.UHD,
    "4k": QualityTier.UHD,
    "8k": QualityTier.UHD,
    "2160p": QualityTier.UHD,
    "2160": QualityTier.UHD,
    "fhd": QualityTier.FHD,
    "1080p": QualityTier.FHD,
    "1080i": QualityTier.FHD,
    "1080": QualityTier.FHD,
    "hd": QualityTier.HD,
    "720p": QualityTier.HD,
    "720": QualityTier.HD,
    "hq": QualityTier.HD,
    "sd": QualityTier.SD,
    "576p": QualityTier.SD,
    "576i": QualityTier.SD,
    "576": QualityTier.SD,
    "480p": QualityTier.SD,
    "480": QualityTier.SD,
    "lq": QualityTier.SD,
}

# Tags that say nothing about the channel's identity nor its resolution.
_NOISE_TAGS = frozenset(
    {
        "hevc",
        "h265",
        "h264",
        "x265",
        "x264",
        "avc",
        "hdr",
        "hdr10",
        "sdr",
        "25fps",
        "30fps",
        "50fps",
        "60fps",
        "fps",
        "raw",
        "vip",
        "backup",
        "bkp",
        "alt",
        "multi",
        "multiaudio",
        "audio",
        "dolby",
        "ac3",
        "aac",
        "stereo",
        "live",
        "direct",
        "orig",
        "original",
        "feed",
    }
)

# Words that may open a provider name as a group label ("VIP: …", "SPORTS | …").
_GROUP_WORDS = frozenset(
    {
        "vip",
        "uhd",
        "4k",
        "fhd",
        "hd",
        "sd",
        "hevc",
        "sport",
        "sports",
        "news",
        "movies",
        "kids",
        "music",
        "docs",
        "ent",
        "ppv",
        "local",
        "general",
        "premium",
        "live",
    }
)


# Every spelling of the one country table (codes, aliases, regions), lower case.
_COUNTRY_WORDS = frozenset(w.lower() for w in (*COUNTRY_CODES, *COUNTRY_ALIASES, *REGIONS))

# Words whose presence or absence never distinguishes two channels.
_STOP_WORDS = frozenset({"and", "the"})

# Abbreviations written both ways by providers and guides alike.
_ABBREVIATIONS = {
    "jr": "junior",
    "intl": "international",
    "int": "international",
    "ch": "channel",
    "utd": "united",
}

_NUMBER_WORDS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "eins": "1",
    "zwei": "2",
    "drei": "3",
    "vier": "4",
    "funf": "5",
    "ii": "2",
    "iii": "3",
}

_PREFIX_RE = re.compile(
    r"""^\s*(?:
        [\[(|]\s*(?P<bracketed>[^\]\)|]{1,12}?)\s*[\])|]   # [DE] (UK) |US|
      | (?P<plain>[^\W_][\w-]{0,7})\s*(?:[:|»▎/]|\s-\s|-\s)  # UK: DE | US - VIP:
    )\s*""",
    re.VERBOSE,
)
_LEADING_DECORATION_RE = re.compile(r"^[^\w\[(|]+")
_BRACKETED_RE = re.compile(r"[\[(]\s*([^\])]{1,12}?)\s*[\])]")
_TIMESHIFT_RE = re.compile(r"(?:\+\s*|\bplus\s*)(\d{1,2})(?![\d.])")
_MODIFIER_RUN_RE = re.compile(r"[\u02b0-\u02ff\u1d00-\u1dbf]+")
_CODEC_RE = re.compile(r"\b[hx]\.\s?26[45]\b")
_SPLIT_RE = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")
_TOKEN_RE = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class NormalizedName:
    """A channel name reduced to what identifies the channel.

    ``key`` is the space-joined token list (timeshift included as ``+N``) and
    is what exact matching compares; ``compact`` is ``key`` without spaces and
    without the timeshift, for spelling-insensitive fuzzy comparison.
    ``compact`` (the tokens glued together, so ``skycinema`` == ``sky
    cinema``) is what spelling-insensitive comparison uses.
    ``country`` is the ISO alpha-2 code of a stripped country prefix
    (``UK: …`` → ``uk``), ``None`` if there was none or it named a region.
    """

    key: str
    tokens: tuple[str, ...]
    numbers: tuple[str, ...]
    timeshift: str | None
    tier: int | None
    country: str | None = None
    compact: str = ""

    @property
    def signature(self) -> tuple[tuple[str, ...], str | None]:
        """What must agree exactly for two names to be the same channel."""
        return self.numbers, self.timeshift


def _fold(text: str) -> str:
    if text.isascii():
        return text.casefold()
    # Superscript tags glued to a name ("Oneᴴᴰ") must become separate words.
    text = _MODIFIER_RUN_RE.sub(lambda run: f" {run.group(0)} ", text)
    text = unicodedata.normalize("NFKC", text)
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold().replace("ß", "ss")


def _is_prefix_word(word: str) -> bool:
    cleaned = word.strip().strip(".").replace(" ", "")
    return cleaned in _COUNTRY_WORDS or cleaned in _GROUP_WORDS


def country_code(word: str) -> str | None:
    """The country code, lower case (``uk`` for Britain), a prefix word names, if any
    (:func:`streamforge.xtream.quality.country_code`)."""
    code = shared_country_code(word.strip().strip(".").replace(" ", "").casefold())
    return code.lower() if code is not None else None


def _strip_prefixes(text: str, countries: list[str]) -> str:
    while True:
        text = _LEADING_DECORATION_RE.sub("", text)
        match = _PREFIX_RE.match(text)
        if match is None:
            return text
        word = match.group("bracketed") or match.group("plain") or ""
        rest = text[match.end() :]
        if not _is_prefix_word(word) or not rest.strip():
            return text
        code = country_code(word)
        if code is not None:
            countries.append(code)
        text = rest


def _drop_bracketed_countries(text: str, countries: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if not _is_prefix_word(match.group(1)):
            return match.group(0)
        code = country_code(match.group(1))
        if code is not None:
            countries.append(code)
        return " "

    if "(" not in text and "[" not in text:
        return text
    return _BRACKETED_RE.sub(replace, text)


def normalize_name(name: str) -> NormalizedName:
    """Reduce a stream or guide display name to a :class:`NormalizedName`."""
    countries: list[str] = []
    text = _drop_bracketed_countries(_strip_prefixes(_fold(name), countries), countries)
    timeshift: str | None = None
    shift = _TIMESHIFT_RE.search(text) if "+" in text or "plus" in text else None
    if shift is not None and int(shift.group(1)) > 0:
        timeshift = f"+{int(shift.group(1))}"
        text = text[: shift.start()] + " " + text[shift.end() :]
    if "." in text:
        text = _CODEC_RE.sub(" ", text)
    text = text.replace("&", " ").replace("+", " plus ")
    tier: QualityTier | None = None
    tokens: list[str] = []
    for raw in _TOKEN_RE.findall(text):
        tag_tier = _QUALITY_TAGS.get(raw)
        if tag_tier is not None:
            tier = tag_tier if tier is None else max(tier, tag_tier)
            continue
        if raw in _NOISE_TAGS or raw in _STOP_WORDS:
            continue
        word = _NUMBER_WORDS.get(raw) or _ABBREVIATIONS.get(raw, raw)
        if word.isalpha() or word.isdigit():
            tokens.append(word)
        else:
            tokens.extend(_SPLIT_RE.sub(" ", word).split())
    if not tokens:
        # A name made only of tags ("HD", "TV") still needs an identity.
        tokens = _TOKEN_RE.findall(text)
    numbers = tuple(sorted(token for token in tokens if token.isdigit()))
    key_tokens = [*tokens, timeshift] if timeshift else tokens
    country = countries[0] if countries else None
    return NormalizedName(
        " ".join(key_tokens),
        tuple(tokens),
        numbers,
        timeshift,
        None if tier is None else tier.preference,
        country,
        "".join(tokens),
    )


def quality_tier_of(name: str) -> int:
    """The quality tier a stream name advertises (:data:`TIER_UNTAGGED` if none)."""
    tier = normalize_name(name).tier
    return TIER_UNTAGGED if tier is None else tier
