"""Precision and recall of the channel matcher on the labelled stream names.

Run: ``.venv/bin/python bench/matching_quality.py [--threshold 0.86] [--errors]``

``tests/data/matching_guide.csv`` is the guide (XMLTV id, ``|``-separated
display names); ``tests/data/matching_labelled.csv`` holds provider stream
names with the guide channel a person would map them to (empty when the guide
has no correct channel, e.g. a ``+1`` feed whose main channel is present).

* precision = correct mappings / all mappings made
* recall    = correct mappings / streams that have a correct channel
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

from streamforge.matching.matcher import (
    DEFAULT_THRESHOLD,
    GuideChannel,
    ProviderStream,
    match_streams,
)

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


@dataclass(frozen=True)
class Quality:
    """The figures of one evaluation run."""

    precision: float
    recall: float
    mapped: int
    correct: int
    relevant: int
    errors: list[tuple[str, str, str, str]]


def load_guide(path: Path = DATA / "matching_guide.csv") -> list[GuideChannel]:
    """The labelled guide channels."""
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            GuideChannel(row["xmltv_id"], row["display_names"].split("|"))
            for row in csv.DictReader(handle)
        ]


def load_labels(path: Path = DATA / "matching_labelled.csv") -> list[dict[str, str]]:
    """The labelled stream rows (stream_name, epg_channel_id, expected_guide_id, case)."""
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def evaluate(threshold: float = DEFAULT_THRESHOLD) -> Quality:
    """Match every labelled stream and compare with the labels."""
    labels = load_labels()
    streams = [
        ProviderStream(index, row["stream_name"], row["epg_channel_id"] or None)
        for index, row in enumerate(labels)
    ]
    outcome = match_streams(load_guide(), streams, threshold=threshold)
    mapped = {result.stream_id: result.guide_channel_id for result in outcome.matches}
    correct = 0
    errors: list[tuple[str, str, str, str]] = []
    for index, row in enumerate(labels):
        expected = row["expected_guide_id"]
        got = mapped.get(index, "")
        if got and got == expected:
            correct += 1
        elif got != expected:
            errors.append((row["case"], row["stream_name"], expected or "-", got or "-"))
    relevant = sum(1 for row in labels if row["expected_guide_id"])
    return Quality(
        precision=correct / len(mapped) if mapped else 1.0,
        recall=correct / relevant if relevant else 1.0,
        mapped=len(mapped),
        correct=correct,
        relevant=relevant,
        errors=errors,
    )


def main(argv: list[str] | None = None) -> int:
    """Print precision/recall at the threshold (default: the matcher's default)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--errors", action="store_true", help="list every wrong decision")
    args = parser.parse_args(argv)
    quality = evaluate(args.threshold)
    print(f"labelled streams: {len(load_labels())}, with a correct channel: {quality.relevant}")
    print(f"threshold {args.threshold:.2f}: mapped {quality.mapped}, correct {quality.correct}")
    print(f"precision {quality.precision:.4f}  recall {quality.recall:.4f}")
    if args.errors:
        for case, name, expected, got in quality.errors:
            print(f"  [{case}] {name!r}: expected {expected}, got {got}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
