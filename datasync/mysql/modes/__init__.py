"""Sync strategies.  Each has ``run(job, plan, existing, since) -> Counts`` and works
inside the caller's open PostgreSQL transaction and MySQL snapshot; the caller saves
the watermark and commits.
"""
