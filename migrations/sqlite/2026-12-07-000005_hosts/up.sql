-- Docker hosts sharing the database (SPEC §10). SQLite serves one host: one row.
CREATE TABLE hosts (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    docker_engine_id TEXT,
    docker_version TEXT,
    started_at TIMESTAMP NOT NULL,
    last_seen_at TIMESTAMP NOT NULL,
    volscan_version TEXT NOT NULL,
    clock_skew_ms BIGINT
);

-- Volumes, runs, stats, directories and filesystem samples carry their host.
-- '' marks the rows of the single-host schema: the first host to start after
-- this migration adopts them (Repository::touch_host).
-- A volume is (host_id, name); SQLite cannot change a primary key, so the
-- table is rebuilt.
CREATE TABLE volumes_by_host (
    host_id TEXT NOT NULL DEFAULT '',
    name TEXT NOT NULL,
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
    filesystem_id TEXT,
    PRIMARY KEY (host_id, name)
);
INSERT INTO volumes_by_host (host_id, name, driver, mountpoint, kind, labels, created_at,
        first_seen_at, last_seen_at, removed_at, in_use, last_used_at, unused_since, filesystem_id)
    SELECT '', name, driver, mountpoint, kind, labels, created_at, first_seen_at, last_seen_at,
        removed_at, in_use, last_used_at, unused_since, filesystem_id
    FROM volumes;
DROP TABLE volumes;
ALTER TABLE volumes_by_host RENAME TO volumes;

ALTER TABLE scan_runs ADD COLUMN host_id TEXT NOT NULL DEFAULT '';
DROP INDEX scan_runs_one_active_per_volume;
DROP INDEX scan_runs_status_queued_at;
DROP INDEX scan_runs_volume_queued_at;
-- At most one active run per volume of a host.
CREATE UNIQUE INDEX scan_runs_one_active_per_volume
    ON scan_runs (host_id, volume_id) WHERE status IN ('queued', 'running');
-- The claim query: a host's oldest due queued run.
CREATE INDEX scan_runs_host_status_queued_at ON scan_runs (host_id, status, queued_at);
CREATE INDEX scan_runs_host_volume_queued_at ON scan_runs (host_id, volume_id, queued_at);

ALTER TABLE volume_stats ADD COLUMN host_id TEXT NOT NULL DEFAULT '';
DROP INDEX volume_stats_volume_name_ts;
CREATE INDEX volume_stats_host_volume_ts ON volume_stats (host_id, volume_name, ts);

ALTER TABLE filesystem_samples ADD COLUMN host_id TEXT NOT NULL DEFAULT '';
DROP INDEX filesystem_samples_filesystem_id_ts;
CREATE INDEX filesystem_samples_host_filesystem_ts ON filesystem_samples (host_id, filesystem_id, ts);

ALTER TABLE volume_dirs ADD COLUMN host_id TEXT NOT NULL DEFAULT '';
DROP INDEX volume_dirs_volume_name_ts;
CREATE INDEX volume_dirs_host_volume_ts ON volume_dirs (host_id, volume_name, ts);
