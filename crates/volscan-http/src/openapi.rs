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
                "security": secured, "parameters": [name],
                "responses": with(common.clone(), json!({
                    "202": with(ok("queued, or the active run", schema("Trigger")), json!({ "links": run_links("$response.body#/scan_id") })),
                    "403": error_response("scan_forbidden: the skip pattern matches"),
                    "404": error_response("volume_not_found"),
                })),
            }},
            "/scan/now": { "post": {
                "operationId": "scanAll",
                "summary": "Queue every volume (shares a 60 s cooldown with periodic runs)",
                "security": secured,
                "responses": with(common.clone(), json!({ "202": with(ok("queued", schema("Batch")), json!({ "links": {
                    "GetBatch": { "operationId": "getBatch", "parameters": { "batch_id": "$response.body#/batch_id" } },
                } })) })),
            }},
            "/scans": { "get": {
                "operationId": "listScans",
                "summary": "Runs, newest first",
                "parameters": [
                    query_param("volume", "only this volume", volume_name()),
                    query_param("status", "only this status", json!({ "type": "string", "enum": ["queued", "running", "completed", "failed", "canceled"] })),
                    query_param("limit", "at most this many (1-1000, default 50)", json!({ "type": "integer", "minimum": 1, "maximum": 1000 })),
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
                "summary": "Every known volume with its latest stats and users",
                "parameters": [
                    query_param("sort", "name or size_bytes, then :asc or :desc", json!({ "type": "string", "enum": ["name:asc", "name:desc", "size_bytes:asc", "size_bytes:desc"] })),
                    query_param("removed", "include removed volumes", json!({ "type": "boolean" })),
                ],
                "responses": with(common.clone(), json!({ "200": ok("volumes", json!({ "type": "array", "items": schema("Volume") })) })),
            }},
            "/volumes/{name}": { "get": {
                "operationId": "getVolume",
                "summary": "One volume, its latest stats and last runs", "parameters": [name.clone()],
                "responses": with(common.clone(), json!({ "200": ok("the volume", schema("VolumeDetail")), "404": error_response("volume_not_found") })),
            }},
            "/volumes/{name}/history": { "get": {
                "operationId": "getHistory",
                "summary": "Time series of a volume's stats, oldest first", "parameters": [
                    name,
                    query_param("since", "RFC 3339, inclusive", json!({ "type": "string", "format": "date-time" })),
                    query_param("until", "RFC 3339, exclusive", json!({ "type": "string", "format": "date-time" })),
                    query_param("limit", "the newest this many points (1-10000, default 1000)", json!({ "type": "integer", "minimum": 1, "maximum": 10000 })),
                ],
                "responses": with(common.clone(), json!({ "200": ok("points", schema("History")), "404": error_response("volume_not_found") })),
            }},
            "/scheduler/status": { "get": { "operationId": "schedulerStatus", "summary": "The scheduler's status", "responses": { "200": ok("status", schema("Status")) } } },
            "/scheduler/metrics": { "get": { "operationId": "schedulerMetrics", "summary": "Prometheus text exposition", "responses": { "200": { "description": "metrics", "content": { "text/plain": { "schema": { "type": "string" } } } } } } },
            "/health": { "get": { "operationId": "health", "summary": "Overall health", "responses": { "200": ok("healthy or degraded", schema("Health")), "503": ok("unhealthy", schema("Health")) } } },
            "/health/scheduler": { "get": { "operationId": "schedulerHealth", "summary": "The scheduler's health", "responses": { "200": ok("healthy or degraded", schema("SchedulerHealth")), "503": ok("stopped", schema("SchedulerHealth")) } } },
            "/openapi.json": { "get": { "operationId": "openapi", "summary": "This document", "responses": { "200": ok("OpenAPI 3", json!({ "type": "object" })) } } },
        },
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "object", "required": ["code", "message"], "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } } },
                "Trigger": { "type": "object", "required": ["scan_id", "volume", "status", "deduplicated", "status_url"], "properties": {
                    "scan_id": { "type": "string" }, "volume": { "type": "string" }, "status": { "type": "string" }, "deduplicated": { "type": "boolean" }, "status_url": { "type": "string" } } },
                "Batch": { "type": "object", "required": ["batch_id", "count", "skipped"], "properties": {
                    "batch_id": { "type": "string" }, "count": { "type": "integer" }, "skipped": { "type": "integer" }, "deduplicated": { "type": "integer" } } },
                "BatchStatus": { "type": "object", "required": ["batch_id", "total", "queued", "running", "completed", "failed", "canceled"], "properties": {
                    "batch_id": { "type": "string" }, "total": { "type": "integer" }, "queued": { "type": "integer" }, "running": { "type": "integer" },
                    "completed": { "type": "integer" }, "failed": { "type": "integer" }, "canceled": { "type": "integer" } } },
                "Run": { "type": "object", "required": ["scan_id", "volume_id", "trigger", "status", "progress", "attempt", "queued_at"], "properties": {
                    "scan_id": { "type": "string" }, "volume_id": { "type": "string" }, "batch_id": nullable("string"),
                    "trigger": { "type": "string", "enum": ["schedule", "manual", "bulk", "event"] },
                    "status": { "type": "string", "enum": ["queued", "running", "completed", "failed", "canceled"] },
                    "progress": { "type": "integer", "minimum": 0, "maximum": 100 }, "method": nullable("string"), "attempt": { "type": "integer" },
                    "queued_at": { "type": "string" }, "started_at": nullable("string"), "completed_at": nullable("string"),
                    "error_message": nullable("string"), "estimated_duration": nullable("integer"), "not_before": nullable("string") } },
                "Stat": { "type": "object", "required": ["size_bytes", "error_count", "partial", "scan_method", "duration_ms", "scan_id", "ts"], "properties": {
                    "size_bytes": { "type": "integer" }, "apparent_bytes": nullable("integer"), "file_count": nullable("integer"), "dir_count": nullable("integer"),
                    "error_count": { "type": "integer" }, "partial": { "type": "boolean", "description": "error_count > 0: some entries could not be read, so the totals are a lower bound" }, "scan_method": { "type": "string" }, "duration_ms": { "type": "integer" }, "scan_id": { "type": "string" }, "ts": { "type": "string" } } },
                "Volume": { "type": "object", "required": ["name", "driver", "mountpoint", "kind", "labels", "first_seen_at", "last_seen_at", "containers"], "properties": {
                    "name": { "type": "string" }, "driver": { "type": "string" }, "mountpoint": { "type": "string" }, "kind": { "type": "string", "enum": ["volume", "bind"] },
                    "labels": { "type": "object", "additionalProperties": { "type": "string" } }, "created_at": nullable("string"),
                    "first_seen_at": { "type": "string" }, "last_seen_at": { "type": "string" }, "removed_at": nullable("string"),
                    "latest": { "oneOf": [schema("Stat"), { "type": "null" }] }, "containers": { "type": "array", "items": { "type": "string" } }, "in_use": nullable("boolean") } },
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
