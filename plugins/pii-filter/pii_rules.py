"""What pii-filter looks for: one finder per type over the folded text of a segment.

Each finder yields ``(start, end, type, label, confidence)`` in folded offsets. The patterns
are written so that a failed match costs a bounded amount of work per start position (every
quantifier is bounded, every pattern starts behind a guard that only lets a run of word
characters be tried at its first character), so adversarial input stays linear.
"""

import ipaddress
import re

import pii_checks as checks

A = re.ASCII  # \w, \d and \s mean ASCII only: other scripts' digits are not folded by NFKC

# Which detection wins when two overlap (higher first): the stronger, validated shapes.
RANK = {
    "email": 100,
    "iban": 90,
    "kr_rrn": 85,
    "card": 80,
    "us_ssn": 75,
    "ipv6": 70,
    "ipv4": 60,
    "phone": 50,
}

# The local part is Unicode-aware ("müller@", RFC 6531); the domain stays ASCII (IDNs are
# matched in their ASCII form only).
EMAIL = re.compile(
    r"(?<!(?u:[\w.%+-]))(?u:[\w.%+-]){1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63}(?![\w-])",
    A,
)


# "icon@2x.png" is a file name, not an address: no TLD is an image extension.
NOT_A_TLD = frozenset(("png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tiff"))
# "https://user:pass@host" is a URL with credentials (secret-filter's business), not an email.
URL_USERINFO = re.compile(r"://[^\s/@]{0,64}:$")


def find_email(text):
    if "@" not in text:
        return
    for m in EMAIL.finditer(text):
        if m.group().rpartition(".")[2].lower() in NOT_A_TLD:
            continue
        if URL_USERINFO.search(text, max(0, m.start() - 80), m.start()):
            continue
        yield m.start(), m.end(), "email", None, 95


# --- phone numbers ------------------------------------------------------------------------

# International: "+", a country code, then either the compact digits or groups that are each
# introduced by one separator ("+82 10-1234-5678", "+1 (415) 555-2671", "+44 20 7946 0958"),
# optionally with the "(0)" trunk hint after the country code ("+44 (0)20 7946 0958").
PHONE_INTL = re.compile(
    r"(?<![\w+])\+[1-9][0-9]{0,2}"
    r"(?:[0-9]{4,12}"  # compact
    r"|(?: ?\(0\) ?[0-9]{1,5}|[ .-]?\([0-9]{1,4}\)|[ .-][0-9]{1,5})(?:[ .-][0-9]{1,6}){1,5})"
    r"(?![0-9]|[.-][0-9])",
    A,
)
# North American: (415) 555-2671, 415-555-2671, 415.555.2671, 1-800-555-0199; one separator
# style throughout, area and exchange codes start with 2-9.
PHONE_NANP = re.compile(
    r"(?<![\w.+-])(?:1[-. ])?"
    r"(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}(?P<sep>[-. ]))"
    r"[2-9][0-9]{2}(?(sep)(?P=sep)|[-. ])[0-9]{4}"
    r"(?![\w-]|\.[0-9])",
    A,
)
# Korean: mobile 010/011/016-019, Seoul 02, regional 0[3-6][1-5], internet 070.
PHONE_KR = re.compile(
    r"(?<![\w.+-])(?:01[016789]|02|0[3-6][1-5]|070)(?P<sep>[-. ]?)[0-9]{3,4}(?P=sep)[0-9]{4}"
    r"(?![\w-]|\.[0-9])",
    A,
)
# A Korean number written without separators is also how order and account ids look, so it
# counts only right after a word that announces a phone number.
PHONE_CONTEXT = re.compile(
    r"(?:전화|연락|휴대|핸드폰|폰|tel|phone|mobile|cell|call|sms|문자)[^0-9]{0,12}$", re.I
)


def _prefixes(pattern, text, accept, separators=" -."):
    """Yield ``(start, end, verdict)`` for the longest accepted prefix of each match.

    A value printed in groups may run into a following number ("... 1111 12", "... 5678
    2024"), so a match that ``accept`` refuses is retried without its trailing groups; the
    search then resumes right after what was accepted, so an adjacent value is still found.
    ``accept`` returns a verdict (any true value) or None.
    """
    pos = 0
    while (m := pattern.search(text, pos)) is not None:
        candidate, verdict = m.group(), None
        while candidate and (verdict := accept(candidate)) is None:
            cut = max(candidate.rfind(sep) for sep in separators)
            candidate = candidate[:cut] if cut > 0 else ""
        if verdict is None:
            pos = m.end()
            continue
        pos = m.start() + len(candidate)
        yield m.start(), pos, verdict


def _digit_count(text):
    return sum(char.isdigit() for char in text)


