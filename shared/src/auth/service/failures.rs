//! Failed sign-ins: a failure from a trusted device counts on that device
//! (at the threshold its token stops being trusted); any other failure
//! counts on the account's untrusted clients (at the threshold they are
//! locked out for the lockout duration; failures while locked neither count
//! nor extend it). Concurrent failures race on a condition over the count
//! read; the loser recomputes from the item the cancellation returned, so
//! every failure is counted.

use super::login::attempts_of;
use super::*;
use crate::store::devices;

pub(super) async fn record_failure(
    app: &App,
    ctx: &RequestContext,
    tenant: &TenantId,
    mut user: UserRecord,
    device: Option<&str>,
) -> Result<(), AppError> {
    for _ in 0..5 {
        let now = app.now();
        // A device forgotten meanwhile is an untrusted client now.
        let from_device = device.and_then(|hash| Some((hash, user.devices.as_ref()?.get(hash)?.failures)));
        let tx = match from_device {
            Some((hash, failures)) => device_failure(app, ctx, tenant, &user, hash, failures, now)?,
            None => match untrusted_failure(app, ctx, tenant, &user, now)? {
                Some(tx) => tx,
                None => return Ok(()),
            },
        };
        match tx.commit(&app.clients.dynamodb).await {
            Ok(()) => return Ok(()),
            Err(error) => match error.failed(AuthLabel::User).and_then(|f| f.item.clone()) {
                Some(current) => user = users::decode_item(current)?,
                None => return Err(error.into_app_error()),
            },
        }
    }
    Err(AppError::Unavailable("too many concurrent login attempts".into()))
}

fn failed_event(
    ctx: &RequestContext,
    tenant: &TenantId,
    user: &UserRecord,
    now: time::OffsetDateTime,
    details: serde_json::Value,
) -> OutboxEvent {
    let mut payload = json!({ "user_id": user.user_id });
    if let (Some(payload), Some(details)) = (payload.as_object_mut(), details.as_object()) {
        payload.extend(details.clone());
    }
    OutboxEvent::new(tenant, "user", &user.user_id, "user.login_failed", now, &ctx.correlation_id, payload)
        .by(&Actor::user(&user.user_id))
}

fn device_failure(
    app: &App,
    ctx: &RequestContext,
    tenant: &TenantId,
    user: &UserRecord,
    hash: &str,
    failures: u32,
    now: time::OffsetDateTime,
) -> Result<Tx<AuthLabel>, AppError> {
    let table = &app.config.table_name;
    let count = failures.saturating_add(1);
    let forgotten = count >= app.config.lockout.threshold;
    let event = failed_event(
        ctx,
        tenant,
        user,
        now,
        json!({ "trusted_device": true, "failed_attempts": count, "device_forgotten": forgotten }),
    );
    if forgotten {
        tracing::warn!(tenant = %tenant, user_id = %user.user_id, "device no longer trusted after repeated failures");
    }
    let next = (!forgotten).then_some(count);
    Ok(Tx::new(table, &event)?.push(devices::record_failure(table, user, hash, failures, next)?))
}

/// The failure of an untrusted client; `None` while they are locked out
/// (nothing is counted then).
fn untrusted_failure(
    app: &App,
    ctx: &RequestContext,
    tenant: &TenantId,
    user: &UserRecord,
    now: time::OffsetDateTime,
) -> Result<Option<Tx<AuthLabel>>, AppError> {
    let table = &app.config.table_name;
    let policy = app.config.lockout;
    let FailureOutcome::Counted { next, locked } =
        attempts_of(user).after_failure(&policy, now.unix_timestamp())
    else {
        return Ok(None);
    };
    let count = if locked { policy.threshold } else { next.failed };
    let event =
        failed_event(ctx, tenant, user, now, json!({ "trusted_device": false, "failed_attempts": count }));
    let mut tx = Tx::new(table, &event)?;
    if locked {
        let until = next.locked_until.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok());
        let locked_event = OutboxEvent::new(
            tenant,
            "user",
            &user.user_id,
            "user.account_locked",
            now,
            &ctx.correlation_id,
            json!({ "user_id": user.user_id, "locked_until": until.map(rfc3339), "untrusted_clients_only": true }),
        )
        .by(&Actor::user(&user.user_id));
        tx = tx.event(&locked_event)?;
        tracing::warn!(tenant = %tenant, user_id = %user.user_id, "untrusted clients locked out after repeated failures");
    }
    let action = users::record_failure(table, user, next.failed, next.window_started_at, next.locked_until)?;
    Ok(Some(tx.push(action)))
}
