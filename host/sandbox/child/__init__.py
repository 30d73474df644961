"""Code that runs inside a plugin's sandboxed child process.

The child starts as ``python -I -S -B`` and imports these modules by their top-level names
(``_hx_boot``, ``_hx_landlock``, ``_hx_seccomp``) from this directory: the ``haechi`` package
itself is never imported there. Everything here is standard library only, apart from msgpack,
which the bootstrap imports before it confines itself.
"""
