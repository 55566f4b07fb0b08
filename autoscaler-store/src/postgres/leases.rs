//! Leases that share the monitored instances among replicas on one database.
//!
//! Every replica calls [`claim`] at each tick with its holder id. In one transaction the call
//! records the replica as live and computes its fair share: the monitored instances divided by
//! the live replicas, rounded up. It then renews its own leases, releases those above its share
//! and claims free or expired instances up to its share. Claims lock the rows they take with
//! `FOR UPDATE SKIP LOCKED`, so two replicas that claim at the same moment take disjoint rows
//! without waiting for each other.
//!
//! Lease ends are computed from the `now` the caller passes, so replicas' clocks must agree to
//! well within one lease length. A replica that stops renewing is no longer counted once its
//! `replicas.lease_until` passes, which is also when its instance leases end.

use std::time::Duration;

use autoscaler_core::store::{Instance, Result};
use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgConnection;
use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::error::failed;
use super::rows::{self, instance_columns, to_micros};

/// Claims the instances `holder` should work on until `now + lease` and returns them, oldest
/// registration first.
pub(super) async fn claim(
    pool: &PgPool,
    holder: Uuid,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Instance>> {
    let now = to_micros(now);
    let until = TimeDelta::from_std(lease)
        .ok()
        .and_then(|lease| now.checked_add_signed(lease))
        .map_or(DateTime::<Utc>::MAX_UTC, to_micros);
    let mut transaction = pool.begin().await.map_err(failed("starting a claim"))?;
    heartbeat(&mut transaction, holder, now, until).await?;
    let share = fair_share(&mut transaction, now).await?;

    let held: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE instances SET lease_until = $2 WHERE lease_holder = $1 AND is_monitoring \
         RETURNING id",
    )
    .bind(holder)
    .bind(until)
    .fetch_all(&mut *transaction)
    .await
    .map_err(failed("renewing leases"))?;

    let held = i64::try_from(held.len()).unwrap_or(i64::MAX);
    if held > share {
        // The newest registrations go first, so that a replica keeps the instances it has
        // held longest.
        sqlx::query(
            "UPDATE instances SET lease_holder = NULL, lease_until = NULL WHERE id IN ( \
             SELECT id FROM instances WHERE lease_holder = $1 AND is_monitoring \
             ORDER BY seq DESC LIMIT $2)",
        )
        .bind(holder)
        .bind(held - share)
        .execute(&mut *transaction)
        .await
        .map_err(failed("releasing leases above the fair share"))?;
    } else if held < share {
        // Rows another transaction is claiming or updating are skipped, not waited for. A
        // later tick claims them if they are still free.
        sqlx::query(
            "WITH free AS MATERIALIZED ( \
             SELECT id FROM instances \
             WHERE is_monitoring AND (lease_holder IS NULL OR lease_until <= $3) \
             ORDER BY seq LIMIT $4 FOR UPDATE SKIP LOCKED) \
             UPDATE instances SET lease_holder = $1, lease_until = $2 \
             FROM free WHERE instances.id = free.id",
        )
        .bind(holder)
        .bind(until)
        .bind(now)
        .bind(share - held)
        .execute(&mut *transaction)
        .await
        .map_err(failed("claiming free instances"))?;
    }

    let rows = sqlx::query(concat!(
        "SELECT ",
        instance_columns!(),
        " FROM instances WHERE lease_holder = $1 AND is_monitoring ORDER BY seq"
    ))
    .bind(holder)
    .fetch_all(&mut *transaction)
    .await
    .map_err(failed("reading claimed instances"))?;
    let claimed = rows
        .iter()
        .map(rows::instance)
        .collect::<Result<Vec<_>>>()?;
    transaction
        .commit()
        .await
        .map_err(failed("committing a claim"))?;
    Ok(claimed)
}

/// Ends every lease of `holder` and removes it from the live replicas.
pub(super) async fn release(pool: &PgPool, holder: Uuid) -> Result<()> {
    let mut transaction = pool.begin().await.map_err(failed("starting a release"))?;
    sqlx::query(
        "UPDATE instances SET lease_holder = NULL, lease_until = NULL WHERE lease_holder = $1",
    )
    .bind(holder)
    .execute(&mut *transaction)
    .await
    .map_err(failed("releasing leases"))?;
    sqlx::query("DELETE FROM replicas WHERE holder = $1")
        .bind(holder)
        .execute(&mut *transaction)
        .await
        .map_err(failed("removing a replica"))?;
    transaction
        .commit()
        .await
        .map_err(failed("committing a release"))
}

/// Returns how many replicas have claimed within their lease at `now`.
pub(super) async fn live_replicas(pool: &PgPool, now: DateTime<Utc>) -> Result<u64> {
    let live: i64 = sqlx::query_scalar("SELECT count(*) FROM replicas WHERE lease_until > $1")
        .bind(to_micros(now))
        .fetch_one(pool)
        .await
        .map_err(failed("counting live replicas"))?;
    Ok(u64::try_from(live).unwrap_or(0))
}

/// Marks `holder` live until `until` and deletes the replicas whose lease has ended.
async fn heartbeat(
    connection: &mut PgConnection,
    holder: Uuid,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO replicas (holder, heartbeat_at, lease_until) VALUES ($1, $2, $3) \
         ON CONFLICT (holder) DO UPDATE \
         SET heartbeat_at = EXCLUDED.heartbeat_at, lease_until = EXCLUDED.lease_until",
    )
    .bind(holder)
    .bind(now)
    .bind(until)
    .execute(&mut *connection)
    .await
    .map_err(failed("recording a replica heartbeat"))?;
    // `SKIP LOCKED` leaves rows that another claim is deleting to that claim, so two claims
    // do not wait for each other here.
    sqlx::query(
        "DELETE FROM replicas WHERE holder IN ( \
         SELECT holder FROM replicas WHERE lease_until <= $1 FOR UPDATE SKIP LOCKED)",
    )
    .bind(now)
    .execute(&mut *connection)
    .await
    .map_err(failed("removing ended replicas"))?;
    Ok(())
}

/// Returns the number of monitored instances one live replica should hold at `now`: all of
/// them divided by the live replicas, rounded up, so that the shares cover every instance.
async fn fair_share(connection: &mut PgConnection, now: DateTime<Utc>) -> Result<i64> {
    let (live, monitored): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM replicas WHERE lease_until > $1), \
         (SELECT count(*) FROM instances WHERE is_monitoring)",
    )
    .bind(now)
    .fetch_one(&mut *connection)
    .await
    .map_err(failed("computing the fair share"))?;
    // The calling replica has just recorded its heartbeat, so `live` is at least 1 unless
    // the lease is zero.
    let live = live.max(1);
    Ok((monitored + live - 1) / live)
}
