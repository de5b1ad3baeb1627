//! The conditional write of an [`ItemPlan`] onto the item it was planned from.

use super::{ItemPlan, is_condition_failure, item_key, n};
use crate::error::AppError;
use crate::store::Item;
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
    fn update_expression(&self) -> String {
        let mut update = format!("SET {}", self.sets.join(", "));
        if !self.removes.is_empty() {
            update.push_str(&format!(" REMOVE {}", self.removes.join(", ")));
        }
        update
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
    let update = guarded_update(before, plan)?;
    let result = dynamodb
        .update_item()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(update.update_expression())
        .condition_expression(update.conditions.join(" AND "))
        .set_expression_attribute_names(Some(update.names))
        .set_expression_attribute_values(Some(update.values))
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
    use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem, Update};
    let (key, _) = item_key(before)?;
    let build = |e: aws_sdk_dynamodb::error::BuildError| AppError::internal("build a migration move", e);
    let mut writes = Vec::new();
    if plan.after.get("pk") != before.get("pk") {
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(plan.after.clone()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build)?;
        writes.push(TransactWriteItem::builder().put(put).build());
        let mut names = HashMap::new();
        let mut values = Item::new();
        let mut conditions = vec!["attribute_exists(pk)".to_owned()];
        if !before.contains_key("schema_version") {
            names.insert("#sv".to_owned(), "schema_version".to_owned());
            conditions.push("attribute_not_exists(#sv)".to_owned());
        }
        for (index, (name, value)) in
            before.iter().filter(|(name, _)| *name != "pk" && *name != "sk").enumerate()
        {
            names.insert(format!("#a{index}"), name.clone());
            values.insert(format!(":o{index}"), value.clone());
            conditions.push(format!("#a{index} = :o{index}"));
        }
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(key))
            .condition_expression(conditions.join(" AND "))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(build)?;
        writes.push(TransactWriteItem::builder().delete(delete).build());
    } else {
        let update = guarded_update(before, plan)?;
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(update.update_expression())
            .condition_expression(update.conditions.join(" AND "))
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .build()
            .map_err(build)?;
        writes.push(TransactWriteItem::builder().update(update).build());
    }
    for side in &plan.sides {
        let mut names = HashMap::new();
        let mut values = Item::new();
        let mut sets = Vec::new();
        for (index, (name, value)) in side.set.iter().enumerate() {
            names.insert(format!("#s{index}"), name.clone());
            values.insert(format!(":s{index}"), value.clone());
            sets.push(format!("#s{index} = :s{index}"));
        }
        let mut removes = Vec::new();
        for (index, name) in side.remove.iter().enumerate() {
            names.insert(format!("#r{index}"), name.clone());
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
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(side.key.clone()))
            .update_expression(expression.trim())
            .condition_expression("attribute_exists(pk)")
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(build)?;
        writes.push(TransactWriteItem::builder().update(update).build());
    }
    let result = dynamodb.transact_write_items().set_transact_items(Some(writes)).send().await;
    match result {
        Ok(_) => Ok(Applied::Written),
        Err(error) if error.as_service_error().is_some_and(|e| e.is_transaction_canceled_exception()) => {
            Ok(Applied::Conflict)
        }
        Err(error) => Err(AppError::from_sdk("move a migrated item", error)),
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
        let update = guarded_update(&before, &plan).unwrap();
        assert_eq!(update.update_expression(), "SET #sv = :to, #a0 = :n0 REMOVE #a1");
        assert_eq!(
            update.conditions,
            [
                "attribute_exists(pk)",
                "attribute_not_exists(#sv)",
                "attribute_not_exists(#a0)",
                "#a1 = :o1",
                "#a2 = :o2"
            ]
        );
        assert_eq!(update.names.get("#a2").map(String::as_str), Some("source"));

        let mut renamed = plan.clone();
        renamed.after.insert("kind".into(), s("other"));
        assert!(guarded_update(&before, &renamed).is_err());
    }
}
