"""gunicorn settings derived from the sidecar's RESCORE_* settings."""
import os
import shutil
import tempfile

from gunicorn.glogging import Logger

from sidecar.config import Settings

_settings = Settings.from_env()
# The rerank pool (RESCORE_RERANK_POOL_WORKERS, sidecar/pool_process.py) runs this same file with
# RESCORE_SERVING_ROLE=pool: bound to its private unix socket, its own worker count, niced.
_pool_role = _settings.serving_role == "pool"

if _pool_role:
    from sidecar.rerank.priority import lower_process_priority

    bind = f"unix:{_settings.rerank_pool_socket}"
    workers = max(1, _settings.rerank_pool_workers)
    # The master and the workers it forks: below the front's request threads when the CPU is busy.
    lower_process_priority(_settings.rerank_pool_nice)
    control_socket_disable = True  # the front's master has gunicorn's control socket
else:
    bind = f"{_settings.host}:{_settings.port}"
    workers = _settings.workers
_with_pool = not _pool_role and _settings.rerank_pool_workers > 0
# How long the front's start waits for the pool's first worker (an 8B model loads in minutes).
_POOL_READY_TIMEOUT_S = 900.0
# I/O threads: plain pass-through and search requests; reranks are bounded separately
# (RESCORE_RERANK_SLOTS) so they never take every thread.
threads = _settings.threads
worker_class = "gthread"
# Every connection waiting in the poller (kept-alive) counts; more than the threads.
worker_connections = max(1000, 4 * threads)
# Model loading happens in each worker after fork (create_app runs per worker, not in the master).
preload_app = False
# Loading a large reranker can take minutes; don't let the master kill a booting worker.
timeout = 600
# A stopping or restarted worker (SIGTERM, SIGHUP to the master, max_requests) stops accepting and
# finishes its in-flight requests first: the longest a request may take is its rerank budget plus
# the OpenSearch calls around it.
graceful_timeout = int(_settings.rerank_timeout_ms / 1000 + 2 * _settings.opensearch_timeout_s) + 5
# Longer than nginx's upstream keepalive_timeout (60 s, deploy/nginx/rescore.conf.template), so nginx
# is always the side that closes an idle kept-alive connection.
keepalive = 75
# The worker's heartbeat touches a file in worker_tmp_dir on every turn of its event loop; on a
# disk-backed /tmp that metadata write can stall the loop that dispatches every request (gunicorn's
# docs: "Blocking os.fchmod"). A RAM-backed directory keeps it a memory operation.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
# The app writes its own access line per request (logger sidecar.access, with the request id).
accesslog = None


class _AppLogsAccess(Logger):
    """gunicorn's logger minus its access line, which the app writes (sidecar.access).

    With a logconfig_dict (RESCORE_LOG_FORMAT=json) gunicorn would otherwise build its access atoms
    for every request although no handler prints them: ~4% of a plain search's CPU in the worker.
    """

    def access(self, resp, req, environ, request_time) -> None:
        return None


logger_class = _AppLogsAccess
errorlog = "-"
loglevel = _settings.log_level.lower()
if _settings.log_format == "json":
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "sidecar.observability.logs.JsonFormatter",
                                "role": "pool" if _pool_role else ""}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json",
                                 "stream": "ext://sys.stderr"}},
        "loggers": {"gunicorn.error": {"handlers": ["console"], "level": _settings.log_level, "propagate": False}},
        # gunicorn merges this into its defaults, whose root logger has a handler of its own; the
        # app's configure_logging() installs the one root handler, so every line is written once.
        "root": {"handlers": [], "level": _settings.log_level},
    }

# Several workers share one /metrics view through prometheus_client's multiprocess mode: its
# directory must be in the environment before any worker imports prometheus_client.
_metrics_dir = _settings.metrics_dir
_own_metrics_dir = False
if (workers > 1 or _with_pool) and not _metrics_dir:
    _metrics_dir = tempfile.mkdtemp(prefix="rescore-metrics-")
    _own_metrics_dir = True
if _metrics_dir:
    os.makedirs(_metrics_dir, exist_ok=True)
    for _stale in [] if _pool_role else os.listdir(_metrics_dir):  # values of a previous run would be
        if _stale.endswith(".db"):                                    # summed in (the front clears them)
            os.remove(os.path.join(_metrics_dir, _stale))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
    os.environ["RESCORE_METRICS_DIR"] = _metrics_dir


def on_starting(server):
    """Start the rerank pool before the front's workers, which find its socket in their environment."""
    if _with_pool:
        from sidecar.pool_process import PoolSupervisor

        supervisor = PoolSupervisor(dict(os.environ), logger=server.log)
        os.environ["RESCORE_RERANK_POOL_SOCKET"] = supervisor.socket_path
        supervisor.start(ready_timeout_s=_POOL_READY_TIMEOUT_S)
        server.rescore_pool = supervisor  # on the arbiter: a reload (SIGHUP) re-reads this file


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the shared metrics."""
    if _metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid, _metrics_dir)


def on_exit(server):
    supervisor = getattr(server, "rescore_pool", None)
    if supervisor is not None:
        supervisor.stop(graceful_timeout)
    if _own_metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
