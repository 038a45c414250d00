ALTER TABLE users ADD COLUMN email_index TEXT;
CREATE INDEX users_email_index ON users (email_index);
