"""Check digits and number-plan rules: what turns a digit pattern into a detection.

Every function takes the folded ASCII text of one candidate and answers without raising.
"""

# IBAN length per country (ISO 13616 registry). A country not listed is not an IBAN.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18,
    "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
    "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


# Every second digit from the right is doubled, and a two-digit result counts as the sum of
# its digits (d * 2 - 9): as a digit-to-digit map, so the sum runs in C.
_DOUBLED = str.maketrans("0123456789", "0246813579")


def luhn_ok(digits):
    """The Luhn (mod 10) check over a string of ASCII digits."""
    kept, doubled = digits[-1::-2], digits[-2::-2].translate(_DOUBLED)
    return (sum(map(int, kept)) + sum(map(int, doubled))) % 10 == 0


# (brand, accepted lengths, prefix ranges as inclusive (low, high) over the first N digits).
# Ordered so that a narrower range is tried before a broader one that contains it.
_CARD_BRANDS = (
    ("amex", (15,), ((34, 34), (37, 37))),
    ("mir", range(16, 20), ((2200, 2204),)),
    ("mastercard", (16,), ((51, 55), (2221, 2720))),
    ("discover", range(16, 20), ((6011, 6011), (644, 649), (65, 65), (622126, 622925))),
    ("jcb", range(16, 20), ((3528, 3589),)),
    ("diners", range(14, 20), ((300, 305), (36, 36), (38, 39))),
    ("unionpay", range(16, 20), ((62, 62),)),
    ("maestro", range(13, 20), ((50, 50), (56, 58), (6304, 6304), (67, 67))),
    ("visa", (13, 16, 19), ((4, 4),)),
)


def _as_prefixes(low, high):
    """An IIN range as the digit strings it spans: ``low <= int(digits[:width]) <= high`` is
    ``low <= digits[:width] <= high`` for digit strings of the same width."""
    low, high = str(low), str(high)
    if len(low) != len(high):
        raise ValueError(f"IIN range {low}-{high}: bounds of different widths")
    return low, high, len(low)


_BRAND_PREFIXES = tuple(
    (brand, lengths, tuple(_as_prefixes(low, high) for low, high in ranges))
    for brand, lengths, ranges in _CARD_BRANDS
)


def card_brand(digits):
    """The card brand whose IIN range and length fit ``digits``, else None (no Luhn here)."""
    for brand, lengths, ranges in _BRAND_PREFIXES:
        if len(digits) not in lengths:
            continue
        for low, high, width in ranges:
            if low <= digits[:width] <= high:
                return brand
    return None


def card_grouping_ok(groups):
    """Printed card numbers come in groups of four or more (4-4-4-4, 4-6-5, ...); only the
    last group may be shorter. This keeps a list of small numbers from adding up to a card,
    and still accepts a group that an invisible character split or joined."""
    return all(len(group) >= 4 for group in groups[:-1])


def iban_ok(compact):
    """Country length and the ISO 7064 mod-97 check of an IBAN without spaces."""
    if IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    remainder = 0
    for char in rearranged:  # letters count as 10..35; reduce as we go, no big integers
        value = ord(char) - 48 if char.isdigit() else ord(char) - 55
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder == 1


def ssn_ok(area, group, serial):
    """SSA never issues area 000, 666 or 900-999, group 00 or serial 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


_RRN_WEIGHTS = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)


def rrn_ok(digits):
    """The check digit of a Korean resident registration number (13 digits)."""
    total = sum(int(d) * w for d, w in zip(digits[:12], _RRN_WEIGHTS, strict=True))
    return (11 - total % 11) % 10 == int(digits[12])
