#!/usr/bin/env bash
# Compile android_demo/core (plain Kotlin, no Android) and run its JUnit 5 tests on this machine's JVM.
# POCKETLM_VECTORS names the folder of shared test vectors the Python tests write (tests/test_app_contract.py).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS=$(bash "$HERE/../../scripts/jvm_toolchain.sh")
OUT=${POCKETLM_JVM_BUILD:-$HERE/build/jvm}
rm -rf "$OUT" && mkdir -p "$OUT/classes"
K="$TOOLS/kotlinc/lib"
CP="$TOOLS/lib/json-android-10.0.0.jar:$TOOLS/lib/junit-platform-console-standalone-1.9.1.jar:$K/kotlin-test.jar:$K/kotlin-test-junit5.jar"
"$TOOLS/kotlinc/bin/kotlinc" -jvm-target 17 -Werror -cp "$CP" -d "$OUT/classes" \
  $(find "$HERE/src/main/kotlin" "$HERE/src/test/kotlin" -name '*.kt' | sort)
java -jar "$TOOLS/lib/junit-platform-console-standalone-1.9.1.jar" \
  -cp "$OUT/classes:$CP:$K/kotlin-stdlib.jar" --scan-classpath "$OUT/classes" \
  --disable-banner --details=tree --reports-dir "$OUT/reports" "$@"
