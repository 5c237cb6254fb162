"""differ: value-factorisation MARL (VDN, QMIX, ...) and DIFFER's fair individual replay."""

__version__ = "0.2.0"
