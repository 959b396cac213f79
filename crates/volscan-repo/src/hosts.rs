//! Queries on `hosts`: a host's start-up and heartbeat, written with the
//! database's clock in one statement (so a heartbeat costs one round trip),
//! the adoption of single-host rows by the first host to start, and the
//! list of hosts with the database's time of the read.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamp as SqlTimestamp};
use time::PrimitiveDateTime;
use volscan_domain::{Host, HostInfo, Timestamp};

use crate::connection::AnyConnection;
use crate::retry::TxError;
use crate::rows::{from_db_time, parse, to_db_time};
use crate::schema::{filesystem_samples, scan_runs, volume_dirs, volume_stats, volumes};

/// The host id the migration to many hosts gave every existing row.
const UNASSIGNED: &str = "";

#[derive(QueryableByName)]
struct HostRow {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Text>)]
    docker_engine_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    docker_version: Option<String>,
    #[diesel(sql_type = SqlTimestamp)]
    started_at: PrimitiveDateTime,
    #[diesel(sql_type = SqlTimestamp)]
    last_seen_at: PrimitiveDateTime,
    #[diesel(sql_type = Text)]
    volscan_version: String,
    #[diesel(sql_type = Nullable<BigInt>)]
    clock_skew_ms: Option<i64>,
    #[diesel(sql_type = SqlTimestamp)]
    read_at: PrimitiveDateTime,
}

impl TryFrom<HostRow> for Host {
    type Error = volscan_domain::RepoError;

    fn try_from(row: HostRow) -> Result<Self, Self::Error> {
        Ok(Host {
            info: HostInfo {
                id: parse("host id", &row.id)?,
                name: row.name,
                docker_engine_id: row.docker_engine_id,
                docker_version: row.docker_version,
                volscan_version: row.volscan_version,
            },
            started_at: from_db_time(row.started_at),
            last_seen_at: from_db_time(row.last_seen_at),
            clock_skew_ms: row.clock_skew_ms,
            read_at: from_db_time(row.read_at),
        })
    }
}

/// The database's clock as a UTC `TIMESTAMP`, per backend.
fn db_now(sqlite: bool) -> &'static str {
    if sqlite { "strftime('%Y-%m-%d %H:%M:%f', 'now')" } else { "LOCALTIMESTAMP" }
}

/// The host's clock (`$6`) minus the database's, in milliseconds, per backend.
fn skew_ms(sqlite: bool) -> &'static str {
    if sqlite {
        "CAST(ROUND((julianday($6) - julianday('now')) * 86400000.0) AS BIGINT)"
    } else {
        "CAST(ROUND(EXTRACT(EPOCH FROM ($6 - LOCALTIMESTAMP)) * 1000) AS BIGINT)"
    }
}

/// Inserts or refreshes `info`'s row; see `Repository::touch_host`. With
/// `starting`, also sets `started_at` and adopts unassigned rows: call inside
/// a transaction then.
pub(crate) fn touch(
    conn: &mut AnyConnection,
    info: &HostInfo,
    local_now: Timestamp,
    starting: bool,
) -> Result<Host, TxError> {
    let sqlite = matches!(conn, AnyConnection::Sqlite(_));
    let now = db_now(sqlite);
    let restart = if starting { ", started_at = excluded.started_at" } else { "" };
    let sql = format!(
        "INSERT INTO hosts (id, name, docker_engine_id, docker_version, started_at, \
           last_seen_at, volscan_version, clock_skew_ms) \
         VALUES ($1, $2, $3, $4, {now}, {now}, $5, {skew}) \
         ON CONFLICT (id) DO UPDATE SET name = excluded.name, \
           docker_engine_id = excluded.docker_engine_id, \
           docker_version = excluded.docker_version, last_seen_at = excluded.last_seen_at, \
           volscan_version = excluded.volscan_version, \
           clock_skew_ms = excluded.clock_skew_ms{restart} \
         RETURNING id, name, docker_engine_id, docker_version, started_at, last_seen_at, \
           volscan_version, clock_skew_ms, {now} AS read_at",
        skew = skew_ms(sqlite),
    );
    let query = diesel::sql_query(sql)
        .bind::<Text, _>(info.id.as_str())
        .bind::<Text, _>(&info.name)
        .bind::<Nullable<Text>, _>(info.docker_engine_id.as_deref())
        .bind::<Nullable<Text>, _>(info.docker_version.as_deref())
        .bind::<Text, _>(&info.volscan_version)
        .bind::<SqlTimestamp, _>(to_db_time(local_now));
    let row: HostRow = match conn {
        AnyConnection::Postgresql(c) => query.get_result(c)?,
        AnyConnection::Sqlite(c) => query.get_result(c)?,
    };
    if starting {
        adopt_unassigned(conn, info.id.as_str())?;
    }
    Ok(Host::try_from(row)?)
}

/// Gives `host` every row that belongs to no host yet (the single-host
/// schema's data, right after the migration).
fn adopt_unassigned(conn: &mut AnyConnection, host: &str) -> Result<(), TxError> {
    diesel::update(volumes::table.filter(volumes::host_id.eq(UNASSIGNED)))
        .set(volumes::host_id.eq(host))
        .execute(conn)?;
    diesel::update(scan_runs::table.filter(scan_runs::host_id.eq(UNASSIGNED)))
        .set(scan_runs::host_id.eq(host))
        .execute(conn)?;
    diesel::update(volume_stats::table.filter(volume_stats::host_id.eq(UNASSIGNED)))
        .set(volume_stats::host_id.eq(host))
        .execute(conn)?;
    diesel::update(filesystem_samples::table.filter(filesystem_samples::host_id.eq(UNASSIGNED)))
        .set(filesystem_samples::host_id.eq(host))
        .execute(conn)?;
    diesel::update(volume_dirs::table.filter(volume_dirs::host_id.eq(UNASSIGNED)))
        .set(volume_dirs::host_id.eq(host))
        .execute(conn)?;
    Ok(())
}

/// Every host by id, each with the database's time of the read.
pub(crate) fn list(conn: &mut AnyConnection) -> Result<Vec<Host>, TxError> {
    let sqlite = matches!(conn, AnyConnection::Sqlite(_));
    let sql = format!(
        "SELECT id, name, docker_engine_id, docker_version, started_at, last_seen_at, \
           volscan_version, clock_skew_ms, {} AS read_at FROM hosts ORDER BY id",
        db_now(sqlite)
    );
    let rows: Vec<HostRow> = match conn {
        AnyConnection::Postgresql(c) => diesel::sql_query(sql).load(c)?,
        AnyConnection::Sqlite(c) => diesel::sql_query(sql).load(c)?,
    };
    Ok(rows.into_iter().map(Host::try_from).collect::<Result<_, _>>()?)
}
