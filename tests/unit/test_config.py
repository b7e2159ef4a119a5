import pytest

from sidecar.config import Settings, SettingsError
from sidecar.rerank.options import OptionsError


def test_defaults_are_valid():
    settings = Settings.from_env({})
    assert settings.opensearch_url == "http://127.0.0.1:9200"
    assert settings.port == 8080
    assert settings.reranker.backend == "cross-encoder"


def test_reads_typed_values_and_nested_reranker_options():
    settings = Settings.from_env({
        "RESCORE_OPENSEARCH_URL": "https://search.internal:9200",
        "RESCORE_PORT": "9000",
        "RESCORE_OPENSEARCH_VERIFY_CERTS": "false",
        "RESCORE_OPENSEARCH_TIMEOUT_S": "2.5",
        "RESCORE_BACKEND": "onnx",
        "RESCORE_TOKEN_BUDGET": "32768",
        "UNRELATED": "x",
    })
    assert settings.opensearch_url == "https://search.internal:9200"
    assert settings.port == 9000
    assert settings.opensearch_verify_certs is False
    assert settings.opensearch_timeout_s == 2.5
    assert settings.reranker.backend == "onnx"
    assert settings.reranker.token_budget == 32768


@pytest.mark.parametrize("env, variable", [
    ({"RESCORE_PORT": "eighty"}, "RESCORE_PORT"),
    ({"RESCORE_PORT": "0"}, "RESCORE_PORT"),
    ({"RESCORE_PRELOAD_MODEL": "maybe"}, "RESCORE_PRELOAD_MODEL"),
    ({"RESCORE_OPENSEARCH_URL": "localhost:9200"}, "RESCORE_OPENSEARCH_URL"),
    ({"RESCORE_WORKERS": "0"}, "RESCORE_WORKERS"),
])
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def test_bad_reranker_option_names_the_variable():
    with pytest.raises(OptionsError, match="RESCORE_BACKEND"):
        Settings.from_env({"RESCORE_BACKEND": "magic"})


def test_secrets_are_redacted():
    settings = Settings.from_env({"RESCORE_OPENSEARCH_USER": "admin", "RESCORE_OPENSEARCH_PASSWORD": "hunter2"})
    redacted = settings.redacted()
    assert redacted["opensearch_password"] == "***"
    assert redacted["opensearch_user"] == "admin"
    assert "hunter2" not in repr(redacted)


def test_overrides_win_over_environment():
    settings = Settings.from_env({"RESCORE_PORT": "9000"}, port=9100)
    assert settings.port == 9100


def test_api_keys_are_split_and_redacted_everywhere():
    settings = Settings.from_env({"RESCORE_API_KEYS": "k-one, k-two", "RESCORE_PROXY_API_KEYS": "p-one",
                                  "RESCORE_OPENSEARCH_PASSWORD": "hunter2"})
    assert settings.api_key_set == ("k-one", "k-two")
    assert settings.proxy_api_key_set == ("p-one",)
    redacted = settings.redacted()
    assert redacted["api_keys"] == redacted["proxy_api_keys"] == redacted["opensearch_password"] == "***"
    for text in (repr(redacted), repr(settings), str(settings)):
        for secret in ("k-one", "k-two", "p-one", "hunter2"):
            assert secret not in text


@pytest.mark.parametrize("env, variable", [
    ({"RESCORE_API_KEYS": "a,,b"}, "RESCORE_API_KEYS"),
    ({"RESCORE_PROXY_API_KEYS": ","}, "RESCORE_PROXY_API_KEYS"),
    ({"RESCORE_OPENSEARCH_CA_CERTS": "/no/such/ca.pem"}, "RESCORE_OPENSEARCH_CA_CERTS"),
    ({"RESCORE_CIRCUIT_FAILURES": "-1"}, "RESCORE_CIRCUIT_FAILURES"),
])
def test_bad_security_and_breaker_values_name_the_variable(env, variable):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)
