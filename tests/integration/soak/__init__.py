"""Soak tests: minutes of steady load, run by `make soak`, never by the default `pytest`."""
