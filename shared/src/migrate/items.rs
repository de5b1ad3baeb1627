//! The items of one page: planned and written concurrently, each with a
//! conditional update that never applies twice nor over a concurrent write.

use super::{Migration, plan};
use crate::app::App;
use crate::error::AppError;
use crate::store::Item;
use crate::store::migrations::{self as store, Applied, Counters, RunRecord};
use futures::StreamExt;

/// Attempts per item when concurrent writes keep changing it.
const ITEM_ATTEMPTS: usize = 3;

enum ItemResult {
    Changed(Vec<u32>),
    Current,
    Failed(String, String),
}

/// Migrates a page's items; returns the page's counts and its failed items
/// (`pk`, reason).
pub(super) async fn migrate_page(
    app: &App,
    migrations: &'static [Migration],
    run: &RunRecord,
    items: Vec<Item>,
) -> Result<(Counters, Vec<(String, String)>), AppError> {
    let mut counters = Counters { items_scanned: items.len() as u64, ..Counters::default() };
    let mut failures = Vec::new();
    let results: Vec<Result<ItemResult, AppError>> = futures::stream::iter(items)
        .map(|item| migrate_item(app, migrations, run, item))
        .buffer_unordered(app.config.migrate.item_concurrency)
        .collect()
        .await;
    for result in results {
        match result? {
            ItemResult::Changed(versions) => {
                counters.items_changed += 1;
                for version in versions {
                    *counters.changed_by_version.entry(version.to_string()).or_default() += 1;
                }
            }
            ItemResult::Current => counters.items_current += 1,
            ItemResult::Failed(key, reason) => {
                counters.items_failed += 1;
                failures.push((key, reason));
            }
        }
    }
    Ok((counters, failures))
}

async fn migrate_item(
    app: &App,
    migrations: &'static [Migration],
    run: &RunRecord,
    item: Item,
) -> Result<ItemResult, AppError> {
    let (db, table) = (&app.clients.dynamodb, app.config.table_name.as_str());
    let (key, pk) = store::item_key(&item)?;
    let mut current = item;
    for _ in 0..ITEM_ATTEMPTS {
        let input = match prepared(app, migrations, run, &current).await {
            Ok(input) => input,
            Err(error) => {
                tracing::warn!(run_id = %run.run_id, error = %error, "item cannot be prepared");
                return Ok(ItemResult::Failed(pk, error.to_string()));
            }
        };
        let plan = match plan::plan_item(migrations, run.direction, run.to_version, &input) {
            Ok(Some(plan)) => plan,
            Ok(None) => return Ok(ItemResult::Current),
            Err(error) => {
                // The key is kept in the run's report, not logged (it may hold an email).
                tracing::warn!(run_id = %run.run_id, error = %error, "item cannot be migrated");
                return Ok(ItemResult::Failed(pk, error.to_string()));
            }
        };
        if run.dry_run {
            return Ok(ItemResult::Changed(plan.applied));
        }
        store::create_companions(db, table, &plan).await?;
        match store::apply_plan(db, table, &current, &plan).await? {
            Applied::Written => return Ok(ItemResult::Changed(plan.applied)),
            Applied::Conflict => match store::read_item(db, table, key.clone()).await? {
                // Exactly what this plan writes: an attempt whose answer was lost
                // (timed out, then retried by the SDK) applied it.
                Some(fresh) if fresh == plan.after => return Ok(ItemResult::Changed(plan.applied)),
                Some(fresh) => current = fresh,
                None => return Ok(ItemResult::Current),
            },
        }
    }
    Ok(ItemResult::Failed(pk, "the item kept changing during the migration".into()))
}

/// The item with what the run's migrations for its kind prepare added
/// (in the run's order; each sees what the ones before it added).
async fn prepared(
    app: &App,
    migrations: &'static [Migration],
    run: &RunRecord,
    item: &Item,
) -> Result<Item, AppError> {
    let mut input = item.clone();
    let (Some(kind), Ok(version)) = (plan::item_kind(item), plan::item_version(item)) else {
        return Ok(input);
    };
    let due = |m: &&Migration| {
        m.touches(kind)
            && match run.direction {
                plan::Direction::Up => m.version > version && m.version <= run.to_version,
                plan::Direction::Down => m.version <= version && m.version > run.to_version,
            }
    };
    let mut due: Vec<&Migration> = migrations.iter().filter(due).collect();
    if run.direction == plan::Direction::Down {
        due.reverse();
    }
    for migration in due {
        if let Some(prepare) = migration.prepare {
            let added = prepare(app, run.direction, run.dry_run, &input).await?;
            input.extend(added);
        }
    }
    Ok(input)
}
