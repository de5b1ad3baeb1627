//! An account's balance as of a time, and its statement over a period
//! (opening balance, the period's entries oldest first and paged, closing
//! balance).
//!
//! The cost does not grow with the account's history: a balance at `t` is the
//! latest daily snapshot of a day that ended by `t` (written by the verify job,
//! [`crate::ledger::verify`]) plus the entries since, read by key range (a
//! transaction's id carries its time). One snapshot query of at most one item
//! and the entries made since that snapshot: at most the entries not yet
//! snapshotted (the current day and those since the verify job last ran).
//! Before an account's first snapshot, the entries since it was opened.

use super::accounts::{DEFAULT_PAGE, MAX_PAGE, get_account};
use super::views::{BalanceView, EntryView};
use crate::app::App;
use crate::auth::Authenticated;
use crate::clock::{parse_rfc3339, rfc3339_ms};
use crate::error::AppError;
use crate::ids::time_floor;
use crate::ledger::Balances;
use crate::paging::PageQuery;
use crate::store::ledger as ledger_store;
use serde_json::{Value, json};
use time::{OffsetDateTime, UtcOffset};

/// A time of the query string (RFC 3339, any offset), as UTC; one whose UTC
/// time is beyond the years 0000 to 9999 is refused like malformed text.
fn time_param(field: &'static str, raw: Option<&str>) -> Result<Option<OffsetDateTime>, AppError> {
    raw.map(|text| {
        parse_rfc3339(text)
            .and_then(|at| at.checked_to_offset(UtcOffset::UTC))
            .filter(|at| (0..=9999).contains(&at.year()))
            .ok_or_else(|| AppError::bad_request(field, format!("{field}: must be an RFC 3339 date-time")))
    })
    .transpose()
}

/// The text an instant is answered with (UTC, milliseconds when it has them).
fn text(at: OffsetDateTime) -> String {
    rfc3339_ms(crate::clock::epoch_ms(at)).unwrap_or_else(|| crate::clock::rfc3339(at))
}

/// The account's totals at `at`: its latest snapshot of a day that ended by
/// then, plus the entries of the transactions made from that day's end
/// until `at` (exclusive).
async fn totals_at(
    app: &App,
    tenant: &str,
    account_id: &str,
    at: OffsetDateTime,
) -> Result<Balances, AppError> {
    let (dynamodb, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let last_day = at.date().previous_day().map(|day| day.to_string());
    let snapshot = match last_day {
        Some(day) => ledger_store::latest_snapshot(dynamodb, table, (tenant, account_id), &day).await?,
        None => None,
    };
    let (mut totals, since) = match snapshot {
        Some(snapshot) => {
            let day = time::Date::parse(&snapshot.day, &time::format_description::well_known::Iso8601::DATE)
                .map_err(|e| AppError::internal("snapshot day", e))?;
            let end = day.next_day().ok_or_else(|| AppError::Internal("snapshot day out of range".into()))?;
            (snapshot.balances, time_floor(end.midnight().assume_utc()))
        }
        None => (Balances::default(), time_floor(OffsetDateTime::UNIX_EPOCH)),
    };
    let until = time_floor(at);
    let mut after = None;
    loop {
        let (entries, next) = ledger_store::entries_between(
            dynamodb,
            table,
            (tenant, account_id),
            (&since, &until),
            (None, after.as_deref()),
        )
        .await?;
        for entry in &entries {
            totals = totals.apply(&entry.delta).ok_or_else(|| {
                AppError::Conflict("the account's totals are beyond what the ledger holds".into())
            })?;
        }
        match next {
            Some(next) => after = Some(next),
            None => return Ok(totals),
        }
    }
}

/// `GET /v1/accounts/{id}/balance?at=`: the balance at `at` (default: now).
pub async fn balance_at(
    app: &App,
    who: &Authenticated,
    account_id: &str,
    at: Option<&str>,
) -> Result<Value, AppError> {
    let at = time_param("at", at)?.unwrap_or_else(|| app.now().to_offset(UtcOffset::UTC));
    let account = get_account(app, who, account_id).await?;
    let totals = Box::pin(totals_at(app, who.tenant.as_str(), &account.account_id, at)).await?;
    Ok(json!({
        "account_id": account.account_id,
        "currency": account.currency,
        "at": text(at),
        "balance": BalanceView::of(&totals)?,
        "totals": totals,
    }))
}

/// A statement's period when the request names no `from`: 30 days to `to`.
pub const DEFAULT_PERIOD: time::Duration = time::Duration::days(30);

/// `GET /v1/accounts/{id}/statement?from=&to=&limit=&cursor=`: the balance
/// at `from`, the entries of `[from, to)` oldest first (one page), the
/// balance at `to` (default: now, and [`DEFAULT_PERIOD`] before it).
pub async fn statement(
    app: &App,
    who: &Authenticated,
    account_id: &str,
    (from, to): (Option<&str>, Option<&str>),
    (limit, cursor): (Option<&str>, Option<&str>),
) -> Result<Value, AppError> {
    let to = time_param("to", to)?.unwrap_or_else(|| app.now().to_offset(UtcOffset::UTC));
    let from = match time_param("from", from)? {
        Some(from) => from,
        None => to.checked_sub(DEFAULT_PERIOD).ok_or_else(|| AppError::bad_request("to", "to: too early"))?,
    };
    if to <= from {
        return Err(AppError::bad_request("to", "to: must be after from"));
    }
    let page = PageQuery::parse(limit, cursor, DEFAULT_PAGE, MAX_PAGE)?;
    let account = get_account(app, who, account_id).await?;
    let (tenant, id) = (who.tenant.as_str(), account.account_id.as_str());
    let (dynamodb, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let (since, until) = (time_floor(from), time_floor(to));
    let entries = ledger_store::entries_between(
        dynamodb,
        table,
        (tenant, id),
        (&since, &until),
        (Some(page.limit), page.after.as_deref()),
    );
    // Boxed: three reads at once would otherwise make this future (and every
    // caller's) as large as all their SDK futures together.
    let (opening, closing, (entries, next)) = tokio::try_join!(
        Box::pin(totals_at(app, tenant, id, from)),
        Box::pin(totals_at(app, tenant, id, to)),
        Box::pin(entries)
    )?;
    let items: Vec<EntryView> = entries.into_iter().map(EntryView::from).collect();
    Ok(json!({
        "account_id": account.account_id,
        "currency": account.currency,
        "from": text(from),
        "to": text(to),
        "opening": BalanceView::of(&opening)?,
        "closing": BalanceView::of(&closing)?,
        "items": items,
        "next_cursor": next,
    }))
}
