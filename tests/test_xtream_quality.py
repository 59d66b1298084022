"""Stream-name quality detection: a table of real-world-style names plus properties.

The table (``tests/data/quality_names.csv``) pins tier, tags, clean base name
and country for names in the styles providers actually use. The Hypothesis
properties build names from clean channel words plus every decoration style
and check that the decoration, and only the decoration, is taken off.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.xtream.quality import (
    COUNTRY_ALIASES,
    COUNTRY_CODES,
    REGIONS,
    QualityInfo,
    QualityTier,
    country_code,
    detect_quality,
)

TABLE = Path(__file__).parent / "data" / "quality_names.csv"


def load_table() -> list[tuple[str, str, str, str, str]]:
    with TABLE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [(r["name"], r["tier"], r["tags"], r["base_name"], r["country"]) for r in rows]


ROWS = load_table()


def test_table_is_big_enough() -> None:
    assert len(ROWS) >= 60
    assert len({row[0] for row in ROWS}) == len(ROWS)


@pytest.mark.parametrize(
    ("name", "tier", "tags", "base_name", "country"), ROWS, ids=[r[0] for r in ROWS]
)
def test_table(name: str, tier: str, tags: str, base_name: str, country: str) -> None:
    info = detect_quality(name)
    assert info.tier is QualityTier[tier]
    assert info.tags == frozenset(tags.split())
    assert info.base_name == base_name
    assert info.country == (country or None)


def test_tier_order() -> None:
    assert QualityTier.UHD > QualityTier.FHD > QualityTier.HD > QualityTier.SD > QualityTier.UNKNOWN
    names = ["UK: BBC One SD", "UK: BBC One 4K", "UK: BBC One HD", "UK: BBC One"]
    assert max(names, key=lambda n: detect_quality(n).tier) == "UK: BBC One 4K"


def test_the_one_tier_scale() -> None:
    """Names, order, values, HD flag and stream preference of every tier, pinned."""
    assert [(t.name, int(t), t.label, t.is_hd, t.preference) for t in QualityTier] == [
        ("UNKNOWN", 0, "unknown", False, 2),
        ("SD", 1, "sd", False, 1),
        ("HD", 2, "hd", True, 3),
        ("FHD", 3, "fhd", True, 4),
        ("UHD", 4, "uhd", True, 5),
    ]
    assert [QualityTier.parse(v) for v in ("uhd", " FHD ", 2, "SD", "4K", None, 9, True)] == [
        QualityTier.UHD,
        QualityTier.FHD,
        QualityTier.HD,
        QualityTier.SD,
        QualityTier.UNKNOWN,
        QualityTier.UNKNOWN,
        QualityTier.UNKNOWN,
        QualityTier.UNKNOWN,
    ]


def test_matching_and_the_lineup_use_the_scale() -> None:
    from streamforge.matching import normalize
    from streamforge.outputs.catalog import LineupRow

    matching_ranks = (
        normalize.TIER_SD,
        normalize.TIER_UNTAGGED,
        normalize.TIER_HD,
        normalize.TIER_FHD,
        normalize.TIER_UHD,
    )
    assert matching_ranks == (1, 2, 3, 4, 5)
    for name in ("BBC One SD", "BBC One", "BBC One 720p", "BBC One 1080p", "BBC One 4K"):
        detected = detect_quality(name).tier
        assert normalize.quality_tier_of(name) == detected.preference, name

    def row(tier: str) -> LineupRow:
        return LineupRow(1, "1", "C", "c.x", None, "", tier, 1)

    assert [row(t.name).hd for t in QualityTier] == [t.is_hd for t in QualityTier]


def test_the_one_country_table() -> None:
    assert {"UK", "US", "DE", "XK"} <= COUNTRY_CODES
    assert not {"SD", "TV", "EU", "GBR"} & COUNTRY_CODES  # a tier, a word, a region, an alias
    assert set(COUNTRY_ALIASES.values()) <= COUNTRY_CODES
    assert not REGIONS & COUNTRY_CODES
    assert not REGIONS & set(COUNTRY_ALIASES)
    cases = {
        "uk": "UK",
        "GB": "UK",
        "gbr": "UK",
        "Sco": "UK",
        "usa": "US",
        "GER": "DE",
        "de": "DE",
        "EXYU": None,
        "eu": None,
        "tv": None,
        "xx": None,
    }
    assert {word: country_code(word) for word in cases} == cases


def test_matching_and_stream_names_read_countries_alike() -> None:
    from streamforge.matching.normalize import country_code as matching_code
    from streamforge.matching.normalize import normalize_name

    for word in ("UK", "GB", "GBR", "ENG", "SCO", "USA", "GER", "NED", "KSA", "ALB", "EU", "EXYU"):
        code = country_code(word)
        assert matching_code(word) == (code.lower() if code else None), word
        assert normalize_name(f"{word}: Some Channel").country == matching_code(word), word
        stream = detect_quality(f"{word}: Some Channel")
        assert stream.base_name == "Some Channel", word
        assert stream.country == (code or word), word


def test_default_tier_only_when_name_has_none() -> None:
    assert detect_quality("BBC One", default_tier=QualityTier.HD).tier is QualityTier.HD
    assert detect_quality("BBC One SD", default_tier=QualityTier.HD).tier is QualityTier.SD


def test_highest_tier_wins_when_several_are_named() -> None:
    assert detect_quality("Sky Sports FHD / HD").tier is QualityTier.FHD


def test_json_form() -> None:
    info = detect_quality("UK: Sky Sports Arena FHD HEVC 50FPS ᴿᴬᵂ")
    data = info.to_json()
    assert data == {
        "tier": "FHD",
        "rank": 3,
        "tags": ["50FPS", "HEVC", "RAW"],
        "base_name": "Sky Sports Arena",
        "country": "UK",
    }
    assert json.loads(json.dumps(data)) == data
    assert QualityInfo.from_json(data) == info


def test_from_json_tolerates_extra_and_bad_values() -> None:
    info = QualityInfo.from_json({"tier": "nonsense", "tags": None, "category": "UK | Sports"})
    assert info == QualityInfo(QualityTier.UNKNOWN, frozenset(), "", None)
    assert QualityInfo.from_json({"tier": 4, "country": ""}).tier is QualityTier.UHD
    assert QualityTier.parse(True) is QualityTier.UNKNOWN
    assert QualityTier.parse(17) is QualityTier.UNKNOWN


def test_name_of_only_markers_keeps_something() -> None:
    assert detect_quality("4K").base_name == "4K"
    assert detect_quality("  ").base_name == ""


# -- properties ---------------------------------------------------------------------

CHANNEL_WORDS = [
    "Sky", "Sports", "BBC", "One", "Four", "ESPN", "2", "Channel", "5", "+1", "News",
    "Cinema", "Main", "Event", "Arena", "Film4", "E4", "Discovery", "Dave", "TNT", "F1",
    "Premier", "League", "24/7", "Das", "Erste", "Télé", "Nick", "Jr.", "Canal+",
]  # fmt: skip

TIER_MARKERS = [
    ("HD", QualityTier.HD),
    ("FHD", QualityTier.FHD),
    ("Full HD", QualityTier.FHD),
    ("1080p", QualityTier.FHD),
    ("4K", QualityTier.UHD),
    ("UHD", QualityTier.UHD),
    ("ᴴᴰ", QualityTier.HD),
    ("ᶠᴴᴰ", QualityTier.FHD),
    ("SD", QualityTier.SD),
    ("HDTV", QualityTier.HD),
    ("", QualityTier.UNKNOWN),
]

TAG_MARKERS = [
    ("HEVC", {"HEVC"}),
    ("H.264", {"H264"}),
    ("50FPS", {"50FPS"}),
    ("60 fps", {"60FPS"}),
    ("ᴿᴬᵂ", {"RAW"}),
    ("RAW", {"RAW"}),
    ("VIP", {"VIP"}),
    ("(backup)", {"BACKUP"}),
    ("[Multi-Audio]", {"MULTI"}),
    ("◉", set()),
    ("★", set()),
    ("*", set()),
    ("", set()),
]

PREFIXES = ["{c}: ", "|{c}| ", "[{c}] ", "{c} | ", "{c} - ", "{c} ◉ ", "({c}) ", "{c}● ", ""]


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.sampled_from(CHANNEL_WORDS), min_size=1, max_size=4),
    tier=st.sampled_from(TIER_MARKERS),
    tag=st.sampled_from(TAG_MARKERS),
    prefix=st.sampled_from(PREFIXES),
    country=st.sampled_from(["UK", "US", "DE", "FR", "ES"]),
    upper=st.booleans(),
)
def test_decoration_is_removed_and_only_decoration(
    words: list[str],
    tier: tuple[str, QualityTier],
    tag: tuple[str, set[str]],
    prefix: str,
    country: str,
    upper: bool,
) -> None:
    base = " ".join(words)
    if upper:
        base = base.upper()
    name = f"{prefix.format(c=country)}{base} {tier[0]} {tag[0]}"
    info = detect_quality(name)
    assert info.base_name == base
    assert info.tier is tier[1]
    assert info.tags == frozenset(tag[1])
    assert info.country == (country if prefix else None)
    # A clean name is a fixed point.
    again = detect_quality(info.base_name)
    assert again.base_name == base
    assert again.tier is QualityTier.UNKNOWN


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_handled(name: str) -> None:
    info = detect_quality(name)
    assert info.base_name == info.base_name.strip()
    assert "  " not in info.base_name
    assert isinstance(info.tier, QualityTier)
    assert json.loads(json.dumps(info.to_json())) == info.to_json()
    assert QualityInfo.from_json(info.to_json()) == info


@settings(max_examples=200, deadline=None)
@given(number=st.integers(min_value=0, max_value=999), word=st.sampled_from(CHANNEL_WORDS[:12]))
def test_numbers_in_names_survive(number: int, word: str) -> None:
    info = detect_quality(f"UK: {word} {number} HD")
    if number in {1080, 2160}:  # bare resolutions are tier markers
        assert info.tier is QualityTier.FHD or info.tier is QualityTier.UHD
    else:
        assert info.base_name == f"{word} {number}"
        assert info.tier is QualityTier.HD


def test_the_scale_imports_without_the_provider_client() -> None:
    """The outputs use the scale; importing them must not load the Xtream client."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import streamforge.outputs.catalog, streamforge.outputs.hdhomerun\n"
        "import streamforge.outputs.m3u, streamforge.outputs.xmltv_writer\n"
        "import streamforge.xtream.quality\n"
        "loaded = {'aiohttp', 'streamforge.xtream.client'} & set(sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
