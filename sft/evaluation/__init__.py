"""The pieces of `curate eval`: loading runs, the metrics with their CIs, the pairwise judge."""
