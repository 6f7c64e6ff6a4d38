-- Runs: a set of orders bringing one account toward its target.
CREATE TABLE runs (
    tenant_id              TEXT        NOT NULL,
    id                     TEXT        NOT NULL,
    account_id             TEXT        NOT NULL,
    kind                   TEXT        NOT NULL CHECK (kind IN ('full_rebalance', 'invest_cash', 'liquidation')),
    status                 TEXT        NOT NULL,
    initiated_from         TEXT        NOT NULL,
    reason                 TEXT        NOT NULL,
    amount                 TEXT   ,
    portfolio_id           TEXT,
    portfolio_version      INTEGER,
    approval_mode          TEXT        NOT NULL,
    batch_id               TEXT,
    cash_movement_id       TEXT,
    -- The worker's transmission that turned the run's orders into block orders.
    transmission_id        TEXT,
    cancel_requested       BOOLEAN     NOT NULL DEFAULT FALSE,
    equity                 TEXT        NOT NULL,
    cash_before            TEXT        NOT NULL,
    minimum_order_notional TEXT        NOT NULL,
    -- Target weights, execution algorithm, drift, skipped orders and edits, as JSON documents.
    weights_json           TEXT        NOT NULL,
    algorithm_json         TEXT        NOT NULL,
    drift_json             TEXT        NOT NULL,
    skipped_json           TEXT        NOT NULL,
    adjustments_json       TEXT        NOT NULL,
    approved_by            TEXT,
    revision               INTEGER      NOT NULL,
    created_at             TEXT        NOT NULL,
    updated_at             TEXT        NOT NULL,
    approved_at            TEXT       ,
    started_at             TEXT       ,
    completed_at           TEXT       ,
    canceled_at            TEXT       ,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
-- One run per account that has not ended.
CREATE UNIQUE INDEX runs_one_open_per_account ON runs (tenant_id, account_id)
    WHERE status IN ('proposed', 'queued', 'in_progress');
CREATE INDEX runs_by_account ON runs (tenant_id, account_id, id);
CREATE INDEX runs_by_batch ON runs (tenant_id, batch_id, id) WHERE batch_id IS NOT NULL;
CREATE INDEX runs_queued ON runs (status, tenant_id, id) WHERE status = 'queued';
CREATE INDEX runs_in_progress ON runs (status, tenant_id, transmission_id) WHERE status = 'in_progress';

-- Orders of an account within a run.
CREATE TABLE orders (
    tenant_id        TEXT        NOT NULL,
    id               TEXT        NOT NULL,
    run_id           TEXT        NOT NULL,
    account_id       TEXT        NOT NULL,
    position         INTEGER     NOT NULL,
    symbol           TEXT        NOT NULL,
    side             TEXT        NOT NULL CHECK (side IN ('buy', 'sell')),
    -- Shares asked for: whole shares, or the notional's estimate until the block sizes it.
    quantity         TEXT        NOT NULL,
    notional         TEXT   ,
    whole_shares     BOOLEAN     NOT NULL,
    estimated_price  TEXT        NOT NULL,
    status           TEXT        NOT NULL,
    filled_quantity  TEXT        NOT NULL,
    filled_notional  TEXT        NOT NULL,
    client_order_id  TEXT        NOT NULL,
    block_order_id   TEXT,
    excluded         BOOLEAN     NOT NULL,
    reason           TEXT        NOT NULL,
    created_at       TEXT        NOT NULL,
    updated_at       TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id)
);
CREATE INDEX orders_by_run ON orders (tenant_id, run_id, position);
CREATE INDEX orders_by_block ON orders (tenant_id, block_order_id) WHERE block_order_id IS NOT NULL;
CREATE INDEX orders_by_account ON orders (tenant_id, account_id, id);
