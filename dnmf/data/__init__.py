"""Data in and out: input preparation and chunking, Zarr stores, results, checkpoints and ingest."""
