"""Reward QA report: expert vs epsilon-degraded episodes, AUROC / Spearman metrics and plots."""
from .metrics import auroc, rankdata, spearman
from .report import ReportConfig, build_report

__all__ = ["ReportConfig", "auroc", "build_report", "rankdata", "spearman"]
