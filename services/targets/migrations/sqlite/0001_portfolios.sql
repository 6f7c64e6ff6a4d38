-- Model portfolios. Weights and conditions are versioned: a portfolio row
-- points at its current version; every version is immutable.
CREATE TABLE portfolios (
    tenant_id       TEXT        NOT NULL,
    id              TEXT        NOT NULL,
    name            TEXT        NOT NULL,
    description     TEXT        NOT NULL,
    status          TEXT        NOT NULL CHECK (status IN ('active', 'inactive', 'needs_adjustment')),
    status_reason   TEXT        NOT NULL DEFAULT '',
    scope           TEXT        NOT NULL CHECK (scope IN ('enterprise', 'account')),
    account_id      TEXT,
    current_version INTEGER      NOT NULL,
    -- Bumped on every change; the etag.
    revision        INTEGER      NOT NULL,
    created_at      TEXT        NOT NULL,
    updated_at      TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX portfolios_enterprise_name ON portfolios (tenant_id, name) WHERE scope = 'enterprise';
CREATE UNIQUE INDEX portfolios_account_name ON portfolios (tenant_id, account_id, name) WHERE scope = 'account';

CREATE TABLE portfolio_versions (
    tenant_id              TEXT        NOT NULL,
    portfolio_id           TEXT        NOT NULL,
    version                INTEGER      NOT NULL,
    cooldown_days          INTEGER     NOT NULL,
    order_sizing           TEXT        NOT NULL CHECK (order_sizing IN ('notional', 'whole_shares')),
    invest_cash_threshold  TEXT        NOT NULL,
    minimum_order_notional TEXT        NOT NULL,
    investment_minimum     TEXT        NOT NULL,
    created_at             TEXT        NOT NULL,
    created_by             TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, portfolio_id, version),
    FOREIGN KEY (tenant_id, portfolio_id) REFERENCES portfolios (tenant_id, id)
);

CREATE TABLE portfolio_weights (
    tenant_id    TEXT    NOT NULL,
    portfolio_id TEXT    NOT NULL,
    version      INTEGER  NOT NULL,
    position     INTEGER NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('cash', 'asset', 'portfolio')),
    symbol       TEXT,
    sleeve_id    TEXT,
    percent      TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, portfolio_id, version, position),
    FOREIGN KEY (tenant_id, portfolio_id, version) REFERENCES portfolio_versions (tenant_id, portfolio_id, version)
);
CREATE INDEX portfolio_weights_symbol ON portfolio_weights (tenant_id, symbol) WHERE symbol IS NOT NULL;
CREATE INDEX portfolio_weights_sleeve ON portfolio_weights (tenant_id, sleeve_id) WHERE sleeve_id IS NOT NULL;

CREATE TABLE portfolio_conditions (
    tenant_id    TEXT    NOT NULL,
    portfolio_id TEXT    NOT NULL,
    version      INTEGER  NOT NULL,
    position     INTEGER NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('drift_band', 'calendar')),
    sub_kind     TEXT    NOT NULL,
    percent      TEXT   ,
    day          TEXT,
    symbol       TEXT,
    PRIMARY KEY (tenant_id, portfolio_id, version, position),
    FOREIGN KEY (tenant_id, portfolio_id, version) REFERENCES portfolio_versions (tenant_id, portfolio_id, version)
);

-- A create repeated with the same key returns the first result.
CREATE TABLE idempotency_keys (
    tenant_id   TEXT        NOT NULL,
    operation   TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    fingerprint TEXT        NOT NULL,
    resource_id TEXT        NOT NULL,
    created_at  TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, operation, key)
);

-- Who changed what, when, from which request.
CREATE TABLE audit_events (
    tenant_id     TEXT        NOT NULL,
    id            TEXT        NOT NULL,
    resource_type TEXT        NOT NULL,
    resource_id   TEXT        NOT NULL,
    action        TEXT        NOT NULL,
    actor         TEXT        NOT NULL,
    request_id    TEXT,
    occurred_at   TEXT        NOT NULL,
    details_json  TEXT        NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX audit_events_resource ON audit_events (tenant_id, resource_type, resource_id, id);
