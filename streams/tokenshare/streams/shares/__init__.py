"""Rolling and weekly token shares, crossovers and share-shift alerts.

Pure logic over per-day partial sums: windows (``windows``), the rules
(``crossover``, ``rules``) and the engine that feeds them and publishes what
they find (``engine``).
"""
