-- Chat (the chat issue): channels, DMs, members, messages, read markers; and the
-- triage items of seed 004, which the triage bot files.

CREATE TABLE chat_channels (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind              text NOT NULL CHECK (kind IN ('channel', 'dm')),
    -- a channel may belong to a board: /task in it files tasks there
    board_id          uuid REFERENCES boards (id) ON DELETE CASCADE,
    -- the one channel every board has; its members are the board's members
    is_board_channel  boolean NOT NULL DEFAULT false,
    name              text CHECK (name IS NULL OR length(name) BETWEEN 1 AND 80),
    -- a DM's two users as "smaller:larger", so a pair has exactly one DM
    dm_key            text UNIQUE,
    created_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    -- the last message seq handed out; taking the next one locks the channel row,
    -- which orders a channel's messages and keeps its seqs gap-free
    last_seq          bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((kind = 'dm') = (dm_key IS NOT NULL)),
    CHECK ((kind = 'dm') = (name IS NULL)),
    CHECK (kind = 'channel' OR board_id IS NULL),
    CHECK (NOT is_board_channel OR board_id IS NOT NULL)
);
CREATE UNIQUE INDEX chat_channels_one_per_board ON chat_channels (board_id)
    WHERE is_board_channel;
CREATE INDEX idx_chat_channels_board ON chat_channels (board_id);

-- Members of channels that are not a board's channel (those follow board_members).
CREATE TABLE channel_members (
    channel_id  uuid NOT NULL REFERENCES chat_channels (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX idx_channel_members_user ON channel_members (user_id);

CREATE TABLE chat_messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id      uuid NOT NULL REFERENCES chat_channels (id) ON DELETE CASCADE,
    seq             bigint NOT NULL CHECK (seq > 0),
    sender_id       uuid REFERENCES users (id) ON DELETE SET NULL,
    body            text NOT NULL CHECK (length(body) <= 10000),
    message_type    text NOT NULL DEFAULT 'text'
                        CHECK (message_type IN ('text', 'system', 'file')),
    -- the sender's id for this message: a resend stores nothing twice
    client_msg_id   uuid,
    mentions        uuid[] NOT NULL DEFAULT '{}',
    source          text NOT NULL DEFAULT 'taskhub',
    correlation_id  text,
    edited_at       timestamptz,
    deleted_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chat_messages_channel_seq_key UNIQUE (channel_id, seq),
    CONSTRAINT chat_messages_client_msg_key UNIQUE (sender_id, client_msg_id)
);

-- How far each member has read a channel (unread = later messages of others).
CREATE TABLE channel_reads (
    channel_id     uuid NOT NULL REFERENCES chat_channels (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_read_seq  bigint NOT NULL DEFAULT 0 CHECK (last_read_seq >= 0),
    PRIMARY KEY (channel_id, user_id)
);

-- Every board has its channel, whoever made the board (the API, the demo seed, a script).
CREATE FUNCTION create_board_channel() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chat_channels (kind, board_id, is_board_channel, name, created_by)
    VALUES ('channel', NEW.id, true, 'general', NEW.owner_id);
    RETURN NULL;
END;
$$;

CREATE TRIGGER boards_create_channel
    AFTER INSERT ON boards FOR EACH ROW EXECUTE FUNCTION create_board_channel();

INSERT INTO chat_channels (kind, board_id, is_board_channel, name, created_by)
SELECT 'channel', id, true, 'general', owner_id FROM boards;

CREATE TABLE triage_items (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    board_id     uuid REFERENCES boards (id) ON DELETE CASCADE,
    reporter_id  uuid NOT NULL REFERENCES users (id),
    title        text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description  text NOT NULL DEFAULT '' CHECK (length(description) <= 20000),
    status       text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_review', 'resolved', 'rejected')),
    assigned_to  uuid REFERENCES users (id) ON DELETE SET NULL,
    priority     text NOT NULL DEFAULT 'medium'
                     CHECK (priority IN ('low', 'medium', 'high', 'critical')),
    category     text NOT NULL DEFAULT 'issue' CHECK (length(category) BETWEEN 1 AND 50),
    resolution   text,
    resolved_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('resolved', 'rejected')) = (resolved_at IS NOT NULL))
);
CREATE INDEX idx_triage_board_status ON triage_items (board_id, status, created_at);
CREATE INDEX idx_triage_reporter ON triage_items (reporter_id);
