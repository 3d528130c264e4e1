# A Tornado-style options file (Python syntax), read by standalone.py:
#   python -m examples.config.standalone --config=examples/config/settings.py
# Only names that are define()d options are used; anything else here is ignored.
import os

port = 8001
greeting = "Ciao"
template_path = os.path.join(os.path.dirname(__file__), "templates")
xsrf_cookies = True
