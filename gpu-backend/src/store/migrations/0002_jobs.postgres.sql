CREATE TABLE jobs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    owner TEXT,
    partition_key TEXT,
    idempotency_key TEXT UNIQUE,
    priority BIGINT NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    payload TEXT NOT NULL,
    result TEXT,
    error TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    max_attempts BIGINT NOT NULL,
    run_at_ms BIGINT NOT NULL,
    locked_by TEXT,
    locked_until_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT
);
CREATE INDEX jobs_ready ON jobs (state, kind, priority, seq);
CREATE INDEX jobs_partition ON jobs (partition_key, state, seq);
CREATE INDEX jobs_owner ON jobs (owner, kind, seq);
CREATE INDEX jobs_lease ON jobs (state, locked_until_ms);
CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    kinds TEXT NOT NULL,
    device TEXT NOT NULL,
    state TEXT NOT NULL,
    requested_state TEXT,
    jobs_in_hand BIGINT NOT NULL DEFAULT 0,
    jobs_done BIGINT NOT NULL DEFAULT 0,
    jobs_failed BIGINT NOT NULL DEFAULT 0,
    started_at_ms BIGINT NOT NULL,
    heartbeat_at_ms BIGINT NOT NULL
);
CREATE TABLE stream_states (
    stream_key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
