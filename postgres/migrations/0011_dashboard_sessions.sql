-- Dashboard sessions, server-side: the browser holds only a random id
-- (stored here hashed), so logging out ends the session for good, and a
-- stolen cookie is worthless once its session is gone. The API token used
-- to log in stays the holder's credential; the session lasts no longer
-- than it does.
CREATE TABLE flows.dashboard_sessions (
    id_hash    bytea PRIMARY KEY,
    subject    text NOT NULL,
    role       text NOT NULL,
    esco       text NOT NULL DEFAULT '',
    token_id   text NOT NULL DEFAULT '', -- the jti of the token that logged in
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_expiry_idx ON flows.dashboard_sessions (expires_at);
