CREATE TABLE revocations (
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    issued_before_ms BIGINT,
    expires_at_ms BIGINT NOT NULL,
    revoked_at_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, target)
);
CREATE INDEX revocations_revoked_at ON revocations (revoked_at_ms);
INSERT INTO revocations (kind, target, issued_before_ms, expires_at_ms, revoked_at_ms)
    SELECT 'jti', jti, NULL, expires_at_ms, revoked_at_ms FROM revoked_tokens;
DROP TABLE revoked_tokens;
