#!/usr/bin/env bash
# Type-check the app module's non-UI files (engines, benchmark activity, bundle store, model loading) with
# kotlinc against core and against api-stubs/ (documented Android / ExecuTorch / LiteRT signatures).
# The Compose screens need the Compose compiler and runtime, which this machine cannot fetch: they are
# only parsed (tests/test_app_sources.py).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS=$(bash "$HERE/../../scripts/jvm_toolchain.sh")
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
APP="$HERE/../app/src/main/kotlin/dev/pocketlm/demo"
"$TOOLS/kotlinc/bin/kotlinc" -jvm-target 17 -Werror -cp "$TOOLS/lib/json-android-10.0.0.jar" -d "$OUT" \
  "$HERE"/api-stubs/*.kt $(find "$HERE/../core/src/main/kotlin" -name '*.kt' | sort) \
  "$APP/Engines.kt" "$APP/BundleStore.kt" "$APP/DemoModel.kt" "$APP/BenchmarkActivity.kt"
echo "typecheck-app: ok"
