"""Write cases.jsonl, the labelled detection corpus, deterministically.

    .venv/bin/python tests/corpus/detection/generate.py      # rewrites cases.jsonl

Every value is synthetic: check digits (Luhn, mod-97, RRN) are computed here, tokens are
random characters in the provider's shape with EXAMPLE in them where the format allows, and
PEM bodies are random base64, not keys. Spans are computed from where each value is placed
in its text, never typed by hand. See README.md for the format and the labelling decisions.
"""

import base64
import json
import random
import string
from pathlib import Path

OUT = Path(__file__).with_name("cases.jsonl")
rng = random.Random(20261128)
ALNUM = string.ascii_letters + string.digits
cases = []

# ---------------------------------------------------------------------------- helpers


def add(kind, template, *fills, note=""):
    """One case. ``template`` has a ``{}`` per fill; a fill is ``(type, value)`` for an
    expected span or a plain string for text that must NOT be detected."""
    text, expect = "", []
    parts = template.split("{}")
    assert len(parts) == len(fills) + 1, template
    for part, fill in zip(parts, [*fills, None], strict=True):
        text += part.replace("{{", "{").replace("}}", "}")
        if fill is None:
            continue
        if isinstance(fill, tuple):
            typ, value = fill
            expect.append({"type": typ, "start": len(text), "end": len(text) + len(value)})
            text += value
        else:
            text += fill
    number = sum(1 for c in cases if c["id"].startswith(kind + "-")) + 1
    cases.append({"id": f"{kind}-{number:03d}", "text": text, "expect": expect, "note": note})


def rand(chars, n):
    return "".join(rng.choice(chars) for _ in range(n))


def digits(n):
    return rand(string.digits, n)


def zw(value, char="\u200b"):
    """Hide an invisible character in the middle of ``value``."""
    middle = len(value) // 2
    return value[:middle] + char + value[middle:]


def fullwidth(value):
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in value)


def luhn_complete(prefix_digits):
    for check in "0123456789":
        candidate = prefix_digits + check
        total = 0
        for i, c in enumerate(reversed(candidate)):
            v = int(c)
            if i % 2:
                v = v * 2 - 9 if v > 4 else v * 2
            total += v
        if total % 10 == 0:
            return candidate
    raise AssertionError


def luhn_break(number):
    last = (int(number[-1]) + rng.randint(1, 9)) % 10
    return number[:-1] + str(last)


def card(prefix, length):
    return luhn_complete(prefix + digits(length - len(prefix) - 1))


def group(number, sizes, sep):
    out, at = [], 0
    for size in sizes:
        out.append(number[at : at + size])
        at += size
    return sep.join(out)


IBAN_SHAPES = {  # country: BBAN as (count, alphabet) runs
    "DE": [(18, "d")], "GB": [(4, "A"), (14, "d")], "FR": [(23, "d")], "NL": [(4, "A"), (10, "d")],
    "ES": [(20, "d")], "IT": [(1, "A"), (22, "d")], "BE": [(12, "d")], "CH": [(17, "d")],
    "NO": [(11, "d")], "PL": [(24, "d")], "AT": [(16, "d")], "SE": [(20, "d")],
}  # fmt: skip


def iban(country):
    bban = "".join(
        rand(string.digits if kind == "d" else string.ascii_uppercase, n)
        for n, kind in IBAN_SHAPES[country]
    )
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


def spaced(value):
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def rrn(valid=True, gender=None):
    yy, mm, dd = rng.randint(0, 99), rng.randint(1, 12), rng.randint(1, 28)
    g = gender or rng.choice("1234")
    body = f"{yy:02d}{mm:02d}{dd:02d}{g}{digits(5)}"
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    check = (11 - sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11) % 10
    if not valid:
        check = (check + rng.randint(1, 9)) % 10
    return f"{body[:6]}-{body[6:]}{check}"


def ssn():
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def jwt(alg="HS256", claims=None):
    header = b64url({"alg": alg, "typ": "JWT"})
    payload = b64url(claims or {"sub": digits(8), "name": "EXAMPLE User", "iat": 1718000000})
    signature = rand(ALNUM + "-_", 43)
    return f"{header}.{payload}.{signature}"


def pem(kind, lines=6, escaped=False):
    label = f"{kind} PRIVATE KEY" if kind else "PRIVATE KEY"
    body = [rand(ALNUM + "+/", 64) for _ in range(lines)]
    newline = "\\n" if escaped else "\n"
    return newline.join([f"-----BEGIN {label}-----", *body, f"-----END {label}-----"])


def fake(prefix, n, alphabet=ALNUM, marker="EXAMPLE"):
    """A token of ``prefix`` plus ``n`` characters, EXAMPLE included so it reads as fake."""
    return prefix + marker + rand(alphabet, n - len(marker))


