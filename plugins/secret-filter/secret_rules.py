"""What secret-filter looks for: one finder per kind of secret, over folded text.

Each finder yields ``(start, end, type, label, confidence)`` in folded offsets. As in
pii-filter, every quantifier is bounded and every pattern has a guard on its left, so a failed
match costs bounded work per start position and adversarial input stays linear.

Speed: ``re`` skips ahead to candidate positions only when a pattern starts with a literal or
a character class; a pattern that starts with a lookbehind is tried at every position. So a
guard comes right after a fixed-width prefix: ``(?<!G)P`` and ``P(?<!GP)`` accept the same
strings when P always matches the same number of characters (the lookbehind re-reads P, just
matched, and the one character before it, which is what the first form looks at).
"""

import binascii
import itertools
import re

import secret_checks as checks

A = re.ASCII

# Which detection wins when two overlap: a PEM block or JWT inside an assignment is reported
# as what it is, and a provider token beats the generic "secret assignment" around it.
RANK = {"private_key": 100, "jwt": 90, "api_key": 80, "secret": 70}

# --- provider tokens: a fixed prefix, then the provider's alphabet --------------------------

# (label, triggers, the fixed-width prefix, the rest of the pattern). The pattern is worth
# running only if one of its triggers occurs in the text: one-character tests are a memchr, and
# most text has no "_" or "-"; past that, ``re`` skips to a literal prefix as fast as a string
# search would, so only stripe's pattern, which starts with alternatives, names longer ones.
# The prefix must not be glued to a longer identifier on the left (the guard: _ID unless
# _GUARD names another) or on the right (_END). The "body" group is the random part, judged by
# checks.token_body_ok.
_ID = r"[\w-]"
_END = r"(?![\w-])"
PROVIDER_TOKENS = (
    ("aws-access-key-id", ("A",), r"(?:AKIA|ASIA)", r"(?P<body>[A-Z0-9]{16})"),
    ("github", ("_",), r"gh[pousr]_", r"(?P<body>[A-Za-z0-9]{36,251})"),
    ("github", ("_",), r"github_pat_", r"(?P<body>\w{22,255})"),
    ("gitlab", ("-",), r"glpat-", r"(?P<body>[\w-]{20,200}(?:\.[\w-]{2,50}){0,2})"),
    ("slack", ("-",), r"xox[bpar]-", r"(?P<body>[A-Za-z0-9-]{10,250})"),
    ("slack", ("-",), r"xapp-[0-9]-", r"(?P<body>[A-Za-z0-9-]{10,250})"),
    (
        "stripe",
        ("_live_", "_test_"),
        r"(?:sk|rk)_(?:live|test)_",
        r"(?P<body>[A-Za-z0-9]{16,247})",
    ),
    ("anthropic", ("-",), r"sk-ant-", r"(?P<body>[\w-]{20,250})"),
    ("openai", ("-",), r"sk-", r"(?!ant-)(?:proj-|svcacct-|admin-)?(?P<body>[\w-]{20,250})"),
    ("google", ("A",), r"AIza", r"(?P<body>[\w-]{35})"),
    ("npm", ("_",), r"npm_", r"(?P<body>[A-Za-z0-9]{36})"),
)
# The AWS key id's guard is [A-Za-z0-9]: "_AKIA..." and "-AKIA..." still count.
_GUARD = {"aws-access-key-id": "[A-Za-z0-9]"}


def _token_pattern(label, prefix, rest):
    """``(?<!guard)prefix rest _END``, with the guard after the prefix (module docstring)."""
    guard = _GUARD.get(label, _ID)
    return re.compile(prefix + f"(?<!{guard}{prefix})" + rest + _END, A)


_COMPILED = tuple(
    (label, triggers, _token_pattern(label, prefix, rest))
    for label, triggers, prefix, rest in PROVIDER_TOKENS
)


def _token_ok(label, body):
    if not checks.token_body_ok(body):
        return False
    # "sk-" also starts ordinary hyphenated words (sk-learn-compatible-estimators): an OpenAI
    # key's random part mixes upper case, lower case and digits.
    return label != "openai" or checks.char_classes(body.replace("-", "").replace("_", "")) >= 3


_TRIGGERS = frozenset(trigger for _, triggers, _, _ in PROVIDER_TOKENS for trigger in triggers)


def find_provider_tokens(text):
    present = {trigger for trigger in _TRIGGERS if trigger in text}  # each searched once
    for label, triggers, pattern in _COMPILED:
        if present.isdisjoint(triggers):
            continue
        for m in pattern.finditer(text):
            if _token_ok(label, m.group("body")):
                yield m.start(), m.end(), "api_key", label, 95


# --- AWS secret access keys -----------------------------------------------------------------

# 40 characters of base64 without padding. On its own that is also a git SHA-1 in base64 or
# any random blob, so it counts only near an access key id (credentials.csv, ~/.aws files,
# "key id / secret" pairs in prose); after a named assignment it is found by find_assignments.
AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])", A)
AWS_KEY_ID = re.compile(r"(?:AKIA|ASIA)(?<![A-Za-z0-9]A[KS]IA)[A-Z0-9]{16}(?![A-Za-z0-9])", A)
AWS_WINDOW = 300  # characters on either side of a key id


