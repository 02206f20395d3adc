"""The pieces of `curate compare`: the plan of arms x sizes x seeds, the resumable grid, the summary."""
