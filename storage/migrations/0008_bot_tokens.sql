-- Bot accounts and their API tokens (issue 4.3).
-- A bot remembers the person who made it: besides admins, only they manage its
-- tokens. People have no creator.
ALTER TABLE users ADD COLUMN created_by uuid REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE users ADD CONSTRAINT users_creator_only_for_bots
    CHECK (created_by IS NULL OR role = 'bot');

-- Every token expires, has a name and at least one known scope. (No token was
-- ever issued before this migration, so the NOT NULL holds for existing rows.)
ALTER TABLE api_tokens ALTER COLUMN expires_at SET NOT NULL;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_name_length
    CHECK (length(name) BETWEEN 1 AND 100);
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_known_scopes
    CHECK (cardinality(scopes) > 0
           AND scopes <@ ARRAY['chat:read', 'chat:write', 'tasks:read', 'tasks:write']::text[]);
