"""pii-filter in the real sandbox: a few cases per type, offsets in the original text."""

import pytest
from haechi.sdk.testing import plugin_fixture

plugin = plugin_fixture()


def found(plugin, text):
    return [(d.type, text[d.start : d.end]) for d in plugin.inspect([text])]


@pytest.mark.parametrize(
    ("kind", "text", "value"),
    [
        ("email", "mail jane.doe@example.co.kr today", "jane.doe@example.co.kr"),
        ("phone", "call +82 10-1234-5678", "+82 10-1234-5678"),
        ("phone", "Phone: (415) 555-2671", "(415) 555-2671"),
        ("phone", "사무실 02-123-4567", "02-123-4567"),
        ("card", "card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
        ("iban", "IBAN DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
        ("us_ssn", "SSN 078-05-1120", "078-05-1120"),
        ("kr_rrn", "주민번호 900101-1234568", "900101-1234568"),
        ("ipv4", "from 203.0.113.45 port 22", "203.0.113.45"),
        ("ipv6", "listen [2001:db8::1]:443", "2001:db8::1"),
    ],
)
def test_finds_each_type(plugin, kind, text, value):
    assert found(plugin, text) == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "card 4111 1111 1111 1112",  # Luhn fails
        "주민번호 900101-1234567",  # check digit wrong
        "SSN 666-12-3456",
        "request 123e4567-e89b-12d3-a456-426614174000",
        "1.2.3.4-beta and MAC 00:1A:2B:3C:4D:5E",
    ],
)
def test_leaves_hard_negatives(plugin, text):
    assert found(plugin, text) == []


def test_fullwidth_and_zero_width_map_back_to_the_original(plugin):
    text = "연락처 ０１０－１２３４－５６７８, card 4111\u200b1111 1111 1111"
    assert found(plugin, text) == [
        ("phone", "０１０－１２３４－５６７８"),
        ("card", "4111\u200b1111 1111 1111"),
    ]


def test_labels_and_confidence(plugin):
    [card, ip] = plugin.inspect(["4111111111111111 from 10.1.2.3"])
    assert (card.label, card.confidence) == ("visa", 90)
    assert (ip.label, ip.confidence) == ("private", 75)


def test_segments_are_scanned_independently(plugin):
    detections = plugin.inspect(["nothing here", "SSN 078-05-1120"])
    assert [(d.segment, d.start, d.end) for d in detections] == [(1, 4, 15)]