FIRST = ["alice", "bob", "jiwoo", "minji", "carol", "dave", "seojun", "hana", "erin", "frank"]
LAST = ["kim", "park", "lee", "smith", "jones", "choi", "garcia", "nguyen"]
DOMAINS = ["example.com", "example.co.kr", "mail.example.org", "corp.example.net", "example.io"]


def email():
    return f"{rng.choice(FIRST)}.{rng.choice(LAST)}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"


# ---------------------------------------------------------------------------- positives


def positives_email():
    templates = [
        "Please forward the contract to {} before Friday.",
        "Contact: {} | Slack: #sales-apac",
        "담당자 이메일은 {} 입니다. 확인 부탁드립니다.",
        "From: Jane <{}>\nSubject: Q3 numbers",
        "reply-to={}&lang=en",
        "The user ({}) reported the crash at 10:42.",
        '{{"customer": {{"email": "{}", "tier": "gold"}}}}',
        "cc: {}, {}",
        "고객 {}님께서 환불을 요청하셨습니다.",
    ]
    for template in templates:
        count = template.count("{}")
        add("email", template, *[("email", email()) for _ in range(count)])
    add("email", "mail {} now", ("email", "first.last+tag@sub.example.co.uk"), note="plus-tag, three-label domain")
    add("email", "연락처: {}", ("email", fullwidth("minji.kim@example.com")), note="fullwidth letters and ＠")
    add("email", "send to {} please", ("email", zw("seojun.park@example.com")), note="zero-width space inside")
    add("email", "<mailto:{}>", ("email", "jane.doe@example.com"), note="mailto link")
    add("email", "CONTACT {} TODAY", ("email", "JANE.DOE@EXAMPLE.COM"), note="upper case")
    add("email", "Bounce: {}.", ("email", "first_last-99@mail-server.example.travel"), note="sentence-final dot")


def positives_phone():
    values = [
        ("Call me at {} after 6pm.", "+14155552671", "E.164 compact"),
        ("고객센터: {} (평일 9-18시)", "+82 10-2345-6789", "E.164 KR with separators"),
        ("London office: {}", "+44 20 7946 0958", "E.164 UK groups"),
        ("Support line {} ext. 12", "+1 (415) 555-2671", "E.164 with area code in parentheses"),
        ("Phone: {}", "(415) 555-2671", "NANP parentheses"),
        ("text {} for the code", "415-555-2671", "NANP dashes"),
        ("toll free {}", "1-800-555-0199", "NANP with trunk 1"),
        ("휴대폰 번호는 {} 입니다.", "010-1234-5678", "KR mobile"),
        ("사무실 {}로 연락주세요", "02-123-4567", "KR Seoul"),
        ("경기 지사 {}", "031-987-6543", "KR regional"),
        ("전화: {}", "01098765432", "KR mobile, no separators, announced by 전화"),
        ("연락처 {} 로 문자 주세요", fullwidth("010-5555-1234"), "fullwidth digits and hyphen"),
        ("mobile {}", zw("010-2222-3333"), "zero-width space inside"),
        ("Call {}", "+33 1 23 45 67 89", "E.164 FR pairs"),
        ("인터넷전화 {}", "070-1234-5678", "KR VoIP"),
        ("UK desk {}", "+44 (0)20 7946 0958", "E.164 with the (0) trunk hint"),
        ("call {} today", "+1.415.555.2671", "E.164 with dots"),
        ("cell {}", "415 555 2671", "NANP with spaces"),
        ("문의 {}", "+82-2-6000-1234", "E.164 KR Seoul"),
        ("Reach Dana on {} or email", "+49 30 901820", "E.164 DE"),
        ("tel. {}", "010 4321 8765", "KR mobile with spaces"),
        ("비상연락망: {}", "010\u20131111\u20132222", "en dashes as separators"),
    ]
    for template, value, note in values:
        add("phone", template, ("phone", value), note=note)
    add("phone", "fax {} / tel {}", ("phone", "212.555.0147"), ("phone", "646.555.0199"), note="NANP dots")
    add("phone", "Alice {} / Bob {}", ("phone", "010-1111-2222"), ("phone", "010-3333-4444"), note="two adjacent numbers")
    add("phone", "{} 2024", ("phone", "+82 10-1234-5678"), note="a year after the number is not part of it")


CARD_VALUES = [
    ("visa", "4", 16, (4, 4, 4, 4)),
    ("mastercard", "51", 16, (4, 4, 4, 4)),
    ("mastercard", "2221", 16, (4, 4, 4, 4)),
    ("amex", "37", 15, (4, 6, 5)),
    ("discover", "6011", 16, (4, 4, 4, 4)),
    ("jcb", "3530", 16, (4, 4, 4, 4)),
    ("unionpay", "62", 16, (4, 4, 4, 4)),
    ("diners", "36", 14, (4, 6, 4)),
    ("visa", "4", 19, (4, 4, 4, 4, 3)),
]


