-- The event outbox: every change of the objects below is recorded by a
-- trigger in the transaction that makes it, so no code path can change one
-- without its event. `seq` (the public id) is given after commit by the
-- event sequencer, one at a time, so readers see ids in commit order with no
-- gap to fill in later.
CREATE TABLE events (
    id              INTEGER     PRIMARY KEY AUTOINCREMENT,
    seq             INTEGER     UNIQUE,
    tenant_id       TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    object_id       TEXT        NOT NULL,
    account_id      TEXT        NOT NULL DEFAULT '',
    status          TEXT        NOT NULL,
    previous_status TEXT        NOT NULL DEFAULT '',
    parent_id       TEXT        NOT NULL DEFAULT '',
    detail          TEXT        NOT NULL DEFAULT '',
    source          TEXT        NOT NULL,
    -- The id the event had in the service that recorded it (gathered events).
    source_seq      INTEGER,
    -- NULL: the change carries no time of its own; the sequencer's clock.
    occurred_at     TEXT,
    sequenced_at    TEXT
);
CREATE INDEX events_by_tenant ON events (tenant_id, seq);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE INDEX events_by_age ON events (sequenced_at);
CREATE UNIQUE INDEX events_from_source ON events (source, source_seq) WHERE source_seq IS NOT NULL;

CREATE TRIGGER portfolios_created AFTER INSERT ON portfolios BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_PORTFOLIO_CREATED', NEW.id, COALESCE(NEW.account_id, ''), 'PORTFOLIO_STATUS_' || upper(NEW.status), '', '', NEW.name, 'target', NEW.created_at);
END;
CREATE TRIGGER portfolios_changed AFTER UPDATE ON portfolios WHEN NEW.status IS NOT OLD.status BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_PORTFOLIO_STATUS_CHANGED', NEW.id, COALESCE(NEW.account_id, ''), 'PORTFOLIO_STATUS_' || upper(NEW.status), 'PORTFOLIO_STATUS_' || upper(OLD.status), '', NEW.status_reason, 'target', NEW.updated_at);
END;
CREATE TRIGGER portfolios_updated AFTER UPDATE ON portfolios WHEN NEW.status = OLD.status AND NEW.revision <> OLD.revision BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_PORTFOLIO_UPDATED', NEW.id, COALESCE(NEW.account_id, ''), 'PORTFOLIO_STATUS_' || upper(NEW.status), 'PORTFOLIO_STATUS_' || upper(OLD.status), '', NEW.name, 'target', NEW.updated_at);
END;

CREATE TRIGGER assignments_created AFTER INSERT ON assignments BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_ASSIGNMENT_CREATED', NEW.id, NEW.account_id, 'ASSIGNMENT_STATUS_' || upper(NEW.status), '', COALESCE(NEW.portfolio_id, ''), NEW.approval_mode || CASE WHEN NEW.rebalancing_enabled THEN ' rebalancing on' ELSE ' rebalancing off' END, 'target', NEW.created_at);
END;
CREATE TRIGGER assignments_changed AFTER UPDATE ON assignments WHEN NEW.revision <> OLD.revision BEGIN
    INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
    VALUES (NEW.tenant_id, 'EVENT_TYPE_ASSIGNMENT_CHANGED', NEW.id, NEW.account_id, 'ASSIGNMENT_STATUS_' || upper(NEW.status), 'ASSIGNMENT_STATUS_' || upper(OLD.status), COALESCE(NEW.portfolio_id, ''), NEW.approval_mode || CASE WHEN NEW.rebalancing_enabled THEN ' rebalancing on' ELSE ' rebalancing off' END, 'target', NEW.updated_at);
END;

