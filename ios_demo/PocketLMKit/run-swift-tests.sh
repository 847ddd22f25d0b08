#!/usr/bin/env bash
# Build PocketLMKit and run its tests with `swift test` in the Debian trixie root that
# scripts/swift_toolchain.sh makes (Swift 6.0.3 on Linux). POCKETLM_VECTORS names the folder of shared
# vectors the Python tests write; it is bind-mounted into the root at the same path, so results written
# there by the tests come back.
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"  # debootstrap, chroot: root tools a minimal PATH may leave out
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(bash "$HERE/../../scripts/swift_toolchain.sh")
: "${POCKETLM_VECTORS:?POCKETLM_VECTORS must name the shared vectors folder (pytest tests/test_app_contract.py writes it)}"
WORK="$ROOT/w/PocketLMKit"
rm -rf "$WORK" && mkdir -p "$WORK" "$ROOT$POCKETLM_VECTORS" "$ROOT/proc"
cp -r "$HERE/Package.swift" "$HERE/Sources" "$HERE/Tests" "$WORK/"
cleanup() {
  umount "$ROOT$POCKETLM_VECTORS" 2>/dev/null || true
  umount "$ROOT/proc" 2>/dev/null || true
}
trap cleanup EXIT
mount --bind "$POCKETLM_VECTORS" "$ROOT$POCKETLM_VECTORS"
mount -t proc proc "$ROOT/proc"
chroot "$ROOT" env -i PATH=/usr/bin:/bin HOME=/root POCKETLM_VECTORS="$POCKETLM_VECTORS" \
  bash -c 'cd /w/PocketLMKit && swift build --build-tests -Xswiftc -warnings-as-errors 2>&1 | tail -20 && swift test --skip-build'