def find_phone(text):
    # E.164 allows at most 15 digits; 8 is a short but real national number plus its code.
    accept = lambda number: "e164" if 8 <= _digit_count(number) <= 15 else None  # noqa: E731
    for start, end, label in _prefixes(PHONE_INTL, text, accept):
        yield start, end, "phone", label, 85
    for m in PHONE_NANP.finditer(text):
        yield m.start(), m.end(), "phone", "nanp", 75
    for m in PHONE_KR.finditer(text):
        if m.group("sep") or PHONE_CONTEXT.search(text, max(0, m.start() - 24), m.start()):
            yield m.start(), m.end(), "phone", "kr", 80


# --- payment cards, IBAN, national ids ----------------------------------------------------

CARD = re.compile(r"(?<![\w-])[0-9](?:[ -]?[0-9]){12,18}(?![\w]|-[0-9])", A)
_SEPARATORS = re.compile(r"[ -]")


def _card(candidate):
    """The brand if ``candidate`` (digits with optional spaces/dashes) is a card number."""
    if " " in candidate and "-" in candidate:
        return None
    groups = _SEPARATORS.split(candidate)
    digits = "".join(groups)
    if not checks.card_grouping_ok(groups) or not checks.luhn_ok(digits):
        return None
    return checks.card_brand(digits)


def find_card(text):
    for start, end, brand in _prefixes(CARD, text, _card, separators=" -"):
        yield start, end, "card", brand, 90


IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",
    A,
)


def _iban(candidate):
    compact = candidate.replace(" ", "")
    return compact[:2] if checks.iban_ok(compact) else None


def find_iban(text):
    for start, end, country in _prefixes(IBAN, text, _iban, separators=" "):
        yield start, end, "iban", country, 95


SSN = re.compile(r"(?<![\w-])([0-9]{3})-([0-9]{2})-([0-9]{4})(?![\w-])", A)


def find_us_ssn(text):
    for m in SSN.finditer(text):
        if checks.ssn_ok(*m.groups()):
            yield m.start(), m.end(), "us_ssn", None, 85


# YYMMDD, an optional hyphen, then the gender/century digit 1-8 and six more digits.
RRN = re.compile(
    r"(?<![\w-])[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])(-?)[1-8][0-9]{6}(?![\w-])",
    A,
)


def find_kr_rrn(text):
    for m in RRN.finditer(text):
        if checks.rrn_ok(m.group().replace("-", "")):
            yield m.start(), m.end(), "kr_rrn", None, 95 if m.group(1) else 80


# --- IP addresses -------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
# Not part of a longer dotted run (OIDs, 5-part versions), not a pre-release/build version
# ("1.2.3.4-beta", "1.2.3.4+git"), octets without leading zeros.
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.[0-9]|[-+][A-Za-z])", A)
# A dotted quad right after one of these words is a version or section number, not an address.
NOT_AN_ADDRESS = re.compile(
    r"(?<![A-Za-z])(?:version|ver|release|build|firmware|section|chapter|clause|§|버전)[\s:.#=]*$",
    re.I,
)

IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4})?(?::[0-9A-Fa-f]{0,4}){2,7}"
    r"(?:(?<=:)[0-9]{1,3}(?:\.[0-9]{1,3}){3})?(?![\w:]|\.[0-9])",
    A,
)


def _ip_label(address):
    if address.is_loopback:
        return "loopback", 60
    if address.is_link_local:
        return "link-local", 70
    if address.is_private:
        return "private", 75
    if address.is_global:
        return "public", 85
    return "reserved", 60


def find_ipv4(text):
    for m in IPV4.finditer(text):
        if NOT_AN_ADDRESS.search(text, max(0, m.start() - 12), m.start()):
            continue
        label, confidence = _ip_label(ipaddress.IPv4Address(m.group()))
        yield m.start(), m.end(), "ipv4", label, confidence


def _ipv6(candidate):
    """The address if ``candidate`` is an IPv6 address that does not look like code."""
    if "::" not in candidate and candidate.count(":") != 7:
        return None
    try:
        address = ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    groups = [g for g in candidate.replace("::", ":").split(":") if g]
    # "a::b" and "::1" are valid addresses but read like C++ scopes or short tokens: a
    # compressed address must keep two groups, one of them at least three hex digits long.
    # Without a digit, "dead::beef" or "Abc::Def" is more likely code than an address.
    if "::" in candidate and (
        len(groups) < 2
        or max(len(g) for g in groups) < 3
        or not any(c.isdigit() for c in candidate)
    ):
        return None
    return address


def find_ipv6(text):
    if "::" not in text and text.count(":") < 7:
        return
    for m in IPV6.finditer(text):
        address = _ipv6(m.group())
        if address is not None:
            label, confidence = _ip_label(address)
            yield m.start(), m.end(), "ipv6", label, confidence


FINDERS = (
    find_email,
    find_phone,
    find_card,
    find_iban,
    find_us_ssn,
    find_kr_rrn,
    find_ipv4,
    find_ipv6,
)


def find_all(text):
    for finder in FINDERS:
        yield from finder(text)
