"""The ``tokenshare`` command (``tokenshare.cli.main:main``): one module per command family.

A composition root: its commands wire producers, streams and sinks together, so
it may import any of them and nothing imports it (see [tool.importlinter]).
"""
