"""Map provider streams onto guide channels (many streams per channel).

Theory of operation
-------------------
Every provider stream is compared with the guide once and mapped to at most
one guide channel; a guide channel collects every stream that maps to it (the
same channel from several accounts and in several qualities), and
:func:`rank_streams` orders those so the first is the primary and the rest are
failover backups.

A stream is matched in this order:

1. **EPG id** - the stream's ``epg_channel_id`` equals a guide channel's
   XMLTV id, compared case-insensitively: confidence 1.0, method ``epg_id``.
   Providers often put the main channel's id on its ``+1`` and regional
   feeds, so the match is refused when the stream name's feed (timeshift,
   region, language, see below) differs from every display name of that
   channel; the stream then falls through to name matching.
2. **Exact normalised name** - :func:`~streamforge.matching.normalize.normalize_name`
   reduces names on both sides; equal keys give confidence 1.0, method
   ``fuzzy``.
3. **Fuzzy name** - candidates are only guide names whose *signature* (number
   tokens and timeshift) equals the stream's, so ``ESPN`` never meets
   ``ESPN 2`` and ``ITV +1`` never meets ``ITV``. Within that block an
   inverted index (token → names, plus the first three letters of the compact
   name for run-together spellings) narrows the candidates to names sharing
   the query's rarest tokens; rapidfuzz ranks those in C and only the top few
   get the full check, whose raw score is the better of ``token_sort_ratio``
   on the keys and ``ratio`` on the space-less keys. Short names get a penalty proportional to how
   short they are (``CBS`` vs ``CBBC`` scores 0.86 raw, which would otherwise
   pass), so the score tends towards "exact or nothing" below eight letters.
   Whole-name similarity is not enough on its own: the words only one side
   has must look like spelling variants of each other (``Sport``/``Sports``),
   otherwise the score is 0 - this keeps ``ABC 4 New York`` off
   ``NBC 4 New York`` and ``Sky Cinema Animation`` off ``Sky Cinema Action``.
   A name that is the other plus extra words (``Nick Jr Too``, ``E4 Extra``,
   ``CNN International``) is another channel and also scores 0.
   Names that differ only by abbreviated words (``Prem`` for ``Premier``, at
   least three letters) get :data:`ABBREVIATION_CONFIDENCE`.
4. **Filler-word fallback** - a stream whose name is a guide name plus the
   word ``Channel`` (``Golf`` for ``Golf Channel``), or the reverse, is
   mapped with confidence :data:`VARIANT_CONFIDENCE` if nothing scored higher.

Feeds: a regional or time-shifted feed is another channel, never a backup of
the plain one (after a failover the viewer would silently watch a programme
three hours off, or another region's schedule). Every step above only accepts
a guide name whose feed qualifiers - time-zone feeds, timeshift, regions and
cities, language or country suffixes; :mod:`streamforge.matching.feeds` holds
the vocabulary - agree with the stream's (:func:`~streamforge.matching.feeds.feeds_agree`),
in both directions: ``HBO West`` is not mapped onto ``HBO East``, ``BBC Two
Wales`` not onto ``BBC Two``, ``CBC`` not onto ``CBC Toronto``, ``Teletoon
(FR)`` not onto the English ``Teletoon.ca``. A qualifier both sides carry
matches as any word does, and two spellings of one qualifier (``NI``/
``Northern Ireland``, ``Cymru``/``Wales``) meet with confidence
:data:`FEED_ALIAS_CONFIDENCE`. The same feed of the stream's channel is then
not in the guide: the stream stays unmatched and carries the other feed as a
suggestion (:attr:`UnmatchedStream.other_feed`, score at most
:data:`FEED_SUGGESTION_CONFIDENCE`), which no threshold turns into a mapping.
The EPG-id step applies the same check against the channel's display names,
because providers put the main channel's id on its regional and ``+1`` feeds.

Countries: a stream whose name carried a country prefix (``US: …``) is never
mapped onto a guide channel whose XMLTV id ends in a different country
(``Nickelodeon.uk``); ids without a country suffix accept any stream. This
also picks the right one of two same-named channels in a multi-country guide.

Streams scoring below the threshold are reported as :class:`UnmatchedStream`
with their best candidate, so the UI can suggest it.

Cost: building the index is linear in guide names; each *distinct* normalised
stream name is scored once (providers repeat names across accounts and
qualities) against a few dozen candidates, so 60 000 streams by 5 000
channels take seconds, not the hours of an all-pairs comparison.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Hashable, Iterable, Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from streamforge.matching.feeds import Feed, feed_of, feeds_agree
from streamforge.matching.normalize import (
    TIER_UNTAGGED,
    NormalizedName,
    country_code,
    normalize_name,
)

DEFAULT_THRESHOLD = 0.86
"""Minimum confidence for an automatic mapping."""

VARIANT_CONFIDENCE = 0.9
"""Confidence of a ``<guide name> + Channel`` match."""

FEED_ALIAS_CONFIDENCE = 0.95
"""Confidence when the names differ only in how a feed qualifier is spelt (``NI``)."""

FEED_SUGGESTION_CONFIDENCE = 0.8
"""Highest score of another feed offered as a suggestion (never mapped)."""

ABBREVIATION_CONFIDENCE = 0.95
"""Confidence when the only differences are abbreviated words (``Prem``/``Premier``)."""

_CHECK_FLOOR = 60.0
_SHORTLIST = 5
_TOKEN_AGREEMENT = 75.0
_MIN_ABBREVIATION = 3
_SHORT_NAME = 8
_SHORT_PENALTY = 0.03
_MIN_CANDIDATES = 16
_MAX_CANDIDATES = 400

# Words whose presence or absence never makes another channel.
_FILLER_WORDS = frozenset({"channel"})


class MatchMethod(enum.StrEnum):
    """How a mapping was found."""

    EPG_ID = "epg_id"
    FUZZY = "fuzzy"


@dataclass(frozen=True, slots=True)
class GuideChannel:
    """A guide channel as the matcher sees it."""

    id: str
    display_names: Sequence[str]


@dataclass(frozen=True, slots=True)
class ProviderStream:
    """A provider stream as the matcher sees it.

    ``account_priority``: lower is preferred. ``quality_tier``: higher is
    better; ``None`` lets the matcher read it from the name
    (:func:`~streamforge.matching.normalize.quality_tier_of`).
    """

    id: Hashable
    name: str
    epg_channel_id: str | None = None
    account_id: Hashable = None
    account_priority: int = 0
    quality_tier: int | None = None


@dataclass(frozen=True, slots=True)
class MatchResult:
    """One automatic mapping of a stream onto a guide channel."""

    guide_channel_id: str
    stream_id: Hashable
    confidence: float
    method: MatchMethod
    quality_tier: int
    account_id: Hashable
    account_priority: int


@dataclass(frozen=True, slots=True)
class UnmatchedStream:
    """A stream below the threshold, with the best candidate as a suggestion."""

    stream_id: Hashable
    name: str
    best_guide_channel_id: str | None
    best_score: float
    other_feed: bool = False
    """The suggestion is another feed (region, timeshift, language) of the stream's channel."""


