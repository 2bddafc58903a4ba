"""Every session kept: the recording (SQLite), the history, and exports (FIT, TCX, CSV)."""
