-- 0001_initial: services, environments and the deployments that tie them together.
--
-- Migrations are never edited once applied (sqlx records a checksum of each file, comments
-- included). To change the schema, add a new file with the next number, e.g. 0002_<what>.sql.
-- sqlx runs each migration inside a transaction.

CREATE TABLE services (
    id          integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT services_name_key UNIQUE (name),
    CONSTRAINT services_name_slug
        CHECK (char_length(name) BETWEEN 1 AND 63 AND name ~ '^[a-z][a-z0-9-]*$'),
    CONSTRAINT services_description_length
        CHECK (char_length(description) <= 500)
);

CREATE TABLE environments (
    id         integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT environments_name_key UNIQUE (name),
    CONSTRAINT environments_name_slug
        CHECK (char_length(name) BETWEEN 1 AND 63 AND name ~ '^[a-z][a-z0-9-]*$')
);

-- "Control characters" below are the Unicode Cc range (U+0001..U+001F, U+007F..U+009F; text
-- cannot hold U+0000), the same set as Rust's char::is_control, independent of the locale.
CREATE TABLE deployments (
    id             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service_id     integer     NOT NULL,
    environment_id integer     NOT NULL,
    version        text        NOT NULL,
    status         text        NOT NULL DEFAULT 'pending',
    deployed_by    text        NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz NULL,
    CONSTRAINT deployments_service_id_fkey
        FOREIGN KEY (service_id) REFERENCES services (id) ON DELETE RESTRICT,
    CONSTRAINT deployments_environment_id_fkey
        FOREIGN KEY (environment_id) REFERENCES environments (id) ON DELETE RESTRICT,
    CONSTRAINT deployments_status_valid
        CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'rolled_back')),
    CONSTRAINT deployments_version_valid
        CHECK (char_length(version) BETWEEN 1 AND 64
               AND btrim(version) <> ''
               AND version !~ '[\x01-\x1f\x7f-\x9f]'),
    CONSTRAINT deployments_deployed_by_valid
        CHECK (char_length(deployed_by) BETWEEN 1 AND 254
               AND btrim(deployed_by) <> ''
               AND deployed_by !~ '[\x01-\x1f\x7f-\x9f]'),
    CONSTRAINT deployments_completed_after_start
        CHECK (completed_at IS NULL OR completed_at >= started_at),
    -- Finished deployments (completed, failed, rolled_back) have a completion time;
    -- pending and in_progress ones do not.
    CONSTRAINT deployments_completion_matches_status
        CHECK ((status IN ('completed', 'failed', 'rolled_back')) = (completed_at IS NOT NULL))
);

-- List, no filter: ORDER BY started_at DESC, id DESC LIMIT/OFFSET (and the unfiltered count).
CREATE INDEX deployments_started_at_idx
    ON deployments (started_at DESC, id DESC);
-- List/count filtered by service_id (WHERE service_id = $1 ORDER BY started_at DESC, id DESC); also indexes the FK.
CREATE INDEX deployments_service_started_at_idx
    ON deployments (service_id, started_at DESC, id DESC);
-- List/count filtered by environment_id (WHERE environment_id = $2 ORDER BY ...); also indexes the FK.
CREATE INDEX deployments_environment_started_at_idx
    ON deployments (environment_id, started_at DESC, id DESC);
-- List/count filtered by status (WHERE status = $3 ORDER BY ...), and stats: SELECT status, count(*) ... GROUP BY status.
CREATE INDEX deployments_status_started_at_idx
    ON deployments (status, started_at DESC, id DESC);
