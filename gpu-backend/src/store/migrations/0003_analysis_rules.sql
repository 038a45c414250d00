ALTER TABLE jobs ADD COLUMN transient_payload BIGINT NOT NULL DEFAULT 0;
CREATE TABLE rules (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    context TEXT,
    priority BIGINT NOT NULL,
    definition TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
CREATE INDEX rules_owner ON rules (owner, context, priority);
CREATE TABLE analyses (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    job_id TEXT NOT NULL,
    cache_key TEXT NOT NULL,
    reused BIGINT NOT NULL DEFAULT 0,
    image_sha256 TEXT NOT NULL,
    image_type TEXT NOT NULL,
    image_width BIGINT NOT NULL,
    image_height BIGINT NOT NULL,
    image_bytes BIGINT NOT NULL,
    options TEXT NOT NULL,
    sealed_image TEXT,
    feedback TEXT,
    feedback_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX analyses_owner ON analyses (owner, created_at_ms);
CREATE INDEX analyses_cache ON analyses (cache_key, created_at_ms);
CREATE INDEX analyses_job ON analyses (job_id)
