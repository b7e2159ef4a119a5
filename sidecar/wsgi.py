"""WSGI entry point for gunicorn: `gunicorn -c sidecar/gunicorn.conf.py sidecar.wsgi:app`."""
from sidecar import create_app

app = create_app()
