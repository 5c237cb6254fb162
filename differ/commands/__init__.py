"""The commands: one module each (`differ train`, `evaluate`, `video`, `verify`, `bench`), built
from the layers below; the sweep and the analyses are in `differ/experiments/`."""
