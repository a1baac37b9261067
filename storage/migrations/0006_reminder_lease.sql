-- An email/push/SMS reminder is sent outside any transaction: while a scheduler
-- sends it, the row carries a lease that other schedulers respect; a lease that
-- ran out (the scheduler died mid-send) makes the reminder due again.
ALTER TABLE reminders ADD COLUMN lease_until timestamptz;
