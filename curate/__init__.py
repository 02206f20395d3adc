"""curate: build supervised fine-tuning datasets for LLMs and prove they work."""

__version__ = "0.1.0"
