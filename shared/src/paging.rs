//! Pagination parameters of list routes and jobs: `limit` and the cursor
//! (the id of the previous page's last item, handed back by the client, so
//! checked before it becomes a DynamoDB start key).

use crate::error::AppError;

/// A page size from a query string or job input: 1 to `max`, `default` when absent.
pub fn page_limit(raw: Option<&str>, default: u32, max: u32) -> Result<i32, AppError> {
    let invalid = || AppError::bad_request("limit", format!("limit: must be an integer from 1 to {max}"));
    let limit = match raw {
        None => default,
        Some(text) => text.trim().parse::<u32>().map_err(|_| invalid())?,
    };
    if (1..=max).contains(&limit) { i32::try_from(limit).map_err(|_| invalid()) } else { Err(invalid()) }
}

/// `?limit=&cursor=` of a list paged by item id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: i32,
    /// The last item of the previous page: an id this API hands out.
    pub after: Option<String>,
}

impl PageQuery {
    pub fn parse(
        limit: Option<&str>,
        cursor: Option<&str>,
        default: u32,
        max: u32,
    ) -> Result<Self, AppError> {
        let limit = page_limit(limit, default, max)?;
        let after = match cursor {
            None => None,
            Some(id) if crate::ids::is_valid_id(id) => Some(id.to_owned()),
            Some(_) => return Err(AppError::bad_request("cursor", "cursor: is not a cursor of this list")),
        };
        Ok(Self { limit, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors_are_checked() {
        assert_eq!(PageQuery::parse(None, None, 25, 100).unwrap(), PageQuery { limit: 25, after: None });
        let id = crate::ids::new_id();
        assert_eq!(
            PageQuery::parse(Some(" 7 "), Some(&id), 25, 100).unwrap(),
            PageQuery { limit: 7, after: Some(id.clone()) }
        );
        for limit in ["0", "101", "-1", "1.5", "", "x", "4294967296"] {
            assert!(PageQuery::parse(Some(limit), None, 25, 100).is_err(), "{limit:?}");
        }
        for cursor in ["", "x", "RU5UUlkj", &id.to_uppercase(), &format!("ENTRY#{id}")] {
            assert!(PageQuery::parse(None, Some(cursor), 25, 100).is_err(), "{cursor:?}");
        }
    }
}
