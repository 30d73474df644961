"""The first-party filter plugins, in-process: what they find, where, and what they leave.

The bundles are loaded from their directories exactly as ``bench/detection.py`` loads them
(the sandboxed path is covered by each bundle's own ``test_plugin.py``).
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from pathlib import Path

import pytest
from haechi.sdk import check_result
from haechi.trust.manifest import Manifest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_detection", ROOT / "bench" / "detection.py")
assert _spec is not None and _spec.loader is not None
bench = importlib.util.module_from_spec(_spec)
sys.modules["bench_detection"] = bench  # dataclass-free, but keep it importable by name
_spec.loader.exec_module(bench)

PII_DIR, SECRET_DIR = bench.BUNDLES
pii = bench.load_plugin(PII_DIR)
secret = bench.load_plugin(SECRET_DIR)
MIB = 1 << 20


def found(plugin, text):
    """``(type, original slice)`` for every detection in one segment."""
    return [(d.type, text[d.start : d.end]) for d in plugin.inspect([text], ctx=None)]


def types(plugin, text):
    return {d.type for d in plugin.inspect([text], ctx=None)}


# --------------------------------------------------------------------------- pii-filter

PII_POSITIVES = [
    ("email", "write to jane.doe+ops@mail.example.co.kr today", "jane.doe+ops@mail.example.co.kr"),
    ("email", "<mailto:minji@example.com>", "minji@example.com"),
    ("phone", "call +14155552671 now", "+14155552671"),
    ("phone", "고객센터 +82 10-1234-5678 입니다", "+82 10-1234-5678"),
    ("phone", "Phone: (415) 555-2671.", "(415) 555-2671"),
    ("phone", "text 415-555-2671", "415-555-2671"),
    ("phone", "휴대폰 010-1234-5678", "010-1234-5678"),
    ("phone", "사무실 02-123-4567", "02-123-4567"),
    ("phone", "전화 01012345678", "01012345678"),
    ("card", "card 4111 1111 1111 1111 exp 12/27", "4111 1111 1111 1111"),
    ("card", "amex 3782-822463-10005", "3782-822463-10005"),
    ("card", "pan=5555555555554444;", "5555555555554444"),
    ("iban", "IBAN DE89 3704 0044 0532 0130 00 (ECB)", "DE89 3704 0044 0532 0130 00"),
    ("iban", "to GB82WEST12345698765432.", "GB82WEST12345698765432"),
    ("us_ssn", "SSN 078-05-1120", "078-05-1120"),
    ("kr_rrn", "주민번호 900101-1234568", "900101-1234568"),
    ("kr_rrn", "주민번호 9001011234568", "9001011234568"),
    ("ipv4", "from 203.0.113.45 port 22", "203.0.113.45"),
    ("ipv4", "server 10.0.0.1.", "10.0.0.1"),
    ("ipv6", "listen [2001:db8::1]:443", "2001:db8::1"),
    ("ipv6", "mapped ::ffff:192.0.2.128 ok", "::ffff:192.0.2.128"),
    (
        "ipv6",
        "full 2001:0db8:0000:0000:0000:ff00:0042:8329",
        "2001:0db8:0000:0000:0000:ff00:0042:8329",
    ),
]


@pytest.mark.parametrize(("kind", "text", "value"), PII_POSITIVES)
def test_pii_positive(kind, text, value):
    assert found(pii, text) == [(kind, value)]


PII_NEGATIVES = [
    "card 4111 1111 1111 1112 declined",  # Luhn fails
    "ref 9111111111111111",  # Luhn passes, no network's prefix
    "numbers 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6",
    "IBAN DE88 3704 0044 0532 0130 00",  # mod-97 fails
    "SSN 666-12-3456 / 912-34-5678 / 123-00-4567 / 123-45-0000 / 000-12-3456",
    "주민번호 900101-1234567",  # check digit wrong
    "주민번호 901301-1234567",  # month 13
    "주문번호 01012345678 조회",  # no phone word before a bare 010 number
    "SKU-010-1234-5678 and A02-123-4567",
    "request 123e4567-e89b-12d3-a456-426614174000",
    "1.2.3.4-beta, version 1.2.3.4, OID 1.3.6.1.4.1, 999.1.1.1, 192.168.001.001",
    "MAC 00:1A:2B:3C:4D:5E, std::vector, a::b, dead::beef, ::1, 12:30:45",
    "icon@2x.png, @pytest.fixture, user@localhost, lodash@4.17.21",
    "https://x-access-token:abc123@github.com/org/repo",
    "created 2026-05-12T10:31:07.123Z ts=1718000000000",
    "commit 4f2a9c1e0b7d3a8f6c5e4d3b2a1f0e9d8c7b6a5f",
]


@pytest.mark.parametrize("text", PII_NEGATIVES)
def test_pii_hard_negative(text):
    assert found(pii, text) == []


def test_invalid_ssn_ranges_are_each_rejected_and_a_valid_one_is_not():
    for bad in ("000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000"):
        assert found(pii, f"SSN {bad}") == []
    assert found(pii, "SSN 899-99-9999") == [("us_ssn", "899-99-9999")]


def test_validators():
    checks = pii.pii_rules.checks
    assert checks.luhn_ok("4111111111111111") and not checks.luhn_ok("4111111111111112")
    assert checks.iban_ok("GB82WEST12345698765432")
    assert not checks.iban_ok("GB82WEST1234569876543")  # wrong length for GB
    assert checks.rrn_ok("9001011234568") and not checks.rrn_ok("9001011234567")
    assert checks.card_brand("378282246310005") == "amex"
    assert checks.card_brand("5555555555554444") == "mastercard"
    assert checks.card_brand("9111111111111111") is None


def test_ip_labels():
    detections = pii.inspect(["8.8.8.8 10.1.2.3 127.0.0.1 fe80::1ff:fe23:4567:890a"], ctx=None)
    assert [(d.type, d.label) for d in detections] == [
        ("ipv4", "public"),
        ("ipv4", "private"),
        ("ipv4", "loopback"),
        ("ipv6", "link-local"),
    ]


# ------------------------------------------------------------------------ secret-filter

GITHUB = "ghp_EXAMPLE0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p"
AWS_ID, AWS_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIEXAMPLE\nAwEHoUQDQgAE\n-----END EC PRIVATE KEY-----"

SECRET_POSITIVES = [
    ("api_key", "aws-access-key-id", f"id {AWS_ID} ok", AWS_ID),
    ("api_key", "github", f"token {GITHUB}", GITHUB),
    ("api_key", "gitlab", "glpat-EXAMPLEabcdefghij123", "glpat-EXAMPLEabcdefghij123"),
    ("api_key", "slack", "xoxb-123456789012-EXAMPLEabcdef", "xoxb-123456789012-EXAMPLEabcdef"),
    ("api_key", "stripe", "sk_live_EXAMPLE4eC39HqLyjWDarjtT1", "sk_live_EXAMPLE4eC39HqLyjWDarjtT1"),
    ("api_key", "openai", "sk-proj-EXAMPLEa1B2c3D4e5F6g7H8", "sk-proj-EXAMPLEa1B2c3D4e5F6g7H8"),
    (
        "api_key",
        "anthropic",
        "sk-ant-api03-EXAMPLE_abcDEF12345",
        "sk-ant-api03-EXAMPLE_abcDEF12345",
    ),
    ("jwt", None, f"Authorization: Bearer {JWT}", JWT),
    ("private_key", "ec", f"key:\n{PEM}\nthanks", PEM),
    ("secret", "env-assignment", "export DB_PASSWORD=q8Zr!v2Lm#pX4t", "q8Zr!v2Lm#pX4t"),
    ("secret", "json-field", '{"password": "Xk9#mQ2$vL7p"}', "Xk9#mQ2$vL7p"),
    ("secret", "yaml-field", "db:\n  password: Tr0ub4dor&3\n", "Tr0ub4dor&3"),
    ("secret", "assignment", "connect(password='hunter2Xyz!')", "hunter2Xyz!"),
    ("secret", "aws-secret-access-key", f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    ("secret", "url-credentials", "postgres://app:s3cr3tPassW0rd@db/app", "s3cr3tPassW0rd"),
    ("secret", "yaml-field", "비밀번호: Qw8!zx12Lp", "Qw8!zx12Lp"),
]


@pytest.mark.parametrize(("kind", "label", "text", "value"), SECRET_POSITIVES)
def test_secret_positive(kind, label, text, value):
    detections = secret.inspect([text], ctx=None)
    assert [(d.type, d.label, text[d.start : d.end]) for d in detections] == [(kind, label, value)]


SECRET_NEGATIVES = [
    "API_KEY=your-api-key-here",
    "password: changeme",
    "TOKEN=xxxxxxxxxxxxxxxxxxxxxxxx",
    "password: ********",
    "SECRET=${SECRET}",
    "token: <your-token>",
    "DB_PASSWORD={{ vault_db_password }}",
    "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "password = os.environ['DB_PASSWORD']",
    "const apiKey = process.env.API_KEY;",
    "if (password == null) return;",
    "PASSWORD_MIN_LENGTH=12 TOKEN_URL=https://auth.example.com/token max_tokens: 4096",
    "PWD=/home/minji/projects/app",
    "use sk-learn-compatible-estimators-for-pipelines",
    "the Bearer of bad news; Authorization: Bearer $TOKEN",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
    "eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",  # header has no "alg"
    "etag wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",  # no key id near it
    "commit 4f2a9c1e0b7d3a8f6c5e4d3b2a1f0e9d8c7b6a5f",
]


@pytest.mark.parametrize("text", SECRET_NEGATIVES)
def test_secret_hard_negative(text):
    assert found(secret, text) == []


def test_aws_secret_is_found_next_to_its_key_id():
    text = f"Access key ID,Secret access key\n{AWS_ID},{AWS_SECRET}\n"
    assert found(secret, text) == [("api_key", AWS_ID), ("secret", AWS_SECRET)]


def test_truncated_pem_block_runs_to_its_last_line():
    text = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\nq83xEXAMPLE\n\n"
    assert found(secret, text) == [("private_key", text.rstrip())]


def test_pem_with_escaped_newlines_in_json():
    block = PEM.replace("\n", "\\n")
    assert found(secret, f'{{"private_key": "{block}\\n"}}') == [("private_key", block)]


# ------------------------------------------------- offsets through folding, overlaps, limits


@pytest.mark.parametrize(
    ("plugin", "kind", "value"),
    [
        (pii, "phone", "０１０－１２３４－５６７８"),  # fullwidth digits and hyphen
        (pii, "phone", "010-12\u200b34-5678"),  # zero-width space
        (pii, "card", "4111\u00ad1111\u20601111\ufeff1111"),  # soft hyphen, word joiner, BOM
        (pii, "kr_rrn", "900101\u20131234568"),  # en dash
        (pii, "email", "ｍｉｎｊｉ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
        (pii, "ipv4", "２０３.０.１１３.４５"),
        (secret, "api_key", "ｇｈｐ＿EXAMPLE0a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p"),
        (secret, "api_key", "sk_live_EXAMPLE4eC\u200b39HqLyjWDarjtT1"),
    ],
)
def test_offsets_map_back_to_the_original_text(plugin, kind, value):
    prefix = "앞 텍스트 ㎏ ﬁ "  # characters that fold to several, before the value
    text = f"{prefix}{value} 뒤"
    assert found(plugin, text) == [(kind, value)]


def test_fold_map_expands_and_drops():
    textspan = pii.textspan
    folded = textspan.fold("㎏\u200b０1")
    assert folded.text == "kg01"
    assert folded.span(0, 1) == (0, 1)  # half of "㎏" is the whole "㎏"
    assert folded.span(2, 4) == (2, 4)  # "01" starts after the zero-width space
    assert textspan.fold("plain ascii").span(3, 5) == (3, 5)


def test_overlaps_keep_the_stronger_type():
    # Digits inside an email are not a phone number; a card is not also a phone or an RRN.
    assert found(pii, "010-1234-5678@example.com") == [("email", "010-1234-5678@example.com")]
    # A provider token in an assignment is reported once, as the provider's key.
    assert found(secret, f"GITHUB_TOKEN={GITHUB}") == [("api_key", GITHUB)]
    # A JWT in a token assignment is a jwt, not a generic secret.
    assert found(secret, f"token={JWT}&state=x") == [("jwt", JWT)]


def test_adjacent_values_are_found_separately():
    text = "4111 1111 1111 1111 5555 5555 5555 4444"
    assert found(pii, text) == [("card", "4111 1111 1111 1111"), ("card", "5555 5555 5555 4444")]
    assert found(pii, "010-1111-2222,010-3333-4444") == [
        ("phone", "010-1111-2222"),
        ("phone", "010-3333-4444"),
    ]
    assert found(pii, "+82 10-1234-5678 2024") == [("phone", "+82 10-1234-5678")]
    assert found(secret, f"{GITHUB} {GITHUB}") == [("api_key", GITHUB), ("api_key", GITHUB)]


def test_segments_are_indexed_and_non_strings_skipped():
    detections = pii.inspect(["nothing", 7, "SSN 078-05-1120"], ctx=None)
    assert [(d.segment, d.start, d.end) for d in detections] == [(2, 4, 15)]


@pytest.mark.parametrize(
    "text",
    [
        "1" * MIB,
        "1 " * (MIB // 2),
        "a@" * (MIB // 2),
        "a.a@a." * (MIB // 6),
        "1." * (MIB // 2),
        "fe80:" * (MIB // 5),
        "+1 " * (MIB // 3),
        "password=a " * (MIB // 11),
        "eyJ" * (MIB // 3),
        "０１０\u200b" * (MIB // 4),
    ],
    ids=[
        "digits",
        "digit-space",
        "at",
        "email-ish",
        "dots",
        "hex-colon",
        "plus",
        "assign",
        "eyJ",
        "folded",
    ],
)
def test_one_mib_of_adversarial_text_completes(text):
    # No timing assertion: a catastrophic pattern would not finish at all on 1 MiB.
    assert pii.inspect([text], ctx=None) == []
    assert secret.inspect([text], ctx=None) == []


def test_answer_is_capped_at_the_protocol_limit():
    text = "SSN 078-05-1120 " * 12_000
    detections = pii.inspect([text], ctx=None)
    assert len(detections) == 10_000
    check_result("inspect", [d.to_wire() for d in detections])


def test_answers_have_the_wire_shape():
    for plugin, cases in ((pii, PII_POSITIVES), (secret, SECRET_POSITIVES)):
        for case in cases:
            detections = plugin.inspect([case[-2]], ctx=None)
            check_result("inspect", [d.to_wire() for d in detections])
            assert all(0 <= d.confidence <= 100 for d in detections)


# ---------------------------------------------------------------------------- bundles


def test_shared_module_copies_are_identical():
    assert (PII_DIR / "textspan.py").read_bytes() == (SECRET_DIR / "textspan.py").read_bytes()


@pytest.mark.parametrize("bundle", [PII_DIR, SECRET_DIR], ids=lambda p: p.name)
def test_manifest_is_valid(bundle):
    manifest = Manifest.from_toml((bundle / "plugin.toml").read_bytes())
    assert manifest.id == bundle.name
    assert manifest.kind == "filter"
    assert list(manifest.capabilities) == ["request:body-text"]


@pytest.mark.parametrize("bundle", [PII_DIR, SECRET_DIR], ids=lambda p: p.name)
def test_bundle_imports_only_stdlib_sdk_and_itself(bundle):
    own = {path.stem for path in bundle.glob("*.py")}
    for path in bundle.glob("*.py"):
        if path.name == "test_plugin.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                allowed = top in sys.stdlib_module_names or top in own or name == "haechi.sdk"
                assert allowed, f"{path.name} imports {name}"


# ---------------------------------------------------------------------------- the corpus

CORPUS_TYPES = {
    "email", "phone", "card", "iban", "us_ssn", "kr_rrn", "ipv4", "ipv6",
    "api_key", "secret", "private_key", "jwt",
}  # fmt: skip


def test_corpus_composition():
    cases = bench.load_corpus()
    ids = [case["id"] for case in cases]
    assert len(ids) == len(set(ids)) >= 400
    positives = [case for case in cases if case["expect"]]
    assert len(positives) >= 200
    assert sum(1 for case in cases if not case["expect"]) >= 200
    spans = [want for case in cases for want in case["expect"]]
    per_type = {kind: sum(1 for s in spans if s["type"] == kind) for kind in CORPUS_TYPES}
    assert min(per_type.values()) >= 8, per_type
    assert {s["type"] for s in spans} == CORPUS_TYPES
    for case in cases:  # spans are inside the text and non-empty
        for want in case["expect"]:
            assert 0 <= want["start"] < want["end"] <= len(case["text"]), case["id"]


def test_corpus_meets_the_targets():
    result = bench.score(bench.load_corpus(), [pii.inspect, secret.inspect])
    errors = [f"{e['kind']} {e['case']} {e['type']} {e['value']!r}" for e in result["errors"]]
    assert bench.meets(result, bench.MIN_PRECISION, bench.MIN_RECALL), "\n".join(errors)
    assert set(result["types"]) == CORPUS_TYPES


def test_scoring_counts_tp_fp_fn():
    cases = [
        {
            "id": "a",
            "text": "SSN 078-05-1120",
            "expect": [{"type": "us_ssn", "start": 4, "end": 15}],
        },
        {"id": "b", "text": "SSN 078-05-1120", "expect": []},
        {"id": "c", "text": "nothing", "expect": [{"type": "email", "start": 0, "end": 7}]},
    ]
    result = bench.score(cases, [pii.inspect])
    assert result["types"]["us_ssn"] | {} == {
        "tp": 1, "fp": 1, "fn": 0, "exact": 1, "precision": 0.5, "recall": 1.0,
    }  # fmt: skip
    assert result["types"]["email"]["fn"] == 1
    assert [e["kind"] for e in result["errors"]] == ["FP", "FN"]


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("mail müller@example.de now", "müller@example.de"),
        ("to jöhn.dœ@example.com", "jöhn.dœ@example.com"),
    ],
)
def test_an_email_with_a_non_ascii_local_part_is_covered_whole(text: str, address: str) -> None:
    """Reporting only the ASCII tail ('ller@example.de') would leave 'mü' in clear."""
    assert ("email", address) in found(pii, text)
