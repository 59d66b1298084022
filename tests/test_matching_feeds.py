"""Feed qualifiers: regional, time-shifted and other-language feeds are other channels."""

from __future__ import annotations

import pytest

from streamforge.matching.feeds import feed_of, feeds_agree
from streamforge.matching.matcher import (
    FEED_ALIAS_CONFIDENCE,
    FEED_SUGGESTION_CONFIDENCE,
    ChannelMatcher,
    GuideChannel,
    MatchMethod,
    ProviderStream,
    UnmatchedStream,
    match_streams,
)
from streamforge.matching.normalize import normalize_name

GUIDE = [
    GuideChannel("HBO.us", ["HBO East"]),
    GuideChannel("Cinemax.us", ["Cinemax"]),
    GuideChannel("BBCOne.uk", ["BBC One", "BBC One HD"]),
    GuideChannel("BBCOneNI.uk", ["BBC One Northern Ireland"]),
    GuideChannel("BBCTwo.uk", ["BBC Two"]),
    GuideChannel("ITV1.uk", ["ITV1"]),
    GuideChannel("ITVWales.uk", ["ITV Cymru Wales"]),
    GuideChannel("Channel5.uk", ["Channel 5"]),
    GuideChannel("SkyAtlantic.uk", ["Sky Atlantic"]),
    GuideChannel("Eurosport1.uk", ["Eurosport 1"]),
    GuideChannel("NDR.de", ["NDR"]),
    GuideChannel("France3.fr", ["France 3"]),
    GuideChannel("CBCToronto.ca", ["CBC Toronto"]),
    GuideChannel("CTVToronto.ca", ["CTV Toronto"]),
    GuideChannel("Teletoon.ca", ["Teletoon"]),
]


def _outcome(
    name: str, epg: str | None = None, threshold: float = 0.86
) -> tuple[str | None, UnmatchedStream | None]:
    outcome = match_streams(GUIDE, [ProviderStream(1, name, epg)], threshold=threshold)
    if outcome.matches:
        return outcome.matches[0].guide_channel_id, None
    (unmatched,) = outcome.unmatched
    return None, unmatched


@pytest.mark.parametrize(
    ("raw", "core", "qualifiers", "locales"),
    [
        ("US: HBO West ᴴᴰ", "hbo", {"west"}, set()),
        ("US: HBO Eastern", "hbo", {"east"}, set()),
        ("UK: BBC One N Ireland", "bbc 1", {"northern ireland"}, set()),
        ("UK: BBC One NI HD", "bbc 1", {"northern ireland"}, set()),
        ("UK: ITV Cymru Wales FHD", "itv", {"wales"}, set()),
        ("UK: ITV1 Tyne Tees", "itv 1", {"tyne tees"}, set()),
        ("UK: Channel 5 +24", "channel 5", {"+24"}, set()),
        ("DE: NDR Schleswig-Holstein", "ndr", {"schleswig holstein"}, set()),
        ("FR: France 3 Paris IDF HD", "france 3", {"ile de france"}, set()),
        ("FR: France 3 Paris Île-de-France", "france 3", {"ile de france"}, set()),
        ("CA: CTV Vancouver", "ctv", {"vancouver"}, set()),
        ("UK: Eurosport 1 (DE)", "eurosport 1", set(), {"de"}),
        ("UK: Eurosport 2 FR", "eurosport 2", set(), {"fr"}),
        ("CA: Teletoon ENG", "teletoon", set(), {"en"}),
        ("[DE] ZDF", "zdf", set(), set()),  # a leading bracket is a prefix
        ("UK: 5USA", "5 usa", set(), set()),  # a brand word, not a suffix
        ("London Live", "london", set(), set()),  # nothing but a region: its own name
    ],
)
def test_feed_of_splits_core_qualifiers_and_locales(
    raw: str, core: str, qualifiers: set[str], locales: set[str]
) -> None:
    feed = feed_of(raw, normalize_name(raw))
    assert (feed.core, set(feed.qualifiers), set(feed.locales)) == (core, qualifiers, locales)


def test_locales_implied_by_a_country_agree() -> None:
    eng = feed_of("CA: Teletoon ENG", normalize_name("CA: Teletoon ENG"))
    french = feed_of("CA: Teletoon (FR)", normalize_name("CA: Teletoon (FR)"))
    guide = feed_of("Teletoon", normalize_name("Teletoon"))
    assert feeds_agree(eng, "ca", guide, "ca")
    assert not feeds_agree(french, "ca", guide, "ca")
    assert not feeds_agree(eng, None, guide, None)  # nothing says the guide is English


