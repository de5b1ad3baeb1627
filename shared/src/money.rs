//! Money: integer minor units, never floats. Currencies are ISO 4217 codes
//! with their minor-unit exponent.

use crate::error::AppError;
use serde::{Deserialize, Serialize};

/// The largest amount accepted in one operation, in minor units (10^12:
/// ten billion units of a two-decimal currency). Balances are i64 sums, so
/// millions of maximal operations fit before any overflow.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000;

/// Active ISO 4217 codes and their exponents (minor units).
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("AFN", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ANG", 2),
    ("AOA", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AWG", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BBD", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BMD", 2),
    ("BND", 2),
    ("BOB", 2),
    ("BRL", 2),
    ("BSD", 2),
    ("BTN", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("BZD", 2),
    ("CAD", 2),
    ("CDF", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CUP", 2),
    ("CVE", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("DZD", 2),
    ("EGP", 2),
    ("ERN", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("FJD", 2),
    ("FKP", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GIP", 2),
    ("GMD", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("GYD", 2),
    ("HKD", 2),
    ("HNL", 2),
    ("HTG", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("IRR", 2),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KGS", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KPW", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("KYD", 2),
    ("KZT", 2),
    ("LAK", 2),
    ("LBP", 2),
    ("LKR", 2),
    ("LRD", 2),
    ("LSL", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MGA", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MOP", 2),
    ("MRU", 2),
    ("MUR", 2),
    ("MVR", 2),
    ("MWK", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("MZN", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NIO", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PAB", 2),
    ("PEN", 2),
    ("PGK", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SBD", 2),
    ("SCR", 2),
    ("SDG", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("SHP", 2),
    ("SLE", 2),
    ("SOS", 2),
    ("SRD", 2),
    ("SSP", 2),
    ("STN", 2),
    ("SVC", 2),
    ("SYP", 2),
    ("SZL", 2),
    ("THB", 2),
    ("TJS", 2),
    ("TMT", 2),
    ("TND", 3),
    ("TOP", 2),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VES", 2),
    ("VND", 0),
    ("VUV", 0),
    ("WST", 2),
    ("XAF", 0),
    ("XCD", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("YER", 2),
    ("ZAR", 2),
    ("ZMW", 2),
    ("ZWG", 2),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

impl Currency {
    /// Every accepted code (openapi.yaml's `Currency` enum lists the same).
    pub fn codes() -> impl Iterator<Item = &'static str> {
        CURRENCIES.iter().map(|(code, _)| *code)
    }

    pub fn parse(code: &str) -> Option<Self> {
        CURRENCIES.iter().find(|(c, _)| *c == code).map(|(c, exponent)| {
            let b = c.as_bytes();
            Self { code: [b[0], b[1], b[2]], exponent: *exponent }
        })
    }

    pub fn code(&self) -> &str {
        // Codes come from the ASCII table above.
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(code: String) -> Result<Self, Self::Error> {
        Self::parse(&code).ok_or_else(|| format!("unknown currency {code:?}"))
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.code().to_owned()
    }
}

/// Parses a currency field from a request.
pub fn currency_field(field: &str, value: &str) -> Result<Currency, AppError> {
    Currency::parse(value).ok_or_else(|| {
        AppError::bad_request(
            field,
            format!("{field}: must be an active ISO 4217 code in upper case, such as USD"),
        )
    })
}

/// Validates an amount field from a request: a JSON integer of minor units,
/// 1..=MAX_AMOUNT. A number with a fraction, strings and out-of-range numbers
/// are refused. As in JSON Schema, `2500.0` and `2.5e3` are the integer 2500:
/// every value in range is exact in an f64 (10^12 < 2^53).
pub fn amount_field(field: &str, value: &serde_json::Value) -> Result<i64, AppError> {
    let invalid = || {
        AppError::bad_request(
            field,
            format!("{field}: must be an integer number of minor units between 1 and {MAX_AMOUNT}"),
        )
    };
    let number = value.as_number().ok_or_else(invalid)?;
    let amount = match number.as_i64() {
        Some(amount) => amount,
        None => number
            .as_f64()
            .filter(|f| f.fract() == 0.0 && (1.0..=MAX_AMOUNT as f64).contains(f))
            .map(|f| f as i64)
            .ok_or_else(invalid)?,
    };
    if (1..=MAX_AMOUNT).contains(&amount) { Ok(amount) } else { Err(invalid()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn currencies_carry_their_exponent() {
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("USD").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert_eq!(Currency::parse("USD").unwrap().code(), "USD");
        for bad in ["usd", "US", "XXX", "ABC", ""] {
            assert!(Currency::parse(bad).is_none(), "{bad}");
        }
        let unique: std::collections::HashSet<_> = CURRENCIES.iter().map(|(c, _)| c).collect();
        assert_eq!(unique.len(), CURRENCIES.len());
    }

    #[test]
    fn amounts_are_positive_bounded_integers() {
        assert_eq!(amount_field("amount", &json!(1)).unwrap(), 1);
        assert_eq!(amount_field("amount", &json!(MAX_AMOUNT)).unwrap(), MAX_AMOUNT);
        // Integral numbers written with a fraction or an exponent are integers.
        assert_eq!(amount_field("amount", &json!(2500.0)).unwrap(), 2500);
        let exponent: serde_json::Value = serde_json::from_str("2.5e3").unwrap();
        assert_eq!(amount_field("amount", &exponent).unwrap(), 2500);
        for bad in [
            json!(0),
            json!(-5),
            json!(10.5),
            json!(0.0),
            json!(-1.0),
            json!(1e12 + 1.0),
            json!(f64::MAX),
            json!("100"),
            json!(MAX_AMOUNT + 1),
            json!(u64::MAX),
            json!(null),
            json!([1]),
            json!(1e20),
        ] {
            assert!(amount_field("amount", &bad).is_err(), "{bad}");
        }
    }
}