@dataclass(frozen=True, slots=True)
class NameMatch:
    """What a stream name may be mapped to, and the closest other feed.

    ``channel``/``score``: the best guide channel of the same feed (mapped when
    ``score`` reaches the threshold). ``other_feed``/``other_feed_score``: the
    best guide channel that is another feed of the same channel (``BBC Two``
    for ``BBC Two Wales``): a suggestion only, whatever the threshold.
    """

    channel: GuideChannel | None
    score: float
    other_feed: GuideChannel | None = None
    other_feed_score: float = 0.0


@dataclass(frozen=True, slots=True)
class MatchOutcome:
    """All mappings and the unmatched streams of one matching run."""

    matches: list[MatchResult]
    unmatched: list[UnmatchedStream]

    def by_channel(self) -> dict[str, list[MatchResult]]:
        """Mappings grouped per guide channel, each list ranked (primary first)."""
        groups: dict[str, list[MatchResult]] = {}
        for result in self.matches:
            groups.setdefault(result.guide_channel_id, []).append(result)
        return {channel: rank_streams(results) for channel, results in groups.items()}


def rank_streams(results: Iterable[MatchResult]) -> list[MatchResult]:
    """Order one channel's streams: tier (best first), account priority, confidence.

    The first element is the primary stream, the rest are failover backups
    in order. Ties keep their input order (the sort is stable).
    """
    return sorted(
        results,
        key=lambda r: (-r.quality_tier, r.account_priority, -r.confidence),
    )


@dataclass(frozen=True, slots=True)
class _Candidate:
    channel: int
    name: NormalizedName
    country: str | None
    feed: Feed


@dataclass(slots=True)
class _Block:
    """Guide names sharing one signature, with a token index over them."""

    entries: list[_Candidate]
    postings: dict[str, list[int]]
    keys: list[str]
    compacts: list[str]


@dataclass(frozen=True, slots=True)
class _Scored:
    channel: int | None
    score: float
    other_feed: int | None = None
    other_feed_score: float = 0.0


