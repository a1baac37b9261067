-- A notification is pushed to its user's tabs after it is stored; `pushed_at`
-- records that, so a push lost to a crash or a Redis hiccup is sent again.
ALTER TABLE notifications ADD COLUMN pushed_at timestamptz;
UPDATE notifications SET pushed_at = created_at;
CREATE INDEX idx_notifications_unpushed ON notifications (created_at) WHERE pushed_at IS NULL;
