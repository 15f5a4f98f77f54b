-- Demo data for a local stack: 4 services, 3 environments, 28 deployments over the last 30 days.
--
-- Idempotent: every row has a fixed id and is inserted with ON CONFLICT (id) DO NOTHING, so a
-- re-run only fills in rows that are missing and never changes existing ones. Times are relative
-- to now() at the moment a row is first inserted. Runs as one transaction, from psql
-- (-v ON_ERROR_STOP=1 -f db/seed.sql) or as a single multi-statement string (sqlx raw_sql).
-- To start over, run db/reset.sql first (`cargo xtask seed --reset`).

BEGIN;

-- Hold off concurrent inserts by the API (they would take ids from the sequences we move below);
-- reads are not blocked.
LOCK TABLE services, environments, deployments IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO services (id, name, description)
OVERRIDING SYSTEM VALUE
VALUES
    (1, 'frontend',  'Customer-facing web app: trip search, itineraries and checkout'),
    (2, 'api',       'Public JSON API behind the web and mobile apps'),
    (3, 'worker',    'Background jobs: booking confirmations, emails and partner sync'),
    (4, 'analytics', 'Event ingestion and the nightly reporting pipeline')
ON CONFLICT (id) DO NOTHING;

INSERT INTO environments (id, name)
OVERRIDING SYSTEM VALUE
VALUES
    (1, 'dev'),
    (2, 'staging'),
    (3, 'production')
ON CONFLICT (id) DO NOTHING;

-- Oldest first. age = how long before now() the deployment started; took = time to finish
-- (NULL while pending or in progress). Services: 1 frontend, 2 api, 3 worker, 4 analytics.
-- Environments: 1 dev, 2 staging, 3 production.
INSERT INTO deployments
    (id, service_id, environment_id, version, status, deployed_by, started_at, completed_at)
OVERRIDING SYSTEM VALUE
SELECT d.id, d.service_id, d.environment_id, d.version, d.status, d.deployed_by,
       now() - d.age,
       now() - d.age + d.took
FROM (VALUES
    ( 1, 2, 1, 'v1.4.2',      'completed',   'ci-bot@wander.dev', interval '29 days 4 hours',          interval '3 minutes 41 seconds'),
    ( 2, 2, 2, 'v1.4.2',      'completed',   'ci-bot@wander.dev', interval '28 days 22 hours',         interval '4 minutes 5 seconds'),
    ( 3, 1, 1, 'v3.7.0',      'completed',   'alice@wander.dev',  interval '28 days 1 hour',           interval '2 minutes 18 seconds'),
    ( 4, 2, 3, 'v1.4.2',      'completed',   'bob@wander.dev',    interval '27 days 3 hours',          interval '6 minutes 52 seconds'),
    ( 5, 3, 1, 'v0.9.3',      'completed',   'carol@wander.dev',  interval '26 days 5 hours',          interval '1 minute 57 seconds'),
    ( 6, 1, 2, 'v3.7.0',      'failed',      'alice@wander.dev',  interval '25 days 7 hours 30 minutes', interval '3 minutes 10 seconds'),
    ( 7, 1, 2, 'v3.7.1',      'completed',   'alice@wander.dev',  interval '25 days 6 hours',          interval '2 minutes 44 seconds'),
    ( 8, 4, 1, 'v2.1.0',      'completed',   'dmitri@wander.dev', interval '24 days 2 hours',          interval '5 minutes 20 seconds'),
    ( 9, 1, 3, 'v3.7.1',      'completed',   'bob@wander.dev',    interval '23 days 4 hours',          interval '4 minutes 1 second'),
    (10, 3, 2, 'v0.9.3',      'completed',   'ci-bot@wander.dev', interval '22 days 8 hours',          interval '2 minutes 9 seconds'),
    (11, 4, 2, 'v2.1.0',      'failed',      'dmitri@wander.dev', interval '21 days 1 hour',           interval '7 minutes 33 seconds'),
    (12, 3, 3, 'v0.9.3',      'completed',   'carol@wander.dev',  interval '20 days 3 hours',          interval '3 minutes 27 seconds'),
    (13, 2, 1, 'v1.5.0',      'completed',   'ci-bot@wander.dev', interval '18 days 6 hours',          interval '3 minutes 58 seconds'),
    (14, 2, 2, 'v1.5.0',      'completed',   'ci-bot@wander.dev', interval '17 days 5 hours',          interval '4 minutes 12 seconds'),
    (15, 2, 3, 'v1.5.0',      'rolled_back', 'bob@wander.dev',    interval '16 days 2 hours',          interval '11 minutes 48 seconds'),
    (16, 2, 3, 'v1.5.1',      'completed',   'bob@wander.dev',    interval '15 days 4 hours',          interval '5 minutes 36 seconds'),
    (17, 4, 2, 'v2.2.0',      'completed',   'dmitri@wander.dev', interval '13 days 7 hours',          interval '6 minutes 14 seconds'),
    (18, 3, 1, 'v0.10.0',     'failed',      'ci-bot@wander.dev', interval '12 days 3 hours',          interval '1 minute 22 seconds'),
    (19, 3, 1, 'v0.10.1',     'completed',   'ci-bot@wander.dev', interval '11 days 9 hours',          interval '2 minutes 3 seconds'),
    (20, 4, 3, 'v2.2.0',      'rolled_back', 'dmitri@wander.dev', interval '10 days 1 hour',           interval '14 minutes 5 seconds'),
    (21, 1, 1, 'v3.8.0-rc.1', 'completed',   'alice@wander.dev',  interval '8 days 5 hours',           interval '2 minutes 31 seconds'),
    (22, 3, 2, 'v0.10.1',     'completed',   'carol@wander.dev',  interval '6 days 4 hours',           interval '2 minutes 47 seconds'),
    (23, 1, 2, 'v3.8.0-rc.1', 'rolled_back', 'alice@wander.dev',  interval '4 days 2 hours',           interval '9 minutes 12 seconds'),
    (24, 2, 1, 'v2.0.0-rc.1', 'failed',      'ci-bot@wander.dev', interval '2 days 6 hours',           interval '4 minutes 40 seconds'),
    (25, 4, 2, 'v2.2.1',      'in_progress', 'dmitri@wander.dev', interval '47 minutes',               NULL),
    (26, 3, 3, 'v0.10.1',     'in_progress', 'carol@wander.dev',  interval '21 minutes',               NULL),
    (27, 1, 2, 'v3.8.0-rc.2', 'pending',     'alice@wander.dev',  interval '9 minutes',                NULL),
    (28, 2, 1, 'v2.0.0-rc.2', 'pending',     'ci-bot@wander.dev', interval '3 minutes',                NULL)
) AS d (id, service_id, environment_id, version, status, deployed_by, age, took)
ON CONFLICT (id) DO NOTHING;

-- Rows inserted with explicit ids do not advance the identity sequences. Move each sequence
-- past the largest id so the API's own inserts never collide; only ever forward, so a re-run
-- leaves a sequence that is already ahead untouched.
DO $$
DECLARE
    tbl       text;
    seq       regclass;
    max_id    bigint;
    last_used bigint;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['services', 'environments', 'deployments'] LOOP
        seq := pg_get_serial_sequence(tbl, 'id')::regclass;
        EXECUTE format('SELECT max(id) FROM %I', tbl) INTO max_id;
        EXECUTE format('SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM %s', seq)
            INTO last_used;
        IF max_id > last_used THEN
            PERFORM setval(seq, max_id);
        END IF;
    END LOOP;
END
$$;

COMMIT;
