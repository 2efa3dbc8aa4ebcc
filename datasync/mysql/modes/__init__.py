"""Sync strategies.  Each has ``run(job, plan, step, previous) -> (Counts, state columns)`` and works
inside the caller's open PostgreSQL transaction and MySQL snapshot; the caller saves the state
(watermark, digests) and commits.  full.py creates new tables and reloads existing ones in place.
"""
