"""Private helpers of :mod:`haechi.trust`: encodings and parsers with one strict spelling each."""
