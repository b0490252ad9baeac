"""Masking of secrets: every rule of ``redact`` on the kind of text that would carry it.

The end-to-end check (a running agent, its logs, bodies and run history) is in
test_service; these pin each rule on its own, so that losing one fails by name.
"""

from __future__ import annotations

import pytest
from terrafusion_agent import redact as redact_mod
from terrafusion_agent.redact import MASK, redact, redact_url, register_secret
from terrafusion_agent.service import token as token_mod


@pytest.fixture(autouse=True)
def _no_secrets_left(monkeypatch):
    """Each test starts with no registered secret and no PGPASSWORD of the caller's."""
    monkeypatch.setattr(redact_mod, "_secrets", set())
    monkeypatch.delenv("PGPASSWORD", raising=False)


# --- passwords in URLs ------------------------------------------------------------------


@pytest.mark.parametrize("text, secret", [
    ("The central database postgresql://gis:Tapir-Quince-8@db.county.local/terrafusion "
     "cannot be reached: timeout expired.", "Tapir-Quince-8"),
    ("connecting to postgres://assessor:s3cr%40t@10.0.0.5:5432/gis failed", "s3cr%40t"),
    ("proxy https://me:hunter2@proxy.county.local:3128 refused", "hunter2"),
])
def test_a_password_in_a_url_is_masked_and_the_rest_kept(text, secret):
    masked = redact(text)
    assert secret not in masked
    assert f":{MASK}@" in masked
    # user, host and database still say which server it was
    user = text.split("://", 1)[1].split(":", 1)[0]
    assert f"://{user}:{MASK}@" in masked


def test_a_url_without_a_password_is_unchanged():
    text = "postgresql://gis@db.county.local/terrafusion?host=/run/pg&port=5433"
    assert redact(text) == text


def test_redact_url_keeps_user_host_and_database():
    url = "postgresql://gis:Tapir-Quince-8@db.county.local:5432/terrafusion?sslmode=require"
    assert redact_url(url) == ("postgresql://gis:***@db.county.local:5432/terrafusion"
                               "?sslmode=require")


def test_redact_url_masks_a_password_containing_an_at_sign():
    # the last "@" ends the user part; the pattern alone would stop at the first one
    assert redact_url("postgresql://gis:p@ss@db/terrafusion") == "postgresql://gis:***@db/terrafusion"


# --- libpq keyword/value settings and query parameters ----------------------------------


@pytest.mark.parametrize("text, secret", [
    ("host=db.county.local dbname=gis user=gis password=Tapir-Quince-8 sslmode=require",
     "Tapir-Quince-8"),
    ("host=db password = 'two words here' port=5432", "two words here"),
    ("PASSWORD=Tapir-Quince-8", "Tapir-Quince-8"),
    ("user=gis passwd=Okapi-31", "Okapi-31"),
    ("Server=db;Uid=gis;Pwd=Okapi-31;", "Okapi-31"),
])
def test_a_password_setting_is_masked(text, secret):
    masked = redact(text)
    assert secret not in masked and MASK in masked
    assert masked.split(MASK)[0].rstrip("'").rstrip().endswith("=")


def test_a_password_query_parameter_is_masked():
    text = "postgresql:///terrafusion?host=/run/pg&password=Tapir-Quince-8&sslmode=require"
    assert redact(text) == "postgresql:///terrafusion?host=/run/pg&password=***&sslmode=require"
    assert redact("postgresql:///gis?password=Okapi-31") == "postgresql:///gis?password=***"


# --- bearer tokens ----------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "Authorization: Bearer Wrong-Token-Narwhal-5555",
    "refused a request with authorization bearer Wrong-Token-Narwhal-5555 from 127.0.0.1",
    "BEARER Wrong-Token-Narwhal-5555",
    "curl -H 'Authorization: Bearer Wrong-Token-Narwhal-5555' http://127.0.0.1:8765/",
])
def test_a_bearer_token_is_masked_whatever_its_case(text):
    masked = redact(text)
    assert "Narwhal" not in masked
    assert f"earer {MASK}" in masked or f"EARER {MASK}" in masked


def test_a_url_safe_base64_token_is_masked_whole():
    token = "kP3_x-9Qz.Ab~c+d/e=="
    assert redact(f"Bearer {token} ok") == f"Bearer {MASK} ok"


# --- secrets known at run time ----------------------------------------------------------


def test_the_pgpassword_value_is_masked_wherever_it_appears(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "Pg-Env-Walrus-77")
    masked = redact('FATAL: role "Pg-Env-Walrus-77" does not exist (PGPASSWORD was '
                    "Pg-Env-Walrus-77)")
    assert "Walrus" not in masked and masked.count(MASK) == 2


def test_a_very_short_pgpassword_is_not_masked_everywhere(monkeypatch):
    # "ab" would garble every message it occurs in without protecting anything
    monkeypatch.setenv("PGPASSWORD", "ab")
    assert redact("table abutments") == "table abutments"


def test_a_registered_secret_is_masked():
    register_secret("Api-Token-Heron-0123456789")
    assert redact("The folder /tmp/Api-Token-Heron-0123456789 does not exist.") == \
        f"The folder /tmp/{MASK} does not exist."


def test_a_short_registered_secret_is_ignored():
    register_secret("short")
    assert redact("a short message") == "a short message"


def test_the_api_token_is_masked_once_the_agent_loads_it(tmp_path):
    path = tmp_path / "token"
    token = token_mod.load_or_create(path)
    assert redact(f"echo {token} > token") == f"echo {MASK} > token"
    # an existing token file, read at a later start, is registered as well
    redact_mod._secrets.clear()
    assert token_mod.load_or_create(path) == token
    assert token not in redact(f"the token is {token}.")


def test_a_url_password_is_masked_also_where_a_driver_quotes_it_alone():
    redact_mod.register_url_password("postgresql://gis:Ibis-%zz-Okapi@/gis?host=/run/pg")
    # libpq's own words for a raw "%" in a URL's password
    assert redact('invalid percent-encoded token: "Ibis-%zz-Okapi"') == \
        f'invalid percent-encoded token: "{MASK}"'


def test_a_url_password_is_registered_decoded_too():
    redact_mod.register_url_password("postgresql://gis:Tapir%20Quince@db/gis")
    assert redact("password Tapir Quince rejected") == f"password {MASK} rejected"
