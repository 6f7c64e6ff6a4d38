-- The asset master: every asset the platform trades, loaded by UpsertAssets
-- (source 'platform') or seeded by the simulated market (source 'simulator').
-- Market data is shared by all tenants.
CREATE TABLE assets (
    symbol               TEXT        NOT NULL PRIMARY KEY,
    name                 TEXT        NOT NULL,
    asset_class          TEXT        NOT NULL,
    exchange             TEXT        NOT NULL,
    currency             TEXT        NOT NULL,
    active               BOOLEAN     NOT NULL,
    tradable             BOOLEAN     NOT NULL,
    fractionable         BOOLEAN     NOT NULL,
    marginable           BOOLEAN     NOT NULL,
    min_order_size       TEXT        NOT NULL,
    lot_size             TEXT        NOT NULL,
    average_daily_volume TEXT   ,
    source               TEXT        NOT NULL CHECK (source IN ('platform', 'simulator')),
    updated_at           TEXT        NOT NULL
);

-- The latest uploaded quote of each asset.
CREATE TABLE quotes (
    symbol    TEXT        NOT NULL PRIMARY KEY REFERENCES assets (symbol),
    last      TEXT        NOT NULL,
    bid       TEXT        NOT NULL,
    ask       TEXT        NOT NULL,
    quoted_at TEXT        NOT NULL
);

-- Operators' calendar days: closures and special hours set at run time.
CREATE TABLE calendar_days (
    calendar   TEXT        NOT NULL,
    day        TEXT        NOT NULL,
    kind       TEXT        NOT NULL CHECK (kind IN ('closed', 'session')),
    open_time  TEXT,
    close_time TEXT,
    name       TEXT        NOT NULL,
    actor      TEXT        NOT NULL,
    updated_at TEXT        NOT NULL,
    PRIMARY KEY (calendar, day)
);
