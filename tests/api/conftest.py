import pytest

from sidecar import create_app
from sidecar.config import Settings
from tests.conftest import free_port


@pytest.fixture
def unreachable_app():
    """The app pointed at a port where nothing listens (OpenSearch down)."""
    settings = Settings.from_env({}, opensearch_url=f"http://127.0.0.1:{free_port()}",
                                 preload_model=False, max_body_bytes=1024, opensearch_timeout_s=2)
    app = create_app(settings)
    app.testing = True
    return app


@pytest.fixture
def client(unreachable_app):
    return unreachable_app.test_client()
