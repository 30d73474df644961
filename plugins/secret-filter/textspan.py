"""Fold text before matching, and map every match back to the original text.

This module is shared, byte for byte, by the first-party filter bundles (a repo test holds
the copies equal): each bundle is signed and loaded on its own, so it cannot import another.

Why fold: a value written with fullwidth digits ("０１０-１２３４-５６７８"), unusual dashes or
zero-width characters inside it ("4111\u200b1111...") reads the same to a person and to a
model, so it must match the same. Why map back: the gateway transforms the ORIGINAL text, so a
detection must name the original characters, including any invisible ones inside the value.

Folding is done one code point at a time (NFKC of each character), which keeps the map exact:
``origin[i]`` is the index of the original character that produced folded character ``i``.
"""

import bisect
import unicodedata

# Characters that are invisible in rendered text and can split a value without showing:
# zero-width space / non-joiner / joiner, word joiner, BOM (zero-width no-break space) and
# soft hyphen. They are dropped before matching.
INVISIBLE = frozenset("\u200b\u200c\u200d\u2060\ufeff\u00ad")

# Dashes NFKC leaves alone but people (and word processors) use as a hyphen in numbers:
# hyphen, non-breaking hyphen, figure dash, en dash, em dash, horizontal bar, minus sign.
DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212")


class Folded:
    """The folded text of one segment, and the way back to the original offsets."""

    __slots__ = ("_origin", "text")

    def __init__(self, text, origin):
        self.text = text
        self._origin = origin  # None when folding changed nothing: offsets are the same

    def span(self, start, end):
        """The original ``[start, end)`` of the folded ``[start, end)`` (``end > start``).

        The end is the end of the original character that produced the last folded one, so
        a character that folds to several ("㎏" -> "kg") is never cut in half.
        """
        if self._origin is None:
            return start, end
        return self._origin[start], self._origin[end - 1] + 1


def _fold_char(char):
    if char in INVISIBLE:
        return ""
    if char in DASHES:
        return "-"
    return unicodedata.normalize("NFKC", char)


def fold(text):
    """Fold ``text`` (NFKC per character, dashes to '-', invisible characters dropped)."""
    if text.isascii():
        return Folded(text, None)
    plain = not any(char in text for char in INVISIBLE | DASHES)
    if plain and unicodedata.is_normalized("NFKC", text):
        return Folded(text, None)
    pieces, origin, cache = [], [], {}
    for index, char in enumerate(text):
        if char < "\x80":
            pieces.append(char)
            origin.append(index)
            continue
        folded = cache.get(char)
        if folded is None:
            folded = cache[char] = _fold_char(char)
        pieces.append(folded)
        origin.extend([index] * len(folded))
    return Folded("".join(pieces), origin)


def keep_disjoint(candidates, rank):
    """Drop candidates that overlap a better one; return the rest in text order.

    ``candidates`` are ``(start, end, type, label, confidence)`` tuples; ``rank`` maps a type
    to its priority (higher wins). Ties go to the longer span, then the earlier one. One
    region of text gets one answer, so the gateway never has to transform overlapping spans.
    """
    ordered = sorted(candidates, key=lambda c: (-rank[c[2]], c[0] - c[1], c[0]))
    starts, kept = [], []  # kept spans are disjoint, so sorted by start they are sorted by end
    for candidate in ordered:
        start, end = candidate[0], candidate[1]
        at = bisect.bisect_right(starts, start)
        if at and kept[at - 1][1] > start:
            continue
        if at < len(kept) and kept[at][0] < end:
            continue
        starts.insert(at, start)
        kept.insert(at, candidate)
    return kept


MAX_DETECTIONS = 10_000  # the protocol's cap on one answer


def scan(segments, find, rank):
    """Run ``find(folded_text)`` over every segment; yield detections in original offsets.

    ``find`` yields candidates as ``(start, end, type, label, confidence)`` in folded offsets.
    Yields ``(segment, start, end, type, label, confidence)``, at most ``MAX_DETECTIONS``.
    """
    count = 0
    for index, text in enumerate(segments):
        if not isinstance(text, str) or not text:
            continue
        folded = fold(text)
        for start, end, kind, label, confidence in keep_disjoint(find(folded.text), rank):
            if count == MAX_DETECTIONS:
                return
            count += 1
            yield (index, *folded.span(start, end), kind, label, confidence)
