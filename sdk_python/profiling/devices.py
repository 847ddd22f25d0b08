"""Phone runners of `pocketlm profile`: drive the demo apps' benchmark mode and fetch their result.

Android: adb pushes the bundle, starts the app's benchmark activity with intent
extras, waits for the result file the app writes, pulls it, and reads the
battery's charge counter before and after. iOS: `xcrun devicectl` does the same
on macOS. Both return the raw benchmark result the apps write
(benchmark-result schema), which `pocketlm profile` folds like a host result.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from .results import ProfileError, validate

ANDROID_PACKAGE = "dev.pocketlm.demo"
ANDROID_ACTIVITY = f"{ANDROID_PACKAGE}/.BenchmarkActivity"
ANDROID_BUNDLE_ROOT = "/data/local/tmp/pocketlm"
ANDROID_RESULT_DIR = f"/sdcard/Android/data/{ANDROID_PACKAGE}/files/benchmarks"
IOS_BUNDLE_ID = "dev.pocketlm.demo"


def parse_device(spec: str) -> tuple[str, str | None]:
    """'host', 'android', 'android:SERIAL', 'ios', 'ios:UDID' -> (kind, id)."""
    kind, _, ident = spec.partition(":")
    if kind not in ("host", "android", "ios") or (kind == "host" and ident):
        raise ProfileError(f"unknown device {spec!r} (use host, android[:SERIAL] or ios[:UDID])")
    return kind, ident or None


class Adb:
    def __init__(self, serial: str | None = None, executable: str | None = None, timeout: float = 120):
        exe = executable or os.environ.get("ADB") or shutil.which("adb")
        if not exe:
            raise ProfileError("adb was not found on PATH (install Android platform-tools, or set ADB=/path/to/adb)")
        self.exe, self.timeout = exe, timeout
        self.serial = serial or self._only_device()

    def _call(self, *args: str, device: bool = True, check: bool = True) -> str:
        cmd = [self.exe, *(("-s", self.serial) if device else ()), *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise ProfileError(f"adb did not answer within {self.timeout:.0f} s: {' '.join(args)}") from None
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise ProfileError(f"adb {' '.join(args[:2])} failed: {detail[-1] if detail else proc.returncode}")
        return proc.stdout

    def _only_device(self) -> str:
        lines = self._call("devices", device=False).splitlines()[1:]
        ready = [parts[0] for parts in map(str.split, lines) if len(parts) >= 2 and parts[1] == "device"]
        if not ready:
            raise ProfileError("no Android device is attached and authorized (adb devices lists none)")
        if len(ready) > 1:
            raise ProfileError(
                f"several Android devices are attached ({', '.join(ready)}): use --device android:SERIAL"
            )
        return ready[0]

    def shell(self, command: str, check: bool = True) -> str:
        return self._call("shell", command, check=check)


def _battery(adb: Adb) -> dict:
    out = adb.shell("dumpsys battery", check=False)
    values = {}
    for key, pattern in (("level", r"^\s*level:\s*(\d+)"), ("charge", r"^\s*Charge counter:\s*(\d+)")):
        m = re.search(pattern, out, re.M | re.I)
        if m:
            values[key] = float(m.group(1))
    return values


def run_android(bundle_path, serial, prompt_lengths, gen, runs, warmup, threads, poll=1.0, timeout=1800) -> dict:
    adb = Adb(serial)
    if f"package:{ANDROID_PACKAGE}" not in adb.shell(f"pm list packages {ANDROID_PACKAGE}").split():
        raise ProfileError(
            f"the pocketlm demo app ({ANDROID_PACKAGE}) is not installed on {adb.serial}: "
            "build and install android_demo (see android_demo/README.md)"
        )
    bundle = Path(bundle_path)
    remote_bundle = f"{ANDROID_BUNDLE_ROOT}/{bundle.name}"
    run_id = f"{bundle.name}-{int(time.time())}"
    remote_result = f"{ANDROID_RESULT_DIR}/{run_id}.json"
    adb.shell(f"rm -rf {remote_bundle} && mkdir -p {ANDROID_BUNDLE_ROOT}")
    adb._call("push", str(bundle), remote_bundle)
    before = _battery(adb)
    started = time.time()
    extras = android_extras(remote_bundle, remote_result, prompt_lengths, gen, runs, warmup, threads)
    adb.shell(" ".join(["am", "start", "-W", "-n", ANDROID_ACTIVITY, *extras]))
    while adb.shell(f"test -f {remote_result} && echo done", check=False).strip() != "done":
        if time.time() - started > timeout:
            raise ProfileError(f"the app wrote no result within {timeout:.0f} s ({remote_result})")
        if not adb.shell(f"pidof {ANDROID_PACKAGE}", check=False).strip():
            raise ProfileError("the demo app exited without writing a result (see adb logcat -s pocketlm)")
        time.sleep(poll)
    duration = time.time() - started
    after = _battery(adb)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "result.json"
        adb._call("pull", remote_result, str(local))
        result = read_device_result(local)
    result["device"]["id"] = adb.serial  # an app cannot read the serial (Android 10+); adb knows it
    if "charge" in before and "charge" in after:
        result["energy"] = {
            "available": True,
            "charge_counter_uah": {"start": before["charge"], "end": after["charge"]},
            "battery_level_percent": {"start": before.get("level", -1), "end": after.get("level", -1)},
            "duration_s": round(duration, 1),
        }
    elif not result["energy"].get("available"):
        result["energy"] = {"available": False, "reason": "the device reports no battery charge counter"}
    return result


def android_extras(bundle: str, result: str, prompt_lengths, gen: int, runs: int, warmup: int, threads) -> list[str]:
    """The `am start` intent extras of benchmark mode (the app's BenchmarkSettings.parse reads them)."""
    extras = [
        "--es", "bundle", bundle, "--es", "result", result,
        "--es", "prompt_lengths", ",".join(map(str, prompt_lengths)),
        "--ei", "gen", str(gen), "--ei", "runs", str(runs), "--ei", "warmup", str(warmup),
    ]
    if threads:
        extras += ["--ei", "threads", str(threads)]
    return extras


def ios_arguments(bundle: str, result: str, prompt_lengths, gen: int, runs: int, warmup: int, threads) -> list[str]:
    """The launch arguments of the iOS app's benchmark mode (paths relative to its Documents folder)."""
    return [
        "--benchmark", bundle, "--result", result, "--prompt-lengths", ",".join(map(str, prompt_lengths)),
        "--gen", str(gen), "--runs", str(runs), "--warmup", str(warmup),
        *(["--threads", str(threads)] if threads else []),
    ]


def read_device_result(path) -> dict:
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ProfileError(f"the device's result {path} could not be read ({e})") from None
    validate(result, "benchmark-result.schema.json", "the device's benchmark result")
    return result


def run_ios(bundle_path, udid, prompt_lengths, gen, runs, warmup, threads, poll=1.0, timeout=1800) -> dict:
    if platform.system() != "Darwin" or not shutil.which("xcrun"):
        raise ProfileError(
            "iOS profiling needs macOS with Xcode (xcrun devicectl); this machine is "
            f"{platform.system()}. Run `pocketlm profile --device ios` on a Mac with the iPhone attached"
        )
    if not udid:
        raise ProfileError("give the device: --device ios:UDID (see `xcrun devicectl list devices`)")
    bundle = Path(bundle_path)
    run_id = f"{bundle.name}-{int(time.time())}"
    common = ["--device", udid, "--domain-type", "appDataContainer", "--domain-identifier", IOS_BUNDLE_ID]

    def devicectl(*args):
        proc = subprocess.run(["xcrun", "devicectl", *args], capture_output=True, text=True)
        if proc.returncode != 0:
            raise ProfileError(f"xcrun devicectl {args[0]} {args[1]} failed: {proc.stderr.strip()[-300:]}")
        return proc.stdout

    devicectl("device", "copy", "to", *common, "--source", str(bundle),
              "--destination", f"Documents/bundles/{bundle.name}")
    devicectl(
        "device", "process", "launch", "--device", udid, "--terminate-existing", IOS_BUNDLE_ID,
        *ios_arguments(f"bundles/{bundle.name}", f"benchmarks/{run_id}.json", prompt_lengths, gen, runs, warmup,
                       threads),
    )
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "result.json"
        while True:
            try:
                devicectl("device", "copy", "from", *common, "--source", f"Documents/benchmarks/{run_id}.json",
                          "--destination", str(local))
                break
            except ProfileError:
                if time.time() - started > timeout:
                    raise ProfileError(f"the app wrote no result within {timeout:.0f} s") from None
                time.sleep(poll)
        return read_device_result(local)
