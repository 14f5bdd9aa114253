#!/usr/bin/env python3
"""Regenerate examples/wiki/data/enwiki-sample-events.jsonl from the bundled dump.

Reads the first N pages of the bundled MediaWiki dump (real English Wikipedia
pages, see examples/wiki/data/README.md for attribution) and writes one
`weir.change/1` upsert event per page, then one delete event, so the example
shows both operations. Deterministic: same dump, same output.

Usage: scripts/make-sample-events.py [N]   (default 40)
"""
import bz2
import json
import pathlib
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.mediawiki.org/xml/export-0.10/}"
DATA = pathlib.Path(__file__).resolve().parent.parent / "examples" / "wiki" / "data"


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    dump = DATA / "enwiki-sample-pages-articles.xml.bz2"
    root = ET.parse(bz2.open(dump)).getroot()
    events = []
    for page in root.findall(NS + "page")[:count]:
        revision = page.find(NS + "revision")
        contributor = revision.find(NS + "contributor")
        user = contributor.find(NS + "username") if contributor is not None else None
        event = {
            "schema": "weir.change/1",
            "id": "enwiki:" + page.find(NS + "id").text,
            "op": "upsert",
            "revision": int(revision.find(NS + "id").text),
            "timestamp": revision.find(NS + "timestamp").text,
            "title": page.find(NS + "title").text,
            "namespace": int(page.find(NS + "ns").text),
            "content_type": "text/x-wiki",
            "body": revision.find(NS + "text").text or "",
            "meta": {"wiki": "enwiki"},
        }
        if user is not None:
            event["meta"]["contributor"] = user.text
        events.append(event)
    last = events[-1]
    events.append({
        "schema": "weir.change/1",
        "id": last["id"],
        "op": "delete",
        "revision": last["revision"] + 1,
        "timestamp": "2016-03-01T00:00:00Z",
        "title": last["title"],
        "namespace": last["namespace"],
    })
    out = DATA / "enwiki-sample-events.jsonl"
    with out.open("w", encoding="utf-8") as f:
        for event in events:
            f.write(json.dumps(event, ensure_ascii=False) + "\n")
    print(f"wrote {len(events)} events to {out}")


if __name__ == "__main__":
    main()
