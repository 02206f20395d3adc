"""Curation: quality rules, decontamination, exact and near-duplicate removal, the filter pipeline and its executors."""
