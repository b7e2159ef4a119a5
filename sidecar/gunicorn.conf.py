"""gunicorn settings derived from the sidecar's RESCORE_* settings."""
from sidecar.config import Settings

_settings = Settings.from_env()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
threads = _settings.threads
worker_class = "gthread"
# Model loading happens in each worker after fork (create_app runs per worker, not in the master).
preload_app = False
# Loading a large reranker can take minutes; don't let the master kill a booting worker.
timeout = 600
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
