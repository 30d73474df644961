"""Is this value a real secret? Entropy, character classes and the usual placeholders."""

import math
import re

# Words that, as a whole value, are documentation or configuration, never a secret.
PLACEHOLDER_VALUES = frozenset(
    (
        "password", "passwd", "secret", "token", "apikey", "api_key", "none", "null", "nil",
        "true", "false", "undefined", "required", "optional", "string", "hidden", "redacted",
        "removed", "empty", "default", "example", "sample", "test", "testing",
    )
)  # fmt: skip

# Fragments that mark a value as a stand-in ("changeme", "your-token-here", "REPLACE_ME").
# Only ever asked whether it occurs in lower-cased text (see _has_placeholder_word), never
# where, so "your_?" is written "your" and "_?here$" "here$": the same texts contain them.
# A branch that starts with an optional character cannot be skipped on its first letter.
_PLACEHOLDER = (
    r"change_?(?:me|it)|placeholder|your|here$|redacted|replace|dummy|notreal|todo|fixme"
    r"|insert|secret_?key_?base|xxxx|\*\*\*|\.\.\.|####|••"
)
PLACEHOLDER_WORDS = re.compile(_PLACEHOLDER, re.I)
# In lower-cased ASCII text re.I changes nothing (no upper case left, and the non-ASCII
# letters it would also accept, like "ı" for "i", cannot occur), and without it ``re`` tests
# each branch's first letter directly: several times faster per value.
_PLACEHOLDER_LOWER_ASCII = re.compile(_PLACEHOLDER)
# A reference to something else rather than a value: ${VAR}, $VAR, $(cmd), {{ tmpl }}, %(name)s,
# <your-token>, [REDACTED], {cipher}...
REFERENCE = re.compile(r"^(?:\$[{(A-Za-z_]|<.*>$|\{\{|\[|%\(|%[A-Za-z_]+%$|#\{)")
# Code, not a value: a dotted attribute path (settings.API_KEY, process.env.TOKEN) or a call.
CODE = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$|[()\[\]{}]")


def entropy(value):
    """Shannon entropy of ``value`` in bits per character."""
    counts = {}
    for char in value:
        counts[char] = counts.get(char, 0) + 1
    size = len(value)
    return -sum(n / size * math.log2(n / size) for n in counts.values())


def char_classes(value):
    """How many of lowercase, uppercase, digits and other characters ``value`` uses."""
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def _has_placeholder_word(lowered):
    """Whether lower-cased ``lowered`` contains a PLACEHOLDER_WORDS fragment."""
    pattern = _PLACEHOLDER_LOWER_ASCII if lowered.isascii() else PLACEHOLDER_WORDS
    return pattern.search(lowered) is not None


def is_placeholder(value):
    """True for values that stand in for a secret: changeme, xxx, ****, <token>, ${VAR}."""
    lowered = value.lower()
    if lowered.strip("'\"") in PLACEHOLDER_VALUES or REFERENCE.search(value):
        return True
    if len(set(lowered)) <= 2:  # "xxxxxxxx", "********", "aaaa1111"-style fillers
        return True
    return _has_placeholder_word(lowered)


def looks_secret(value, quoted):
    """Whether an assigned ``value`` is plausibly a real secret.

    At least 8 characters, two character classes and 2.5 bits of entropy per character, and
    not a placeholder. An unquoted value must also not read as code (``os.environ[...]``,
    ``settings.API_KEY``), a path or a URL.
    """
    if len(value) < 8 or is_placeholder(value):
        return False
    if not quoted and CODE.search(value):
        return False
    if value.startswith(("/", "./", "../", "~/", "file:")) or "://" in value:
        return False
    return char_classes(value) >= 2 and entropy(value) >= 2.5


def token_body_ok(body):
    """A provider token's random part: not a filler like ``ghp_xxxxxxxx...`` or ``sk-...``."""
    return len(set(body)) >= 6 and not _has_placeholder_word(body.lower())


def confidence(value):
    """Higher for long, high-entropy values (generated keys) than for typed passwords."""
    return 85 if len(value) >= 16 and entropy(value) >= 3.5 else 70
