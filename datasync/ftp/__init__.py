"""Machine-log ingestion (ftp_log_service.py), module by module in the order the data flows:

    remote/    the server: FTP, FTPS (ftp.py) and SFTP (sftp.py) behind one interface (base.py)
    lines.py   bytes → complete, decoded, numbered lines (gunzip first for .gz)
    parsers.py lines → fields: csv, jsonl, regex, text, raw
    rows.py    fields → COPY text of machine_logs / machine_log_rejects (and their DDL)
    paths.py   what a remote path means to the settings: globs, machine id
    ledger.py  the ledger rows, and the per-file decision: young, unchanged, new, resumed, rewritten
    load.py    the streaming load of one file in its transaction
    remove.py  DELETE_AFTER_SYNC: delete or archive what was loaded
    ingest.py  the run: list, then per file decide → load → remove
    commands.py  --status and --dry-run
"""

APPLICATION = "datasync ftp_log"  # PostgreSQL application_name of the job's sessions
SERVICE = "ftp_log"               # its name in the runs table
