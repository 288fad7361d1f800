"""Reproducibility audits of jobs.log: integrity, re-runs, environment and preset drift; torch only for re-runs."""

from sdxl_nb.audit.compare import BIT_EXACT, CLOSE, CLOSE_MAX_ABS_DIFF, CLOSE_MIN_PSNR_DB, DIVERGED, SKIPPED
from sdxl_nb.audit.drift import environment_drift, file_drift, installed_environment, preset_drift
from sdxl_nb.audit.integrity import IntegrityReport, check_integrity
from sdxl_nb.audit.replay_request import ReplayError, request_from_record
from sdxl_nb.audit.report import AuditReport, run_audit
from sdxl_nb.audit.rerun import rerun_jobs, select_for_rerun

__all__ = ["BIT_EXACT", "CLOSE", "CLOSE_MAX_ABS_DIFF", "CLOSE_MIN_PSNR_DB", "DIVERGED", "SKIPPED", "AuditReport",
           "IntegrityReport", "ReplayError", "check_integrity", "environment_drift", "file_drift", "installed_environment",
           "preset_drift", "request_from_record", "rerun_jobs", "run_audit", "select_for_rerun"]
