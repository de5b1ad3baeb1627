//! Handler CPU per invocation: each HTTP function's real handler called in
//! process, one request at a time on a current-thread runtime, the user+sys
//! CPU of this process measured around each call. The emulator is another
//! process, so its time is not counted; the blocking pool (where Argon2 runs)
//! is part of this process, so its time is.

use crate::bench::*;
use crate::error::Result;
use crate::http::{Call, dispatch, expect, field};
use crate::stats::{Summary, process_cpu, summarize};
use serde_json::Value;
use std::time::Instant;

pub struct Row {
    pub function: &'static str,
    pub what: String,
    pub cpu: Summary,
    pub wall: Summary,
}

/// Calls `function` `n` times with the request `next(i, previous answer)`
/// builds; every answer must have status `expected`.
async fn run<F>(
    bench: &Bench,
    function: &'static str,
    what: &str,
    n: usize,
    expected: u16,
    mut next: F,
) -> Result<(Row, Vec<Value>)>
where
    F: FnMut(usize, Option<&Value>) -> Result<Call<'static>>,
{
    let app = bench.app(function, Cost::Template, false)?;
    let mut cpu = Vec::with_capacity(n);
    let mut wall = Vec::with_capacity(n);
    let mut bodies: Vec<Value> = Vec::with_capacity(n);
    for i in 0..n {
        let request = next(i, bodies.last())?.request()?;
        let (c0, w0) = (process_cpu(), Instant::now());
        let response = dispatch(&app, function, request).await?;
        let (c1, w1) = (process_cpu(), Instant::now());
        cpu.push(c1.saturating_sub(c0));
        wall.push(w1 - w0);
        bodies.push(expect(function, &response, expected)?);
    }
    eprintln!("  {function}: {n} requests");
    Ok((Row { function, what: what.to_owned(), cpu: summarize(&cpu), wall: summarize(&wall) }, bodies))
}

pub struct Options {
    pub requests: usize,
    pub argon2_requests: usize,
}

pub async fn measure(bench: &Bench, fixture: &Fixture, options: &Options) -> Result<Vec<Row>> {
    let (n, na) = (options.requests, options.argon2_requests);
    let token = fixture.token.clone();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut rows = Vec::new();

    let (row, _) = run(bench, "RegisterFunction", "new user, template Argon2 cost", na, 201, |i, _| {
        Ok(register_call(TENANT, &format!("cpu-{run_id}-{i}@example.com")))
    })
    .await?;
    rows.push(row);

    let (row, logins) =
        run(bench, "LoginFunction", "right password, template Argon2 cost", na, 200, |_, _| {
            Ok(login_call(TENANT, &fixture.email))
        })
        .await?;
    rows.push(row);

    let (_, first) = fixture.login(bench).await?;
    let (row, _) = run(bench, "RefreshFunction", "rotation chain", n, 200, |_, previous| {
        let current = match previous {
            Some(body) => field(body, "refresh_token")?,
            None => first.clone(),
        };
        Ok(refresh_call("/v1/auth/refresh", &current))
    })
    .await?;
    rows.push(row);

    let refresh_tokens: Vec<String> =
        logins.iter().map(|b| field(b, "refresh_token")).collect::<Result<_>>()?;
    let (row, _) = run(bench, "LogoutFunction", "live session", refresh_tokens.len(), 204, |i, _| {
        Ok(refresh_call("/v1/auth/logout", &refresh_tokens[i]))
    })
    .await?;
    rows.push(row);

    let (row, _) = run(bench, "JwksFunction", "key memoized per container", n, 200, |_, _| {
        Ok(Call::new("GET", "/.well-known/jwks.json"))
    })
    .await?;
    rows.push(row);

    let (row, _) = run(bench, "CreateAccountFunction", "new account", n, 201, |_, _| {
        Ok(create_account_call(&token, false))
    })
    .await?;
    rows.push(row);

    let (row, created) = run(bench, "CreatePaymentFunction", "authorize 1 minor unit", 2 * n, 201, |_, _| {
        Ok(create_payment_call(&token, &fixture.payer, &fixture.payee, 1))
    })
    .await?;
    rows.push(row);
    let ids: Vec<String> = created.iter().map(|b| field(b, "payment_id")).collect::<Result<_>>()?;
    let (captured, voided) = ids.split_at(n);

    let (row, _) = run(bench, "CapturePaymentFunction", "full capture", n, 200, |i, _| {
        Ok(capture_call(&token, &captured[i]))
    })
    .await?;
    rows.push(row);
    let (row, _) =
        run(bench, "VoidPaymentFunction", "void", n, 200, |i, _| Ok(void_call(&token, &voided[i]))).await?;
    rows.push(row);
    let (row, _) = run(bench, "RefundPaymentFunction", "full refund", n, 201, |i, _| {
        Ok(refund_call(&token, &captured[i], 1))
    })
    .await?;
    rows.push(row);
    let (row, _) = run(bench, "GetPaymentFunction", "", n, 200, |i, _| {
        Ok(Call::new("GET", "/v1/payments/{id}").id(&captured[i]).bearer(&token))
    })
    .await?;
    rows.push(row);
    let (row, _) = run(bench, "GetAccountFunction", "", n, 200, |_, _| {
        Ok(Call::new("GET", "/v1/accounts/{id}").id(&fixture.payer).bearer(&token))
    })
    .await?;
    rows.push(row);
    let (row, _) = run(bench, "ListTransactionsFunction", "first page", n, 200, |_, _| {
        Ok(Call::new("GET", "/v1/accounts/{id}/transactions").id(&fixture.payer).bearer(&token))
    })
    .await?;
    rows.push(row);

    // An audit chain of 50 entries for the audit reads.
    let writer = bench.app("AuditWriterFunction", Cost::Template, false)?;
    for batch in audit_messages(TENANT, 50)?.chunks(10) {
        let response =
            audit_writer::handler(&writer, caas_tests::triggers::lambda_event(sqs_event(batch.to_vec())))
                .await
                .map_err(|e| {
                    crate::error::BenchError::Handler("AuditWriterFunction".into(), e.to_string())
                })?;
        if !response.batch_item_failures.is_empty() {
            return Err(crate::error::BenchError::Setup("audit-writer failed messages during setup".into()));
        }
    }
    let (row, _) = run(bench, "ListAuditFunction", "page of 50 entries", n, 200, |_, _| {
        Ok(Call::new("GET", "/v1/audit/events").query("limit", "50").bearer(&token))
    })
    .await?;
    rows.push(row);
    let (row, _) = run(bench, "VerifyAuditFunction", "chain of 50 entries", n, 200, |_, _| {
        Ok(Call::new("GET", "/v1/audit/verify").bearer(&token))
    })
    .await?;
    rows.push(row);
    Ok(rows)
}
