-- Every volume (or allow-listed bind mount) volscan has seen; never deleted, so history stays.
CREATE TABLE volumes (
    name TEXT PRIMARY KEY NOT NULL,
    driver TEXT NOT NULL,
    mountpoint TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('volume', 'bind')),
    labels TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP,
    first_seen_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    removed_at TIMESTAMP
);
