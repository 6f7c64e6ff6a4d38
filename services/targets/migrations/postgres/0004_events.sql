-- The event outbox: every change of the objects below is recorded by a
-- trigger in the transaction that makes it, so no code path can change one
-- without its event. `seq` (the public id) is given after commit by the
-- event sequencer, one at a time, so readers see ids in commit order with no
-- gap to fill in later.
CREATE TABLE events (
    id              BIGSERIAL   PRIMARY KEY,
    seq             BIGINT      UNIQUE,
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
    source_seq      BIGINT,
    -- NULL: the change carries no time of its own; the sequencer's clock.
    occurred_at     TIMESTAMPTZ,
    sequenced_at    TIMESTAMPTZ
);
CREATE INDEX events_by_tenant ON events (tenant_id, seq);
CREATE INDEX events_unsequenced ON events (id) WHERE seq IS NULL;
CREATE INDEX events_by_age ON events (sequenced_at);
CREATE UNIQUE INDEX events_from_source ON events (source, source_seq) WHERE source_seq IS NOT NULL;

CREATE FUNCTION record_portfolio_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
        VALUES (NEW.tenant_id, 'EVENT_TYPE_PORTFOLIO_CREATED', NEW.id, COALESCE(NEW.account_id, ''), 'PORTFOLIO_STATUS_' || upper(NEW.status), '', '', NEW.name, 'target', NEW.created_at);
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
        VALUES (NEW.tenant_id, 'EVENT_TYPE_PORTFOLIO_STATUS_CHANGED', NEW.id, COALESCE(NEW.account_id, ''), 'PORTFOLIO_STATUS_' || upper(NEW.status), 'PORTFOLIO_STATUS_' || upper(OLD.status), '', NEW.status_reason, 'target', NEW.updated_at);
    ELSIF NEW.status = OLD.status AND NEW.revision <> OLD.revision THEN
        INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
        VALUES (NEW.tenant_id, 'EVENT_TYPE_PORTFOLIO_UPDATED', NEW.id, COALESCE(NEW.account_id, ''), 'PORTFOLIO_STATUS_' || upper(NEW.status), 'PORTFOLIO_STATUS_' || upper(OLD.status), '', NEW.name, 'target', NEW.updated_at);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER portfolios_events AFTER INSERT OR UPDATE ON portfolios
    FOR EACH ROW EXECUTE FUNCTION record_portfolio_event();

CREATE FUNCTION record_assignment_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
        VALUES (NEW.tenant_id, 'EVENT_TYPE_ASSIGNMENT_CREATED', NEW.id, NEW.account_id, 'ASSIGNMENT_STATUS_' || upper(NEW.status), '', COALESCE(NEW.portfolio_id, ''), NEW.approval_mode || CASE WHEN NEW.rebalancing_enabled THEN ' rebalancing on' ELSE ' rebalancing off' END, 'target', NEW.created_at);
    ELSIF NEW.revision <> OLD.revision THEN
        INSERT INTO events (tenant_id, event_type, object_id, account_id, status, previous_status, parent_id, detail, source, occurred_at)
        VALUES (NEW.tenant_id, 'EVENT_TYPE_ASSIGNMENT_CHANGED', NEW.id, NEW.account_id, 'ASSIGNMENT_STATUS_' || upper(NEW.status), 'ASSIGNMENT_STATUS_' || upper(OLD.status), COALESCE(NEW.portfolio_id, ''), NEW.approval_mode || CASE WHEN NEW.rebalancing_enabled THEN ' rebalancing on' ELSE ' rebalancing off' END, 'target', NEW.updated_at);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER assignments_events AFTER INSERT OR UPDATE ON assignments
    FOR EACH ROW EXECUTE FUNCTION record_assignment_event();

