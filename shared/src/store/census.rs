//! What a full scan of a table finds: its item count and its tenants (the
//! restore drills check a restored copy with it).

use crate::error::AppError;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::BTreeSet;

/// The item count and the tenants of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub items: u64,
    pub tenants: BTreeSet<String>,
}

/// The tenant of a `pk` (`T#<tenant>#...`), if it is a valid tenant id (the
/// platform's own items are not a tenant's).
pub fn tenant_of_pk(pk: &str) -> Option<&str> {
    let rest = pk.strip_prefix("T#")?;
    let tenant = rest.split('#').next()?;
    crate::tenant::TenantId::parse(tenant).ok().map(|_| tenant)
}

/// Items per census page: small enough that one page never nears a request timeout.
const CENSUS_PAGE: i32 = 1000;

/// Counts every item of `table` and collects its tenants, with a parallel
/// scan projecting only `pk`.
pub async fn census(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    segments: u32,
) -> Result<Census, AppError> {
    let segments = segments.max(1);
    let scans = (0..segments).map(|segment| census_segment(dynamodb, table, segment, segments));
    let mut total = Census::default();
    for result in futures::future::join_all(scans).await {
        let part = result?;
        total.items += part.items;
        total.tenants.extend(part.tenants);
    }
    Ok(total)
}

/// One segment, every page.
async fn census_segment(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    segment: u32,
    total: u32,
) -> Result<Census, AppError> {
    let mut census = Census::default();
    let mut items = dynamodb
        .scan()
        .table_name(table)
        .segment(i32::try_from(segment).map_err(|e| AppError::internal("segment", e))?)
        .total_segments(i32::try_from(total).map_err(|e| AppError::internal("segments", e))?)
        .projection_expression("pk")
        .limit(CENSUS_PAGE)
        .into_paginator()
        .items()
        .send();
    while let Some(item) = items.try_next().await.map_err(|e| AppError::from_sdk("count items", e))? {
        census.items += 1;
        let pk = match item.get("pk") {
            Some(AttributeValue::S(pk)) => pk.as_str(),
            _ => continue,
        };
        if let Some(tenant) = tenant_of_pk(pk) {
            census.tenants.insert(tenant.to_owned());
        }
    }
    Ok(census)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_come_from_valid_pk_prefixes_only() {
        assert_eq!(tenant_of_pk("T#acme#USER#a@b.c"), Some("acme"));
        assert_eq!(tenant_of_pk("T#_system#MIGRATE#LOCK"), None);
        assert_eq!(tenant_of_pk("X#acme#"), None);
    }
}