def _length_penalty(query: NormalizedName, candidate: NormalizedName) -> float:
    shortest = min(len(query.compact), len(candidate.compact))
    return max(0, _SHORT_NAME - shortest) * _SHORT_PENALTY


def _tokens_agree(query_extra: list[str], candidate_extra: list[str]) -> bool:
    """Whether the tokens only one side has look like spelling variants of each other.

    ``sport``/``sports`` and ``prem``/``premier`` agree; ``abc``/``nbc`` and
    ``animation``/``action`` do not, however close the whole names score.
    """
    fewer, more = sorted((query_extra, candidate_extra), key=len)
    for token in fewer:
        if not any(
            other.startswith(token)
            or token.startswith(other)
            or fuzz.ratio(token, other) >= _TOKEN_AGREEMENT
            for other in more
        ):
            return False
    return True


def _expands_abbreviations(query_extra: list[str], candidate_extra: list[str]) -> bool:
    """Whether every differing query token abbreviates a differing candidate token."""
    if len(query_extra) != len(candidate_extra):
        return False
    return all(
        len(short) >= _MIN_ABBREVIATION and full.startswith(short) and short != full
        for short, full in zip(query_extra, candidate_extra, strict=True)
    )


def _similarity(query: NormalizedName, candidate: NormalizedName) -> float:
    """Confidence in [0, 1] that two same-signature names denote one channel."""
    raw = max(
        fuzz.token_sort_ratio(query.key, candidate.key),
        fuzz.ratio(query.compact, candidate.compact),
    )
    if raw >= 100.0:
        return 1.0
    if raw < _CHECK_FLOOR:
        return 0.0
    query_extra = [token for token in query.tokens if token not in candidate.tokens]
    candidate_extra = [token for token in candidate.tokens if token not in query.tokens]
    if bool(query_extra) != bool(candidate_extra):
        # One name is the other plus words: "Nick Jr Too", "CNN International",
        # "E4 Extra" are other channels. Feed/region words go through _variant.
        return 0.0
    if query_extra:
        if not _tokens_agree(query_extra, candidate_extra):
            return 0.0
        if _expands_abbreviations(query_extra, candidate_extra):
            return ABBREVIATION_CONFIDENCE
    return max(0.0, raw / 100.0 - _length_penalty(query, candidate))


def _has_letters(text: str) -> bool:
    return any(ch.isalpha() for ch in text)


def _guide_country(channel: GuideChannel) -> str | None:
    """The country an XMLTV id names by convention (``BBCOne.uk`` → ``uk``)."""
    _, dot, suffix = channel.id.rpartition(".")
    return country_code(suffix) if dot else None


def _countries_agree(stream: str | None, guide: str | None) -> bool:
    return stream is None or guide is None or stream == guide


def _core_key(name: NormalizedName) -> str | None:
    """``name`` without filler words, or ``None`` if it has none or only those."""
    core = [token for token in name.tokens if token not in _FILLER_WORDS]
    if not core or len(core) == len(name.tokens):
        return None
    return " ".join([*core, name.timeshift] if name.timeshift else core)


