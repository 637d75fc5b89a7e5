"""gunicorn settings for the agglo web app; every value can be overridden from the environment."""

import multiprocessing
import os

bind = os.environ.get("AGGLO_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("AGGLO_WEB_WORKERS", str(min(4, multiprocessing.cpu_count() * 2))))
threads = int(os.environ.get("AGGLO_WEB_THREADS", "4"))
worker_class = "gthread"
timeout = int(os.environ.get("AGGLO_WEB_TIMEOUT", "60"))
graceful_timeout = 20
keepalive = 5
# Uploads are read by the app with its own limits; keep request lines and headers bounded.
limit_request_line = 8190
limit_request_fields = 100
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("AGGLO_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("AGGLO_FORWARDED_ALLOW_IPS", "127.0.0.1")
preload_app = False
