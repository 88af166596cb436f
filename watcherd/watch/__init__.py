"""Finding photos: the observer, settle logic, ingest (hash and record), the reconcile scan,
watched roots and the name rules.
"""