def _aws_secret_shaped(value):
    return checks.char_classes(value) >= 3 and checks.entropy(value) >= 4.0


def find_aws_secrets(text):
    seen = set()
    for key_id in AWS_KEY_ID.finditer(text):
        low, high = max(0, key_id.start() - AWS_WINDOW), key_id.end() + AWS_WINDOW
        for m in AWS_SECRET.finditer(text, low, high):
            if m.start() not in seen and _aws_secret_shaped(m.group()):
                seen.add(m.start())
                yield m.start(), m.end(), "secret", "aws-secret-access-key", 90


# --- JSON web tokens ------------------------------------------------------------------------

JWT = re.compile(
    r"eyJ(?<![\w-]eyJ)[\w-]{5,4000}\.[\w-]{2,8000}\.[\w-]{0,4000}(?![\w-])",
    A,
)


def _jwt_header_ok(header):
    """The first part must decode to a JSON object naming an "alg"."""
    padded = header.replace("-", "+").replace("_", "/") + "=" * (-len(header) % 4)
    try:
        decoded = binascii.a2b_base64(padded).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    if '"alg"' not in decoded:
        return False
    import json  # only now: most requests carry no JWT, and json is slow to import

    try:
        parsed = json.loads(decoded)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("alg"), str)


def find_jwts(text):
    for m in JWT.finditer(text):
        if _jwt_header_ok(m.group().partition(".")[0]):
            yield m.start(), m.end(), "jwt", None, 90


# --- PEM private keys -----------------------------------------------------------------------

PEM_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z0-9]{1,20} ){0,3})PRIVATE KEY( BLOCK)?-----")
# What a truncated block (no END line) is made of: base64, headers, newlines, escaped "\n".
PEM_BODY = re.compile(r"[A-Za-z0-9+/=:,\s\\-]{0,65536}")
PEM_MAX = 65536  # a 16384-bit RSA key in PEM is about 12 KiB


def _trim_body(body):
    """A truncated block ends at its last base64 line, not at trailing blanks or "\\n"s."""
    body = body.rstrip()
    while body.endswith("\\n"):
        body = body[:-2].rstrip()
    return body


def find_private_keys(text):
    if "PRIVATE KEY" not in text:
        return
    pos = 0
    while (m := PEM_BEGIN.search(text, pos)) is not None:
        kind = m.group(1).strip()
        end_line = f"-----END {m.group(1)}PRIVATE KEY{m.group(2) or ''}-----"
        end = text.find(end_line, m.end(), m.end() + PEM_MAX)
        if end >= 0:
            end += len(end_line)
        else:
            end = m.end() + len(_trim_body(PEM_BODY.match(text, m.end()).group()))
        yield m.start(), end, "private_key", kind.lower().replace(" ", "-") or "pkcs8", 99
        pos = end


# --- secrets in assignments -----------------------------------------------------------------

# KEY=value, export KEY=value, "key": "value", key: value, 'key' => 'value', key := "value".
# Only the value is reported; the key is what tells us it is a secret. An unquoted value ends
# at white space, a quote, ",", ";", a closing bracket, or "&" that starts the next
# "name=" of a query string. The key may follow a "-" ("--password=..." on a command line).
# The key's run is possessive ("{0,63}+": never given back): what follows a key is a quote,
# a blank or an operator, none of them in [\w.-], so a shorter key could never match; giving
# characters back one by one only cost time at every word of prose.
ASSIGNMENT = re.compile(
    r"""(?<![\w.])(?P<export>export[ \t]+)?(?P<q>["']?)"""
    r"""(?P<key>[A-Za-z_][\w.-]{0,63}+|비밀번호|비번|패스워드|암호|토큰)(?P=q)"""
    r"""[ \t]*(?P<op>=>|:=|:|=(?!=))[ \t]*"""
    r"""(?:"(?P<dq>(?:[^"\\\n]|\\.){1,512})"|'(?P<sq>[^'\n]{1,512})'"""
    r"""|(?P<bare>(?:[^\s"'`,;&)}\]]|&(?![\w.-]{1,64}=)){1,512}))""",
    A,
)
SECRET_WORDS = frozenset(
    (
        "password", "passwd", "pwd", "pass", "passphrase", "secret", "secrets", "token",
        "apikey", "credential", "credentials", "auth", "pat", "pin",
        "비밀번호", "비번", "패스워드", "암호", "토큰",
    )
)  # fmt: skip
# Names glued to a prefix still name a secret: PGPASSWORD, githubtoken, clientsecret.
GLUED_ENDINGS = ("password", "passwd", "secret", "token", "apikey", "passphrase")
SECRET_PAIRS = frozenset(
    (
        ("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"),
        ("client", "secret"), ("signing", "key"), ("encryption", "key"), ("master", "key"),
        ("session", "key"), ("account", "key"), ("app", "key"), ("license", "key"),
    )
)  # fmt: skip
# A key ending in one of these names something about the secret, not the secret itself.
NOT_THE_VALUE = frozenset(
    (
        "url", "uri", "endpoint", "host", "hostname", "port", "path", "file", "dir", "name",
        "id", "type", "mode", "method", "enabled", "enable", "length", "len", "ttl", "timeout",
        "expiry", "expires", "expiration", "header", "prefix", "policy", "version", "format",
        "algorithm", "alg", "count", "provider", "user", "username", "email", "region",
        "field", "size", "min", "max", "limit", "required", "hint", "label", "env", "var",
        "location", "ref", "store", "manager", "rotation", "strength", "reset", "source",
    )
)  # fmt: skip
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[_.-]+")


