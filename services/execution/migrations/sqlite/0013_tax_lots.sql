-- Tax-aware rebalancing: an account's tax settings (status, lot method,
-- gain budgets, no short-term gains) as JSON, '' the default (taxable,
-- FIFO, no controls); its open tax lots; the lots its sales closed; a run's
-- estimated lots and gains; households; substantially identical securities.
ALTER TABLE accounts ADD COLUMN tax TEXT NOT NULL DEFAULT '';

-- Open lots of a position. A position's shares not covered by its lots
-- (accounts from before lots, or loaded without them) are read as one lot
-- at the average cost, acquired the day the account was created.
CREATE TABLE tax_lots (
    tenant_id  TEXT    NOT NULL,
    account_id TEXT    NOT NULL,
    symbol     TEXT    NOT NULL,
    lot_id     TEXT    NOT NULL,
    quantity   TEXT NOT NULL,
    -- Dollars paid for the quantity, to the cent.
    basis      TEXT NOT NULL,
    -- YYYY-MM-DD.
    acquired   TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, account_id, symbol, lot_id)
);

-- What each allocated sale closed, lot by lot.
CREATE TABLE realized_lots (
    tenant_id  TEXT    NOT NULL,
    account_id TEXT    NOT NULL,
    symbol     TEXT    NOT NULL,
    order_id   TEXT    NOT NULL,
    fill_id    TEXT    NOT NULL,
    lot_id     TEXT    NOT NULL,
    acquired   TEXT    NOT NULL,
    sold_on    TEXT    NOT NULL,
    quantity   TEXT NOT NULL,
    basis      TEXT NOT NULL,
    proceeds   TEXT NOT NULL,
    term       TEXT    NOT NULL CHECK (term IN ('short', 'long')),
    PRIMARY KEY (tenant_id, fill_id, order_id, lot_id)
);
CREATE INDEX realized_lots_by_account ON realized_lots (tenant_id, account_id, sold_on);

-- A run's estimated lots per sale and its gains, as JSON; '' none.
ALTER TABLE runs ADD COLUMN tax_json TEXT NOT NULL DEFAULT '';

-- Households: accounts managed as one portfolio, with one model (weights
-- as JSON) and the symbols placed in tax-sheltered accounts first.
CREATE TABLE households (
    tenant_id    TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    weights_json TEXT    NOT NULL,
    -- Comma-separated, most tax-inefficient first.
    inefficient  TEXT    NOT NULL,
    revision     INTEGER NOT NULL,
    created_at   TEXT    NOT NULL,
    updated_at   TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE accounts ADD COLUMN household_id TEXT;
CREATE INDEX accounts_by_household ON accounts (tenant_id, household_id);

-- Substantially identical securities per tenant (the wash-sale guard).
CREATE TABLE identical_securities (
    tenant_id TEXT    NOT NULL,
    symbol    TEXT    NOT NULL,
    group_no  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, symbol)
);

-- Splits applied to the book (positions and lots scaled by new/old).
CREATE TABLE splits (
    tenant_id    TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    symbol       TEXT    NOT NULL,
    new_shares   TEXT    NOT NULL,
    old_shares   TEXT    NOT NULL,
    effective_on TEXT    NOT NULL,
    accounts     INTEGER NOT NULL,
    created_at   TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
