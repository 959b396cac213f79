DROP TABLE volume_dirs;
DROP TABLE filesystem_samples;
ALTER TABLE volumes DROP COLUMN filesystem_id;
ALTER TABLE volumes DROP COLUMN unused_since;
ALTER TABLE volumes DROP COLUMN last_used_at;
ALTER TABLE volumes DROP COLUMN in_use;
