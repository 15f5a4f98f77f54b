#!/usr/bin/env bash
# Regenerates docs/architecture.svg and docs/architecture.png from docs/architecture.dot.
# Needs Graphviz (`dot`): `sudo apt-get install graphviz`, `brew install graphviz`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v dot >/dev/null || { echo "diagram: Graphviz is not installed (apt-get install graphviz)" >&2; exit 1; }
dot -Tsvg docs/architecture.dot -o docs/architecture.svg
dot -Tpng -Gdpi=110 docs/architecture.dot -o docs/architecture.png
echo "diagram: wrote docs/architecture.svg and docs/architecture.png"
