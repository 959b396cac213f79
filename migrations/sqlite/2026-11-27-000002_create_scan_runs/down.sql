DROP TABLE scan_runs;
