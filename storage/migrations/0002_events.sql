-- Notifications, reminders, the audit trail, and a general outbox (the events issue).

-- Wake outbox relays from the writing transaction; delivered only on commit.
CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('taskhub_outbox', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

CREATE TRIGGER task_events_notify_outbox
    AFTER INSERT ON task_events FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();

-- Records for Kafka topics other than task_events (reminders, audit, later chat),
-- written in the transaction that caused them and published by the relay.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    topic           text NOT NULL,
    key             text NOT NULL,
    type            text NOT NULL,
    payload         jsonb NOT NULL,
    correlation_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz
);
CREATE INDEX idx_outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TRIGGER outbox_notify_outbox
    AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();

CREATE TABLE notifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    task_id     uuid REFERENCES tasks (id) ON DELETE CASCADE,
    board_id    uuid REFERENCES boards (id) ON DELETE CASCADE,
    event_id    uuid,
    type        text NOT NULL CHECK (type IN ('task_assigned', 'task_delayed', 'task_completed',
                    'task_status_changed', 'mention', 'reminder', 'system')),
    level       text NOT NULL DEFAULT 'info' CHECK (level IN ('info', 'warning', 'alert')),
    title       text NOT NULL,
    message     text NOT NULL DEFAULT '',
    read_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- a redelivered event never notifies the same person twice
    CONSTRAINT notifications_event_user_key UNIQUE (event_id, user_id)
);
CREATE INDEX idx_notifications_user_unread ON notifications (user_id, created_at DESC)
    WHERE read_at IS NULL;
CREATE INDEX idx_notifications_user_created ON notifications (user_id, created_at DESC, id);

CREATE TABLE reminders (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    task_id     uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    remind_at   timestamptz NOT NULL,
    method      text NOT NULL DEFAULT 'in_app' CHECK (method IN ('in_app', 'email', 'push', 'sms')),
    status      text NOT NULL DEFAULT 'scheduled'
                CHECK (status IN ('scheduled', 'sent', 'failed', 'dismissed')),
    attempts    integer NOT NULL DEFAULT 0,
    last_error  text,
    sent_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT reminders_sent_has_time CHECK ((status = 'sent') = (sent_at IS NOT NULL))
);
CREATE INDEX idx_reminders_due ON reminders (remind_at) WHERE status = 'scheduled';
CREATE INDEX idx_reminders_task ON reminders (task_id);

-- The audit trail of seed 001, in PostgreSQL.
CREATE TABLE event_logs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    type            text NOT NULL,
    actor_id        uuid,
    entity_type     text NOT NULL,
    entity_id       uuid,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    correlation_id  text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_event_logs_type_created ON event_logs (type, created_at DESC);
CREATE INDEX idx_event_logs_actor_created ON event_logs (actor_id, created_at DESC);
CREATE INDEX idx_event_logs_entity ON event_logs (entity_type, entity_id, created_at DESC);
CREATE INDEX idx_event_logs_correlation ON event_logs (correlation_id);
CREATE INDEX idx_event_logs_created ON event_logs (created_at DESC);

-- A recurring task's next occurrence points at the one completed, once.
ALTER TABLE tasks ADD COLUMN recurrence_of uuid REFERENCES tasks (id) ON DELETE SET NULL;
CREATE UNIQUE INDEX idx_tasks_recurrence_of ON tasks (recurrence_of) WHERE recurrence_of IS NOT NULL;