class ChannelMatcher:
    """An index over one guide's channels; reuse it for many streams."""

    def __init__(self, guide: Iterable[GuideChannel]) -> None:
        self._channels: list[GuideChannel] = list(guide)
        self._countries: list[str | None] = [_guide_country(c) for c in self._channels]
        self._by_epg_id: dict[str, int] = {}
        self._exact: dict[str, list[_Candidate]] = {}
        self._by_feed: dict[str, list[_Candidate]] = {}
        self._by_core: dict[str, list[_Candidate]] = {}
        self._cores: dict[str, list[_Candidate]] = {}
        self._blocks: dict[tuple[tuple[str, ...], str | None], _Block] = {}
        self._feeds: list[list[Feed]] = []
        self._names: dict[str, tuple[NormalizedName, Feed]] = {}
        self._cache: dict[tuple[str, str | None, Feed], _Scored] = {}
        for index, channel in enumerate(self._channels):
            self._by_epg_id.setdefault(channel.id.strip().casefold(), index)
            feeds: list[Feed] = []
            for display in channel.display_names:
                if not _has_letters(display):
                    continue  # an LCN such as "101" is not a name
                name = normalize_name(display)
                candidate = _Candidate(index, name, self._countries[index], feed_of(display, name))
                feeds.append(candidate.feed)
                self._add(candidate)
            self._feeds.append(feeds)

    def _add(self, candidate: _Candidate) -> None:
        name = candidate.name
        _append_unique(self._exact, name.key, candidate)
        _append_unique(self._by_feed, candidate.feed.key, candidate)
        _append_unique(self._by_core, candidate.feed.core, candidate)
        core = _core_key(name)
        if core is not None:
            _append_unique(self._cores, core, candidate)
        block = self._blocks.get(name.signature)
        if block is None:
            block = _Block([], {}, [], [])
            self._blocks[name.signature] = block
        position = len(block.entries)
        block.entries.append(candidate)
        block.keys.append(name.key)
        block.compacts.append(name.compact)
        for term in {*name.tokens, "^" + name.compact[:3]}:
            block.postings.setdefault(term, []).append(position)

    def _normalized(self, name: str) -> tuple[NormalizedName, Feed]:
        found = self._names.get(name)
        if found is None:
            normalized = normalize_name(name)
            found = (normalized, feed_of(name, normalized))
            self._names[name] = found
        return found

    def normalize(self, name: str) -> NormalizedName:
        """:func:`normalize_name`, memoised for this matcher's lifetime."""
        return self._normalized(name)[0]

    @property
    def channels(self) -> Sequence[GuideChannel]:
        """The guide channels, in the order given."""
        return self._channels

    def channel_by_epg_id(self, epg_channel_id: str, stream_name: str) -> GuideChannel | None:
        """The channel whose XMLTV id equals ``epg_channel_id``, if the feed agrees."""
        index = self._by_epg_id.get(epg_channel_id.strip().casefold())
        if index is None:
            return None
        feeds = self._feeds[index]
        if feeds:
            name, feed = self._normalized(stream_name)
            country = self._countries[index]
            if not any(feeds_agree(feed, name.country, other, country) for other in feeds):
                return None
        return self._channels[index]

    def best_by_name(self, name: str) -> tuple[GuideChannel | None, float]:
        """The best guide channel of the same feed for a stream name, confidence in [0, 1]."""
        found = self.match_name(name)
        return found.channel, found.score

    def match_name(self, name: str) -> NameMatch:
        """The best guide channel of the same feed, and the closest other feed."""
        normalized, feed = self._normalized(name)
        cache_key = (normalized.key, normalized.country, feed)
        scored = self._cache.get(cache_key)
        if scored is None:
            scored = self._score(normalized, feed)
            self._cache[cache_key] = scored
        return NameMatch(
            self._channel(scored.channel),
            scored.score,
            self._channel(scored.other_feed),
            scored.other_feed_score,
        )

    def _channel(self, index: int | None) -> GuideChannel | None:
        return None if index is None else self._channels[index]

    def _first_agreeing(
        self, candidates: list[_Candidate] | None, query: NormalizedName, feed: Feed
    ) -> int | None:
        for candidate in candidates or ():
            if _agree(query, feed, candidate):
                return candidate.channel
        return None

    def _score(self, query: NormalizedName, feed: Feed) -> _Scored:
        exact = self._first_agreeing(self._exact.get(query.key), query, feed)
        if exact is not None:
            return _Scored(exact, 1.0)
        alias = self._first_agreeing(self._by_feed.get(feed.key), query, feed)
        if alias is not None:
            return _Scored(alias, FEED_ALIAS_CONFIDENCE)
        best = _Scored(None, 0.0)
        other = _Scored(None, 0.0)
        block = self._blocks.get(query.signature)
        if block is not None:
            for position in self._shortlist(query, block):
                candidate = block.entries[position]
                if not _countries_agree(query.country, candidate.country):
                    continue
                scored = _Scored(candidate.channel, _similarity(query, candidate.name))
                if feeds_agree(feed, query.country, candidate.feed, candidate.country):
                    best = _better(best, scored)
                else:
                    other = _better(other, scored)
        if best.score < VARIANT_CONFIDENCE:
            variant = self._variant(query, feed)
            if variant is not None:
                best = _Scored(variant, VARIANT_CONFIDENCE)
        for candidate in self._by_core.get(feed.core, ()):
            if _countries_agree(query.country, candidate.country) and not _agree(
                query, feed, candidate
            ):
                other = _better(other, _Scored(candidate.channel, FEED_SUGGESTION_CONFIDENCE))
                break
        if other.channel is None:
            return best
        return _Scored(
            best.channel,
            best.score,
            other.channel,
            min(other.score, FEED_SUGGESTION_CONFIDENCE),
        )

    def _shortlist(self, query: NormalizedName, block: _Block) -> set[int]:
        """The few candidates worth a full :func:`_similarity` check.

        rapidfuzz scores the blocked candidates in C with both scorers; only
        the best :data:`_SHORTLIST` of each above :data:`_CHECK_FLOOR` go on.
        """
        positions = self._candidates(query, block)
        if not positions:
            return set()
        shortlist: set[int] = set()
        for text, choices, scorer in (
            (query.key, [block.keys[i] for i in positions], fuzz.token_sort_ratio),
            (query.compact, [block.compacts[i] for i in positions], fuzz.ratio),
        ):
            for _, _, index in process.extract(
                text,
                choices,
                scorer=scorer,
                processor=None,
                score_cutoff=_CHECK_FLOOR,
                limit=_SHORTLIST,
            ):
                shortlist.add(positions[index])
        return shortlist

    def _candidates(self, query: NormalizedName, block: _Block) -> list[int]:
        """Blocked candidates: names sharing the query's rarest tokens.

        A true match shares every correctly spelt token with the query, so
        the rarest shared token's posting list already contains it; postings
        are added rarest first until :data:`_MIN_CANDIDATES` names are in
        hand, which also covers a typo that hits the rarest token.
        """
        terms = [*dict.fromkeys(query.tokens), "^" + query.compact[:3]]
        postings = sorted(
            (block.postings[term] for term in terms if term in block.postings), key=len
        )
        seen: dict[int, None] = {}
        for posting in postings:
            seen.update(dict.fromkeys(posting[:_MAX_CANDIDATES]))
            if len(seen) >= _MIN_CANDIDATES:
                break
        return list(seen)

    def _variant(self, query: NormalizedName, feed: Feed) -> int | None:
        """A guide name equal to the query up to filler words, either way round."""
        core = _core_key(query)
        if core is not None:
            found = self._first_agreeing(self._exact.get(core), query, feed)
            if found is not None:
                return found
        return self._first_agreeing(self._cores.get(query.key), query, feed)


