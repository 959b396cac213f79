-- Which containers reference a volume (SPEC §8 "unused volumes"), and the filesystem holding it.
ALTER TABLE volumes ADD COLUMN in_use BOOLEAN;
ALTER TABLE volumes ADD COLUMN last_used_at TIMESTAMP;
ALTER TABLE volumes ADD COLUMN unused_since TIMESTAMP;
ALTER TABLE volumes ADD COLUMN filesystem_id TEXT;

-- One row per filesystem per completed scan of a volume on it: capacity history for forecasts.
CREATE TABLE filesystem_samples (
    id BIGSERIAL PRIMARY KEY,
    filesystem_id TEXT NOT NULL,
    mount_point TEXT NOT NULL,
    fs_type TEXT NOT NULL,
    total_bytes BIGINT NOT NULL CHECK (total_bytes >= 0),
    avail_bytes BIGINT NOT NULL CHECK (avail_bytes >= 0),
    ts TIMESTAMP NOT NULL
);

CREATE INDEX filesystem_samples_filesystem_id_ts ON filesystem_samples (filesystem_id, ts);
CREATE INDEX filesystem_samples_ts ON filesystem_samples (ts);

-- The largest directories at depth 1 and 2 of a volume, per completed scan.
CREATE TABLE volume_dirs (
    id BIGSERIAL PRIMARY KEY,
    scan_id TEXT NOT NULL,
    volume_name TEXT NOT NULL,
    depth SMALLINT NOT NULL CHECK (depth BETWEEN 1 AND 2),
    path TEXT NOT NULL,
    size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
    file_count BIGINT CHECK (file_count >= 0),
    ts TIMESTAMP NOT NULL
);

CREATE INDEX volume_dirs_scan_id ON volume_dirs (scan_id);
CREATE INDEX volume_dirs_volume_name_ts ON volume_dirs (volume_name, ts);
CREATE INDEX volume_dirs_ts ON volume_dirs (ts);
