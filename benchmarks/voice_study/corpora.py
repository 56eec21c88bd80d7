"""The nEMO scanner the study wrote, now the library's (``ser_core.training.corpora.scan_nemo``)."""

from __future__ import annotations

from ser_core.training.corpora import NEMO_EMOTIONS, scan_nemo

__all__ = ["NEMO_EMOTIONS", "scan_nemo"]
