"""Mock provider catalogue, guide, fault model and config files."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from streamforge.errors import ConfigError, NotFoundError
from streamforge.mockprovider import (
    AccountStatus,
    ApiQuirk,
    Catalog,
    Fault,
    FaultKind,
    LimitMode,
    ProviderConfig,
    QuirkKind,
)
from streamforge.mockprovider.api import reshape
from streamforge.mockprovider.catalog import GuideChannel
from streamforge.mockprovider.faults import FaultBoard
from streamforge.mockprovider.guide import programmes, render_xmltv
from streamforge.mockprovider.state import redact


def test_demo_has_a_channel_with_primary_and_two_backups_across_accounts() -> None:
    demo = Catalog.demo()
    carriers = [s for s in demo.streams if s.epg_channel_id == "bbcone.uk"]
    owners = {
        a.username
        for a in demo.accounts
        for s in carriers
        if a.sees(s.stream_id) and a.effective_status() is AccountStatus.ACTIVE
    }
    assert len(carriers) >= 3
    assert owners == {"alpha", "beta"}
    assert demo.account("expired").effective_status() is AccountStatus.EXPIRED
    assert len(demo.profiles_used()) >= 3
    with pytest.raises(NotFoundError):
        demo.account("nobody")


def test_synthetic_is_reproducible_and_realistic() -> None:
    a = Catalog.synthetic(5_000, seed=3)
    b = Catalog.synthetic(5_000, seed=3)
    c = Catalog.synthetic(5_000, seed=4)
    assert a == b
    assert a.streams != c.streams
    assert len({s.stream_id for s in a.streams}) == 5_000
    prefixed = re.compile(
        r"^(\|[A-Z]{2}\| |[A-Z]{2}: |[A-Z]{2} \| |\[[A-Z]{2}\] |[A-Z]{2} - |"
        r"[A-Z]{2}● )"
    )
    assert all(prefixed.match(s.name) for s in a.streams)
    names = " ".join(s.name for s in a.streams)
    for token in ("FHD", "HEVC", "HD", "SD"):
        assert token in names
    with_guide = [s for s in a.streams if s.epg_channel_id]
    assert 0.8 < len(with_guide) / len(a.streams) < 1.0
    # Several streams share each guide channel, as real catalogues do.
    assert len({s.epg_channel_id for s in with_guide}) < len(with_guide) / 5


def test_synthetic_sixty_thousand_is_fast() -> None:
    start = time.monotonic()
    catalog = Catalog.synthetic(60_000)
    assert len(catalog.streams) == 60_000
    assert time.monotonic() - start < 10


def test_catalog_rejects_duplicates() -> None:
    demo = Catalog.demo()
    with pytest.raises(ConfigError, match="duplicate stream_id"):
        Catalog(demo.accounts, demo.categories, demo.streams + demo.streams[:1])


def test_account_repr_hides_password() -> None:
    account = Catalog.demo().account("alpha")
    assert "alpha-secret" not in repr(account)


@settings(max_examples=30, deadline=None)
@given(
    epg=st.text(alphabet="abcdefghij.", min_size=1, max_size=12),
    start=st.integers(min_value=1_600_000_000, max_value=2_000_000_000),
    hours=st.integers(min_value=1, max_value=48),
)
def test_programmes_tile_the_window_without_gaps(epg: str, start: int, hours: int) -> None:
    stop = start + hours * 3600
    progs = programmes(epg, start, stop)
    assert progs[0].start <= start < progs[0].stop
    assert progs[-1].start < stop <= progs[-1].stop
    for before, after in itertools.pairwise(progs):
        assert before.stop == after.start
    assert progs == programmes(epg, start, stop)


def test_xmltv_document_is_valid() -> None:
    now = time.time()
    channels = [GuideChannel("a.uk", "A & B <One>"), GuideChannel("b.de", "B")]
    doc = render_xmltv(channels, now, 2, 6)
    root = etree.fromstring(doc)
    assert [c.findtext("display-name") for c in root.findall("channel")] == ["A & B <One>", "B"]
    assert len(root.findall("programme")) >= 4
    dtd_path = Path("/usr/share/xmltv/xmltv.dtd")
    if not dtd_path.exists():
        pytest.skip("the XMLTV DTD is not installed")
    dtd = etree.DTD(str(dtd_path))
    assert dtd.validate(root), dtd.error_log.filter_from_errors()
    validator = shutil.which("tv_validate_file")
    if validator is not None:
        result = subprocess.run(
            [validator, "/dev/stdin"],
            input=doc,
            capture_output=True,
            timeout=60,
            check=False,
            env={**os.environ, "XMLTV_SUPPLEMENT": str(dtd_path.parent)},
        )
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_fault_model_validation_and_round_trip() -> None:
    fault = Fault(FaultKind.STALL, after=2.5, times=1)
    assert Fault.from_dict(fault.to_dict()) == fault
    assert Fault.from_dict({"kind": "status", "status": 404, "stream_id": 9}).status == 404
    assert FaultKind.REDIRECT.before_headers
    assert not FaultKind.EOF.before_headers
    with pytest.raises(ConfigError):
        Fault.from_dict({"kind": "explode"})
    with pytest.raises(ConfigError):
        Fault(FaultKind.STATUS, status=42)
    with pytest.raises(ConfigError):
        Fault(FaultKind.EOF, times=0)
    quirk = ApiQuirk(QuirkKind.HTML, account="a", targets=frozenset({"get.php"}))
    assert ApiQuirk.from_dict(quirk.to_dict()) == quirk
    with pytest.raises(ConfigError, match="unknown targets"):
        ApiQuirk(QuirkKind.HTML, targets=frozenset({"nope"}))


def test_fault_board_times_semantics() -> None:
    board = FaultBoard()
    board.set_fault(1, Fault(FaultKind.EOF, times=2))
    slot = board.slot(1)
    assert slot is not None
    board.consume(1, slot)
    assert board.slot(1) is slot
    board.consume(1, slot)
    assert board.slot(1) is None
    board.set_fault(2, Fault(FaultKind.STALL))
    slot2 = board.slot(2)
    assert slot2 is not None
    for _ in range(5):
        board.consume(2, slot2)
    assert board.slot(2) is slot2
    board.recover()
    assert board.faults() == {}
    board.add_quirk(ApiQuirk(QuirkKind.EMPTY, account="a", times=1))
    assert board.take_quirks("b", "user_info") == []
    assert len(board.take_quirks("a", "user_info")) == 1
    assert board.take_quirks("a", "user_info") == []


def test_redact_masks_passwords() -> None:
    assert redact("/live/u/secret/1.ts") == "/live/u/***/1.ts"
    assert redact("/u/secret/1") == "/u/***/1"
    assert redact("/player_api.php?username=u&password=secret&action=x") == (
        "/player_api.php?username=u&password=***&action=x"
    )
    assert redact("/_control/streams/1/fault") == "/_control/streams/1/fault"


def test_config_files(tmp_path: Path) -> None:
    toml = tmp_path / "mock.toml"
    toml.write_text(
        """
