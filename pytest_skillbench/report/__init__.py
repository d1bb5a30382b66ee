"""Reports: statistics from stored episodes (``summary``), the terminal table (``terminal``)."""

from .summary import build_report

__all__ = ["build_report"]
