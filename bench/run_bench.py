"""Run the benchmark and save its JSON next to this file: `python bench/run_bench.py [quick=true]`.

Same as `differ bench`; docs/benchmarks.md explains the figures and keeps the measured ones.
"""

import json
import sys
from pathlib import Path

from differ.commands.bench import main
from differ.config import parse_overrides

if __name__ == "__main__":
    result = main(parse_overrides(sys.argv[1:]))
    text = json.dumps(result, indent=2)
    print(text)
    (Path(__file__).parent / "results.json").write_text(text + "\n")
