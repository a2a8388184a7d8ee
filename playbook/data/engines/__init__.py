"""The engines a source is read in: the embedded DuckDB (``duckdb``), Apache Spark (``spark``, and the run's
session served to the notebooks: ``spark_share``), PostgreSQL's planner statistics (``postgres``), and what an
engine reads in a Parquet file (``parquet_types``)."""
