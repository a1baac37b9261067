-- The client a task write came from (ip, user agent), for the audit trail.
ALTER TABLE task_events ADD COLUMN metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
