"""The fleet server: releases, devices, targeting, the relay API (FastAPI + SQLAlchemy 2).

Build it with :func:`bluemule.server.app.create_app`; nothing is created at import time.
"""