def key_words(key):
    """``SecretAccessKey``, ``secret-access.key`` and ``SECRET_ACCESS_KEY`` all give
    ``["secret", "access", "key"]``."""
    return [w for w in _SPLIT.split(_CAMEL.sub("_", key).lower()) if w]


def is_secret_key(key):
    words = key_words(key)
    if not words or words[-1] in NOT_THE_VALUE:
        return False
    if any(word in SECRET_WORDS or word.endswith(GLUED_ENDINGS) for word in words):
        return True
    return any(pair in SECRET_PAIRS for pair in itertools.pairwise(words))


def _assignment_label(m, key, value):
    words = key_words(key)
    if len(value) == 40 and ("aws" in words or ("secret", "access") in itertools.pairwise(words)):
        return "aws-secret-access-key"
    if m.group("op") == ":":
        return "json-field" if m.group("q") == '"' else "yaml-field"
    if m.group("export") or (m.group("op") == "=" and key.isupper()):
        return "env-assignment"
    return "assignment"


def _has_operator(text):
    """Every assignment and Authorization header has a ":" or "=" (most prose has neither)."""
    return ":" in text or "=" in text


def find_assignments(text):
    if not _has_operator(text):
        return
    for m in ASSIGNMENT.finditer(text):
        key = m.group("key")
        if not is_secret_key(key):
            continue
        group = "dq" if m.group("dq") is not None else "sq" if m.group("sq") is not None else "bare"
        value = m.group(group)
        if checks.looks_secret(value, quoted=group != "bare"):
            label = _assignment_label(m, key, value)
            yield m.start(group), m.end(group), "secret", label, checks.confidence(value)


# An Authorization header's credentials, wherever the header is written (curl -H, HTTP dumps,
# JSON header maps). "Bearer" alone in prose is not enough. Written for speed as
#   \bauthorization... with re.I
# where "\b" before a letter means "no word character before it": the "a" is consumed first,
# with that guard after it, and the rest is case-insensitive (ASCII only, as before), so the
# pattern starts with a character class and ``re`` skips to each "a".
AUTH_HEADER = re.compile(
    r"""[Aa](?<!\w[Aa])(?i:uthorization["']?[ \t]*[:=][ \t]*["']?(?:bearer|basic|token)[ \t]+"""
    r"""([A-Za-z0-9._~+/-]{8,4096}=*))""",
    A,
)
# scheme://user:password@host: the password part.
URL_CREDENTIALS = re.compile(
    r"(?<![\w+.-])[A-Za-z][A-Za-z0-9+.-]{1,19}://[^\s:/@]{1,64}:([^\s:/@]{1,128})@", A
)
SCHEME_REVERSED = re.compile(r"[A-Za-z0-9+.-]{0,21}", A)


def _url_credentials(text):
    """``URL_CREDENTIALS.finditer(text)``, without trying the pattern at every letter.

    Every match has a "://" right after its scheme. The scheme's characters are a subset of
    the guard's and exclude ":", so the scheme of a match is the whole run of them before its
    "://" (read right to left: the leading run of the reversed text; 21 means too long). That
    gives the one position per "://" where a match can start; the scan resumes after a match.
    """
    end = 0
    sep = text.find("://")
    while sep >= 0:
        scheme = SCHEME_REVERSED.match(text[max(0, sep - 21) : sep][::-1]).end()
        if sep - scheme >= end and (m := URL_CREDENTIALS.match(text, sep - scheme)):
            end = m.end()
            yield m
        sep = text.find("://", sep + 1)


def _header_and_url_matches(text):
    if _has_operator(text):
        for m in AUTH_HEADER.finditer(text):
            yield m, "authorization-header"
    for m in _url_credentials(text):
        yield m, "url-credentials"


def find_header_and_url_secrets(text):
    for m, label in _header_and_url_matches(text):
        value = m.group(1)
        if not checks.is_placeholder(value) and len(value) >= 6:
            yield m.start(1), m.end(1), "secret", label, checks.confidence(value)


FINDERS = (
    find_private_keys,
    find_jwts,
    find_provider_tokens,
    find_aws_secrets,
    find_header_and_url_secrets,
    find_assignments,
)


def find_all(text):
    for finder in FINDERS:
        yield from finder(text)
