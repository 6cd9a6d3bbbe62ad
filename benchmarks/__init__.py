"""Reproducible speed and accuracy runs; `strideflow bench NAME` runs `benchmarks/NAME.py`."""
