-- Evaluation cycles: one pass over accounts, scheduled daily or on demand.
CREATE TABLE cycles (
    tenant_id          TEXT        NOT NULL,
    id                 TEXT        NOT NULL,
    trading_date       TEXT        NOT NULL,
    trigger_kind       TEXT        NOT NULL CHECK (trigger_kind IN ('scheduled', 'on_demand')),
    state              TEXT        NOT NULL CHECK (state IN ('pending', 'running', 'completed', 'failed')),
    dry_run            BOOLEAN     NOT NULL,
    portfolio_id       TEXT,
    -- Scope: the accounts asked for (JSON array; empty for everything).
    account_ids_json   TEXT        NOT NULL,
    shards_total       INTEGER      NOT NULL,
    shards_done        INTEGER      NOT NULL,
    accounts_evaluated INTEGER      NOT NULL DEFAULT 0,
    runs_created       INTEGER      NOT NULL DEFAULT 0,
    errors             INTEGER      NOT NULL DEFAULT 0,
    -- Accounts by flag once completed (JSON object).
    status_counts_json TEXT        NOT NULL DEFAULT '{}',
    error              TEXT        NOT NULL DEFAULT '',
    created_at         TEXT        NOT NULL,
    started_at         TEXT       ,
    completed_at       TEXT       ,
    PRIMARY KEY (tenant_id, id)
);
-- One scheduled cycle per tenant and trading day, however many replicas.
CREATE UNIQUE INDEX cycles_scheduled_once ON cycles (tenant_id, trading_date) WHERE trigger_kind = 'scheduled';

-- A cycle's account ranges, claimed by monitor replicas with a lease.
CREATE TABLE shards (
    tenant_id      TEXT        NOT NULL,
    cycle_id       TEXT        NOT NULL,
    sequence       INTEGER     NOT NULL,
    -- Accounts strictly after / before these ids (NULL: open end).
    after_account  TEXT,
    before_account TEXT,
    status         TEXT        NOT NULL CHECK (status IN ('pending', 'claimed', 'done')),
    lease_owner    TEXT,
    lease_until    TEXT       ,
    attempts       INTEGER     NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, cycle_id, sequence)
);
CREATE INDEX shards_open ON shards (status, tenant_id, cycle_id) WHERE status IN ('pending', 'claimed');

-- Each account's evaluation in a cycle.
CREATE TABLE evaluations (
    tenant_id         TEXT        NOT NULL,
    cycle_id          TEXT        NOT NULL,
    account_id        TEXT        NOT NULL,
    status            TEXT        NOT NULL,
    reason            TEXT        NOT NULL,
    portfolio_id      TEXT,
    portfolio_version INTEGER,
    equity            TEXT        NOT NULL,
    cash              TEXT        NOT NULL,
    max_drift         TEXT        NOT NULL,
    total_drift       TEXT        NOT NULL,
    tickers_json      TEXT        NOT NULL,
    missing_json      TEXT        NOT NULL,
    run_id            TEXT,
    run_type          TEXT,
    run_note          TEXT        NOT NULL,
    evaluated_at      TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, cycle_id, account_id)
);
CREATE INDEX evaluations_by_account ON evaluations (tenant_id, account_id, cycle_id);
CREATE INDEX evaluations_by_status ON evaluations (tenant_id, cycle_id, status, account_id);

CREATE TABLE idempotency_keys (
    tenant_id   TEXT        NOT NULL,
    operation   TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    resource_id TEXT        NOT NULL,
    created_at  TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, operation, key)
);
