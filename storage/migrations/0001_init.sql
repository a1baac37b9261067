-- Accounts, boards, tasks and the board history / outbox (DESIGN.md "Data model").
CREATE EXTENSION IF NOT EXISTS citext;

CREATE TABLE users (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email         citext NOT NULL,
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    password_hash text,
    role          text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin', 'bot')),
    team_role     text CHECK (team_role IN ('developer', 'designer', 'tester', 'project_manager')),
    is_active     boolean NOT NULL DEFAULT true,
    profile       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_password_for_people CHECK (role = 'bot' OR password_hash IS NOT NULL)
);
CREATE INDEX idx_users_role ON users (role);
CREATE INDEX idx_users_created_at ON users (created_at);

-- One row per refresh token; rotation links a family so that reuse of a rotated
-- token revokes every token of that login (the whole session).
CREATE TABLE sessions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz,
    user_agent  text,
    ip          inet,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX idx_sessions_user ON sessions (user_id);
CREATE INDEX idx_sessions_family ON sessions (family_id);

CREATE TABLE api_tokens (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    scopes      text[] NOT NULL DEFAULT '{}',
    expires_at  timestamptz,
    revoked_at  timestamptz,
    created_by  uuid REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_api_tokens_user ON api_tokens (user_id);

CREATE TABLE boards (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    owner_id    uuid NOT NULL REFERENCES users (id),
    -- the last seq handed out; incremented in each writing transaction, which
    -- both serialises a board's writes and keeps its history gap-free
    last_seq    bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idx_boards_owner ON boards (owner_id);

CREATE TABLE board_members (
    board_id    uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (board_id, user_id)
);
CREATE INDEX idx_board_members_user ON board_members (user_id);

CREATE TABLE tasks (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    board_id      uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    title         text NOT NULL CHECK (length(title) BETWEEN 1 AND 255),
    description   text,
    status        text NOT NULL DEFAULT 'todo'
                  CHECK (status IN ('todo', 'in_progress', 'review', 'done', 'cancelled')),
    priority      text NOT NULL DEFAULT 'medium'
                  CHECK (priority IN ('low', 'medium', 'high', 'urgent')),
    assignee_id   uuid REFERENCES users (id) ON DELETE SET NULL,
    assigned_role text CHECK (assigned_role IN ('developer', 'designer', 'tester', 'project_manager')),
    creator_id    uuid NOT NULL REFERENCES users (id),
    tags          text[] NOT NULL DEFAULT '{}',
    start_date    timestamptz,
    due_date      timestamptz,
    completed_at  timestamptz,
    recurrence    text,
    epic          text,
    position      double precision NOT NULL DEFAULT 0,
    is_delayed    boolean NOT NULL DEFAULT false,
    deleted_at    timestamptz,
    version       integer NOT NULL DEFAULT 1 CHECK (version > 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT tasks_completed_iff_done CHECK ((status = 'done') = (completed_at IS NOT NULL)),
    CONSTRAINT tasks_due_after_start CHECK (due_date IS NULL OR start_date IS NULL OR due_date >= start_date)
);
-- seed 001's index strategy, scoped by board since every read is per board
CREATE INDEX idx_tasks_board_status_position ON tasks (board_id, status, position) WHERE deleted_at IS NULL;
CREATE INDEX idx_tasks_board_created ON tasks (board_id, created_at, id);
CREATE INDEX idx_tasks_status_priority ON tasks (status, priority);
CREATE INDEX idx_tasks_assignee_status ON tasks (assignee_id, status);
CREATE INDEX idx_tasks_creator ON tasks (creator_id);
CREATE INDEX idx_tasks_due_date ON tasks (due_date) WHERE due_date IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX idx_tasks_active ON tasks (id) WHERE deleted_at IS NULL;

CREATE TABLE task_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id        uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    board_id        uuid NOT NULL REFERENCES boards (id) ON DELETE CASCADE,
    seq             bigint NOT NULL CHECK (seq > 0),
    task_id         uuid NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
    type            text NOT NULL CHECK (type IN ('task.created', 'task.updated', 'task.assigned',
                        'task.status_changed', 'task.deleted', 'task.completed', 'task.delayed')),
    actor_id        uuid REFERENCES users (id) ON DELETE SET NULL,
    -- {"version": n, "changes": {field: {"before": .., "after": ..}}, "task": {...}}
    payload         jsonb NOT NULL,
    correlation_id  text,
    trace_id        text,
    source          text NOT NULL DEFAULT 'taskhub',
    created_at      timestamptz NOT NULL DEFAULT now(),
    published_at    timestamptz,
    CONSTRAINT task_events_board_seq_key UNIQUE (board_id, seq)
);
CREATE INDEX idx_task_events_task_version ON task_events (task_id, ((payload ->> 'version')::int));
CREATE INDEX idx_task_events_unpublished ON task_events (id) WHERE published_at IS NULL;

-- Idempotency of client writes: the first ack of (user, op_id) is kept and replayed.
CREATE TABLE processed_ops (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    op_id       uuid NOT NULL,
    event       text NOT NULL,
    ack         jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, op_id)
);
CREATE INDEX idx_processed_ops_created ON processed_ops (created_at);
