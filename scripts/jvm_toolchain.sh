#!/usr/bin/env bash
# The JVM toolchain that compiles and tests android_demo/core here, from the registries this
# machine reaches: the Kotlin compiler from npm (kotlin-compiler, the JetBrains distribution),
# JUnit 5 and org.json (Android's own implementation) from Debian. Idempotent; prints the folder.
set -euo pipefail
KOTLIN_VERSION=2.4.20
DEST=${POCKETLM_JVM_TOOLCHAIN:-${XDG_CACHE_HOME:-$HOME/.cache}/pocketlm/jvm-toolchain}
if [ -x "$DEST/kotlinc/bin/kotlinc" ] && [ -f "$DEST/ok-$KOTLIN_VERSION" ]; then
  echo "$DEST"; exit 0
fi
command -v java >/dev/null || { echo "jvm_toolchain: java (JDK 17+) is not installed" >&2; exit 1; }
command -v npm >/dev/null || { echo "jvm_toolchain: npm is not installed (it fetches the Kotlin compiler)" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
(cd "$TMP" && npm pack --silent "kotlin-compiler@$KOTLIN_VERSION" >/dev/null && tar xzf "kotlin-compiler-$KOTLIN_VERSION.tgz")
DEBS="junit5 libopentest4j-java libapiguardian-java libandroid-json-java"
(cd "$TMP" && { apt-get download $DEBS >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get download $DEBS >/dev/null 2>&1; }; }) \
  || { echo "jvm_toolchain: apt-get download of $DEBS failed" >&2; exit 1; }
for deb in "$TMP"/*.deb; do dpkg -x "$deb" "$TMP/root"; done
rm -rf "$DEST" && mkdir -p "$DEST/lib"
mv "$TMP/package" "$DEST/kotlinc"
chmod +x "$DEST/kotlinc/bin/"*
REPO="$TMP/root/usr/share/maven-repo"
cp "$REPO/org/junit/platform/junit-platform-console-standalone/1.9.1/junit-platform-console-standalone-1.9.1.jar" \
   "$REPO/com/android/json/android-10.0.0/json-android-10.0.0.jar" "$DEST/lib/"
touch "$DEST/ok-$KOTLIN_VERSION"
echo "$DEST"
