-- One row per completed scan run: the measured usage of one volume.
CREATE TABLE volume_stats (
    id BIGSERIAL PRIMARY KEY,
    volume_name TEXT NOT NULL,
    size_bytes BIGINT NOT NULL CHECK (size_bytes >= 0),
    apparent_bytes BIGINT CHECK (apparent_bytes >= 0),
    file_count BIGINT CHECK (file_count >= 0),
    dir_count BIGINT CHECK (dir_count >= 0),
    error_count BIGINT NOT NULL DEFAULT 0 CHECK (error_count >= 0),
    scan_method TEXT NOT NULL CHECK (scan_method IN ('diskus', 'du', 'native')),
    duration_ms BIGINT NOT NULL CHECK (duration_ms >= 0),
    scan_id TEXT NOT NULL UNIQUE,
    ts TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE INDEX volume_stats_volume_name_ts ON volume_stats (volume_name, ts);
-- Retention deletes by age.
CREATE INDEX volume_stats_ts ON volume_stats (ts);
