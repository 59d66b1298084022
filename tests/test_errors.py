"""The exception tree: every exception StreamForge defines is in it, drawn as it is.

Imports every module of the package, collects each exception class defined
there, and checks it against the tree in the docstring of
:mod:`streamforge.errors`: the class derives from ``StreamForgeError``, has a
line in the tree, sits under the parent the tree shows, and lives in the
module the tree names for it.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass

import pytest

import streamforge
from streamforge import errors
from streamforge.errors import StreamForgeError

_NODE = re.compile(r"^(?P<indent>(?:[│ ] {3}|[├└]── )*)(?P<name>[A-Za-z]+)(?:\s+(?P<text>.*))?$")
_WHERE = re.compile(r"^(?P<path>[a-z_/]+\.py):")


@dataclass(frozen=True)
class Node:
    name: str
    parent: str | None
    module: str


def _tree() -> dict[str, Node]:
    doc = errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    nodes: dict[str, Node] = {}
    path: list[str] = []
    for line in block.splitlines():
        match = _NODE.match(line[4:])
        assert match is not None, f"not a tree line: {line!r}"
        depth = len(match["indent"]) // 4
        name = match["name"]
        where = _WHERE.match(match["text"] or "")
        module = (
            "streamforge." + where["path"].removesuffix(".py").replace("/", ".")
            if where
            else "streamforge.errors"
        )
        del path[depth:]
        assert name not in nodes, f"{name} drawn twice"
        nodes[name] = Node(name, path[-1] if path else None, module)
        path.append(name)
    return nodes


def _exception_classes() -> list[type[BaseException]]:
    modules = [streamforge]
    for info in pkgutil.walk_packages(streamforge.__path__, "streamforge."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        modules.append(importlib.import_module(info.name))
    found: dict[str, type[BaseException]] = {}
    for module in modules:
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return sorted(found.values(), key=lambda c: c.__name__)


def _tree_parent(cls: type[BaseException]) -> str | None:
    """The nearest StreamForge exception the class derives from (None for the root)."""
    bases = [b for b in cls.__bases__ if issubclass(b, StreamForgeError)]
    assert len(bases) <= 1, f"{cls.__name__} has two StreamForge parents"
    return bases[0].__name__ if bases else None


def test_every_exception_of_the_package_is_in_the_drawn_tree() -> None:
    tree = _tree()
    classes = _exception_classes()
    names = [cls.__name__ for cls in classes]
    # Those that used to stand outside the tree or in odd places are all found.
    for expected in (
        "UpstreamFailure",
        "TuneError",
        "SlotError",
        "PlaylistError",
        "PsiError",
        "FailoverProtocolError",
        "MalformedFrameError",
        "XmltvTimeError",
        "SpliceError",
    ):
        assert expected in names
    for cls in classes:
        assert issubclass(cls, StreamForgeError), f"{cls.__module__}.{cls.__name__}"
        node = tree.get(cls.__name__)
        assert node is not None, f"{cls.__name__} is missing from the tree in errors.py"
        assert node.parent == _tree_parent(cls), f"{cls.__name__} is drawn under {node.parent}"
        assert node.module == cls.__module__, f"{cls.__name__} is drawn in {node.module}"
    assert set(tree) == set(names), "the tree draws a class the package does not define"


def test_the_tree_has_the_streaming_and_media_branches() -> None:
    from streamforge.errors import MediaError, ProviderError, StreamingError
    from streamforge.streaming.manager import TuneError
    from streamforge.streaming.reasons import FailureReason, UpstreamFailure
    from streamforge.ts.splicer import SpliceError

    assert issubclass(UpstreamFailure, StreamingError)
    assert issubclass(TuneError, StreamingError)
    assert issubclass(SpliceError, MediaError)
    assert not issubclass(SpliceError, ProviderError)
    failure = UpstreamFailure(FailureReason.STALL, "no bytes for 3 s")
    assert (failure.reason, failure.detail, failure.status) == (
        FailureReason.STALL,
        "no bytes for 3 s",
        None,
    )


def test_format_errors_stay_value_errors() -> None:
    from streamforge.epg.xmltv_time import XmltvTimeError
    from streamforge.streaming.hls import PlaylistError, parse_media
    from streamforge.ts.psi import PsiError

    for cls in (XmltvTimeError, PlaylistError, PsiError):
        assert issubclass(cls, ValueError)
    with pytest.raises(ValueError, match="not an HLS playlist") as info:
        parse_media("not a playlist")
    assert isinstance(info.value, PlaylistError)
    assert isinstance(info.value, StreamForgeError)
