"""Writing a build: Parquet shards, manifest, dataset card. Only sources/ and sink/ touch files."""
