"""The live web dashboard: shares by any dimension with crossovers marked, the alert
feed, top movers and catalog gaps, refreshed while events stream in.

``snapshot`` turns a read-only ``query(sql, parameters) -> rows`` callable into one
JSON document (the CLI hands it the store's query path, so the dashboard never opens
the embedded engine); ``server`` serves that document and the static page (aiohttp);
``vendor`` fetches the charting library (uPlot, from npm) into ``static/vendor`` at
build time, since nothing is fetched at run time.
"""