def positives_card():
    templates = [
        "Card number: {}, exp 12/27",
        "결제 카드 {} 로 승인되었습니다.",
        '{{"pan": "{}", "cvv": "***"}}',
        "please charge {} for the renewal",
    ]
    for i, (brand, prefix, length, sizes) in enumerate(CARD_VALUES):
        number = card(prefix, length)
        sep = [" ", "-", ""][i % 3]
        shown = group(number, sizes, sep) if sep else number
        add("card", templates[i % len(templates)], ("card", shown), note=f"{brand}, sep={sep!r}")
    add("card", "카드번호 {}", ("card", fullwidth(group(card("4", 16), (4, 4, 4, 4), "-"))), note="fullwidth")
    add("card", "PAN {} end", ("card", zw(card("53", 16))), note="zero-width inside a 16-digit run")
    add("card", "cards: {} and {}", ("card", group(card("4", 16), (4, 4, 4, 4), " ")), ("card", group(card("55", 16), (4, 4, 4, 4), " ")), note="two cards one space apart")
    add("card", "{} 12", ("card", group(card("4", 16), (4, 4, 4, 4), " ")), note="a short number right after the card")
    add("card", "Stripe test card {} works in sandbox", ("card", "4242 4242 4242 4242"), note="well-known test number is still a card number")


def positives_iban():
    templates = [
        "Bitte überweisen Sie auf {} (Sparkasse).",
        "IBAN: {}",
        "Wire to {} ref INV-2291",
        '{{"iban": "{}", "bic": "DEUTDEFF"}}',
        "계좌(해외송금): {} 수취인 ACME GmbH",
    ]
    for i, country in enumerate(IBAN_SHAPES):
        value = iban(country)
        shown = spaced(value) if i % 2 else value
        add("iban", templates[i % len(templates)], ("iban", shown), note=f"{country}, spaced={bool(i % 2)}")
    add("iban", "IBAN {}", ("iban", "DE89 3704 0044 0532 0130 00"), note="ECB example IBAN")
    add("iban", "iban {}", ("iban", fullwidth(iban("GB"))), note="fullwidth")


def positives_us_ssn():
    templates = [
        "SSN: {}",
        "Employee {} was onboarded; SSN {} on file.",
        "ssn={}&dob=1980-01-01",
        "Social Security Number {} (verified)",
        '{{"ssn": "{}"}}',
        "미국 사회보장번호 {} 확인 완료",
    ]
    for template in templates:
        fills = [("us_ssn", ssn())]
        if template.count("{}") == 2:
            fills = ["E-20931", ("us_ssn", ssn())]
        add("us_ssn", template, *fills)
    for value, note in [
        ("078-05-1120", "the Woolworth SSN, valid format"),
        ("665-99-9999", "highest area below 666"),
        ("001-01-0001", "lowest valid"),
        (fullwidth(ssn()), "fullwidth"),
        (zw(ssn()), "zero-width"),
    ]:
        add("us_ssn", "SSN {}.", ("us_ssn", value), note=note)


def positives_kr_rrn():
    templates = [
        "주민등록번호: {}",
        "성명 홍길동, 주민번호 {}, 주소 서울시",
        "RRN {} (verified)",
        '{{"rrn": "{}", "name": "김민지"}}',
        "본인 확인용 {} 입력",
        "외국인등록번호 {}",
    ]
    for i, template in enumerate(templates):
        gender = "5" if "외국인" in template else None
        add("kr_rrn", template, ("kr_rrn", rrn(gender=gender)), note="hyphenated")
    add("kr_rrn", "주민번호 {} 입니다", ("kr_rrn", rrn().replace("-", "")), note="no hyphen")
    add("kr_rrn", "주민등록번호 {}", ("kr_rrn", fullwidth(rrn())), note="fullwidth digits and hyphen")
    add("kr_rrn", "주민번호: {}", ("kr_rrn", zw(rrn(), "\u2060")), note="word joiner inside")
    add("kr_rrn", "번호 {}", ("kr_rrn", rrn().replace("-", "\u2013")), note="en dash")
    add("kr_rrn", "{},{}", ("kr_rrn", rrn()), ("kr_rrn", rrn()), note="two, comma-separated")


def positives_ipv4():
    values = [
        ("Failed password for root from {} port 22 ssh2", "203.0.113.45"),
        ("curl http://{}:8080/health", "10.20.30.40"),
        ("서버 IP는 {} 입니다", "192.168.0.10"),
        ("allow from {}/24", "172.16.5.0"),
        ("ping {}", "8.8.8.8"),
        ('{{"client_ip": "{}"}}', "100.64.12.9"),
        ("connect to {}.", "93.184.216.34"),
        ("peer={}", "127.0.0.1"),
    ]
    for template, value in values:
        add("ipv4", template, ("ipv4", value))
    add("ipv4", "X-Forwarded-For: {}, {}", ("ipv4", "198.51.100.7"), ("ipv4", "10.0.0.1"), note="list")
    add("ipv4", "range {}-{}", ("ipv4", "10.0.0.1"), ("ipv4", "10.0.0.255"), note="a range")
    add("ipv4", "접속 IP {}", ("ipv4", fullwidth("211.45.67.89")), note="fullwidth")
    add("ipv4", "src {}", ("ipv4", zw("52.14.200.3")), note="zero-width")


