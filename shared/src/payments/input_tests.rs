//! Property tests of the payments API's body parsers (private to this
//! module): any JSON value is a valid input or a 400 naming a field, never a
//! panic; accepted values are within the documented bounds.

use super::input;
use crate::error::AppError;
use crate::money::MAX_AMOUNT;
use proptest::prelude::*;
use serde_json::{Value, json};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (1i64..=MAX_AMOUNT).prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        (1i64..=1_000_000).prop_map(|n| Value::from(n as f64)),
        prop_oneof![Just("USD".to_owned()), Just("JPY".to_owned()), "[A-Z]{3}", ".{0,30}"]
            .prop_map(Value::String),
        Just(Value::String(crate::ids::new_id())),
        "[a-z]{1,600}".prop_map(Value::String),
    ]
}

const KEYS: &[&str] = &[
    "currency",
    "allow_overdraft",
    "name",
    "amount",
    "payer_account_id",
    "payee_account_id",
    "description",
    "metadata",
];

fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 40, 24, |inner| {
        let key = prop_oneof![4 => proptest::sample::select(KEYS).prop_map(str::to_owned), 1 => ".{0,45}"];
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(key, inner, 0..24)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

fn refused<T>(result: Result<T, AppError>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(AppError::BadRequest { field: Some(_), .. }) => None,
        Err(other) => panic!("a payments body parse answered {other:?}"),
    }
}

fn amount_ok(amount: i64) -> bool {
    (1..=MAX_AMOUNT).contains(&amount)
}

fn check(body: Value) {
    if let Some(account) = refused(input::new_account(body.clone())) {
        assert!(account.name.is_none_or(|n| n.chars().count() <= 200));
    }
    if let Some(payment) = refused(input::new_payment(body.clone())) {
        assert!(amount_ok(payment.amount));
        assert!(crate::ids::is_valid_id(&payment.payer_id));
        assert!((1..=crate::payments::MAX_SPLITS).contains(&payment.payees.len()));
        assert_eq!(
            payment.payees.iter().map(|(_, part)| i128::from(*part)).sum::<i128>(),
            i128::from(payment.amount)
        );
        for (n, (payee, part)) in payment.payees.iter().enumerate() {
            assert!(crate::ids::is_valid_id(payee) && *payee != payment.payer_id && amount_ok(*part));
            assert!(payment.payees[..n].iter().all(|(other, _)| other != payee), "distinct payees");
        }
        assert!(payment.metadata.is_none_or(|m| m.len() <= 20));
    }
    if let Some(amount) = refused(input::capture_amount(body.clone())) {
        assert!(amount.is_none_or(amount_ok));
    }
    if let Some((amount, _)) = refused(input::refund(body.clone())) {
        assert!(amount_ok(amount));
    }
    let _ = refused(input::empty(body));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn payments_bodies_of_any_json(body in json_value()) {
        check(body);
    }

    #[test]
    fn payments_bodies_near_valid(
        amount in leaf(), currency in leaf(), payee in leaf(), extra in proptest::option::of(("[a-z_]{1,12}", leaf())),
    ) {
        let mut body = json!({
            "amount": amount, "currency": currency,
            "payer_account_id": crate::ids::new_id(), "payee_account_id": payee,
        });
        if let Some((name, value)) = extra {
            body[name] = value;
        }
        check(body);
    }
}
