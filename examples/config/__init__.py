"""An application configured entirely from one file, ``app.toml``.

The handlers in ``app.py`` know nothing about secrets, middleware, sessions or ports: the file
says all of it. Serve it with the bundled server, or with any WSGI server through ``wsgi.py``::

    microweb serve --config examples/config/app.toml
    gunicorn examples.config.wsgi:app

``standalone.py`` is the Tornado way: ``define()`` options, read a Tornado-style Python
settings file (``settings.py``), the environment and the command line::

    python -m examples.config.standalone --config=examples/config/settings.py --port=8001
"""
