-- The durable scan queue: a run exists here as 'queued' before any worker sees it.
CREATE TABLE scan_runs (
    scan_id TEXT PRIMARY KEY NOT NULL,
    volume_id TEXT NOT NULL,
    batch_id TEXT,
    "trigger" TEXT NOT NULL CHECK ("trigger" IN ('schedule', 'manual', 'bulk', 'event')),
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'completed', 'failed', 'canceled')),
    progress SMALLINT NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    method TEXT CHECK (method IN ('diskus', 'du', 'native')),
    attempt INTEGER NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    queued_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    error_message TEXT,
    estimated_duration BIGINT CHECK (estimated_duration >= 0),
    not_before TIMESTAMP
);

-- At most one active run per volume, enforced by the database itself.
CREATE UNIQUE INDEX scan_runs_one_active_per_volume
    ON scan_runs (volume_id) WHERE status IN ('queued', 'running');
-- The claim query: the oldest due queued run.
CREATE INDEX scan_runs_status_queued_at ON scan_runs (status, queued_at);
CREATE INDEX scan_runs_volume_queued_at ON scan_runs (volume_id, queued_at);
CREATE INDEX scan_runs_batch_id ON scan_runs (batch_id) WHERE batch_id IS NOT NULL;