def _agree(query: NormalizedName, feed: Feed, candidate: _Candidate) -> bool:
    """Whether a guide name may take the stream: same country and same feed."""
    return _countries_agree(query.country, candidate.country) and feeds_agree(
        feed, query.country, candidate.feed, candidate.country
    )


def _better(best: _Scored, scored: _Scored) -> _Scored:
    """The higher score; on a tie the channel listed first in the guide."""
    if scored.score > best.score or (
        scored.score == best.score
        and best.channel is not None
        and scored.channel is not None
        and scored.channel < best.channel
    ):
        return scored
    return best


def _append_unique(index: dict[str, list[_Candidate]], key: str, candidate: _Candidate) -> None:
    candidates = index.setdefault(key, [])
    if all(
        other.channel != candidate.channel or other.feed != candidate.feed for other in candidates
    ):
        candidates.append(candidate)


def match_streams(
    guide: Iterable[GuideChannel] | ChannelMatcher,
    streams: Iterable[ProviderStream],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    exclude: Collection[Hashable] = frozenset(),
) -> MatchOutcome:
    """Map every stream above ``threshold``; streams in ``exclude`` are skipped.

    ``exclude`` holds the ids of streams the user mapped by hand; they get
    neither a mapping nor a suggestion.
    """
    matcher = guide if isinstance(guide, ChannelMatcher) else ChannelMatcher(guide)
    excluded = frozenset(exclude)
    matches: list[MatchResult] = []
    unmatched: list[UnmatchedStream] = []
    for stream in streams:
        if stream.id in excluded:
            continue
        tier = stream.quality_tier
        if tier is None:
            tier = matcher.normalize(stream.name).tier or TIER_UNTAGGED
        channel: GuideChannel | None = None
        method = MatchMethod.EPG_ID
        confidence = 1.0
        if stream.epg_channel_id:
            channel = matcher.channel_by_epg_id(stream.epg_channel_id, stream.name)
        found = NameMatch(channel, confidence)
        if channel is None:
            method = MatchMethod.FUZZY
            found = matcher.match_name(stream.name)
            channel, confidence = found.channel, found.score
        if channel is not None and confidence >= threshold:
            matches.append(
                MatchResult(
                    channel.id,
                    stream.id,
                    round(confidence, 4),
                    method,
                    tier,
                    stream.account_id,
                    stream.account_priority,
                )
            )
        elif found.other_feed is not None and found.other_feed_score >= confidence:
            unmatched.append(
                UnmatchedStream(
                    stream.id,
                    stream.name,
                    found.other_feed.id,
                    round(found.other_feed_score, 4),
                    other_feed=True,
                )
            )
        else:
            unmatched.append(
                UnmatchedStream(
                    stream.id,
                    stream.name,
                    None if channel is None else channel.id,
                    round(confidence, 4),
                )
            )
    return MatchOutcome(matches, unmatched)
