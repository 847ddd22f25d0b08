"""Versions of the installed packages that matter to a result, recorded beside it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def installed(packages: tuple[str, ...]) -> dict[str, str]:
    """{package: version} for those of `packages` that are installed."""
    out = {}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
