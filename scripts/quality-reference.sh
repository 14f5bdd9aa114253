#!/usr/bin/env bash
# Regenerate the reference texts of the quality benchmark
# (`cargo bench -p weir-tests --bench quality`): each page of
# tests/quality/pages/ and the real enwiki fixtures of the parse plugin,
# rendered to plain text by pandoc's MediaWiki reader with
# tests/quality/reference.lua. Installs pandoc (Debian package) if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pandoc >/dev/null; then
    sudo_if_needed=""
    [ "$(id -u)" -eq 0 ] || sudo_if_needed=sudo
    $sudo_if_needed apt-get install -y -q pandoc >&2
fi

out=tests/quality/reference
mkdir -p "$out"
for page in tests/quality/pages/*.wiki plugins/parse/tests/fixtures/{Albedo,Constructive_vote_of_no_confidence}.wiki; do
    name=$(basename "$page" .wiki)
    case "$page" in plugins/*) name="en-$name" ;; esac
    # Pandoc's reader refuses `{||attributes`, which MediaWiki reads as
    # `{| attributes` (a real page here has it): normalised for pandoc only.
    sed 's/^{||/{| /' "$page" |
        pandoc -f mediawiki -t plain --wrap=none -L tests/quality/reference.lua -o "$out/$name.txt" 2>/dev/null
done
echo "reference texts in $out (pandoc $(pandoc --version | head -1 | cut -d' ' -f2))" >&2
