-- Run by `cargo xtask seed --reset` before db/seed.sql: empties the data tables and restarts
-- their identity sequences. The schema and the _sqlx_migrations table are left alone.
TRUNCATE deployments, environments, services RESTART IDENTITY CASCADE;
