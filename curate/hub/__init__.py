"""Sharing a dataset: export to Parquet shards with a dataset card, and push to the Hugging Face hub."""
