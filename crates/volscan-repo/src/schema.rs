//! The tables of SPEC §3 in diesel's terms, with column types both backends
//! share; `migrations/{sqlite,postgres}` create them.

diesel::table! {
    /// Every volume volscan has seen.
    volumes (name) {
        name -> Text,
        driver -> Text,
        mountpoint -> Text,
        kind -> Text,
        labels -> Text,
        created_at -> Nullable<Timestamp>,
        first_seen_at -> Timestamp,
        last_seen_at -> Timestamp,
        removed_at -> Nullable<Timestamp>,
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
    }
}

diesel::allow_tables_to_appear_in_same_query!(volumes, scan_runs, volume_stats);
