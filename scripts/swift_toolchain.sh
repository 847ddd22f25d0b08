#!/usr/bin/env bash
# A Swift toolchain for ios_demo/PocketLMKit's tests on this Debian 12 machine, from Debian's registry:
# Debian 13 (trixie) packages Swift 6.0.3 (swiftlang, with Foundation and XCTest); bookworm has none.
# It is installed into a trixie root made with debootstrap (needs root), outside the repository.
# Idempotent; prints the root folder.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # debootstrap, chroot: root tools a minimal PATH may leave out
ROOT=${POCKETLM_SWIFT_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/pocketlm/swift-trixie}
if [ -f "$ROOT/.pocketlm-ok" ]; then
  echo "$ROOT"; exit 0
fi
[ "$(id -u)" = 0 ] || { echo "swift_toolchain: needs root (debootstrap and chroot)" >&2; exit 1; }
if ! command -v debootstrap >/dev/null; then
  apt-get install -y -q debootstrap >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
fi
rm -rf "$ROOT" "$ROOT.partial"
mkdir -p "$(dirname "$ROOT")"
debootstrap --variant=minbase --include=swiftlang,libswiftlang,libc6-dev trixie "$ROOT.partial" http://deb.debian.org/debian >/dev/null \
  || { echo "swift_toolchain: debootstrap of Debian trixie with swiftlang failed" >&2; rm -rf "$ROOT.partial"; exit 1; }
apt_clean="$ROOT.partial/var/cache/apt/archives"
rm -f "$apt_clean"/*.deb
touch "$ROOT.partial/.pocketlm-ok"
mv "$ROOT.partial" "$ROOT"
echo "$ROOT"
