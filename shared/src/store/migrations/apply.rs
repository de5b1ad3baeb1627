//! The conditional write of an [`ItemPlan`] onto the item it was planned from.

use super::{ItemPlan, is_condition_failure, item_key, n};
use crate::error::AppError;
use crate::store::labels::MigrationLabel;
use crate::store::tx::{Tx, TxError};
use crate::store::{Action, Expr, Item};
use std::collections::{BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Written,
    /// The item changed since it was read (another run, a live write, a
    /// deletion): re-read and re-plan.
    Conflict,
}

/// The parts of one conditional UpdateItem.
#[derive(Debug, Default)]
struct GuardedUpdate {
    names: HashMap<String, String>,
    values: Item,
    sets: Vec<String>,
    removes: Vec<String>,
    conditions: Vec<String>,
}

impl GuardedUpdate {
    /// The update expression, the condition, and their names and values.
    fn into_parts(self) -> (String, String, Expr) {
        let mut update = format!("SET {}", self.sets.join(", "));
        if !self.removes.is_empty() {
            update.push_str(&format!(" REMOVE {}", self.removes.join(", ")));
        }
        (update, self.conditions.join(" AND "), Expr { names: self.names, values: self.values })
    }
}

/// The attributes the plan changes: set to another value, added, or removed.
fn touched<'a>(before: &'a Item, plan: &'a ItemPlan) -> BTreeSet<&'a str> {
    let mut touched: BTreeSet<&str> = BTreeSet::new();
    for (name, value) in &plan.after {
        if name != "schema_version" && before.get(name) != Some(value) {
            touched.insert(name);
        }
    }
    for name in before.keys() {
        if !plan.after.contains_key(name) {
            touched.insert(name);
        }
    }
    touched
}

/// Sets the new version, on the condition that the item still exists at its old one.
fn version_guard(before: &Item, plan: &ItemPlan) -> GuardedUpdate {
    let mut update = GuardedUpdate {
        names: HashMap::from([("#sv".to_owned(), "schema_version".to_owned())]),
        values: HashMap::from([(":to".to_owned(), n(plan.to))]),
        sets: vec!["#sv = :to".to_owned()],
        conditions: vec!["attribute_exists(pk)".to_owned()],
        ..GuardedUpdate::default()
    };
    match before.get("schema_version") {
        Some(version) => {
            update.conditions.push("#sv = :from".to_owned());
            update.values.insert(":from".to_owned(), version.clone());
        }
        None => update.conditions.push("attribute_not_exists(#sv)".to_owned()),
    }
    update
}

/// The whole update: the version guard, then for every attribute touched or
/// read a condition that it still has its old value (or is still absent),
/// and for every touched one its new value or its removal.
fn guarded_update(before: &Item, plan: &ItemPlan) -> Result<GuardedUpdate, AppError> {
    let mut update = version_guard(before, plan);
    let touched = touched(before, plan);
    if ["pk", "sk", "kind"].iter().any(|k| touched.contains(k)) {
        return Err(AppError::Internal("a migration may not change pk, sk or kind".into()));
    }
    let guarded: BTreeSet<&str> = touched.iter().copied().chain(plan.reads.iter().copied()).collect();
    for (index, name) in guarded.iter().enumerate() {
        let placeholder = format!("#a{index}");
        update.names.insert(placeholder.clone(), (*name).to_owned());
        match before.get(*name) {
            Some(old) => {
                update.conditions.push(format!("{placeholder} = :o{index}"));
                update.values.insert(format!(":o{index}"), old.clone());
            }
            None => update.conditions.push(format!("attribute_not_exists({placeholder})")),
        }
        if touched.contains(name) {
            match plan.after.get(*name) {
                Some(new) => {
                    update.sets.push(format!("{placeholder} = :n{index}"));
                    update.values.insert(format!(":n{index}"), new.clone());
                }
                None => update.removes.push(placeholder),
            }
        }
    }
    Ok(update)
}

/// Writes `plan` onto the item read as `before`: only the attributes the
/// transforms changed are set or removed, conditional on the item still being
/// at the plan's `from` version with the same values in every attribute the
/// transforms changed or derived from. A retry or a duplicate therefore never
/// applies twice, and a concurrent live write is never overwritten.
pub async fn apply_plan(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    before: &Item,
    plan: &ItemPlan,
) -> Result<Applied, AppError> {
    if plan.after.get("pk") != before.get("pk") || !plan.sides.is_empty() {
        return apply_move(dynamodb, table, before, plan).await;
    }
    let (key, _) = item_key(before)?;
    let (update, condition, expr) = guarded_update(before, plan)?.into_parts();
    let result = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(update)
        .condition_expression(condition)
        .set_expression_attribute_names(Some(expr.names))
        .set_expression_attribute_values(Some(expr.values))
        .send()
        .await;
    match result {
        Ok(_) => Ok(Applied::Written),
        Err(error) if is_condition_failure(&error) => Ok(Applied::Conflict),
        Err(error) => Err(AppError::from_sdk("migrate item", error)),
    }
}

