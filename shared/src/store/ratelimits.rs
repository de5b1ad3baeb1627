//! Rate-limit counters: one item per limit, subject and window,
//! `T#<scope>#RL#<name>#<subject>` / `W#<window start>`, holding the count
//! `n` and expiring (TTL) when the window ends. See [`crate::ratelimit`].

use super::{Action, Expr, Item, TTL_ATTRIBUTE, key, tenant_pk, value};
use crate::error::AppError;
use crate::ratelimit::Counter;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;

const UPDATE: &str = "ADD n :one SET kind = :kind";
const CONDITION: &str = "attribute_not_exists(n) OR n < :limit";

fn counter_key(counter: &Counter) -> Item {
    let pk = tenant_pk(&counter.scope, &format!("RL#{}#{}", counter.name, counter.subject));
    key(pk, &format!("W#{}", counter.window_start))
}

fn expr(counter: &Counter) -> Result<Expr, AppError> {
    Ok(Expr::default()
        .name("#ttl", TTL_ATTRIBUTE)
        .value(":one", value(1u32)?)
        .value(":limit", value(counter.limit.max)?)
        .value(":kind", value("rate_counter")?)
        .value(":expires", value(counter.window_end())?))
}

fn update_expression() -> String {
    format!("{UPDATE}, #ttl = :expires")
}

/// The hit as a transaction action, labelled `label`.
pub fn hit_action<L>(table: &str, label: L, counter: &Counter) -> Result<Action<L>, AppError> {
    Action::update(table, label, counter_key(counter), &update_expression(), Some(CONDITION), expr(counter)?)
}

/// "The counter has room" without counting (a ConditionCheck), for an
/// operation that must not succeed once a limit of its failures is reached.
pub fn room_action<L>(table: &str, label: L, counter: &Counter) -> Result<Action<L>, AppError> {
    Action::condition_check(
        table,
        label,
        counter_key(counter),
        CONDITION,
        Expr::default().value(":limit", value(counter.limit.max)?),
    )
}

/// The hit as one conditional update: `false` when the limit is reached.
pub async fn hit(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    counter: &Counter,
) -> Result<bool, AppError> {
    let expr = expr(counter)?;
    let result = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(counter_key(counter)))
        .update_expression(update_expression())
        .condition_expression(CONDITION)
        .set_expression_attribute_names(Some(expr.names))
        .set_expression_attribute_values(Some(expr.values))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) => match error.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
            _ => Err(AppError::from_sdk("count a rate-limit hit", error)),
        },
    }
}
