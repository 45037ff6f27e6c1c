"""Colours that mean the same thing everywhere on screen: one per model version, one per sync state."""

from __future__ import annotations

VERSION_COLORS = ("#5aa9ff", "#6fd36f", "#ffb347", "#d98cff", "#4fd6d6", "#ff7a7a", "#e6d65a", "#b0b0ff")
SYNC_COLORS = {"Synced": "#6fd36f", "OutOfSync": "#ffb347", "Progressing": "#5aa9ff", "Degraded": "#ff6b6b",
               "Unknown": "#8a8a8a"}
MARK_STYLES = {  # rollout timeline marks: phase -> (glyph, colour)
    "commit": ("C", "#e0e0e0"),
    "detected": ("D", "#ffd75f"),
    "applied": ("A", "#4fd6d6"),
    "100%": ("✓", "#6fd36f"),
    "alarm": ("!", "#ff6b6b"),
    "retrain": ("R", "#e6d65a"),
    "retrain_validated": ("V", "#b0b0ff"),
    "retrain_failed": ("✗", "#ff7a7a"),
}


def version_color(version: str | None) -> str:
    if version is None:
        return "#8a8a8a"
    try:
        index = int(version) - 1
    except ValueError:
        index = sum(map(ord, version))
    return VERSION_COLORS[index % len(VERSION_COLORS)]


def rgb(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    return int(color[0:2], 16), int(color[2:4], 16), int(color[4:6], 16)
