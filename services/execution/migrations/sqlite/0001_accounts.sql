-- The account book: cash, positions and restrictions of each account.
CREATE TABLE accounts (
    tenant_id          TEXT        NOT NULL,
    id                 TEXT        NOT NULL,
    status             TEXT        NOT NULL CHECK (status IN ('active', 'closed')),
    cash               TEXT        NOT NULL,
    -- Sorted, comma-separated restriction names set by the platform.
    restrictions       TEXT        NOT NULL DEFAULT '',
    revision           INTEGER      NOT NULL,
    created_at         TEXT        NOT NULL,
    updated_at         TEXT        NOT NULL,
    last_rebalanced_at TEXT       ,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE positions (
    tenant_id    TEXT    NOT NULL,
    account_id   TEXT    NOT NULL,
    symbol       TEXT    NOT NULL,
    quantity     TEXT    NOT NULL,
    average_cost TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, account_id, symbol),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);

CREATE TABLE idempotency_keys (
    tenant_id   TEXT        NOT NULL,
    operation   TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    resource_id TEXT        NOT NULL,
    created_at  TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, operation, key)
);