/// Writes a plan that moves the item to another key (or changes other items
/// with it), in one transaction: the item put under its new key (which must
/// be free), the old one deleted on the condition that it is still exactly
/// as read (every attribute, the version included), and the side updates
/// (each item must exist). Any failed condition is a conflict: re-read.
async fn apply_move(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    before: &Item,
    plan: &ItemPlan,
) -> Result<Applied, AppError> {
    let (key, _) = item_key(before)?;
    // A migration changes layouts, not the domain: no event rides with it.
    let mut tx = Tx::without_event(table);
    if plan.after.get("pk") != before.get("pk") {
        tx = tx.push(Action::put(
            table,
            MigrationLabel::Moved,
            plan.after.clone(),
            Some("attribute_not_exists(pk)"),
            Expr::default(),
        )?);
        let mut expr = Expr::default();
        let mut conditions = vec!["attribute_exists(pk)".to_owned()];
        if !before.contains_key("schema_version") {
            expr = expr.name("#sv", "schema_version");
            conditions.push("attribute_not_exists(#sv)".to_owned());
        }
        for (index, (name, value)) in
            before.iter().filter(|(name, _)| *name != "pk" && *name != "sk").enumerate()
        {
            expr = expr.name(&format!("#a{index}"), name).value(&format!(":o{index}"), value.clone());
            conditions.push(format!("#a{index} = :o{index}"));
        }
        tx = tx.push(Action::delete(
            table,
            MigrationLabel::Original,
            key,
            Some(&conditions.join(" AND ")),
            expr,
        )?);
    } else {
        let (update, condition, expr) = guarded_update(before, plan)?.into_parts();
        tx = tx.push(Action::update(table, MigrationLabel::Original, key, &update, Some(&condition), expr)?);
    }
    for side in &plan.sides {
        let mut expr = Expr::default();
        let mut sets = Vec::new();
        for (index, (name, value)) in side.set.iter().enumerate() {
            expr = expr.name(&format!("#s{index}"), name).value(&format!(":s{index}"), value.clone());
            sets.push(format!("#s{index} = :s{index}"));
        }
        let mut removes = Vec::new();
        for (index, name) in side.remove.iter().enumerate() {
            expr = expr.name(&format!("#r{index}"), name);
            removes.push(format!("#r{index}"));
        }
        let mut expression = String::new();
        if !sets.is_empty() {
            expression.push_str(&format!("SET {}", sets.join(", ")));
        }
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        if expression.is_empty() {
            continue;
        }
        tx = tx.push(Action::update(
            table,
            MigrationLabel::Side,
            side.key.clone(),
            expression.trim(),
            Some("attribute_exists(pk)"),
            expr,
        )?);
    }
    match tx.commit(dynamodb).await {
        Ok(()) => Ok(Applied::Written),
        // Contention the builder's retries did not outlast counts as a conflict too: re-read.
        Err(TxError::Cancelled(_) | TxError::Other(AppError::Unavailable(_))) => Ok(Applied::Conflict),
        Err(TxError::Other(error)) => Err(error),
    }
}

/// Creates each of a plan's companions that is absent (a conditional put
/// each; one that exists, e.g. written by another item's migration or by
/// live code, is left as it is). Run before the item's own update, so a
/// crash in between leaves an item that the next run plans again.
pub async fn create_companions(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    plan: &ItemPlan,
) -> Result<(), AppError> {
    for companion in &plan.companions {
        let result = dynamodb
            .put_item()
            .table_name(table)
            .set_item(Some(companion.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(error) if is_condition_failure(&error) => {}
            Err(error) => return Err(AppError::from_sdk("create companion item", error)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::AttributeValue;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    #[test]
    fn only_changed_attributes_are_written_and_every_read_one_is_guarded() {
        let before = Item::from([
            ("pk".into(), s("p")),
            ("sk".into(), s("s")),
            ("kind".into(), s("user")),
            ("gone".into(), s("x")),
            ("source".into(), s("y")),
        ]);
        let mut after = before.clone();
        after.remove("gone");
        after.insert("added".into(), s("z"));
        let plan = ItemPlan::new(1, 2, vec![2], vec!["source"], after);
        let (update, condition, expr) = guarded_update(&before, &plan).unwrap().into_parts();
        assert_eq!(update, "SET #sv = :to, #a0 = :n0 REMOVE #a1");
        assert_eq!(
            condition,
            "attribute_exists(pk) AND attribute_not_exists(#sv) AND attribute_not_exists(#a0) \
             AND #a1 = :o1 AND #a2 = :o2"
        );
        assert_eq!(expr.names.get("#a2").map(String::as_str), Some("source"));

        let mut renamed = plan.clone();
        renamed.after.insert("kind".into(), s("other"));
        assert!(guarded_update(&before, &renamed).is_err());
    }
}