@pytest.mark.parametrize(
    "stream",
    [
        "US: HBO West",
        "US: HBO Pacific HD",
        "US: Cinemax West",
        "UK: BBC Two Wales HD",
        "UK: BBC One Scotland",
        "UK: BBC One London",
        "UK: ITV1 Granada HD",
        "UK: ITV 1 Yorkshire",
        "UK: Channel 5 +24",
        "UK: Channel 5 +1",
        "DE: NDR Hamburg HD",
        "FR: France 3 Bretagne",
        "CA: CTV Vancouver HD",
        "CA: CBC Ottawa",
        "UK: Eurosport 1 (DE)",
        "CA: Teletoon (FR)",
    ],
)
def test_a_qualifier_the_guide_lacks_is_another_channel_offered_as_suggestion(
    stream: str,
) -> None:
    channel, unmatched = _outcome(stream)
    assert channel is None
    assert unmatched is not None
    assert unmatched.other_feed
    assert unmatched.best_guide_channel_id is not None
    assert 0.0 < unmatched.best_score <= FEED_SUGGESTION_CONFIDENCE


@pytest.mark.parametrize(
    ("stream", "suggestion"),
    [
        ("US: HBO", "HBO.us"),  # the guide only has the East feed
        ("CA: CBC", "CBCToronto.ca"),
        ("CA: CTV HD", "CTVToronto.ca"),
    ],
)
def test_a_plain_stream_is_not_mapped_onto_a_regional_guide_channel(
    stream: str, suggestion: str
) -> None:
    channel, unmatched = _outcome(stream)
    assert channel is None
    assert unmatched is not None
    assert (unmatched.best_guide_channel_id, unmatched.other_feed) == (suggestion, True)


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        ("US: HBO EAST FHD", "HBO.us"),
        ("US | HBO East ᴴᴰ (backup)", "HBO.us"),
        ("UK: Sky Atlantic ᴴᴰ", "SkyAtlantic.uk"),
        ("CA: CBC Toronto HD", "CBCToronto.ca"),
        ("CA| CTV TORONTO FHD", "CTVToronto.ca"),
        ("UK: Eurosport 1 (ENG)", "Eurosport1.uk"),
        ("CA: Teletoon ENG", "Teletoon.ca"),
        ("UK: BBC One HD", "BBCOne.uk"),
        ("DE: NDR FHD", "NDR.de"),
        ("FR - France 3 ᴴᴰ", "France3.fr"),
    ],
)
def test_a_qualifier_carried_by_both_sides_matches(stream: str, expected: str) -> None:
    assert _outcome(stream)[0] == expected


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        ("UK: BBC One NI HD", "BBCOneNI.uk"),
        ("UK: BBC One N Ireland", "BBCOneNI.uk"),
        ("UK: ITV Wales HD", "ITVWales.uk"),
        ("US: HBO Eastern", "HBO.us"),
    ],
)
def test_two_spellings_of_one_qualifier_meet(stream: str, expected: str) -> None:
    outcome = match_streams(GUIDE, [ProviderStream(1, stream)])
    (result,) = outcome.matches
    assert (result.guide_channel_id, result.confidence) == (expected, FEED_ALIAS_CONFIDENCE)


def test_no_threshold_maps_another_feed() -> None:
    outcome = match_streams(
        GUIDE, [ProviderStream(1, "UK: BBC Two Wales"), ProviderStream(2, "US: HBO")], threshold=0
    )
    assert outcome.matches == []
    assert [(u.best_guide_channel_id, u.other_feed) for u in outcome.unmatched] == [
        ("BBCTwo.uk", True),
        ("HBO.us", True),
    ]


def test_best_by_name_only_returns_the_same_feed() -> None:
    matcher = ChannelMatcher(GUIDE)
    assert matcher.best_by_name("UK: BBC Two Wales") == (None, 0.0)
    found = matcher.match_name("UK: BBC Two Wales")
    assert found.other_feed is not None
    assert (found.channel, found.other_feed.id) == (None, "BBCTwo.uk")
    channel, score = matcher.best_by_name("UK: BBC Two")
    assert channel is not None
    assert (channel.id, score) == ("BBCTwo.uk", 1.0)


def test_the_epg_id_of_the_plain_channel_on_a_regional_feed_is_refused() -> None:
    # Providers reuse the main channel's id for its regional and time-zone feeds.
    channel, unmatched = _outcome("UK: BBC Two Wales HD", epg="BBCTwo.uk")
    assert channel is None
    assert unmatched is not None
    assert (unmatched.best_guide_channel_id, unmatched.other_feed) == ("BBCTwo.uk", True)
    assert _outcome("US: HBO West", epg="HBO.us")[0] is None
    assert _outcome("UK: Eurosport 1 (DE)", epg="Eurosport1.uk")[0] is None
    # The right feed behind the id is still certain.
    outcome = match_streams(GUIDE, [ProviderStream(1, "US: HBO East", "hbo.US")])
    (result,) = outcome.matches
    assert (result.guide_channel_id, result.method) == ("HBO.us", MatchMethod.EPG_ID)


def test_a_guide_channel_with_plain_and_regional_names_takes_both() -> None:
    guide = [GuideChannel("HBO.us", ["HBO", "HBO East"])]
    streams = [ProviderStream(1, "US: HBO"), ProviderStream(2, "US: HBO East HD")]
    outcome = match_streams(guide, streams)
    assert [r.guide_channel_id for r in outcome.matches] == ["HBO.us", "HBO.us"]
    assert match_streams(guide, [ProviderStream(3, "US: HBO West")]).matches == []
