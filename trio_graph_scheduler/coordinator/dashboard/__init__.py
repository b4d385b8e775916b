"""The live web dashboard of a running coordinator (``tgs-coordinator --dashboard``).

- ``state.py``: what the page shows, as plain data: a snapshot of the run, and the deltas
  between two snapshots. Pure (the time is passed in), tested without sockets.
- ``server.py``: serves the page, its script and style, the live updates (server-sent
  events at a bounded rate, a bounded queue per browser) and the search, over HTTP/1.1
  with ``h11`` on trio; asks for the run's token when it has one.
- ``static/``: the page itself, hand-written HTML, JavaScript and CSS; nothing is fetched
  from elsewhere, so it works offline.
"""