def positives_ipv6():
    values = [
        ("client {} connected", "2001:db8:85a3::8a2e:370:7334"),
        ("listen [{}]:443", "2001:db8::1"),
        ("link-local {} on eth0", "fe80::1ff:fe23:4567:890a"),
        ("full form {}", "2001:0db8:0000:0000:0000:ff00:0042:8329"),
        ("mapped {}", "::ffff:192.0.2.128"),
        ("IPv6 주소: {}", "2404:6800:4004:80f::200e"),
        ('{{"ip": "{}"}}', "2606:4700:4700::1111"),
        ("ULA {}.", "fd12:3456:789a:1::1"),
        ("route add {} via gw", "2001:db8:abcd:12::"),
    ]
    for template, value in values:
        add("ipv6", template, ("ipv6", value))
    add("ipv6", "addr {}", ("ipv6", fullwidth("2001:db8::42")), note="fullwidth")


def positives_api_key():
    tokens = [
        ("AWS key id {}", "AKIA" + "ZQ3" + rand(string.ascii_uppercase + "234567", 5) + "7EXAMPLE", "aws"),
        ("aws_access_key_id = {}", "AKIAIOSFODNN7EXAMPLE", "aws doc example"),
        ("temporary creds {}", "ASIA" + rand(string.ascii_uppercase + "234567", 9) + "EXAMPLE", "aws sts"),
        ("GITHUB_TOKEN={}", fake("ghp_", 36), "github classic"),
        ("git clone https://x-access-token:{}@github.com/org/repo", fake("ghs_", 36), "github app token in URL"),
        ("fine-grained: {}", "github_pat_11EXAMPLE0" + rand(ALNUM, 12) + "_" + rand(ALNUM, 59), "github fine-grained"),
        ("gitlab token {}", "glpat-" + "EXAMPLE" + rand(ALNUM + "_-", 13), "gitlab"),
        ("SLACK_BOT_TOKEN: {}", "xoxb-" + digits(12) + "-" + digits(13) + "-EXAMPLE" + rand(ALNUM, 17), "slack bot"),
        ("slack user token {} expired", "xoxp-" + digits(12) + "-" + digits(12) + "-" + digits(13) + "-" + "EXAMPLE" + rand("abcdef0123456789", 25), "slack user"),
        ("app-level {}", "xapp-1-A0EXAMPLE1-" + digits(13) + "-" + rand("abcdef0123456789", 64), "slack app"),
        ("stripe.api_key = '{}'", fake("sk_live_", 24), "stripe live"),
        ("restricted {}", fake("rk_live_", 24), "stripe restricted"),
        ("테스트 키 {} 사용", fake("sk_test_", 24), "stripe test"),
        ("OPENAI_API_KEY={}", "sk-proj-" + rand(ALNUM, 20) + "EXAMPLE" + rand(ALNUM + "_-", 120), "openai project"),
        ("openai.api_key = \"{}\"", "sk-" + rand(string.ascii_letters, 10) + "EXAMPLE" + rand(ALNUM, 31), "openai legacy"),
        ("x-api-key: {}", "sk-ant-api03-" + rand(ALNUM, 20) + "EXAMPLE" + rand(ALNUM + "_-", 68) + "-" + rand(ALNUM, 6) + "AA", "anthropic"),
        ("ANTHROPIC_API_KEY={} # dev", "sk-ant-api03-" + "EXAMPLE" + rand(ALNUM + "_-", 86) + "AA", "anthropic in env"),
        ("maps key {}", "AIza" + "EXAMPLE" + rand(ALNUM + "_-", 28), "google"),
        ("//registry.npmjs.org/:_authToken={}", "npm_" + "EXAMPLE" + rand(ALNUM, 29), "npm"),
        ("이 키 {} 는 폐기해주세요", fake("ghp_", 36), "github in Korean text"),
    ]
    for template, value, note in tokens:
        add("api_key", template, ("api_key", value), note=note)
    add("api_key", "key: {}", ("api_key", fullwidth(fake("ghp_", 36))), note="fullwidth github token")
    add("api_key", "token {} here", ("api_key", zw(fake("sk_live_", 24))), note="zero-width inside a stripe key")
    add("api_key", "{} {}", ("api_key", fake("ghp_", 36)), ("api_key", fake("gho_", 36)), note="two adjacent tokens")


def secret_value(n=16):
    return rand(ALNUM, n - 4) + rng.choice("!#%") + digits(2) + rng.choice("ABCXYZ")


