"""Benchmark: import a 2,000-channel x 7-day guide (~300,000 programmes) into
a fresh SQLite database through the real path (staging spool + one swap
transaction). Target: under 30 s, peak memory under 300 MB.

    .venv/bin/python bench/bench_epg_import.py [--channels 2000] [--days 7] [--repeats 1]
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_xmltv_parse import NOW, write_guide
from streamforge.db.engine import Database
from streamforge.db.migrate import upgrade
from streamforge.db.models import XmltvSource
from streamforge.epg.store import import_guide
from streamforge.epg.xmltv_parse import ImportWindow


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channels", type=int, default=2000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sf-bench-") as tmp:
        guide = Path(tmp) / "guide.xml"
        with guide.open("wb") as handle:
            count = write_guide(handle, args.channels, args.days, random.Random(1))
        print(
            f"guide: {args.channels} channels, {count} programmes, "
            f"{guide.stat().st_size / 1e6:.0f} MB"
        )
        times = []
        for run in range(args.repeats):
            db = Database(f"sqlite:///{tmp}/run{run}.db")
            upgrade(db.engine)
            with db.session() as session:
                source = XmltvSource(name="bench", kind="file", location=str(guide))
                session.add(source)
                session.flush()
                source_id = source.id
            rss_before = _rss_mb()
            started = time.perf_counter()
            report = import_guide(
                db, source_id, str(guide), now=NOW, window=ImportWindow(1, args.days + 1)
            )
            elapsed = time.perf_counter() - started
            times.append(elapsed)
            db.dispose()
            print(
                f"run {run}: {elapsed:.1f} s, {report.programmes} programmes stored, "
                f"peak RSS {_rss_mb():.0f} MB (before import {rss_before:.0f} MB)"
            )
        print(f"median {statistics.median(times):.1f} s (target < 30 s)")


if __name__ == "__main__":
    main()
