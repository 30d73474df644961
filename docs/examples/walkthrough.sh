#!/usr/bin/env bash
# `make demo`: a short walkthrough of haechi's signing and verification on a sample bundle.
# Everything happens in a fresh temporary directory; nothing in the repository is modified.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/haechi-demo.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp -r "$here/hello-filter" "$work/hello-filter"
cd "$work"

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

echo "haechi $(haechi --version | cut -d' ' -f2): sign a plugin, verify it, tamper with it."
echo "working in $work"

step "1. The author creates a signing key pair" \
  haechi plugin keygen --out keys --name author
step "2. The author signs the bundle (writes hello-filter/plugin.sig)" \
  haechi plugin sign hello-filter --key keys/author.key --valid-days 30
step "3. CI verifies it against the author's anchor; it declares request:body-text" \
  haechi plugin verify hello-filter --trust keys/author.pub --allow-capability request:body-text

echo
echo "== 4. Someone changes one byte of plugin.py after signing"
printf '$ sed -i s/hello/jello/ hello-filter/plugin.py\n'
sed -i 's/hello/jello/' hello-filter/plugin.py

printf '\n\033[1m== 5. Verify again: refused\033[0m\n'
set +e
haechi plugin verify hello-filter --trust keys/author.pub --allow-capability request:body-text
code=$?
set -e
echo
echo "exit code $code (11 = untrusted). CI gets the same verdict as JSON:"
haechi plugin verify hello-filter --trust keys/author.pub \
  --allow-capability request:body-text --format json | head -6 || true
echo "  ..."
[ "$code" -eq 11 ] || { echo "demo failed: expected exit code 11, got $code" >&2; exit 1; }
echo
echo "Done. Next: docs/authors/signing.md (keys, rotation, revocation) and docs/ci.md."
