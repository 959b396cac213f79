-- Back to one host: fails (on the primary key) when two hosts share a volume name.
DROP INDEX volume_dirs_host_volume_ts;
ALTER TABLE volume_dirs DROP COLUMN host_id;
CREATE INDEX volume_dirs_volume_name_ts ON volume_dirs (volume_name, ts);

DROP INDEX filesystem_samples_host_filesystem_ts;
ALTER TABLE filesystem_samples DROP COLUMN host_id;
CREATE INDEX filesystem_samples_filesystem_id_ts ON filesystem_samples (filesystem_id, ts);

DROP INDEX volume_stats_host_volume_ts;
ALTER TABLE volume_stats DROP COLUMN host_id;
CREATE INDEX volume_stats_volume_name_ts ON volume_stats (volume_name, ts);

DROP INDEX scan_runs_one_active_per_volume;
DROP INDEX scan_runs_host_status_queued_at;
DROP INDEX scan_runs_host_volume_queued_at;
ALTER TABLE scan_runs DROP COLUMN host_id;
CREATE UNIQUE INDEX scan_runs_one_active_per_volume
    ON scan_runs (volume_id) WHERE status IN ('queued', 'running');
CREATE INDEX scan_runs_status_queued_at ON scan_runs (status, queued_at);
CREATE INDEX scan_runs_volume_queued_at ON scan_runs (volume_id, queued_at);

CREATE TABLE volumes_single (
    name TEXT PRIMARY KEY NOT NULL,
    driver TEXT NOT NULL,
    mountpoint TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('volume', 'bind')),
    labels TEXT NOT NULL DEFAULT '{}',
    created_at TIMESTAMP,
    first_seen_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    removed_at TIMESTAMP,
    in_use BOOLEAN,
    last_used_at TIMESTAMP,
    unused_since TIMESTAMP,
    filesystem_id TEXT
);
INSERT INTO volumes_single SELECT name, driver, mountpoint, kind, labels, created_at,
        first_seen_at, last_seen_at, removed_at, in_use, last_used_at, unused_since, filesystem_id
    FROM volumes;
DROP TABLE volumes;
ALTER TABLE volumes_single RENAME TO volumes;

DROP TABLE hosts;
