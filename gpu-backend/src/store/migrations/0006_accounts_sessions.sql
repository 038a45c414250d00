ALTER TABLE users ADD COLUMN disabled_at_ms BIGINT;
ALTER TABLE users ADD COLUMN must_change_password BIGINT NOT NULL DEFAULT 0;
ALTER TABLE token_families ADD COLUMN last_used_at_ms BIGINT;
ALTER TABLE token_families ADD COLUMN ip TEXT;
ALTER TABLE token_families ADD COLUMN user_agent TEXT;
CREATE INDEX token_families_user ON token_families (user_id, created_at_ms);
