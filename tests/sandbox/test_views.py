"""Each plugin receives only the request fields its capabilities grant."""

from __future__ import annotations

import pytest
from haechi.host.sandbox.views import RequestView, arguments_for
from haechi.trust import Manifest

REQUEST = RequestView(
    method="POST",
    route="/v1/chat/completions",
    headers={"Authorization": "Bearer tok", "Cookie": "session=abc", "X-Api-Key": "k"},
    segments=("my card is 4111 1111 1111 1111",),
)


def manifest(kind: str, capabilities: list[str]) -> Manifest:
    return Manifest(
        id="p",
        version="1.0.0",
        kind=kind,
        entry="plugin.py",
        description="d",
        requires_host=">=0.1",
        capabilities=tuple(capabilities),
    )


def test_auth_with_credentials_gets_only_authorization_route_and_method() -> None:
    [args] = arguments_for(manifest("auth", ["request:credentials"]), "authenticate", REQUEST)
    assert args == {
        "authorization": "Bearer tok",
        "route": "/v1/chat/completions",
        "method": "POST",
    }
    assert "4111" not in repr(args) and "session" not in repr(args) and "X-Api" not in repr(args)


def test_auth_without_the_grant_gets_no_credentials() -> None:
    [args] = arguments_for(manifest("auth", []), "authenticate", REQUEST)
    assert "authorization" not in args


def test_filter_gets_only_the_text() -> None:
    assert arguments_for(manifest("filter", ["request:body-text"]), "inspect", REQUEST) == [
        ["my card is 4111 1111 1111 1111"]
    ]
    everything = repr(arguments_for(manifest("filter", ["request:body-text"]), "inspect", REQUEST))
    assert "tok" not in everything and "session" not in everything


def test_filter_without_the_grant_gets_nothing() -> None:
    assert arguments_for(manifest("filter", ["state:kv"]), "inspect", REQUEST) == [[]]


def test_crypto_hooks_take_no_request_fields() -> None:
    with pytest.raises(ValueError, match="no request fields"):
        arguments_for(manifest("crypto", []), "encrypt", REQUEST)
