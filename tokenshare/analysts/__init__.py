"""For analysts: the views' queries as typed functions (``queries``; the study's
analyses in ``study``) and their plots (``plots``).

Queries take a ``query(sql, parameters) -> rows`` callable, so the same code runs
from the CLI (``sinks.query.run_query``, routed to the running store) and in tests
(an in-process ClickHouse client). Plots take the rows the queries return.
"""
