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

ALTER TABLE volumes DROP CONSTRAINT volumes_pkey;
ALTER TABLE volumes DROP COLUMN host_id;
ALTER TABLE volumes ADD PRIMARY KEY (name);

DROP TABLE hosts;
