-- An op_id replays its first ack only for the same write: keep a hash of the payload.
ALTER TABLE processed_ops ADD COLUMN fingerprint bytea NOT NULL DEFAULT ''::bytea;
