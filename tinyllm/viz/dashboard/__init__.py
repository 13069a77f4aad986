"""tinyllm.viz.dashboard: the sampling knobs live in a browser (`tinyllm dashboard --ckpt DIR`).

    report.py   prompt + knobs -> the next-token distribution before and after filtering, its entropy,
                the probability mass kept, a few sampled continuations (a JSON-able dict)
    server.py   a standard-library HTTP server: the page, /api/info and /api/next (400 + a message on bad input)
    page.py     the page: one HTML string with vanilla JavaScript (sliders, debounced requests, a bar chart)
    cli.py      the `tinyllm dashboard` subcommand (standard-library imports only at the top)

    >>> from tinyllm.viz.dashboard.server import serve
    >>> server = serve(model, tok, port=0)      # a free port, served from a daemon thread
    >>> server.url                              # 'http://127.0.0.1:53211/'
    >>> server.stop()

Nothing is imported here.
"""
