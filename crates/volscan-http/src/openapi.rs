//! The OpenAPI 3 document of `/api/v1`, served at `/api/v1/openapi.json`.
//!
//! It is written next to the routes and the JSON types it describes, from
//! the same names (`crate::json`, `ApiError::classify`). Every object schema
//! is closed (`additionalProperties: false`), so the fuzzing test
//! (schemathesis, `tests/it/fuzz.rs`) fails when an answer carries a field
//! the document lacks, or lacks one it requires.

use actix_web::HttpResponse;
use serde_json::{Value, json};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn schema(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

/// Docker's rule for volume names, which the API enforces (`400 invalid_volume_name`).
fn volume_name() -> Value {
    json!({ "type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]+$", "minLength": 2, "maxLength": 255 })
}

fn uuid() -> Value {
    json!({ "type": "string", "format": "uuid" })
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// Links from an answer carrying a run's id to the operations on that run.
fn run_links(scan_id: &str) -> Value {
    json!({
        "GetScan": { "operationId": "getScan", "parameters": { "scan_id": scan_id } },
        "CancelScan": { "operationId": "cancelScan", "parameters": { "scan_id": scan_id } },
    })
}

/// The values of `GET /volumes?sort=`.
fn sort_values() -> Vec<String> {
    ["name", "size_bytes", "delta_24h", "delta_7d", "rate_bytes_per_day"]
        .iter()
        .flat_map(|key| [format!("{key}:asc"), format!("{key}:desc")])
        .collect()
}

/// A trend of a volume or a filesystem.
fn trend() -> Value {
    let names: Vec<&str> = volscan_domain::Trend::ALL.iter().map(|trend| trend.as_str()).collect();
    json!({ "type": "string", "enum": names })
}

/// Links from an answer carrying a volume's name to the reads of that volume.
fn volume_links(name: &str) -> Value {
    json!({
        "GetVolume": { "operationId": "getVolume", "parameters": { "name": name } },
        "GetDirs": { "operationId": "getDirs", "parameters": { "name": name } },
        "GetHistory": { "operationId": "getHistory", "parameters": { "name": name } },
    })
}

/// The `host` query parameter (SPEC §10): `*` for every host where `every`.
fn host_param(every: bool) -> Value {
    let (description, pattern) = if every {
        (
            "a host id for that host's data, * for every host's; absent: this server's host",
            "^(\\*|[A-Za-z0-9][A-Za-z0-9_.-]{0,62})$",
        )
    } else {
        (
            "a host id for that host's data; absent: this server's host",
            "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        )
    };
    query_param("host", description, json!({ "type": "string", "pattern": pattern }))
}

fn nullable(kind: &str) -> Value {
    json!({ "type": [kind, "null"] })
}

/// Makes every object schema closed (`additionalProperties: false`), so a
/// field the handlers send but the document lacks is a conformance failure,
/// and flattens `allOf` compositions first (a closed part would refuse the
/// other part's fields).
fn close_schemas(schemas: &mut serde_json::Map<String, Value>) {
    let originals = schemas.clone();
    for schema in schemas.values_mut() {
        let Some(parts) = schema.get("allOf").and_then(Value::as_array) else { continue };
        let (mut required, mut properties) = (Vec::new(), serde_json::Map::new());
        for part in parts {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(reference) => {
                    let name = reference.trim_start_matches("#/components/schemas/");
                    originals.get(name).cloned().unwrap_or(Value::Null)
                }
                None => part.clone(),
            };
            required.extend(part["required"].as_array().cloned().unwrap_or_default());
            properties.extend(part["properties"].as_object().cloned().unwrap_or_default());
        }
        *schema = json!({ "type": "object", "required": required, "properties": properties });
    }
    for schema in schemas.values_mut() {
        close(schema);
    }
}

fn close(schema: &mut Value) {
    let Some(object) = schema.as_object_mut() else { return };
    if let Some(items) = object.get_mut("items") {
        close(items);
    }
    if let Some(properties) = object.get_mut("properties").and_then(Value::as_object_mut) {
        for property in properties.values_mut() {
            close(property);
        }
        object.insert("additionalProperties".to_owned(), Value::Bool(false));
    }
}

/// The document.
pub fn document() -> Value {
    let mut document = unclosed_document();
    if let Some(schemas) =
        document.pointer_mut("/components/schemas").and_then(Value::as_object_mut)
    {
        close_schemas(schemas);
    }
    document
}

/// The document as written, before `close_schemas`.
fn unclosed_document() -> Value {
    let secured = json!([{ "bearer": [] }, {}]);
    let common = json!({
        "400": error_response("invalid input"),
        "401": error_response("missing or wrong bearer token (when AUTH_TOKEN is set)"),
        "429": error_response("rate limited or queue full; see Retry-After"),
        "503": error_response("database unavailable"),
    });
    let with = |mut responses: Value, extra: Value| {
        if let (Some(map), Some(extra)) = (responses.as_object_mut(), extra.as_object()) {
            for (code, response) in extra {
                map.insert(code.clone(), response.clone());
            }
        }
        responses
    };
    let name = path_param("name", "volume name", volume_name());
    let scan_id = path_param("scan_id", "scan run id", uuid());
    json!({
        "openapi": "3.1.0",
        "info": { "title": "volscan", "version": env!("CARGO_PKG_VERSION"), "description": "Disk usage of Docker volumes over time." },
        "servers": [{ "url": "/api/v1" }],
        "paths": {
            "/volumes/{name}/scan": { "post": {
                "operationId": "triggerScan",
                "summary": "Queue a scan of one volume (idempotent while one is active)",
                "security": secured, "parameters": [name.clone(), host_param(false)],
                "responses": with(common.clone(), json!({
                    "202": with(ok("queued, or the active run", schema("Trigger")), json!({ "links": run_links("$response.body#/scan_id") })),
                    "403": error_response("scan_forbidden: the skip pattern matches"),
                    "404": error_response("volume_not_found, or host_not_found"),
                })),
            }},
            "/scan/now": { "post": {
                "operationId": "scanAll",
                "summary": "Queue every volume (shares a 60 s cooldown with periodic runs)",
                "security": secured, "parameters": [host_param(true)],
                "responses": with(common.clone(), json!({ "202": with(ok("queued", schema("Batch")), json!({ "links": {
                    "GetBatch": { "operationId": "getBatch", "parameters": { "batch_id": "$response.body#/batch_id" } },
                } })), "404": error_response("host_not_found") })),
            }},
            "/scans": { "get": {
                "operationId": "listScans",
                "summary": "Runs, newest first",
                "parameters": [
                    query_param("volume", "only this volume", volume_name()),
                    query_param("status", "only this status", json!({ "type": "string", "enum": ["queued", "running", "completed", "failed", "canceled"] })),
                    query_param("limit", "at most this many (1-1000, default 50)", json!({ "type": "integer", "minimum": 1, "maximum": 1000 })),
                    host_param(true),
                ],
                "responses": with(common.clone(), json!({ "200": ok("runs", json!({ "type": "array", "items": schema("Run") })) })),
            }},
            "/scans/{scan_id}": { "get": {
                "operationId": "getScan",
                "summary": "One run (the status_url of a trigger)", "parameters": [scan_id.clone()],
                "responses": with(common.clone(), json!({ "200": with(ok("the run", schema("Run")), json!({ "links": run_links("$response.body#/scan_id") })), "404": error_response("scan_not_found") })),
            }},
            "/scans/{scan_id}/cancel": { "post": {
                "operationId": "cancelScan",
                "summary": "Cancel a queued or running run", "security": secured, "parameters": [scan_id],
                "responses": with(common.clone(), json!({
                    "200": ok("the canceled run", schema("Run")),
                    "404": error_response("scan_not_found"),
                    "409": error_response("scan_finished"),
                })),
            }},
            "/scan/batches/{batch_id}": { "get": {
                "operationId": "getBatch",
                "summary": "Runs of a bulk or periodic batch by status", "security": secured,
                "parameters": [path_param("batch_id", "batch id", uuid())],
                "responses": with(common.clone(), json!({ "200": ok("counts", schema("BatchStatus")), "404": error_response("batch_not_found") })),
            }},
            "/volumes": { "get": {
                "operationId": "listVolumes",
                "summary": "Every known volume with its latest stats, growth and users",
                "parameters": [
                    query_param("sort", "name, size_bytes, delta_24h, delta_7d or rate_bytes_per_day, then :asc or :desc (default name:asc); volumes whose growth figure is null come last in both directions", json!({ "type": "string", "enum": sort_values() })),
                    query_param("removed", "include removed volumes", json!({ "type": "boolean" })),
                    query_param("unused", "true: only present volumes no container references (in_use false); false: only present volumes some container references; absent: all", json!({ "type": "boolean" })),
                    host_param(true),
                ],
                "responses": with(common.clone(), json!({ "200": with(ok("volumes", json!({ "type": "array", "items": schema("Volume") })), json!({ "links": volume_links("$response.body#/0/name") })) })),
            }},
            "/volumes/{name}": { "get": {
                "operationId": "getVolume",
                "summary": "One volume, its latest stats and last runs", "parameters": [name.clone(), host_param(false)],
                "responses": with(common.clone(), json!({ "200": ok("the volume", schema("VolumeDetail")), "404": error_response("volume_not_found") })),
            }},
            "/volumes/{name}/history": { "get": {
                "operationId": "getHistory",
                "summary": "Time series of a volume's stats, oldest first", "parameters": [
                    name.clone(),
                    query_param("since", "RFC 3339, inclusive", json!({ "type": "string", "format": "date-time" })),
                    query_param("until", "RFC 3339, exclusive", json!({ "type": "string", "format": "date-time" })),
                    query_param("limit", "the newest this many points (1-10000, default 1000)", json!({ "type": "integer", "minimum": 1, "maximum": 10000 })),
                    host_param(false),
                ],
                "responses": with(common.clone(), json!({ "200": ok("points", schema("History")), "404": error_response("volume_not_found") })),
            }},
            "/volumes/{name}/dirs": { "get": {
                "operationId": "getDirs",
                "summary": "The largest directories inside a volume at its newest scan that recorded them, and their change since an earlier one",
                "parameters": [
                    name.clone(),
                    query_param("depth", "1 (default): directories in the volume's root; 2: the ones inside those", json!({ "type": "integer", "enum": [1, 2] })),
                    query_param("compare", "compare with the older scan nearest to this long before the newest", json!({ "type": "string", "enum": ["24h", "7d", "30d"] })),
                    query_param("limit", "at most this many entries, largest first (1-1000, default 100)", json!({ "type": "integer", "minimum": 1, "maximum": 1000 })),
                    host_param(false),
                ],
                "responses": with(common.clone(), json!({ "200": ok("directories; scan_id null when no scan recorded any", schema("Dirs")), "404": error_response("volume_not_found") })),
            }},
            "/filesystems": { "get": {
                "operationId": "listFilesystems",
                "summary": "Filesystems holding present volumes, with their fill forecast; soonest full_at first",
                "parameters": [host_param(false)],
                "responses": with(common.clone(), json!({ "200": ok("filesystems", json!({ "type": "array", "items": schema("Filesystem") })) })),
            }},
            "/summary": { "get": {
                "operationId": "getSummary",
                "summary": "Totals, unused volumes, the largest and fastest growing volumes, filling filesystems and failing scans",
                "parameters": [host_param(false)],
                "responses": with(common.clone(), json!({ "200": ok("summary", schema("Summary")) })),
            }},
            "/scheduler/status": { "get": { "operationId": "schedulerStatus", "summary": "The scheduler's status", "responses": { "200": ok("status", schema("Status")) } } },
            "/scheduler/metrics": { "get": { "operationId": "schedulerMetrics", "summary": "Prometheus text exposition", "responses": { "200": { "description": "metrics", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
            "/health": { "get": { "operationId": "health", "summary": "Overall health", "responses": { "200": ok("healthy or degraded", schema("Health")), "503": ok("unhealthy", schema("Health")) } } },
            "/health/scheduler": { "get": { "operationId": "schedulerHealth", "summary": "The scheduler's health", "responses": { "200": ok("healthy or degraded", schema("SchedulerHealth")), "503": ok("stopped", schema("SchedulerHealth")) } } },
            "/hosts": { "get": {
                "operationId": "listHosts",
                "summary": "Every host sharing the database, with its liveness by the database's clock",
                "responses": with(common.clone(), json!({ "200": ok("hosts", json!({ "type": "array", "items": schema("Host") })) })),
            }},
            "/openapi.json": { "get": { "operationId": "openapi", "summary": "This document", "responses": { "200": ok("OpenAPI 3", json!({ "type": "object" })) } } },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Host": { "type": "object", "required": ["id", "name", "docker_engine_id", "docker_version", "started_at", "last_seen_at", "volscan_version", "clock_skew_ms", "status", "local", "as_of"], "properties": {
                    "id": { "type": "string" }, "name": { "type": "string" }, "docker_engine_id": nullable("string"), "docker_version": nullable("string"),
                    "started_at": { "type": "string" }, "last_seen_at": { "type": "string", "description": "the last heartbeat, by the database's clock (every 15 s)" },
                    "volscan_version": { "type": "string" }, "clock_skew_ms": { "type": ["integer", "null"], "description": "the host's clock minus the database's at its last heartbeat, in ms" },
                    "status": { "type": "string", "enum": ["online", "stale", "offline"], "description": "online when seen in the last 45 s, stale until 5 min, then offline" },
                    "local": { "type": "boolean", "description": "whether this is the host of the server answering" },
                    "as_of": { "type": "string", "description": "the database's time of the read" } } },
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
                "Trigger": { "type": "object", "required": ["scan_id", "volume", "status", "deduplicated", "status_url"], "properties": {
                    "scan_id": { "type": "string" }, "volume": { "type": "string" }, "status": { "type": "string" }, "deduplicated": { "type": "boolean" }, "status_url": { "type": "string" } } },
                "Batch": { "type": "object", "required": ["batch_id", "count", "skipped"], "properties": {
                    "batch_id": { "type": "string" }, "count": { "type": "integer" }, "skipped": { "type": "integer" }, "deduplicated": { "type": "integer" } } },
                "BatchStatus": { "type": "object", "required": ["batch_id", "total", "queued", "running", "completed", "failed", "canceled"], "properties": {
                    "batch_id": { "type": "string" }, "total": { "type": "integer" }, "queued": { "type": "integer" }, "running": { "type": "integer" },
                    "completed": { "type": "integer" }, "failed": { "type": "integer" }, "canceled": { "type": "integer" } } },
                "Run": { "type": "object", "required": ["scan_id", "host", "volume_id", "trigger", "status", "progress", "attempt", "queued_at"], "properties": {
                    "scan_id": { "type": "string" }, "host": { "type": "string", "description": "the host whose workers run it" }, "volume_id": { "type": "string" }, "batch_id": nullable("string"),
                    "trigger": { "type": "string", "enum": ["schedule", "manual", "bulk", "event"] },
                    "status": { "type": "string", "enum": ["queued", "running", "completed", "failed", "canceled"] },
                    "progress": { "type": "integer", "minimum": 0, "maximum": 100 }, "method": nullable("string"), "attempt": { "type": "integer" },
                    "queued_at": { "type": "string" }, "started_at": nullable("string"), "completed_at": nullable("string"),
                    "error_message": nullable("string"), "estimated_duration": nullable("integer"), "not_before": nullable("string") } },
                "Stat": { "type": "object", "required": ["size_bytes", "error_count", "partial", "scan_method", "duration_ms", "scan_id", "ts"], "properties": {
                    "size_bytes": { "type": "integer" }, "apparent_bytes": nullable("integer"), "file_count": nullable("integer"), "dir_count": nullable("integer"),
                    "error_count": { "type": "integer" }, "partial": { "type": "boolean", "description": "error_count > 0: some entries could not be read, so the totals are a lower bound" }, "scan_method": { "type": "string" }, "duration_ms": { "type": "integer" }, "scan_id": { "type": "string" }, "ts": { "type": "string" } } },
                "Volume": { "type": "object", "required": ["host", "name", "driver", "mountpoint", "kind", "labels", "first_seen_at", "last_seen_at", "growth", "containers", "in_use", "last_used_at", "unused_since", "filesystem_id"], "properties": {
                    "host": { "type": "string", "description": "the Docker host it lives on" }, "name": { "type": "string" }, "driver": { "type": "string" }, "mountpoint": { "type": "string" }, "kind": { "type": "string", "enum": ["volume", "bind"] },
                    "labels": { "type": "object", "additionalProperties": { "type": "string" } }, "created_at": nullable("string"),
                    "first_seen_at": { "type": "string" }, "last_seen_at": { "type": "string" }, "removed_at": nullable("string"),
                    "latest": { "oneOf": [schema("Stat"), { "type": "null" }] }, "growth": schema("Growth"),
                    "containers": { "type": "array", "items": { "type": "string" }, "description": "containers that mount it, running or not, as Docker reports them now; empty when Docker does not answer" },
                    "in_use": { "type": ["boolean", "null"], "description": "a container, running or stopped, references it, as of the scheduler's last look; null before the first look" },
                    "last_used_at": { "type": ["string", "null"], "description": "the last time a container was seen referencing it; null when never" },
                    "unused_since": { "type": ["string", "null"], "description": "since when no container has been seen referencing it; null while in use or unknown" },
                    "filesystem_id": { "type": ["string", "null"], "description": "the filesystem holding it at its last scan (GET /filesystems)" } } },
                "Growth": { "type": "object", "required": ["delta_24h", "delta_7d", "delta_30d", "rate_bytes_per_day", "trend", "as_of"], "description": "how the size changed, every figure anchored at as_of (the newest stat)", "properties": {
                    "delta_24h": { "type": ["integer", "null"], "description": "bytes since the newest stat at or before as_of - 24 h; null when there is none" },
                    "delta_7d": nullable("integer"), "delta_30d": nullable("integer"),
                    "rate_bytes_per_day": { "type": ["number", "null"], "description": "least-squares slope over the 7 days before as_of; null with fewer than 3 points or a span under 1 hour" },
                    "trend": trend(), "as_of": nullable("string") } },
                "Filesystem": { "type": "object", "required": ["id", "mount_point", "fs_type", "total_bytes", "avail_bytes", "volume_count", "volumes_bytes", "rate_bytes_per_day", "full_at", "trend", "sampled_at"], "properties": {
                    "id": { "type": "string" }, "mount_point": { "type": "string" }, "fs_type": { "type": "string" },
                    "total_bytes": { "type": "integer" }, "avail_bytes": { "type": "integer" },
                    "volume_count": { "type": "integer", "description": "present volumes on it" }, "volumes_bytes": { "type": "integer", "description": "the sum of their latest sizes" },
                    "rate_bytes_per_day": { "type": ["number", "null"], "description": "growth of used space over the week of samples before sampled_at" },
                    "full_at": { "type": ["string", "null"], "description": "when avail_bytes reaches 0 at that rate; null unless used space rises steadily over enough samples" },
                    "trend": trend(), "sampled_at": { "type": "string", "description": "the newest sample, which every figure dates from" } } },
                "Summary": { "type": "object", "required": ["volume_count", "total_bytes", "unused_count", "reclaimable_bytes", "largest", "fastest_growing", "filesystems_filling", "failing", "last_scan_at", "oldest_scan_at"], "properties": {
                    "volume_count": { "type": "integer", "description": "present volumes" }, "total_bytes": { "type": "integer", "description": "the sum of their latest sizes" },
                    "unused_count": { "type": "integer", "description": "present volumes no container references" }, "reclaimable_bytes": { "type": "integer", "description": "the sum of their latest sizes" },
                    "largest": { "type": "array", "maxItems": 5, "items": { "type": "object", "required": ["name", "size_bytes", "scanned_at"], "properties": {
                        "name": { "type": "string" }, "size_bytes": { "type": "integer" }, "scanned_at": { "type": "string" } } } },
                    "fastest_growing": { "type": "array", "maxItems": 5, "items": { "type": "object", "required": ["name", "rate_bytes_per_day", "delta_24h", "trend", "as_of"], "properties": {
                        "name": { "type": "string" }, "rate_bytes_per_day": { "type": "number", "exclusiveMinimum": 0 }, "delta_24h": nullable("integer"), "trend": trend(), "as_of": { "type": "string" } } } },
                    "filesystems_filling": { "type": "array", "items": schema("Filesystem") },
                    "failing": { "type": "array", "description": "present volumes whose last measurement failed (among the 1,000 newest failed runs), most recent first", "items": { "type": "object", "required": ["name", "scan_id", "error_message", "completed_at"], "properties": {
                        "name": { "type": "string" }, "scan_id": { "type": "string" }, "error_message": nullable("string"), "completed_at": nullable("string") } } },
                    "last_scan_at": { "type": ["string", "null"], "description": "the newest of the latest scans summed in total_bytes" },
                    "oldest_scan_at": { "type": ["string", "null"], "description": "the oldest of them" } } },
                "Dirs": { "type": "object", "required": ["volume", "scan_id", "ts", "compare_ts", "entries"], "properties": {
                    "volume": { "type": "string" }, "scan_id": nullable("string"), "ts": nullable("string"), "compare_ts": nullable("string"),
                    "entries": { "type": "array", "items": schema("DirEntry") } } },
                "DirEntry": { "type": "object", "required": ["path", "size_bytes", "file_count", "delta_bytes"], "properties": {
                    "path": { "type": "string", "description": "relative to the volume root, components joined by /; bytes that are not printable UTF-8 as \\xNN, a backslash as \\\\; (other) sums the rest" },
                    "size_bytes": { "type": "integer" }, "file_count": nullable("integer"),
                    "delta_bytes": { "type": ["integer", "null"], "description": "size_bytes minus the compared scan's size of the same path; null without one or when the path is absent there" } } },
                "VolumeDetail": { "allOf": [schema("Volume"), { "type": "object", "required": ["runs"], "properties": { "runs": { "type": "array", "items": schema("Run") } } }] },
                "History": { "type": "object", "required": ["volume", "points"], "properties": { "volume": { "type": "string" }, "points": { "type": "array", "items": schema("Stat") } } },
                "Status": { "type": "object", "required": ["running", "active_scans", "queue_depth", "queue_capacity", "worker_count", "total_completed", "total_failed", "total_canceled"], "properties": {
                    "running": { "type": "boolean" }, "last_run_at": nullable("string"), "next_run_at": nullable("string"), "active_scans": { "type": "integer" },
                    "queue_depth": { "type": "integer" }, "queue_capacity": { "type": "integer" }, "worker_count": { "type": "integer" },
                    "total_completed": { "type": "integer" }, "total_failed": { "type": "integer" }, "total_canceled": { "type": "integer" } } },
                "Component": { "type": "object", "required": ["status"], "properties": { "status": { "type": "string", "enum": ["healthy", "degraded", "unhealthy"] }, "message": { "type": "string" } } },
                "Health": { "type": "object", "required": ["status", "components"], "properties": {
                    "status": { "type": "string", "enum": ["healthy", "degraded", "unhealthy"] },
                    "components": { "type": "object", "required": ["database", "docker", "scheduler"], "properties": {
                        "database": schema("Component"), "docker": schema("Component"), "scheduler": schema("Component") } } } },
                "SchedulerHealth": { "allOf": [schema("Status"), { "type": "object", "required": ["status", "reasons"], "properties": {
                    "status": { "type": "string", "enum": ["healthy", "degraded", "stopped"] }, "reasons": { "type": "array", "items": { "type": "string" } } } }] },
            },
        },
    })
}

/// `GET /openapi.json`.
pub(crate) async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Calls `visit` on every JSON object inside `value`, `value` included.
    fn walk(value: &Value, visit: &mut impl FnMut(&serde_json::Map<String, Value>)) {
        match value {
            Value::Object(object) => {
                visit(object);
                object.values().for_each(|inner| walk(inner, visit));
            }
            Value::Array(items) => items.iter().for_each(|inner| walk(inner, visit)),
            _ => {}
        }
    }

    #[test]
    fn references_resolve_operation_ids_are_unique_and_objects_are_closed() {
        let document = document();
        let schemas = document["components"]["schemas"].as_object().unwrap();
        let mut operations = HashSet::new();
        walk(&document, &mut |object| {
            if let Some(reference) = object.get("$ref").and_then(Value::as_str) {
                let name = reference.trim_start_matches("#/components/schemas/");
                assert!(schemas.contains_key(name), "{reference} does not resolve");
            }
            if let Some(id) = object.get("operationId").and_then(Value::as_str)
                && object.contains_key("responses")
            {
                assert!(operations.insert(id.to_owned()), "{id} twice");
            }
        });
        for (name, schema) in schemas {
            walk(schema, &mut |object| {
                if object.contains_key("properties") {
                    assert_eq!(
                        object.get("additionalProperties"),
                        Some(&Value::Bool(false)),
                        "{name}"
                    );
                    for required in object["required"].as_array().into_iter().flatten() {
                        let field = required.as_str().unwrap();
                        assert!(object["properties"].get(field).is_some(), "{name}.{field}");
                    }
                }
            });
        }
        for id in ["listFilesystems", "getSummary", "getDirs", "listVolumes"] {
            assert!(operations.contains(id), "{id}");
        }
    }
}
