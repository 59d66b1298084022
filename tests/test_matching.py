"""Channel matching: normalisation, guards, ordering, suggestions and labelled quality."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamforge.matching.matcher import (
    ABBREVIATION_CONFIDENCE,
    DEFAULT_THRESHOLD,
    VARIANT_CONFIDENCE,
    ChannelMatcher,
    GuideChannel,
    MatchMethod,
    MatchOutcome,
    MatchResult,
    ProviderStream,
    match_streams,
    rank_streams,
)
from streamforge.matching.normalize import (
    TIER_FHD,
    TIER_HD,
    TIER_SD,
    TIER_UHD,
    TIER_UNTAGGED,
    normalize_name,
    quality_tier_of,
)

DATA = Path(__file__).parent / "data"

GUIDE = [
    GuideChannel("BBCOne.uk", ["BBC One", "BBC One HD", "101"]),
    GuideChannel("BBCOneLondon.uk", ["BBC One London"]),
    GuideChannel("BBCOneScotland.uk", ["BBC One Scotland"]),
    GuideChannel("BBCTwo.uk", ["BBC Two"]),
    GuideChannel("ITV1.uk", ["ITV1"]),
    GuideChannel("ITV1plus1.uk", ["ITV1 +1"]),
    GuideChannel("Channel4.uk", ["Channel 4"]),
    GuideChannel("Channel5.uk", ["Channel 5"]),
    GuideChannel("E4.uk", ["E4"]),
    GuideChannel("SkySportsMainEvent.uk", ["Sky Sports Main Event"]),
    GuideChannel("SkySportsF1.uk", ["Sky Sports F1"]),
    GuideChannel("SkySportsPremierLeague.uk", ["Sky Sports Premier League"]),
    GuideChannel("Nickelodeon.uk", ["Nickelodeon"]),
    GuideChannel("ESPN.us", ["ESPN"]),
    GuideChannel("ESPN2.us", ["ESPN2"]),
    GuideChannel("HBO.us", ["HBO East"]),
    GuideChannel("DasErste.de", ["Das Erste"]),
    GuideChannel("NBC4.us", ["NBC 4 New York"]),
]


def _match(name: str, epg: str | None = None, guide: list[GuideChannel] = GUIDE) -> str | None:
    outcome = match_streams(guide, [ProviderStream(1, name, epg)])
    return outcome.matches[0].guide_channel_id if outcome.matches else None


# --- normalisation ---


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("UK: BBC One FHD", "bbc 1"),
        ("|US| ESPN 2 HD", "espn 2"),
        ("[DE] Das Erste HEVC", "das erste"),
        ("US - ESPN2", "espn 2"),
        ("DE | Das Erste", "das erste"),
        ("UK: VIP: BBC One", "bbc 1"),
        ("★ UK: BBC One ◉", "bbc 1"),
        ("BBC Oneᴴᴰ", "bbc 1"),
        ("ESPN (US) 1080p H.265 50FPS", "espn"),
        ("Télé-Québec", "tele quebec"),
        ("Sky Cinema Sci-Fi & Horror", "sky cinema sci fi horror"),
        ("ITV+1", "itv +1"),
        ("E4 +1 HD", "e 4 +1"),
        ("Channel 4 (+1)", "channel 4 +1"),
        ("Canal+", "canal plus"),
        ("RTL Zwei", "rtl 2"),
        ("Nick Jr.", "nick junior"),
        ("UK: HD", "hd"),
    ],
)
def test_normalize_name_keys(raw: str, key: str) -> None:
    assert normalize_name(raw).key == key


def test_normalize_extracts_numbers_timeshift_and_country() -> None:
    name = normalize_name("UK: ITV 2 +1 FHD")
    assert name.tokens == ("itv", "2")
    assert name.numbers == ("2",)
    assert name.timeshift == "+1"
    assert name.country == "uk"
    assert name.tier == TIER_FHD
    assert normalize_name("GB: BBC One").country == "uk"
    assert normalize_name("USA: CNN").country == "us"
    assert normalize_name("EXYU: HRT 1").country is None  # a region, not a country
    assert normalize_name("BBC One").country is None


@pytest.mark.parametrize(
    ("raw", "tier"),
    [
        ("UK: BBC One UHD", TIER_UHD),
        ("BBC One 4K HEVC", TIER_UHD),
        ("BBC One FHD", TIER_FHD),
        ("BBC One 1080p", TIER_FHD),
        ("BBC One HD", TIER_HD),
        ("BBC Oneᴴᴰ", TIER_HD),
        ("BBC One 720p", TIER_HD),
        ("BBC One SD", TIER_SD),
        ("BBC One", TIER_UNTAGGED),
        ("BBC One HD/SD", TIER_HD),
    ],
)
def test_quality_tier_from_name(raw: str, tier: int) -> None:
    assert quality_tier_of(raw) == tier


NAMES = ["BBC One", "Sky Sports Premier League", "ESPN2", "Das Erste", "Channel 4", "E4 +1"]


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    prefix=st.sampled_from(["", "UK: ", "|US| ", "[DE] ", "US - ", "DE | ", "VIP: ", "★ "]),
    tag=st.sampled_from(["", " HD", " FHD", " 4K", " HEVC", " ᴴᴰ", " 1080p 50FPS", " ◉", " SD"]),
    upper=st.booleans(),
)
def test_decoration_never_changes_the_key(name: str, prefix: str, tag: str, upper: bool) -> None:
    decorated = f"{prefix}{name}{tag}"
    if upper:
        decorated = decorated.upper()
    assert normalize_name(decorated).key == normalize_name(name).key


# --- guards ---


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        ("US: ESPN HD", "ESPN.us"),
        ("US: ESPN 2 HD", "ESPN2.us"),
        ("US: ESPN 3", None),
        ("UK: BBC Two", "BBCTwo.uk"),
        ("UK: BBC Three", None),
        ("UK: Channel 4 HD", "Channel4.uk"),
        ("UK: Channel 5 HD", "Channel5.uk"),
        ("UK: Channel 6", None),
        ("UK: Sky Sports F1", "SkySportsF1.uk"),
        ("UK: Sky Sports Main Event", "SkySportsMainEvent.uk"),
        ("UK: Sky Sports F2", None),
        ("UK: ITV1 +1", "ITV1plus1.uk"),
        ("UK: ITV1", "ITV1.uk"),
        ("UK: E4+1", None),  # the guide has no E4 +1: must not fall back to E4
        ("UK: E4 +2", None),
        ("UK: Channel 4 +1", None),
        ("UK: BBC One London HD", "BBCOneLondon.uk"),
        ("UK: BBC One Scotland", "BBCOneScotland.uk"),
        ("UK: BBC One Wales", "BBCOne.uk"),  # region missing from the guide: the main feed
        ("US: HBO", "HBO.us"),  # the guide only has the East feed
        ("US: ABC 4 New York", None),
        ("UK: Nickelodeon", "Nickelodeon.uk"),
        ("US: Nickelodeon", None),  # a country prefix that contradicts the id
        ("Nickelodeon", "Nickelodeon.uk"),
        ("UK: Sky Sports Prem League", "SkySportsPremierLeague.uk"),
        ("UK: Sky Sport Premier League", "SkySportsPremierLeague.uk"),
        ("UK: Sky Sports Premier League Extra", None),
    ],
)
def test_guards(stream: str, expected: str | None) -> None:
    assert _match(stream) == expected


def test_main_channel_stream_never_matches_a_timeshift_only_guide() -> None:
    guide = [GuideChannel("E4plus1.uk", ["E4 +1"])]
    assert _match("UK: E4 HD", guide=guide) is None
    assert _match("UK: E4 +1 HD", guide=guide) == "E4plus1.uk"


def test_epg_id_match_is_case_insensitive_and_certain() -> None:
    outcome = match_streams(GUIDE, [ProviderStream(7, "whatever feed", "bbcone.UK")])
    (result,) = outcome.matches
    assert result.guide_channel_id == "BBCOne.uk"
    assert result.method is MatchMethod.EPG_ID
    assert result.confidence == 1.0


def test_epg_id_of_the_main_channel_on_a_timeshift_stream_is_refused() -> None:
    # Providers often reuse the main channel's id for the +1 feed.
    assert _match("UK: ITV1 +1 HD", epg="ITV1.uk") == "ITV1plus1.uk"
    assert _match("UK: Channel 4 +1", epg="Channel4.uk") is None


def test_unknown_epg_id_falls_back_to_the_name() -> None:
    outcome = match_streams(GUIDE, [ProviderStream(1, "DE: Das Erste HD", "ard.de")])
    (result,) = outcome.matches
    assert (result.guide_channel_id, result.method) == ("DasErste.de", MatchMethod.FUZZY)


def test_confidences() -> None:
    outcome = match_streams(
        GUIDE,
        [
            ProviderStream(1, "UK: BBC One HD"),
            ProviderStream(2, "UK: BBC One Wales"),
            ProviderStream(3, "UK: Sky Sports Prem League"),
            ProviderStream(4, "UK: Sky Sport Premier League"),
        ],
    )
    confidence = {r.stream_id: r.confidence for r in outcome.matches}
    assert confidence[1] == 1.0
    assert confidence[2] == VARIANT_CONFIDENCE
    assert confidence[3] == ABBREVIATION_CONFIDENCE
    assert DEFAULT_THRESHOLD <= confidence[4] < 1.0
    assert all(0.0 <= c <= 1.0 for c in confidence.values())


def test_lcn_display_names_are_not_matched() -> None:
    assert _match("101") is None


# --- many streams per channel, ordering, exclusion, suggestions ---


def test_several_streams_map_to_one_channel_and_are_ranked() -> None:
    streams = [
        ProviderStream("a-sd", "UK: BBC One SD", None, "A", 0),
        ProviderStream("b-fhd", "UK: BBC One FHD", None, "B", 2),
        ProviderStream("a-fhd", "UK| BBC ONE FHD", None, "A", 0),
        ProviderStream("c-epg", "BBC One", "BBCOne.uk", "C", 1, TIER_FHD),
        ProviderStream("a-4k", "UK: BBC One 4K", None, "A", 5),
        ProviderStream("x", "UK: BBC Two HD", None, "A", 0),
    ]
    outcome = match_streams(GUIDE, streams)
    ranked = outcome.by_channel()["BBCOne.uk"]
    assert [r.stream_id for r in ranked] == ["a-4k", "a-fhd", "c-epg", "b-fhd", "a-sd"]
    assert ranked[0].quality_tier == TIER_UHD
    assert [r.stream_id for r in outcome.by_channel()["BBCTwo.uk"]] == ["x"]


def _result(stream_id: int, tier: int, priority: int, confidence: float) -> MatchResult:
    return MatchResult("c", stream_id, confidence, MatchMethod.FUZZY, tier, "acct", priority)


def test_rank_streams_orders_by_tier_then_priority_then_confidence() -> None:
    results = [
        _result(1, TIER_HD, 0, 0.9),
        _result(2, TIER_FHD, 1, 0.87),
        _result(3, TIER_FHD, 0, 0.88),
        _result(4, TIER_FHD, 0, 1.0),
        _result(5, TIER_SD, 0, 1.0),
    ]
    assert [r.stream_id for r in rank_streams(results)] == [4, 3, 2, 1, 5]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 5), st.integers(0, 3), st.floats(0.5, 1.0, allow_nan=False)),
        max_size=12,
    )
)
def test_rank_streams_is_a_sorted_permutation(rows: list[tuple[int, int, float]]) -> None:
    results = [_result(i, tier, prio, conf) for i, (tier, prio, conf) in enumerate(rows)]
    ranked = rank_streams(results)
    assert sorted(cast(int, r.stream_id) for r in ranked) == list(range(len(rows)))
    keys = [(-r.quality_tier, r.account_priority, -r.confidence) for r in ranked]
    assert keys == sorted(keys)


def test_excluded_streams_are_neither_matched_nor_suggested() -> None:
    streams = [
        ProviderStream(1, "UK: BBC One"),
        ProviderStream(2, "UK: BBC Two"),
        ProviderStream(3, "totally unknown"),
    ]
    outcome = match_streams(GUIDE, streams, exclude={1, 3})
    assert [r.stream_id for r in outcome.matches] == [2]
    assert outcome.unmatched == []


def test_unmatched_streams_carry_the_best_suggestion() -> None:
    outcome = match_streams(
        GUIDE,
        [ProviderStream(1, "UK: Sky Sports Premier Leage"), ProviderStream(2, "zzzz qqqq")],
        threshold=0.999,
    )
    assert outcome.matches == []
    suggestion, nothing = outcome.unmatched
    assert suggestion.best_guide_channel_id == "SkySportsPremierLeague.uk"
    assert 0.86 < suggestion.best_score < 0.999
    assert suggestion.name == "UK: Sky Sports Premier Leage"
    assert nothing.best_guide_channel_id is None
    assert nothing.best_score == 0.0


def test_quality_tier_given_by_the_caller_wins() -> None:
    outcome = match_streams(GUIDE, [ProviderStream(1, "UK: BBC One SD", quality_tier=9)])
    assert outcome.matches[0].quality_tier == 9


def test_a_matcher_can_be_reused() -> None:
    matcher = ChannelMatcher(GUIDE)
    first = match_streams(matcher, [ProviderStream(1, "ESPN 2")])
    second = match_streams(matcher, [ProviderStream(2, "US: ESPN2 FHD")])
    assert first.matches[0].guide_channel_id == second.matches[0].guide_channel_id == "ESPN2.us"
    assert match_streams(matcher, [ProviderStream(3, "UK: ESPN 2")]).matches == []
    channel, score = matcher.best_by_name("ESPN 2")
    assert channel is not None
    assert (channel.id, score) == ("ESPN2.us", 1.0)


def test_empty_inputs() -> None:
    assert match_streams([], [ProviderStream(1, "BBC One")]).matches == []
    assert match_streams(GUIDE, []) == MatchOutcome([], [])


# --- labelled quality ---


def test_labelled_set_precision_and_recall() -> None:
    with (DATA / "matching_guide.csv").open(encoding="utf-8", newline="") as handle:
        guide = [
            GuideChannel(row["xmltv_id"], row["display_names"].split("|"))
            for row in csv.DictReader(handle)
        ]
    with (DATA / "matching_labelled.csv").open(encoding="utf-8", newline="") as handle:
        labels = list(csv.DictReader(handle))
    assert len(labels) >= 200
    streams = [
        ProviderStream(i, row["stream_name"], row["epg_channel_id"] or None)
        for i, row in enumerate(labels)
    ]
    mapped = {r.stream_id: r.guide_channel_id for r in match_streams(guide, streams).matches}
    correct = sum(
        1 for i, row in enumerate(labels) if mapped.get(i) == row["expected_guide_id"] != ""
    )
    relevant = sum(1 for row in labels if row["expected_guide_id"])
    precision = correct / len(mapped)
    recall = correct / relevant
    assert precision >= 0.97, precision
    assert recall >= 0.88, recall
    timeshift_rows = [i for i, row in enumerate(labels) if row["case"] == "timeshift"]
    for i in timeshift_rows:
        assert mapped.get(i, "") == labels[i]["expected_guide_id"], labels[i]["stream_name"]
