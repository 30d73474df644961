"""What plugin authors run on their machines and in CI: the in-sandbox harness behind
``haechi.sdk.testing``, the kind conformance vectors, ``plugin new`` and ``plugin test``."""
