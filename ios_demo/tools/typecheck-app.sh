#!/usr/bin/env bash
# Type-check the iOS app's non-UI files (Runtimes, HFTokenizer, DemoModel, BenchmarkMode) with swiftc in the
# Debian trixie root (scripts/swift_toolchain.sh), against PocketLMKit and api-stubs/ (documented CoreML,
# UIKit, ExecuTorch and swift-transformers signatures). SwiftUI views cannot be checked off Apple platforms:
# they are only parsed (tests/test_app_sources.py). Needs root (chroot).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(bash "$HERE/../../scripts/swift_toolchain.sh")
W="$ROOT/w/typecheck"
rm -rf "$W" && mkdir -p "$W/tools" "$ROOT/proc"
cp -r "$HERE/../PocketLMKit" "$W/PocketLMKit"
rm -rf "$W/PocketLMKit/.build"
cp -r "$HERE/api-stubs" "$W/tools/api-stubs"
mkdir -p "$W/tools/api-stubs/App"
APP="$HERE/../PocketLMDemo.swiftpm/Sources"
cp "$APP/Runtimes.swift" "$APP/HFTokenizer.swift" "$APP/DemoModel.swift" "$APP/BenchmarkMode.swift" "$W/tools/api-stubs/App/"
trap 'umount "$ROOT/proc" 2>/dev/null || true' EXIT
mount -t proc proc "$ROOT/proc"
chroot "$ROOT" env -i PATH=/usr/bin:/bin HOME=/root \
  bash -c 'cd /w/typecheck/tools/api-stubs && swift build -Xswiftc -warnings-as-errors 2>&1 | grep -E "error|warning:" | sort -u; exit ${PIPESTATUS[0]}'
echo "typecheck-app: ok"
