-- The tenant registry: which firms exist and their settings. Changes are
-- recorded in audit_events (resource_type 'tenant').
CREATE TABLE tenants (
    tenant_id        TEXT        PRIMARY KEY,
    display_name     TEXT        NOT NULL,
    monitor_enabled  BOOLEAN     NOT NULL,
    -- "HH:MM" New York time, or '' for the Monitor's default.
    monitor_run_at   TEXT        NOT NULL,
    four_eyes        BOOLEAN     NOT NULL,
    revision         BIGINT      NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    updated_by       TEXT        NOT NULL
);
