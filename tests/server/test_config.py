"""Settings from flags and CHAT_* variables: the flags of signed tokens, flood control,
presence, the HTTP/2 limits and the web door's."""

from dataclasses import fields

import pytest

from chat.errors import ConfigError, SettingError
from chat.server import config
from chat.server.web.guard import WebLimits

SECRET = "0123456789abcdef0123456789abcdef"


def test_signed_token_and_flood_settings_come_from_their_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    variables = {
        "CHAT_JWT_SECRET": SECRET,
        "CHAT_JWT_ALGORITHMS": "HS256,HS384",
        "CHAT_JWT_AUDIENCE": "chat",
        "CHAT_JWT_ISSUER": "us",
        "CHAT_RATE_LIMIT": "2.5",
        "CHAT_RATE_BURST": "7",
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    settings = config.load([])
    assert (settings.jwt_secret, settings.jwt_algorithms) == (SECRET, "HS256,HS384")
    assert (settings.jwt_audience, settings.jwt_issuer) == ("chat", "us")
    assert (settings.rate_limit, settings.rate_burst) == (2.5, 7)
    assert config.load(["--rate-limit", "0", "--rate-burst", "1"]).rate_limit == 0


def test_the_public_key_comes_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_JWT_PUBLIC_KEY", "/keys/chat.pem")
    assert config.load([]).jwt_public_key == "/keys/chat.pem"


def test_the_defaults_limit_each_user_to_10_a_second_20_at_once_and_ask_for_no_token() -> None:
    settings = config.Settings()
    assert (settings.rate_limit, settings.rate_burst) == (10.0, 20)
    assert not settings.jwt and not settings.token


def test_without_signed_tokens_a_connection_may_send_one_users_worth_and_an_address_five(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = config.load([])
    assert (settings.rate_per_connection, settings.rate_per_address) == (1, 5)
    monkeypatch.setenv("CHAT_RATE_PER_CONNECTION", "2")
    monkeypatch.setenv("CHAT_RATE_PER_ADDRESS", "0")
    settings = config.load([])
    assert (settings.rate_per_connection, settings.rate_per_address) == (2, 0)
    assert config.load(["--rate-per-address", "8"]).rate_per_address == 8
    for flag in ("--rate-per-connection", "--rate-per-address"):
        with pytest.raises(ConfigError, match=f"{flag}: -1 is not in the range x>=0"):
            config.load([flag, "-1"])


def test_a_rate_limit_variable_that_is_no_number_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHAT_RATE_LIMIT", "fast")
    with pytest.raises(ConfigError, match="CHAT_RATE_LIMIT: 'fast' is not a number"):
        config.load([])


def test_presence_beats_every_3_s_and_a_silent_replica_is_gone_after_10_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = config.load([])
    assert (settings.presence_interval, settings.presence_timeout) == (3.0, 10.0)
    monkeypatch.setenv("CHAT_PRESENCE_INTERVAL", "0.5")
    monkeypatch.setenv("CHAT_PRESENCE_TIMEOUT", "2")
    assert (config.load([]).presence_interval, config.load([]).presence_timeout) == (0.5, 2.0)
    with pytest.raises(ConfigError, match=r"less than twice the interval of 0\.5s"):
        config.load(["--presence-timeout", "0.9"])
    with pytest.raises(ConfigError, match=r"--presence-interval: 0\.0 is not in the range x>0"):
        config.load(["--presence-interval", "0"])


def test_http2_limits_come_from_flags_and_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAT_H2_MAX_PINGS", "7")
    monkeypatch.setenv("CHAT_H2_BODY_TIMEOUT", "2.5")
    limits = config.load(["--h2-max-connections-per-address", "3"]).limits
    assert (limits.max_pings, limits.body_timeout) == (7, 2.5)
    assert limits.max_connections_per_address == 3
    assert config.load([]).max_message_bytes == 64 * 1024


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--h2-max-resets", "0"], "--h2-max-resets: 0 is not in the range x>=1"),
        (["--h2-stream-window", "1000"], "--h2-stream-window: 1000 is not in the range 65535<="),
    ],
)
def test_http2_limits_that_cannot_be_right_are_config_errors(flags: list[str], said: str) -> None:
    with pytest.raises(ConfigError, match=said):
        config.load(flags)


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "soon"])
def test_a_drain_time_that_is_no_number_of_seconds_is_one_line_from_a_flag_or_a_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    with pytest.raises(ConfigError, match=r"^--drain-seconds: ") as error:
        config.load(["--drain-seconds", value])
    assert "\n" not in str(error.value)
    monkeypatch.setenv("CHAT_DRAIN_SECONDS", value)
    with pytest.raises(ConfigError, match=r"^CHAT_DRAIN_SECONDS: ") as error:
        config.load([])
    assert "\n" not in str(error.value)


def test_the_web_doors_clocks_come_from_flags_and_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert config.load([]).web_limits == WebLimits(10.0, 30.0, 30.0, 20.0, 10.0)
    monkeypatch.setenv("CHAT_WEB_BODY_TIMEOUT", "2.5")
    monkeypatch.setenv("CHAT_WEB_HOSTS", "chat.example")
    settings = config.load(["--web-header-timeout", "3", "--web-ws-heartbeat", "5"])
    limits = settings.web_limits
    assert (limits.header_timeout, limits.body_timeout, limits.ws_heartbeat) == (3, 2.5, 5)
    assert settings.web_hosts == "chat.example"
    with pytest.raises(ConfigError, match=r"--web-keepalive-timeout: 0\.0 is not in the range x>0"):
        config.load(["--web-keepalive-timeout", "0"])


def test_an_edit_window_is_no_limit_unless_a_flag_or_chat_edit_window_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert config.load([]).edit_window == 0
    assert config.load(["--edit-window", "90"]).edit_window == 90
    monkeypatch.setenv("CHAT_EDIT_WINDOW", "600")
    assert config.load([]).edit_window == 600
    with pytest.raises(ConfigError, match=r"^--edit-window: -1\.0 is not in the range x>=0"):
        config.load(["--edit-window", "-1"])


def test_a_setting_knows_whether_it_was_given_or_left_at_its_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert "web_port" not in config.load([]).given
    assert "web_port" in config.load(["--web-port", "8080"]).given
    monkeypatch.setenv("CHAT_WEB_PORT", "0")
    assert "web_port" in config.load([]).given


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--store", "chat.db"], "--store: 'chat.db' has no scheme"),
        (["--store", "postgres://db"], "--store: 'postgres://db' names no store"),
        (["--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"),
        (["--token", "t", "--jwt-secret", SECRET], "two ways to authenticate"),
        (["--jwt-issuer", "us"], "--jwt-issuer needs --jwt-secret or --jwt-public-key"),
    ],
)
def test_a_subsystems_own_check_and_settings_that_exclude_each_other_are_setting_errors(
    flags: list[str], said: str
) -> None:
    with pytest.raises(SettingError, match=said):
        config.load(flags)


def test_every_field_of_the_settings_is_a_flag_but_the_record_of_those_given() -> None:
    unflagged = [f.name for f in fields(config.Settings) if config.SETTING not in f.metadata]
    assert unflagged == ["given"]
