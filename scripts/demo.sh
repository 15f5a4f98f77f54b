#!/usr/bin/env bash
# Records the README's demo: `cargo xtask dev` on the docker runtime, from a stopped stack, as an
# asciinema cast (docs/demo.cast) rendered to an animated SVG (docs/demo.svg).
# Needs asciinema (`apt-get install asciinema`) and Node.js for svg-term-cli (fetched by npx).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v asciinema >/dev/null || { echo "demo: asciinema is not installed (apt-get install asciinema)" >&2; exit 1; }
command -v npx >/dev/null || { echo "demo: npx (Node.js) is needed to render the SVG" >&2; exit 1; }
cargo build --quiet -p xtask
cargo xtask --runtime docker down   # keeps the data; the recording starts the containers again
asciinema rec --overwrite --cols 110 --rows 30 --idle-time-limit 2 --title "cargo xtask dev" \
  --command "cargo xtask --runtime docker dev --no-open" docs/demo.cast
npx --yes svg-term-cli --in docs/demo.cast --out docs/demo.svg --window --width 110 --height 30
echo "demo: wrote docs/demo.cast and docs/demo.svg"
