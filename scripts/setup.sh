#!/usr/bin/env bash
# Create .venv and install differ with everything the tests need. Idempotent.
#   bash scripts/setup.sh            differ and the pip-installable environments
#   bash scripts/setup.sh football   the same, plus Google Research Football (env=grf)
# torch is pinned to the CPU build that this machine keeps on local disk; pyproject's range stays
# open for users elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
for extra in "$@"; do
  case "$extra" in
    football) ;;
    *) echo "setup.sh: unknown extra '$extra' (choices: football)" >&2; exit 2 ;;
  esac
done
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
for extra in "$@"; do
  bash "scripts/install_$extra.sh" .venv/bin/python
done