limit_mode = "refuse_458"
[[accounts]]
username = "u"
password = "p"
max_connections = 3
stream_ids = [1]
[[categories]]
category_id = 1
name = "UK | News"
[[streams]]
stream_id = 1
name = "UK: Test HD"
category_id = 1
epg_channel_id = "test.uk"
profile = "tiny"
[[faults]]
stream_id = 1
kind = "stall"
after = 4
[[quirks]]
kind = "html"
targets = ["get_live_streams"]
[profiles.tiny]
width = 160
height = 120
""",
        encoding="utf-8",
    )
    cfg = ProviderConfig.load(toml)
    assert cfg.limit_mode is LimitMode.REFUSE_458
    assert cfg.catalog.account("u").max_connections == 3
    assert cfg.faults[1] == Fault(FaultKind.STALL, after=4)
    assert cfg.quirks[0].kind is QuirkKind.HTML
    assert (cfg.profiles["tiny"].width, cfg.profiles["tiny"].height) == (160, 120)

    js = tmp_path / "mock.json"
    js.write_text(json.dumps({"synthetic": {"n_streams": 50, "seed": 2}}), encoding="utf-8")
    assert len(ProviderConfig.load(js).catalog.streams) == 50
    js.write_text(
        json.dumps(
            {"streams": [{"stream_id": 1, "name": "x", "category_id": 1, "profile": "nope"}]}
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="unknown media profiles"):
        ProviderConfig.load(js)
    js.write_text("{broken", encoding="utf-8")
    with pytest.raises(ConfigError):
        ProviderConfig.load(js)
    with pytest.raises(ConfigError):
        ProviderConfig.load(tmp_path / "missing.json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["num", "stream_icon", "epg_channel_id", "name", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(value=json_values)
def test_reshaping_quirks_keep_json_valid(value: object) -> None:
    stringly = reshape(value, frozenset({QuirkKind.STRINGLY}))
    assert json.loads(json.dumps(stringly)) == stringly

    def no_ints(v: object) -> bool:
        if isinstance(v, dict):
            return all(no_ints(x) for x in v.values())
        if isinstance(v, list):
            return all(no_ints(x) for x in v)
        return not (isinstance(v, int) and not isinstance(v, bool))

    assert no_ints(stringly)
    missing = reshape(value, frozenset({QuirkKind.MISSING_FIELDS}))
    assert "stream_icon" not in json.dumps(missing)
    nulls = reshape(value, frozenset({QuirkKind.NULLS}))
    assert json.loads(json.dumps(nulls)) == nulls
