"""The watcher: the observer, settle logic, the lanes that hash and scan, ingest (record), the
reconcile scan, watched roots and the name rules, and the loop that ties them together (its
inbox items in ``recording``, its periodic ``chores``) and sends the work (through
``dispatch``) and hears the workers (through ``fleet``).

Must not import: ``worker``, ``web``, the CLI or the supervisor.
"""
