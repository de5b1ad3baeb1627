//! `Schedule` events: `rate(...)` expressions fire every period divided by the
//! speed-up; any schedule (cron ones too) can be fired on demand.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::functions::{Function, plain_status};
use crate::runtime_api::Reply;

/// One schedule of one function.
#[derive(Clone)]
pub struct Schedule {
    pub function: Arc<Function>,
    /// The event's name under the function's `Events`.
    pub name: String,
    pub expression: String,
    pub input: Option<Value>,
    pub region: String,
}

/// The period of a `rate(N unit)` expression; `None` for cron expressions and
/// anything unparsable.
pub fn rate_period(expression: &str) -> Option<Duration> {
    let inner = expression.trim().strip_prefix("rate(")?.strip_suffix(')')?;
    let (count, unit) = inner.trim().split_once(char::is_whitespace)?;
    let count: u64 = count.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(count * seconds))
}

impl Schedule {
    /// Fires forever at the rate divided by `speedup` (never more often than every
    /// 100 ms). Cron expressions only fire on demand.
    pub async fn run(self, speedup: f64) {
        let Some(period) = rate_period(&self.expression) else {
            tracing::info!(function = self.function.name(), expression = %self.expression, "not a rate(); fires on demand only");
            return;
        };
        let period = Duration::from_secs_f64((period.as_secs_f64() / speedup).max(0.1));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.fire().await;
        }
    }

    /// Invokes the function with what EventBridge would send: the event's `Input`
    /// when the template sets one, else a "Scheduled Event".
    pub async fn fire(&self) -> Reply {
        let payload = match &self.input {
            Some(input) => input.clone(),
            None => json!({
                "version": "0",
                "id": uuid::Uuid::new_v4().to_string(),
                "detail-type": "Scheduled Event",
                "source": "aws.events",
                "account": crate::ACCOUNT_ID,
                "time": time::OffsetDateTime::now_utc()
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                "region": self.region,
                "resources": [format!("arn:aws:events:{}:{}:rule/{}", self.region, crate::ACCOUNT_ID, self.function.name())],
                "detail": {},
            }),
        };
        let trigger = format!("schedule {} {}", self.name, self.expression);
        self.function.invoke(Bytes::from(payload.to_string()), &trigger, plain_status).await.reply
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        assert_eq!(rate_period("rate(5 minutes)"), Some(Duration::from_secs(300)));
        assert_eq!(rate_period("rate(1 hour)"), Some(Duration::from_secs(3600)));
        assert_eq!(rate_period("rate(6 hours)"), Some(Duration::from_secs(21_600)));
        assert_eq!(rate_period("rate(2 days)"), Some(Duration::from_secs(172_800)));
        assert_eq!(rate_period("rate(0 minutes)"), None);
        assert_eq!(rate_period("cron(0 12 * * ? *)"), None);
    }
}
