"""The tutorials' chat room on microweb (see app.py)."""
