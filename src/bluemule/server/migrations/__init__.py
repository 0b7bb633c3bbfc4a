"""Alembic migrations of the server schema."""
