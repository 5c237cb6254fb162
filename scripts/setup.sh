#!/usr/bin/env bash
# Create .venv and install differ with everything the tests need. Idempotent.
# torch is pinned to the CPU build that this machine keeps on local disk; pyproject's range stays
# open for users elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[dev]"
