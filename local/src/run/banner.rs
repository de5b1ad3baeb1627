//! What a run prints once everything is up: where each API listens, the routes, the
//! schedules and how to fire them, where the logs go.

use std::path::Path;

use super::Session;
use super::servers::Servers;
use crate::schedule::{Schedule, rate_period};
use crate::stack::Stack;

pub(super) fn print(session: &Session<'_>, stack: &Stack, servers: &Servers, logs: &Path) {
    let (api_url, invoke_url) = (&servers.api_url, &servers.invoke_url);
    println!();
    println!(
        "CAAS local stack ({} functions, resources suffixed -{})",
        session.template.functions().len(),
        stack.suffix
    );
    println!("  HTTP API     {api_url}");
    for route in servers.invoke_api.routes.routes() {
        println!("    {:<7} {:<36} -> {}", route.method, route.path, route.function_logical_id);
    }
    if let Some((ws_url, server)) = &servers.websocket {
        let api = server.api();
        println!("  WebSocket API {ws_url}   (routes by {})", api.route_selection_expression);
        for route in &api.routes {
            let answers = if route.responds { "  (answers with a frame)" } else { "" };
            println!("    {:<44} -> {}{answers}", route.route_key, route.function_logical_id);
        }
        let management = ws_url.replacen("ws://", "http://", 1);
        println!(
            "    @connections: {management}/@connections/{{id}} (API Gateway Management API: POST, GET, DELETE)"
        );
    }
    println!(
        "  Invoke API   {invoke_url}   (aws lambda invoke --endpoint-url {invoke_url} --function-name <LogicalId> ...)"
    );
    for schedule in &servers.invoke_api.schedules {
        print_schedule(schedule, session.options.schedule_speedup, invoke_url);
    }
    println!("  Function logs {}", logs.display());
    println!("  Ctrl-C stops everything.");
    let ws = servers.websocket.as_ref().map(|(url, _)| format!(" ws={url}")).unwrap_or_default();
    println!(
        "ready in {:.1} s: api={api_url} invoke={invoke_url}{ws}",
        session.started.elapsed().as_secs_f64()
    );
    println!();
}

fn print_schedule(schedule: &Schedule, speedup: f64, invoke_url: &str) {
    let pace = match (rate_period(&schedule.expression), speedup) {
        (_, s) if s <= 0.0 => "on demand only".to_owned(),
        (Some(_), s) if s != 1.0 => format!("{s}x speed"),
        (Some(_), _) => "real time".to_owned(),
        (None, _) => "on demand only".to_owned(),
    };
    println!(
        "  Schedule     {}.{} {} ({pace}); fire now: curl -X POST {invoke_url}/local/schedules/{}/{}",
        schedule.function.name(),
        schedule.name,
        schedule.expression,
        schedule.function.name(),
        schedule.name,
    );
}
