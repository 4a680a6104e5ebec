"""Reports out to the data platform: Parquet, CSV or JSON Lines files, partitioned by day, locally or in S3."""
