"""Study: speaker-normalised emotion models (see REPORT.md)."""
