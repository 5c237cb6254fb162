from ..nets.mixers import MIXERS

__all__ = ["MIXERS"]  # the valid mixer names, for config validation
