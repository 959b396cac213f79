DROP TABLE volume_stats;
