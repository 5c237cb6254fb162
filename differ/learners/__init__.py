from ..nets.mixers import MIXERS  # noqa: F401  (the valid mixer names, for config validation)
