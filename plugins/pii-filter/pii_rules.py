"""What pii-filter looks for: one finder per type over the folded text of a segment.

Each finder takes the folded text of a segment and where its digits are (``digit_bounds``)
and yields ``(start, end, type, label, confidence)`` in folded offsets. The patterns
are written so that a failed match costs a bounded amount of work per start position (every
quantifier is bounded, every pattern has a guard that only lets a run of word characters be
tried at its first character), so adversarial input stays linear.

Speed: ``re`` skips ahead to candidate positions only when a pattern starts with a literal or
a character class; a pattern that starts with a lookbehind is tried at every position. So the
guard comes right after the first character: ``(?<!G)C`` and ``C(?<!G.)`` accept the same
strings when C matches one character other than a newline (the second looks at the same
character before C, and "." re-reads C itself), and the first form makes ``re`` try every
position. (".", not C again: it is the cheaper test inside a long run of digits.)
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
# matched in their ASCII form only). An address is LOCAL "@" DOMAIN, where LOCAL is 1-64 of
# these characters and not glued to another one on its left.
_LOCAL = r"(?u:[\w.%+-])"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,63}(?![\w-])"
# Why not one pattern: a pattern that starts with a repeated class is tried at every word of
# the text. Every address has an "@" followed by a domain, and a literal "@" is a fast scan in
# C, so the search starts there. The local part cannot contain "@", so the one before a given
# "@" is the whole run of LOCAL characters ending there: read right to left, it is the leading
# run of the reversed text (at most 64; 65 means it is longer, so no address).
AT_DOMAIN = re.compile("@" + _DOMAIN, A)
LOCAL_REVERSED = re.compile(_LOCAL + "{0,65}", A)


# "icon@2x.png" is a file name, not an address: no TLD is an image extension.
NOT_A_TLD = frozenset(("png", "jpg", "jpeg", "gif", "svg", "webp", "ico", "bmp", "tiff"))
# "https://user:pass@host" is a URL with credentials (secret-filter's business), not an email.
URL_USERINFO = re.compile(r"://[^\s/@]{0,64}:$")


def _addresses(text):
    """``(start, end, domain)`` of each address, left to right, never overlapping.

    The same spans, in the same order, as ``finditer`` over ``(?<!L)L{1,64}@DOMAIN`` (L the
    LOCAL class): that pattern matches at most at the start of the run before each "@", and
    after a match the scan resumes at its end, hence ``start >= end``.
    """
    end = 0
    for domain in AT_DOMAIN.finditer(text):
        at = domain.start()
        local = LOCAL_REVERSED.match(text[max(0, at - 65) : at][::-1]).end()
        if 0 < local <= 64 and at - local >= end:
            end = domain.end()
            yield at - local, end, domain.group()


def find_email(text, _digits):
    if "@" not in text:
        return
    for start, end, domain in _addresses(text):
        if domain.rpartition(".")[2].lower() in NOT_A_TLD:
            continue
        if URL_USERINFO.search(text, max(0, start - 80), start):
            continue
        yield start, end, "email", None, 95


# --- phone numbers ------------------------------------------------------------------------

# International: "+", a country code, then either the compact digits or groups that are each
# introduced by one separator ("+82 10-1234-5678", "+1 (415) 555-2671", "+44 20 7946 0958"),
# optionally with the "(0)" trunk hint after the country code ("+44 (0)20 7946 0958").
PHONE_INTL = re.compile(
    r"\+(?<![\w+].)[1-9][0-9]{0,2}"
    r"(?:[0-9]{4,12}"  # compact
    r"|(?: ?\(0\) ?[0-9]{1,5}|[ .-]?\([0-9]{1,4}\)|[ .-][0-9]{1,5})(?:[ .-][0-9]{1,6}){1,5})"
    r"(?![0-9]|[.-][0-9])",
    A,
)
# North American: (415) 555-2671, 415-555-2671, 415.555.2671, 1-800-555-0199; one separator
# style throughout, area and exchange codes start with 2-9.
# Written for speed (see the module docstring) from
#   (?<![\w.+-])(?:1[-. ])?(?:\([2-9][0-9]{2}\) ?|[2-9][0-9]{2}(?P<sep>[-. ]))
# The first character is "1", "(" or 2-9 and is consumed with its guard. After a "1" comes its
# separator and the "(" or 2-9 that starts the area code; then a lookbehind at that character
# picks the branch it starts. The alternatives are tried in the same order, so each position
# gives the same match.
PHONE_NANP = re.compile(
    r"[1-9(](?<![\w.+-].)"
    r"(?:(?<=1)[-. ][2-9(])?"
    r"(?:(?<=\()[2-9][0-9]{2}\) ?|(?<=[2-9])[0-9]{2}(?P<sep>[-. ]))"
    r"[2-9][0-9]{2}(?(sep)(?P=sep)|[-. ])[0-9]{4}"
    r"(?![\w-]|\.[0-9])",
    A,
)
# Korean: mobile 010/011/016-019, Seoul 02, regional 0[3-6][1-5], internet 070 (every prefix
# starts with "0": consumed with its guard, as in the module docstring).
PHONE_KR = re.compile(
    r"0(?<![\w.+-].)(?:1[016789]|2|[3-6][1-5]|70)(?P<sep>[-. ]?)[0-9]{3,4}(?P=sep)[0-9]{4}"
    r"(?![\w-]|\.[0-9])",
    A,
)
# A Korean number written without separators is also how order and account ids look, so it
# counts only right after a word that announces a phone number.
PHONE_CONTEXT = re.compile(
    r"(?:전화|연락|휴대|핸드폰|폰|tel|phone|mobile|cell|call|sms|문자)[^0-9]{0,12}$", re.I
)


def _prefixes(pattern, text, window, accept, separators=" -."):
    """Yield ``(start, end, verdict)`` for the longest accepted prefix of each match.

    A value printed in groups may run into a following number ("... 1111 12", "... 5678
    2024"), so a match that ``accept`` refuses is retried without its trailing groups; the
    search then resumes right after what was accepted, so an adjacent value is still found.
    ``accept`` returns a verdict (any true value) or None.
    """
    pos, endpos = window
    while (m := pattern.search(text, pos, endpos)) is not None:
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


def find_phone(text, digits):
    window = _window(text, digits)
    # E.164 allows at most 15 digits; 8 is a short but real national number plus its code.
    accept = lambda number: "e164" if 8 <= _digit_count(number) <= 15 else None  # noqa: E731
    for start, end, label in _prefixes(PHONE_INTL, text, window, accept):
        yield start, end, "phone", label, 85
    for m in PHONE_NANP.finditer(text, *window):
        yield m.start(), m.end(), "phone", "nanp", 75
    for m in PHONE_KR.finditer(text, *window):
        if m.group("sep") or PHONE_CONTEXT.search(text, max(0, m.start() - 24), m.start()):
            yield m.start(), m.end(), "phone", "kr", 80


# --- payment cards, IBAN, national ids ----------------------------------------------------

CARD = re.compile(r"[0-9](?<![\w-].)(?:[ -]?[0-9]){12,18}(?![\w]|-[0-9])", A)
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


def find_card(text, digits):
    window = _window(text, digits)
    for start, end, brand in _prefixes(CARD, text, window, _card, separators=" -"):
        yield start, end, "card", brand, 90


IBAN = re.compile(
    r"[A-Z](?<![A-Za-z0-9].)[A-Z][0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])",
    A,
)


def _iban(candidate):
    compact = candidate.replace(" ", "")
    return compact[:2] if checks.iban_ok(compact) else None


def find_iban(text, digits):
    # Its check digits are its third and fourth characters and it is at most 2 + 2 + 7 * 5 + 4
    # = 43 characters long, so it ends at most 41 past a digit; the lookahead reads one more.
    window = _window(text, digits, before=2, after=42)
    for start, end, country in _prefixes(IBAN, text, window, _iban, separators=" "):
        yield start, end, "iban", country, 95


SSN = re.compile(r"([0-9](?<![\w-].)[0-9]{2})-([0-9]{2})-([0-9]{4})(?![\w-])", A)


def find_us_ssn(text, digits):
    window = _window(text, digits)
    for m in SSN.finditer(text, *window):
        if checks.ssn_ok(*m.groups()):
            yield m.start(), m.end(), "us_ssn", None, 85


# YYMMDD, an optional hyphen, then the gender/century digit 1-8 and six more digits.
RRN = re.compile(
    r"[0-9](?<![\w-].)[0-9](?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])(-?)[1-8][0-9]{6}(?![\w-])",
    A,
)


def find_kr_rrn(text, digits):
    window = _window(text, digits)
    for m in RRN.finditer(text, *window):
        if checks.rrn_ok(m.group().replace("-", "")):
            yield m.start(), m.end(), "kr_rrn", None, 95 if m.group(1) else 80


# --- IP addresses -------------------------------------------------------------------------

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
# The first octet as "(?<![\w.])" _OCTET, written for speed (see the module docstring): its
# first digit is consumed with the guard, then each alternative of _OCTET continues only after
# the digit it starts with. Same alternatives in the same order, so the same match.
_FIRST_OCTET = (
    r"[0-9](?<![\w.].)"
    r"(?:(?<=2)5[0-5]|(?<=2)[0-4][0-9]|(?<=1)[0-9]{2}|(?<=[1-9])[0-9])?"
)
# Not part of a longer dotted run (OIDs, 5-part versions), not a pre-release/build version
# ("1.2.3.4-beta", "1.2.3.4+git"), octets without leading zeros.
IPV4 = re.compile(rf"{_FIRST_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.[0-9]|[-+][A-Za-z])", A)
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


def find_ipv4(text, digits):
    window = _window(text, digits)
    for m in IPV4.finditer(text, *window):
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


def find_ipv6(text, _digits):
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


_DIGITS = "0123456789"


def digit_bounds(text):
    """``(first, last)``: the indexes of the first and last ASCII digit of ``text``, or None.

    A fast string search for each digit costs less than ``re`` scanning every character with a
    class, and prose often has its few digits in one place: see ``_window``.
    """
    firsts = [index for index in map(text.find, _DIGITS) if index >= 0]
    if not firsts:
        return None
    return min(firsts), max(map(text.rfind, _DIGITS))


def _window(text, digits, before=1, after=3):
    """``(pos, endpos)``: where a digit-led pattern needs to be searched in ``text``, from
    ``before`` characters before its first digit to ``endpos = last digit + after``.

    The defaults hold for phones, cards, SSNs, RRNs and IPv4: a match starts at most one
    character ("+" or "(") before a digit, ends with a digit, and its final lookahead reads at
    most two characters past that. A search limited to ``text[pos:endpos]`` then finds the
    same matches as one over all of it (lookbehinds still see what is before ``pos``).
    """
    if digits is None:
        return 0, 0
    first, last = digits
    return max(0, first - before), min(len(text), last + after)


def find_all(text):
    digits = digit_bounds(text)
    for finder in FINDERS:
        yield from finder(text, digits)
