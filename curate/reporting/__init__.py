"""The one self-contained HTML page of evidence built from a stage folder."""
