"""local-aesgcm in the real sandbox: round trips, tampering, binding, expiry, the budget."""

import time
from pathlib import Path

import pytest
from haechi.sdk import Sealed
from haechi.sdk.testing import PluginCallError, load, plugin_fixture

plugin = plugin_fixture()
FIELDS = {"type": "email", "tenant": "acme", "expires": 0}
PLAINTEXT = b"bob@example.com"


def test_round_trip_and_the_envelope_describes_the_value(plugin):
    sealed = plugin.encrypt(PLAINTEXT, FIELDS)
    header = Sealed.from_bytes(sealed)
    assert (header.key, header.type, header.tenant, header.expires) == ("vault", "email", "acme", 0)
    assert PLAINTEXT not in sealed
    assert plugin.decrypt(sealed, FIELDS) == PLAINTEXT


@pytest.mark.parametrize("where", ["nonce", "ciphertext", "tag"])
def test_a_tampered_body_fails_to_open(plugin, where):
    header = Sealed.from_bytes(plugin.encrypt(PLAINTEXT, FIELDS))
    position = {"nonce": 0, "ciphertext": 12, "tag": len(header.body) - 1}[where]
    body = bytearray(header.body)
    body[position] ^= 0x80
    with pytest.raises(PluginCallError, match="key-open-failed"):
        plugin.decrypt(header.with_body(bytes(body)).to_bytes(), FIELDS)


@pytest.mark.parametrize(
    ("field", "value"),
    [("type", "phone"), ("tenant", "other"), ("expires", 4102444800)],
)
def test_every_descriptive_field_is_inside_the_aad(plugin, field, value):
    """Rewrite one header field and present the value as what it now claims to be: the
    plugin's own checks pass, so only the AAD can catch it, and it does."""
    header = Sealed.from_bytes(plugin.encrypt(PLAINTEXT, FIELDS))
    claims = {"type": header.type, "tenant": header.tenant, "expires": header.expires}
    claims[field] = value
    forged = Sealed("vault", claims["type"], header.body, claims["tenant"], claims["expires"])
    with pytest.raises(PluginCallError, match="key-open-failed"):
        plugin.decrypt(forged.to_bytes(), {"type": claims["type"], "tenant": claims["tenant"]})


def test_an_unknown_format_version_does_not_parse(plugin):
    sealed = plugin.encrypt(PLAINTEXT, FIELDS)
    forged = sealed.replace(b"HXS1\x96\x01", b"HXS1\x96\x02", 1)
    assert forged != sealed
    with pytest.raises(PluginCallError, match="version"):
        plugin.decrypt(forged, FIELDS)


def test_opening_as_another_type_or_tenant_is_refused(plugin):
    sealed = plugin.encrypt(PLAINTEXT, FIELDS)
    with pytest.raises(PluginCallError, match="not 'phone'"):
        plugin.decrypt(sealed, {**FIELDS, "type": "phone"})
    with pytest.raises(PluginCallError, match="another tenant"):
        plugin.decrypt(sealed, {**FIELDS, "tenant": "globex"})


def test_an_expired_value_is_refused(plugin):
    sealed = plugin.encrypt(PLAINTEXT, {**FIELDS, "expires": int(time.time()) - 1})
    with pytest.raises(PluginCallError, match="expired"):
        plugin.decrypt(sealed, FIELDS)


def test_fields_are_checked_by_name(plugin):
    with pytest.raises(PluginCallError, match="unknown field 'tennant'"):
        plugin.encrypt(PLAINTEXT, {"type": "email", "tennant": "acme"})
    with pytest.raises(PluginCallError, match=r"fields\.type"):
        plugin.encrypt(PLAINTEXT, {"type": "Email!"})


def test_sealing_stops_when_the_key_budget_is_spent():
    with load(Path(__file__).parent, key_budget=3) as small:
        for _ in range(3):
            small.encrypt(PLAINTEXT, FIELDS)
        with pytest.raises(PluginCallError, match="key-exhausted"):
            small.encrypt(PLAINTEXT, FIELDS)
        assert small.key_uses("vault") == 3