def positives_secret():
    aws = rand(ALNUM + "/+", 30) + "EXAMPLEKEY"
    fills = [
        ("export DB_PASSWORD={}", secret_value(), "env with export"),
        ("POSTGRES_PASSWORD={}\nPOSTGRES_USER=app", secret_value(20), "env file"),
        ('{{"username": "svc", "password": "{}"}}', secret_value(14), "JSON"),
        ("database:\n  password: {}\n  host: db", secret_value(18), "YAML"),
        ("client_secret: '{}'", rand(ALNUM + "-_", 40), "YAML quoted client secret"),
        ("aws_secret_access_key = {}", aws, "AWS secret by assignment"),
        ("JWT_SECRET={}", rand("abcdef0123456789", 64), "hex signing secret"),
        ("DJANGO_SECRET_KEY='{}'", rand(ALNUM + "!@#%^*-_=+", 50), "django"),
        ("mysql -u root --password={} -h db", secret_value(), "CLI flag"),
        ("conn = connect(user='app', password='{}')", secret_value(15), "hard-coded in code"),
        ("'password' => '{}',", secret_value(12), "PHP array"),
        ("비밀번호: {}", secret_value(12), "Korean text, YAML-like"),
        ("Authorization: Bearer {}", rand(ALNUM, 40), "opaque bearer token"),
        ("curl -H 'Authorization: Basic {}' https://api.example.com", base64.b64encode(b"svc:" + rand(ALNUM, 12).encode()).decode(), "basic auth"),
        ("DATABASE_URL=postgres://app:{}@db.internal:5432/app", secret_value(14), "password in a URL"),
        ("apiKey: \"{}\"", rand(ALNUM, 32), "camelCase key"),
        ("SecretAccessKey: {}", rand(ALNUM + "/+", 30) + "EXAMPLEKEY", "CloudFormation-style key name"),
        ('{{"private_key_id": "abc", "client_secret": "{}"}}', rand(ALNUM + "-_", 24), "JSON client secret"),
        ("REDIS_AUTH={}", secret_value(24), "auth word"),
        ("token = \"{}\"", secret_value(20), "python literal"),
        ("AWS_SECRET_ACCESS_KEY={}", rand(ALNUM + "/+", 30) + "EXAMPLEKEY", "AWS secret in env"),
        ('smtp:\n  password: "{}"', secret_value(16), "YAML double-quoted"),
        ("PGPASSWORD={} psql -h db -U app", secret_value(13), "inline env before a command"),
        ('{{"apiKey":"{}"}}', rand(ALNUM, 28), "compact JSON"),
        ("new_password: {}", secret_value(12), "password-reset form field"),
    ]
    for template, value, note in fills:
        add("secret", template, ("secret", value), note=note)
    key_id = "AKIA" + rand(string.ascii_uppercase + "234567", 9) + "EXAMPLE"
    add("secret", "Access key ID,Secret access key\n{},{}", ("api_key", key_id), ("secret", aws), note="AWS credentials.csv")
    add("secret", "PASSWORD={}", ("secret", fullwidth(secret_value())), note="fullwidth value")
    add("secret", "export API_TOKEN={}", ("secret", zw(secret_value(20))), note="zero-width inside value")


def positives_private_key():
    for kind, note in [("RSA", "pkcs1"), ("EC", "ec"), ("", "pkcs8"), ("OPENSSH", "openssh"), ("ENCRYPTED", "encrypted pkcs8"), ("DSA", "dsa")]:
        add("private_key", "key file contents:\n{}\n", ("private_key", pem(kind)), note=note)
    add("private_key", '{{"type": "service_account", "private_key": "{}\\n", "client_email": "x"}}', ("private_key", pem("", 8, escaped=True)), note="JSON-escaped newlines")
    add("private_key", "여기 키입니다 {} 감사합니다", ("private_key", pem("RSA", 3)), note="Korean text")
    truncated = pem("RSA", 4).rsplit("\n", 1)[0]
    add("private_key", "{}", ("private_key", truncated), note="truncated: no END line")
    add("private_key", "{}\n{}", ("private_key", pem("EC", 2)), ("private_key", pem("RSA", 2)), note="two blocks")
    add("private_key", "-----BEGIN PGP PUBLIC KEY BLOCK----- is public but {}", ("private_key", pem("PGP", 3).replace("PRIVATE KEY-----", "PRIVATE KEY BLOCK-----")), note="PGP private block after a public one")


def positives_jwt():
    templates = [
        "Authorization: Bearer {}",
        "token={}&state=xyz",
        '{{"access_token": "{}", "expires_in": 3600}}',
        "세션 토큰 {} 가 만료되었습니다",
        "Cookie: session={}; Path=/",
        "id_token: {}",
    ]
    for i, template in enumerate(templates):
        add("jwt", template, ("jwt", jwt(["HS256", "RS256", "ES256"][i % 3])))
    header = b64url({"alg": "none"})
    add("jwt", "unsigned {}", ("jwt", f"{header}.{b64url({'sub': 'EXAMPLE'})}."), note="alg none, empty signature")
    add("jwt", "jwt {}", ("jwt", zw(jwt())), note="zero-width inside")
    add("jwt", "{} {}", ("jwt", jwt()), ("jwt", jwt("RS256")), note="two adjacent")


