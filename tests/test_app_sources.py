"""What can be checked of the demo apps without Android Studio or Xcode: the files no compiler here can
build parse (tree-sitter grammars), and the constants the SDK and the apps must share agree."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path

import pytest

from pocketlm.profiling import devices

REPO = Path(__file__).resolve().parent.parent
ANDROID = REPO / "android_demo"


def _syntax_errors(language, path: Path) -> list[str]:
    import tree_sitter

    tree = tree_sitter.Parser(tree_sitter.Language(language)).parse(path.read_bytes())
    errors, stack = [], [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            errors.append(f"{path.relative_to(REPO)}:{node.start_point[0] + 1}: {node.text[:60]!r}")
            continue
        stack.extend(node.children)
    return errors


def _sources(root: Path, *patterns: str) -> list[Path]:
    return sorted(p for pattern in patterns for p in root.rglob(pattern) if "build" not in p.parts)


def test_android_kotlin_sources_parse():
    import tree_sitter_kotlin

    # api-stubs/ is compiled by kotlinc (below); the grammar misreads some of its one-line declarations.
    files = [f for f in _sources(ANDROID, "*.kt", "*.kts") if "api-stubs" not in f.parts]
    assert len(files) >= 20, [str(f) for f in files]
    errors = [e for f in files for e in _syntax_errors(tree_sitter_kotlin.language(), f)]
    assert not errors, "\n".join(errors)


def test_android_app_engines_and_benchmark_activity_typecheck():
    """kotlinc over the app's non-UI files, core and the documented API stand-ins (android_demo/tools):
    catches Kotlin errors in the code no Android build checks here (it once found an Engine field clash)."""
    script = ANDROID / "tools/typecheck-app.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "typecheck-app: ok" in proc.stdout, (proc.stdout + proc.stderr)[-3000:]


def test_android_app_matches_what_the_sdk_drives():
    manifest = (ANDROID / "app/src/main/AndroidManifest.xml").read_text()
    gradle = (ANDROID / "app/build.gradle.kts").read_text()
    assert f'applicationId = "{devices.ANDROID_PACKAGE}"' in gradle
    package, activity = devices.ANDROID_ACTIVITY.split("/")
    assert package == devices.ANDROID_PACKAGE and f'android:name="{activity}"' in manifest
    store = (ANDROID / "app/src/main/kotlin/dev/pocketlm/demo/BundleStore.kt").read_text()
    assert f'ADB_ROOT = "{devices.ANDROID_BUNDLE_ROOT}"' in store
    assert devices.ANDROID_RESULT_DIR.startswith(f"/sdcard/Android/data/{devices.ANDROID_PACKAGE}/files")


def test_android_runtime_versions_match_the_python_side():
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    toml = tomllib.loads((ANDROID / "gradle/libs.versions.toml").read_text())["versions"]
    assert toml["executorch"] == pins["executorch"]
    assert toml["litert"].split(".")[:2] == pins["ai-edge-litert"].split(".")[:2]
    engines = (ANDROID / "app/src/main/kotlin/dev/pocketlm/demo/Engines.kt").read_text()
    assert f'EXECUTORCH = "{toml["executorch"]}"' in engines and f'LITERT = "{toml["litert"]}"' in engines


IOS = REPO / "ios_demo"


def test_ios_app_swift_sources_parse():
    """The app package (SwiftUI, Core ML, UIKit) cannot compile off Apple platforms; PocketLMKit is compiled by
    swiftc in test_app_contract.py, so only the app's files need the grammar's check."""
    import tree_sitter_swift

    files = _sources(IOS / "PocketLMDemo.swiftpm", "*.swift")
    assert len(files) >= 10, [str(f) for f in files]
    errors = [e for f in files for e in _syntax_errors(tree_sitter_swift.language(), f)]
    assert not errors, "\n".join(errors)


def test_ios_app_matches_what_the_sdk_drives():
    package = (IOS / "PocketLMDemo.swiftpm/Package.swift").read_text()
    assert f'bundleIdentifier: "{devices.IOS_BUNDLE_ID}"' in package
    pins = dict(line.split("==") for line in (REPO / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert f'branch: "swiftpm-{pins["executorch"]}"' in package
    runtimes = (IOS / "PocketLMDemo.swiftpm/Sources/Runtimes.swift").read_text()
    assert f'"executorch-ios": "{pins["executorch"]}"' in runtimes
    # The app's resources are the SDK's own files (symlinks), not copies that could drift.
    for name in ("health_knowledge.md", "profile_prompt.txt"):
        resource = IOS / "PocketLMDemo.swiftpm/Sources/Resources" / name
        assert resource.is_symlink() and resource.resolve() == (REPO / "sdk_python/data" / name).resolve()


def test_ios_app_runtimes_and_benchmark_mode_typecheck():
    """swiftc over the app's non-UI files (Core ML / ExecuTorch runtimes, tokenizer adapter, model loading,
    benchmark mode), PocketLMKit and the documented-API stand-ins in ios_demo/tools/api-stubs."""
    if os.geteuid() != 0:
        pytest.skip("the Swift toolchain runs in a debootstrapped root (chroot): run as root (CI does)")
    proc = subprocess.run(["bash", str(IOS / "tools/typecheck-app.sh")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and "typecheck-app: ok" in proc.stdout, (proc.stdout + proc.stderr)[-3000:]
