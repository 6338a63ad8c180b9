"""Django's PostgreSQL backend with the connection pool's checkout check of core.dbpool."""
