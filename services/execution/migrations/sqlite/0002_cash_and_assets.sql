-- Deposits and withdrawal requests.
CREATE TABLE cash_movements (
    tenant_id       TEXT        NOT NULL,
    id              TEXT        NOT NULL,
    account_id      TEXT        NOT NULL,
    kind            TEXT        NOT NULL CHECK (kind IN ('deposit', 'withdrawal')),
    amount          TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('pending', 'acknowledged', 'settled', 'canceled')),
    run_id          TEXT,
    created_at      TEXT        NOT NULL,
    acknowledged_at TEXT       ,
    settled_at      TEXT       ,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);
CREATE INDEX cash_movements_by_account ON cash_movements (tenant_id, account_id, id);
CREATE INDEX cash_movements_pending ON cash_movements (tenant_id, account_id) WHERE status = 'pending';

-- Operator or feed overrides of asset flags (market data is shared by all tenants).
CREATE TABLE asset_overrides (
    symbol       TEXT        NOT NULL PRIMARY KEY,
    active       BOOLEAN,
    tradable     BOOLEAN,
    fractionable BOOLEAN,
    reason       TEXT        NOT NULL,
    actor        TEXT        NOT NULL,
    updated_at   TEXT        NOT NULL
);
