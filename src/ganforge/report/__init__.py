"""A run's report: ``report.html`` (self-contained) and ``report.png`` from its run folder."""

from ganforge.report.build import ReportFiles, build_report

__all__ = ["ReportFiles", "build_report"]
