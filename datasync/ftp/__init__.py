"""FTP/FTPS/SFTP machine-log ingestion: remote (protocols), formats (parsing), ingest (the run)."""
