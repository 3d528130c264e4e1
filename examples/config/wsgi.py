"""For any WSGI server: ``gunicorn examples.config.wsgi:app``."""

import os

from microweb.config import load

app = load(os.path.join(os.path.dirname(os.path.abspath(__file__)), "app.toml")).app