def positives_mixed():
    """Realistic multi-type texts: signatures, logs, forms, support tickets."""
    for _ in range(6):
        add(
            "mixed",
            "--\n{} | Senior Engineer\nM: {} | E: {}\n",
            "Kim Minji",
            ("phone", "+82 10-" + digits(4) + "-" + digits(4)),
            ("email", email()),
        )
    for _ in range(5):
        add(
            "mixed",
            "2026-05-12T10:31:07Z auth ok user={} ip={} session={}",
            ("email", email()),
            ("ipv4", f"203.0.113.{rng.randint(1, 254)}"),
            ("jwt", jwt()),
        )
    for _ in range(5):
        add(
            "mixed",
            "성명: 홍길동\n주민등록번호: {}\n휴대폰: {}\n이메일: {}\n카드: {}",
            ("kr_rrn", rrn()),
            ("phone", "010-" + digits(4) + "-" + digits(4)),
            ("email", email()),
            ("card", group(card("4", 16), (4, 4, 4, 4), "-")),
        )
    for _ in range(4):
        add(
            "mixed",
            "# .env\nAPP_ENV=production\nDB_HOST=10.1.2.3\nDB_PASSWORD={}\nSTRIPE_KEY={}\nAWS_ACCESS_KEY_ID={}\n",
            ("secret", secret_value(18)),
            ("api_key", fake("sk_live_", 24)),
            ("api_key", "AKIA" + rand(string.ascii_uppercase + "234567", 9) + "EXAMPLE"),
            note="DB_HOST is an address too: labelled below",
        )
        case = cases[-1]
        at = case["text"].index("10.1.2.3")
        case["expect"].append({"type": "ipv4", "start": at, "end": at + 8})
        case["expect"].sort(key=lambda e: e["start"])
    for _ in range(4):
        add(
            "mixed",
            "Customer {} (SSN {}) asked to move funds to {}; callback {}.",
            "J. Doe",
            ("us_ssn", ssn()),
            ("iban", spaced(iban("DE"))),
            ("phone", "(212) 555-" + digits(4)),
        )


# ---------------------------------------------------------------------------- hard negatives


