"""Executors run :func:`curate.filtering.chunk.process_chunk` over every chunk: local today, Ray later."""
