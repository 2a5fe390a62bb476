"""Rolling and weekly token shares, crossovers and share-shift alerts.

Pure logic over per-day partial sums: windows (``windows``), the rules
configuration (``config``), the rules (``crossover``, ``rules``), the engine
that feeds them and applies budgets (``engine``), and the backtest that runs
them over stored history without publishing (``backtest``).
"""
