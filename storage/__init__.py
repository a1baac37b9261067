"""PostgreSQL and Redis: every SQL statement and every Redis key lives here."""