def negatives():
    n = lambda text, note="": add("neg", "{}", text, note=note)  # noqa: E731

    # Order ids, invoices, tracking numbers, account-like numbers.
    for _ in range(6):
        n(f"Order #{digits(4)}-{digits(4)}-{digits(4)} has shipped.", "order id")
    for _ in range(5):
        n(f"주문번호 {rng.choice('2')}{digits(3)}{digits(4)}-{digits(6)} 배송 시작", "KR order id")
    n("주문번호 01012345678 조회", "11-digit id starting 010 without a phone word")
    n("Invoice INV-2026-000451 due 2026-06-30", "invoice")
    n("UPS tracking 1Z999AA10123456784", "UPS")
    n("UPS 1Z 999 AA1 01 2345 6784 (spaced)", "UPS spaced")
    n("FedEx tracking number 7489 2837 4930", "FedEx 12 digits grouped")
    n("FedEx 961234567890123", "FedEx 15 digits")
    n("USPS 9400 1000 0000 0000 0000 00", "USPS 22 digits")
    n("DHL waybill 1234567890", "DHL 10 digits")
    n("송장번호 6081-2345-6789 (CJ대한통운)", "KR courier waybill")
    n("Amazon order 112-4839201-5938211", "Amazon order")
    n("account 110-123-456789 (신한)", "KR bank account")
    n("ISBN 978-3-16-148410-0", "ISBN")
    n("ISBN 978-89-954321-0-5", "KR ISBN")

    # Invalid checksums and number-plan rules.
    for prefix in ["4", "4", "51", "37", "6011", "4", "55", "4"]:
        length = 15 if prefix == "37" else 16
        number = luhn_break(card(prefix, length))
        shown = group(number, (4, 6, 5) if length == 15 else (4, 4, 4, 4), rng.choice([" ", "-", ""]))
        n(f"card {shown} declined", "Luhn fails")
    for prefix in ["1", "9", "7", "8"]:
        n(f"ref {card(prefix, 16)}", "Luhn passes, no card network uses this prefix")
    n("subscriber 4111111111111", "13-digit visa-like, Luhn fails")
    n("numbers 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6", "a list of small numbers")
    for _ in range(8):
        n(f"주민번호 {rrn(valid=False)} (오타)", "RRN check digit wrong")
    n("주민번호 901301-1234567", "month 13")
    n("주민번호 900132-1234567", "day 32")
    n("번호 900101-9234567", "gender digit 9")
    for country in ["DE", "GB", "FR", "NL", "ES", "IT"]:
        value = iban(country)
        broken = value[:2] + f"{(int(value[2:4]) + 1) % 100:02d}" + value[4:]
        n(f"IBAN {broken}", "mod-97 fails")
    n("IBAN XX12 3456 7890 1234 5678 90", "unknown country")
    n("DE89 3704 0044 0532 0130", "DE IBAN with a group missing")
    for bad in ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000"]:
        n(f"SSN {bad}", "SSA never issues this")
    n("part 123-45-67890", "SSN-like with 5-digit serial")

    # Identifiers, hashes and encodings.
    for _ in range(8):
        u = "-".join(rand("0123456789abcdef", k) for k in (8, 4, 4, 4, 12))
        n(f"request_id={u}", "UUID")
    for _ in range(6):
        n(f"commit {rand('0123456789abcdef', 40)}", "git SHA-1")
    n(f"fixed in {rand('0123456789abcdef', 7)} and {rand('0123456789abcdef', 7)}", "short SHAs")
    for _ in range(5):
        n(f"sha256:{rand('0123456789abcdef', 64)}", "sha256 digest")
    n(f"md5 {rand('0123456789abcdef', 32)}", "md5")
    for _ in range(5):
        n(f"data:image/png;base64,{base64.b64encode(bytes(rng.randrange(256) for _ in range(60))).decode()}", "base64 blob")
    for _ in range(3):
        n(f"etag {rand(ALNUM + '/+', 40)}", "40-char base64 with no AWS key id near it")
    n(f"integrity=\"sha384-{base64.b64encode(bytes(rng.randrange(256) for _ in range(48))).decode()}\"", "SRI hash")
    n("docker pull ghcr.io/acme/api@sha256:" + rand("0123456789abcdef", 64), "image digest")

    # Dates, times, versions.
    for _ in range(5):
        n(f"created_at: 2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}.{digits(3)}Z", "ISO timestamp")
    for _ in range(3):
        n(f"ts={rng.randint(1600000000000, 1800000000000)}", "epoch milliseconds")
    n("2026.05.12 10:30:45", "dotted date and time")
    n("12/05/2026 10:30", "slashed date")
    n("duration 01:02:03:04", "timecode")
    n("Released 2024-01-15, patched 2024-02-01.", "ISO dates")
    n("meeting 2026-05-12 14:00-15:30 KST", "date range")
    n("1.2.3.4-beta is out", "pre-release version: decided NOT an address (see README)")
    n("upgrade to 10.0.19045.3803", "Windows build: last part > 255")
    n("version 1.2.3.4", "dotted quad after 'version'")
    n("app v2.10.1.0 released", "v-prefixed")
    n("chrome 124.0.6367.91", "browser version")
    n("python 3.11.7", "three parts")
    n("OID 1.3.6.1.4.1.311.21.8", "OID")
    n("see section 4.2.1.3 of the RFC", "section number")
    n("IP 999.12.1.1 is invalid", "octet > 255")
    n("192.168.001.001 (zero-padded)", "leading zeros: decided not an address")
    n("1.2.3.4+build.5", "semver build metadata")
    n("pkg==2.31.0.post1", "python version")

    # Phone-like codes and numbers.
    n("Model A02-123-4567 in stock", "product code with a letter prefix")
    n("SKU-010-1234-5678", "SKU with the prefix attached")
    n("part no. 010-123-45678", "wrong group lengths")
    n("serial 0212-345-6789", "wrong group lengths")
    n("price ₩1,234,567 / $4,155.52", "money")
    n("coordinates 37.5665, 126.9780", "lat/long")
    n("batch 20260512-0001", "batch id")
    n("room 415-B, floor 5", "room")
    n("counts: 415 555 26710", "too many digits")
    n("CVE-2024-3094", "CVE")
    n("HTTP 404 after 1024 ms; retry 3/5", "numbers in logs")
    n("+1 ( ) 555", "broken international")
    n("dial 911 or 112", "emergency numbers")
    n("SN 1234-5678-9012 ok", "three groups")

    # E-mail-like.
    n("@pytest.fixture decorates it", "decorator")
    n("npm i @types/node@20.11.5", "npm scope and version")
    n("retina image icon@2x.png", "file name with @2x")
    n("user@localhost", "no TLD")
    n("ping me @minji on Slack", "mention")
    n("send to name (at) example (dot) com", "obfuscated, not detected by design")
    n("pip install requests==2.31.0 lodash@4.17.21", "package pins")
    n("a@b.c is too short", "one-letter TLD")

    # IPv6-like and code.
    n("MAC 00:1A:2B:3C:4D:5E", "MAC address")
    n("std::vector<int> v; Foo::Bar::baz();", "C++ scopes")
    n("a::b and dead::beef", "short or digitless compressed forms")
    n("loopback ::1 is not reported", "::1: decided not reported (see README)")
    n("time 12:30:45 and 23:59", "times")
    n("ratio 16:9:4:3", "ratios")
    n("Rust path crate::module::Type", "Rust path")
    n("abc:def:123", "colon-separated id")

    # Secrets that are not secrets: placeholders, references, code.
    for text in [
        "API_KEY=your-api-key-here",
        "password: changeme",
        "TOKEN=xxxxxxxxxxxxxxxxxxxxxxxx",
        "password: ********",
        "SECRET=${SECRET}",
        "token: <your-token>",
        'export GITHUB_TOKEN="$(gh auth token)"',
        "DB_PASSWORD={{ vault_db_password }}",
        '"password": "REPLACE_ME"',
        "client_secret: '<client-secret>'",
        "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
        "OPENAI_API_KEY=sk-...",
        "AKIAXXXXXXXXXXXXXXXX",
        "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
        "password = os.environ['DB_PASSWORD']",
        "token = request.headers.get('X-Token')",
        "const apiKey = process.env.API_KEY;",
        "if (password == null) return;",
        "password = getpass.getpass()",
        "api_key: str = Field(..., description='key')",
        "PASSWORD_MIN_LENGTH=12",
        "TOKEN_URL=https://auth.example.com/oauth/token",
        "secret_name: prod/db/credentials",
        "AUTH_MODE=oauth2",
        "max_tokens: 4096",
        "tokenizer: cl100k_base",
        "password: true",
        "token=1234567890",
        "PWD=/home/minji/projects/app",
        "password: password",
        "SECRET_KEY_BASE=<%= ENV['SECRET_KEY_BASE'] %>",
        "use sk-learn-compatible-estimators-for-pipelines",
        "the Bearer of bad news",
        "Authorization: Bearer $TOKEN",
        "Authorization: Bearer <token>",
        "postgres://user:${DB_PASS}@db/app",
        "password_hash_algorithm: argon2id",
        "secretsmanager:GetSecretValue",
        "passwordless login via magic link",
        "비밀번호: ********",
        "password: [REDACTED]",
        "api-key: {{ .Values.apiKey }}",
        "TOKEN=%TOKEN%",
        "password=None",
        "xoxb-your-token",
        "token: ${{ secrets.GITHUB_TOKEN }}",
        "password: !vault |",
        "api_key: !ENV ${API_KEY}",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----",
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUEXAMPLE\n-----END CERTIFICATE-----",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\nmQINBGEXAMPLE\n-----END PGP PUBLIC KEY BLOCK-----",
        "mention PRIVATE KEY in prose without armor",
        "eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "eyJhbGciOiJIUzI1NiJ9 alone is just a header",
        "eyJ0eXAiOiJKV1QifQ.eyJzdWIiOiIxIn0.abc",
        "sk-ant-...redacted",
        "github_pat_<your-token>",
        "glpat-xxxxxxxxxxxxxxxxxxxx",
        "AIzaSy-your-google-api-key-goes-here-xx",
    ]:
        n(text, "placeholder, reference or code")

    # Prose and code with nothing sensitive.
    for text in [
        "The quick brown fox jumps over the lazy dog 1234 times.",
        "회의는 내일 오전 10시에 3층 회의실에서 진행합니다.",
        "for (int i = 0; i < 4111; i++) { total += i; }",
        "SELECT id, email_verified FROM users WHERE created_at > '2026-01-01';",
        "matrix = [[1, 2, 3, 4], [5, 6, 7, 8]]",
        "pi = 3.14159265358979323846",
        "Version 2.0 (build 4111) — 87 cases, 48 positives",
        "주문 금액 41,110원, 포인트 1,111점 적립",
        "HTTP/1.1 200 OK\nContent-Length: 4096\nCache-Control: max-age=3600",
        "ulimit -n 65535; sysctl -w net.core.somaxconn=4096",
        "lat=37.566535&lng=126.977969&zoom=15",
        "color: #4111ff; margin: 0 16px 0 8px;",
        "docker run -p 8080:80 -e MODE=dev nginx:1.25.3",
        "git log --oneline 4f2a9c1..8b3d7e2",
        "Temperature readings: 21.5, 22.1, 22.8, 23.0",
    ]:
        n(text, "ordinary text")


def main():
    for section in (
        positives_email, positives_phone, positives_card, positives_iban, positives_us_ssn,
        positives_kr_rrn, positives_ipv4, positives_ipv6, positives_api_key, positives_secret,
        positives_private_key, positives_jwt, positives_mixed, negatives,
    ):  # fmt: skip
        section()
    with OUT.open("w", encoding="utf-8") as out:
        for case in cases:
            out.write(json.dumps(case, ensure_ascii=False) + "\n")
    positives = sum(len(c["expect"]) for c in cases)
    negative_cases = sum(1 for c in cases if not c["expect"])
    print(f"{len(cases)} cases, {positives} expected spans, {negative_cases} negative cases")


if __name__ == "__main__":
    main()
