"""gunicorn settings for the showcase (or any microweb app) behind nginx.

    gunicorn -c examples/deploy/gunicorn.conf.py examples.showcase:application

Every value can be overridden from the environment (systemd ``Environment=``, supervisor
``environment=``) or the command line; command-line flags win.
"""

import multiprocessing
import os

# One backend of the nginx upstream: loopback only, nginx is the public face.
bind = os.environ.get("MICROWEB_BIND", "127.0.0.1:8001")

# microweb's worker runs the bundled server's event loop inside gunicorn's arbiter: the same
# HTTP/1.1 behaviour plus WebSockets, while gunicorn keeps signals, reload and worker management.
# (The plain "sync"/"gthread" workers serve every page but answer 426 on /chat/socket.)
worker_class = os.environ.get("MICROWEB_WORKER_CLASS", "microweb.server.gunicorn.Worker")
workers = int(os.environ.get("MICROWEB_WORKERS", multiprocessing.cpu_count()))
threads = int(os.environ.get("MICROWEB_THREADS", "8"))  # WSGI threads per worker

# Idle keep-alive connections and WebSockets cost no thread in microweb's worker; keep them.
keepalive = 75  # longer than nginx's upstream keepalive_timeout (60 s)
timeout = 30  # a worker silent for this long is restarted
graceful_timeout = 20  # SIGTERM: finish in-flight requests within this many seconds
max_requests = 0  # no periodic recycling needed; set it to contain a leaking dependency

# nginx on the same host sets X-Forwarded-*; the app's ProxyMiddleware decides whom to trust
# (MICROWEB_SHOWCASE_TRUSTED_PROXIES below), gunicorn itself trusts only loopback.
forwarded_allow_ips = "127.0.0.1,::1"
proxy_allow_ips = "127.0.0.1,::1"

# The app writes one access-log line per request (AccessLogMiddleware); gunicorn logs errors.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("MICROWEB_LOG_LEVEL", "info")

# Build the app in each worker after the fork (SQLite connections and the Redis hub's thread
# must not be shared across processes).
preload_app = False

raw_env = [
    # Where the showcase keeps its SQLite files and uploads (writable by the service user).
    "MICROWEB_SHOWCASE_DATA=" + os.environ.get("MICROWEB_SHOWCASE_DATA", "/var/lib/microweb"),
    # One chat room across every worker and every backend: the Redis pub/sub hub.
    "MICROWEB_SHOWCASE_REDIS=" + os.environ.get("MICROWEB_SHOWCASE_REDIS",
                                                "redis://127.0.0.1:6379/0"),
    "MICROWEB_SHOWCASE_TRUSTED_PROXIES=" + os.environ.get("MICROWEB_SHOWCASE_TRUSTED_PROXIES",
                                                          "127.0.0.1/32,::1/128"),
]
