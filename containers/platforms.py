"""The platform matrix: what each platform is built from and what we expect of it."""

from __future__ import annotations

from dataclasses import dataclass

from runner.contract import TMUX_MIN_VERSION as TMUX_FLOOR  # older is refused with exit 3


@dataclass(frozen=True)
class Platform:
    """One column of the matrix."""

    name: str
    suite: str  # Debian suite the rootfs comes from
    tmux: str  # the tmux version the suite ships (checked by `tmux -V`)
    python: str  # the suite's python3 (major.minor), for host-side wheel downloads
    profile: str = "linux"  # "linux" or "macos-like"
    description: str = ""

    @property
    def tmux_supported(self) -> bool:
        return version_key(self.tmux) >= version_key(TMUX_FLOOR)


def version_key(v: str) -> tuple[int, int, str]:
    """tmux versions sort as major.minor then letter suffix: 3.1c < 3.2 < 3.2a < 3.3a."""
    import re

    m = re.match(r"(?:next-)?(\d+)\.(\d+)([a-z]*)", v.strip())
    if not m:
        raise ValueError(f"not a tmux version: {v!r}")
    return int(m.group(1)), int(m.group(2)), m.group(3)


PLATFORMS: dict[str, Platform] = {
    p.name: p
    for p in (
        Platform(
            "bullseye",
            "bullseye",
            "3.1c",
            "3.9",
            description="Debian 11; tmux below the 3.2a floor: the dispatcher must refuse (exit 3)",
        ),
        Platform("bookworm", "bookworm", "3.3a", "3.11", description="Debian 12"),
        Platform("trixie", "trixie", "3.5a", "3.13", description="Debian 13"),
        Platform(
            "macos-like",
            "bookworm",
            "3.3a",
            "3.11",
            profile="macos-like",
            description="Debian 12 with BSD-flavoured userland, no GNU-only tools, long TMPDIR, zsh",
        ),
    )
}


def select(names: list[str] | None) -> list[Platform]:
    """Platforms by name (all when none given); an unknown name raises ValueError with the choices."""
    if not names:
        return list(PLATFORMS.values())
    out = []
    for n in names:
        for part in n.split(","):
            part = part.strip()
            if part not in PLATFORMS:
                raise ValueError(f"unknown platform {part!r} (choose from {', '.join(PLATFORMS)})")
            out.append(PLATFORMS[part])
    return out
