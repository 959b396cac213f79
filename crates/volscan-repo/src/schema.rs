//! The tables of SPEC §3 in diesel's terms, with column types both backends
//! share; `migrations/{sqlite,postgres}` create them.

diesel::table! {
    /// Every volume volscan has seen.
    volumes (host_id, name) {
        host_id -> Text,
        name -> Text,
        driver -> Text,
        mountpoint -> Text,
        kind -> Text,
        labels -> Text,
        created_at -> Nullable<Timestamp>,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
        removed_at -> Nullable<Timestamp>,
        in_use -> Nullable<Bool>,
        last_used_at -> Nullable<Timestamp>,
        unused_since -> Nullable<Timestamp>,
        filesystem_id -> Nullable<Text>,
    }
}

diesel::table! {
    /// The durable scan queue and its history.
    scan_runs (scan_id) {
        scan_id -> Text,
        volume_id -> Text,
        batch_id -> Nullable<Text>,
        trigger -> Text,
        status -> Text,
        progress -> SmallInt,
        method -> Nullable<Text>,
        attempt -> Integer,
        queued_at -> Timestamp,
        started_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        error_message -> Nullable<Text>,
        estimated_duration -> Nullable<BigInt>,
        not_before -> Nullable<Timestamp>,
        host_id -> Text,
    }
}

diesel::table! {
    /// One measured usage per completed run.
    volume_stats (id) {
        id -> BigInt,
        volume_name -> Text,
        size_bytes -> BigInt,
        apparent_bytes -> Nullable<BigInt>,
        file_count -> Nullable<BigInt>,
        dir_count -> Nullable<BigInt>,
        error_count -> BigInt,
        scan_method -> Text,
        duration_ms -> BigInt,
        scan_id -> Text,
        ts -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        host_id -> Text,
    }
}

diesel::table! {
    /// The capacity of a filesystem holding volumes, sampled after scans.
    filesystem_samples (id) {
        id -> BigInt,
        filesystem_id -> Text,
        mount_point -> Text,
        fs_type -> Text,
        total_bytes -> BigInt,
        avail_bytes -> BigInt,
        ts -> Timestamp,
        host_id -> Text,
    }
}

diesel::table! {
    /// The largest directories at depth 1 and 2 of a volume, per completed scan.
    volume_dirs (id) {
        id -> BigInt,
        scan_id -> Text,
        volume_name -> Text,
        depth -> SmallInt,
        path -> Text,
        size_bytes -> BigInt,
        file_count -> Nullable<BigInt>,
        ts -> Timestamp,
        host_id -> Text,
    }
}

diesel::table! {
    /// The Docker hosts sharing the database.
    hosts (id) {
        id -> Text,
        name -> Text,
        docker_engine_id -> Nullable<Text>,
        docker_version -> Nullable<Text>,
        started_at -> Timestamp,
        last_seen_at -> Timestamp,
        volscan_version -> Text,
        clock_skew_ms -> Nullable<BigInt>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    hosts,
    volumes,
    scan_runs,
    volume_stats,
    filesystem_samples,
    volume_dirs
);
