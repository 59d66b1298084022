"""Database: SQLAlchemy models, engine setup and Alembic migrations."""
