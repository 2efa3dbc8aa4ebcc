"""datasync: the library behind mysql_sync_service.py and ftp_log_service.py."""

__version__ = "1.0.0"
