CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    roles TEXT NOT NULL,
    email_sealed BYTEA,
    mfa_secret_sealed BYTEA,
    mfa_enabled BIGINT NOT NULL DEFAULT 0,
    mfa_last_step BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE TABLE password_history (
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    password_hash TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX password_history_user ON password_history (user_id, created_at_ms);
CREATE TABLE token_families (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT
);
CREATE TABLE refresh_tokens (
    jti TEXT PRIMARY KEY,
    family_id TEXT NOT NULL REFERENCES token_families(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    issued_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    used_at_ms BIGINT
);
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT NOT NULL
);
CREATE INDEX revoked_tokens_revoked_at ON revoked_tokens (revoked_at_ms);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    digest TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT,
    last_used_at_ms BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_id);
CREATE TABLE audit_events (
    position BIGINT PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    event_type TEXT NOT NULL,
    principal TEXT,
    ip TEXT,
    occurred_at_ms BIGINT NOT NULL,
    event_json TEXT NOT NULL,
    chain_hash TEXT NOT NULL,
    ingested_at_ms BIGINT NOT NULL
);
CREATE INDEX audit_events_type_time ON audit_events (event_type, occurred_at_ms);
CREATE INDEX audit_events_principal ON audit_events (principal);
CREATE INDEX audit_events_ip ON audit_events (ip);
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    last_position BIGINT NOT NULL,
    chain_hash TEXT NOT NULL
);
CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit events are append-only'; END $$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
