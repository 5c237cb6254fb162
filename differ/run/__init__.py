"""The run: the one training loop (`trainer.py`), where it stands (`counters.py`), its clocks,
threads and device, and what it reports while it runs (progress, W&B)."""
