//! Reading the template and resolving intrinsics; no emulator needed.

use std::collections::BTreeMap;
use std::path::Path;

use caas_local::{EventSource, HttpRoute, LocalError, Physical, ResourceKind, Stack, Template};
use serde_json::json;

fn repo() -> Template {
    Template::load_repo().expect("the repository's template.yaml")
}

fn route(method: &str, path: &str, function: &str) -> HttpRoute {
    HttpRoute { method: method.to_owned(), path: path.to_owned(), function_logical_id: function.to_owned() }
}

#[test]
fn the_real_template_routes_the_auth_endpoints() {
    let routes = repo().http_routes();
    for expected in [
        route("POST", "/v1/users", "RegisterFunction"),
        route("POST", "/v1/auth/login", "LoginFunction"),
        route("POST", "/v1/auth/refresh", "RefreshFunction"),
        route("POST", "/v1/auth/logout", "LogoutFunction"),
        route("GET", "/.well-known/jwks.json", "JwksFunction"),
    ] {
        assert!(routes.contains(&expected), "{expected:?} missing from {routes:?}");
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in &routes {
        assert!(seen.insert((&r.method, &r.path)), "route {} {} declared twice", r.method, r.path);
    }
}

#[test]
fn the_real_template_functions_build_from_their_own_crates() {
    let template = repo();
    let functions = template.functions();
    let login = functions.iter().find(|f| f.logical_id == "LoginFunction").expect("LoginFunction");
    assert_eq!(login.binary, "login");
    assert_eq!(login.code_uri, "functions/login");
    assert_eq!(login.timeout_seconds, 10);
    assert_eq!(login.memory_mb, 1769, "its own MemorySize");
    let listing = functions.iter().find(|f| f.logical_id == "ListTransactionsFunction").expect("listing");
    assert_eq!(listing.memory_mb, 256, "its own MemorySize");
    // Every function's size is chosen (docs/BENCHMARKS.md section 8), none left to the
    // Globals: with the Globals' MemorySize changed, no function's changes.
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).expect("read");
    let (head, globals) = text.split_once("\nGlobals:\n").expect("a Globals section");
    assert!(globals.contains("\n    MemorySize: "), "Globals.Function.MemorySize");
    let changed =
        format!("{head}\nGlobals:\n{}", globals.replacen("\n    MemorySize: ", "\n    MemorySize: 7 # ", 1));
    for f in Template::parse(&changed).expect("parse").functions() {
        assert_ne!(f.memory_mb, 7, "{} has no MemorySize of its own", f.logical_id);
    }
    assert_eq!(
        login.events,
        [EventSource::HttpApi { method: "POST".to_owned(), path: "/v1/auth/login".to_owned() }]
    );
    for id in ["RegisterFunction", "LoginFunction", "RefreshFunction", "LogoutFunction", "JwksFunction"] {
        assert!(functions.iter().any(|f| f.logical_id == id), "{id} missing");
    }
    // `sam build` needs each CodeUri to be the function's own workspace member.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for f in &functions {
        let manifest = root.join(&f.code_uri).join("Cargo.toml");
        let text =
            std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        assert!(
            text.contains(&format!("name = \"{}\"", f.binary)),
            "{} builds no binary {}",
            manifest.display(),
            f.binary
        );
    }
}

#[test]
fn parameter_defaults_are_strings() {
    let defaults = repo().parameter_defaults();
    for (name, value) in [
        ("Argon2MemoryKiB", "65536"),
        ("Argon2Iterations", "3"),
        ("Argon2Parallelism", "1"),
        ("AccessTokenTtlSeconds", "900"),
        ("RefreshTokenTtlSeconds", "2592000"),
        ("LockoutThreshold", "5"),
        ("LockoutWindowSeconds", "900"),
        ("LockoutDurationSeconds", "900"),
        ("IdempotencyTtlSeconds", "86400"),
        ("TokenIssuer", "caas"),
        ("TokenAudience", "caas-api"),
        ("BackupRetentionDays", "30"),
        ("BackupKeepNewest", "7"),
    ] {
        assert_eq!(defaults.get(name).map(String::as_str), Some(value), "{name}");
    }
}

/// A template exercising each supported intrinsic, in short and long form.
const INTRINSICS: &str = r#"
Parameters:
  Memory: {Type: Number, Default: 65536}
  Issuer: {Type: String, Default: caas}
  Required: {Type: String}
  Zones: {Type: CommaDelimitedList, Default: [a, b]}
Globals:
  Function:
    Timeout: !Ref Memory
    MemorySize: 384
    Environment:
      Variables:
        TABLE: !Ref Table
        OVERRIDDEN: global
        ISSUER: {Ref: Issuer}
Resources:
  Table: {Type: AWS::DynamoDB::Table}
  Key: {Type: AWS::KMS::Key}
  Queue: {Type: AWS::SQS::Queue, Properties: {FifoQueue: true}}
  Api: {Type: AWS::Serverless::HttpApi}
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/thing/
      MemorySize: 512
      Environment:
        Variables:
          OVERRIDDEN: own
          MEMORY: !Ref Memory
          KEY: !Ref Key
          QUEUE_URL: !Ref Queue
          TABLE_ARN_SHORT: !GetAtt Table.Arn
          TABLE_ARN_LONG: {"Fn::GetAtt": [Table, Arn]}
          TABLE_ARN_DOTTED: {"Fn::GetAtt": "Table.Arn"}
          STREAM: !GetAtt Table.StreamArn
          QUEUE_NAME: !GetAtt Queue.QueueName
          QUEUE_URL_ATT: !GetAtt Queue.QueueUrl
          KEY_ID: !GetAtt Key.KeyId
          SUB: !Sub "${AWS::StackName}/${Table}/${Table.Arn}/${AWS::Region}/${AWS::AccountId}/${!Literal}"
          SUB_VARS: {"Fn::Sub": ["${Name}-${Issuer}", {Name: !Ref Key}]}
          JOIN: !Join [",", [!Ref Issuer, !Ref Memory]]
          ZONES: !Ref Zones
          NUMBER: 42
          FLAG: true
          GONE: !Ref AWS::NoValue
      Events:
        Get: {Type: HttpApi, Properties: {ApiId: !Ref Api, Method: get, Path: /things}}
        Tick: {Type: Schedule, Properties: {Schedule: rate(1 hour), Input: '{"op": "tick"}'}}
        Changes:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Table.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 25
            FilterCriteria:
              Filters:
                - Pattern: '{"dynamodb": {"NewImage": {"kind": {"S": ["outbox"]}}}}'
        Jobs: {Type: SQS, Properties: {Queue: !GetAtt Queue.Arn}}
  Bad:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/bad
      Environment:
        Variables:
          CONDITIONAL: !If [IsProd, a, b]
          UNPROVISIONED: !Ref Api
          NEEDS_PARAMETER: !Ref Required
"#;

fn physical(kind: ResourceKind, name: &str, arn: &str) -> Physical {
    Physical { kind, name: name.to_owned(), arn: arn.to_owned(), url: None, stream_arn: None }
}

fn stack() -> Stack {
    let mut table =
        physical(ResourceKind::Table, "Table-s1", "arn:aws:dynamodb:eu-west-1:123456789012:table/Table-s1");
    table.stream_arn = Some(format!("{}/stream/1", table.arn));
    let mut queue =
        physical(ResourceKind::Queue, "Queue-s1.fifo", "arn:aws:sqs:eu-west-1:123456789012:Queue-s1.fifo");
    queue.url = Some("http://127.0.0.1:1/123456789012/Queue-s1.fifo".to_owned());
    Stack {
        suffix: "s1".to_owned(),
        resources: BTreeMap::from([
            ("Table".to_owned(), table),
            (
                "Key".to_owned(),
                physical(ResourceKind::Key, "key-1", "arn:aws:kms:eu-west-1:123456789012:key/key-1"),
            ),
            ("Queue".to_owned(), queue),
        ]),
    }
}

fn env_var(env: &BTreeMap<String, String>, name: &str) -> String {
    env.get(name).cloned().unwrap_or_else(|| panic!("{name} missing from {env:?}"))
}

#[test]
fn intrinsics_resolve_in_short_and_long_form() {
    let template = Template::parse(INTRINSICS).expect("parse");
    let env = stack().function_env(&template, "Fn", &BTreeMap::new()).expect("env");
    let table_arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/Table-s1";
    let expected = [
        ("TABLE", "Table-s1"),
        ("OVERRIDDEN", "own"),
        ("ISSUER", "caas"),
        ("MEMORY", "65536"),
        ("KEY", "key-1"),
        ("QUEUE_URL", "http://127.0.0.1:1/123456789012/Queue-s1.fifo"),
        ("TABLE_ARN_SHORT", table_arn),
        ("TABLE_ARN_LONG", table_arn),
        ("TABLE_ARN_DOTTED", table_arn),
        ("STREAM", "arn:aws:dynamodb:eu-west-1:123456789012:table/Table-s1/stream/1"),
        ("QUEUE_NAME", "Queue-s1.fifo"),
        ("QUEUE_URL_ATT", "http://127.0.0.1:1/123456789012/Queue-s1.fifo"),
        ("KEY_ID", "key-1"),
        (
            "SUB",
            "caas-s1/Table-s1/arn:aws:dynamodb:eu-west-1:123456789012:table/Table-s1/eu-west-1/123456789012/${Literal}",
        ),
        ("SUB_VARS", "key-1-caas"),
        ("JOIN", "caas,65536"),
        ("ZONES", "a,b"),
        ("NUMBER", "42"),
        ("FLAG", "true"),
    ];
    for (name, value) in expected {
        assert_eq!(env_var(&env, name), value, "{name}");
    }
    assert!(!env.contains_key("GONE"), "AWS::NoValue leaves the variable out");
    assert_eq!(env.len(), expected.len());
}

#[test]
fn parameter_overrides_win_over_defaults() {
    let template = Template::parse(INTRINSICS).expect("parse");
    let overrides = BTreeMap::from([("Memory".to_owned(), "1024".to_owned())]);
    let env = stack().function_env(&template, "Fn", &overrides).expect("env");
    assert_eq!(env_var(&env, "MEMORY"), "1024");
    assert_eq!(env_var(&env, "JOIN"), "caas,1024");

    let typo = BTreeMap::from([("Memroy".to_owned(), "1".to_owned())]);
    let err = stack().function_env(&template, "Fn", &typo).expect_err("unknown parameter");
    assert!(matches!(err, LocalError::UnknownParameter(ref p) if p == "Memroy"), "{err}");
}

#[test]
fn unresolvable_variables_name_the_function_and_the_variable() {
    let template = Template::parse(INTRINSICS).expect("parse");
    let stack = stack();
    let err = stack.function_env(&template, "Bad", &BTreeMap::new()).expect_err("!If is not supported");
    match &err {
        LocalError::Unresolvable { function, variable, reason } => {
            assert_eq!(function, "Bad");
            assert_eq!(variable, "CONDITIONAL");
            assert!(reason.contains("Fn::If"), "{reason}");
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("Bad") && err.to_string().contains("CONDITIONAL"));

    let yaml = INTRINSICS.replace("CONDITIONAL: !If [IsProd, a, b]", "");
    let template = Template::parse(&yaml.replace("NEEDS_PARAMETER: !Ref Required", "")).expect("parse");
    let err =
        stack.function_env(&template, "Bad", &BTreeMap::new()).expect_err("the HTTP API is not provisioned");
    assert!(
        matches!(&err, LocalError::Unresolvable { variable, reason, .. }
        if variable == "UNPROVISIONED" && reason.contains("not provisioned")),
        "{err}"
    );

    let yaml = yaml.replace("UNPROVISIONED: !Ref Api", "");
    let template = Template::parse(&yaml).expect("parse");
    let err = stack.function_env(&template, "Bad", &BTreeMap::new()).expect_err("no default");
    assert!(
        matches!(&err, LocalError::Unresolvable { variable, .. } if variable == "NEEDS_PARAMETER"),
        "{err}"
    );
    let overrides = BTreeMap::from([("Required".to_owned(), "given".to_owned())]);
    let env = stack.function_env(&template, "Bad", &overrides).expect("env");
    assert_eq!(env_var(&env, "NEEDS_PARAMETER"), "given");

    let err = stack.function_env(&template, "Table", &BTreeMap::new()).expect_err("not a function");
    assert!(matches!(err, LocalError::UnknownFunction(ref f) if f == "Table"));
}

#[test]
fn functions_and_their_event_sources_are_read() {
    let template = Template::parse(INTRINSICS).expect("parse");
    let functions = template.functions();
    let f = functions.iter().find(|f| f.logical_id == "Fn").expect("Fn");
    assert_eq!(f.binary, "thing", "binary defaults to the CodeUri directory");
    assert_eq!(f.code_uri, "functions/thing/");
    assert_eq!(f.timeout_seconds, 65536, "Globals Timeout via !Ref to a parameter default");
    assert_eq!(f.memory_mb, 512, "its own MemorySize");
    let bad = functions.iter().find(|f| f.logical_id == "Bad").expect("Bad");
    assert_eq!(bad.memory_mb, 384, "the Globals' MemorySize");
    let events = &f.events;
    assert!(events.contains(&EventSource::HttpApi { method: "GET".to_owned(), path: "/things".to_owned() }));
    assert!(events.contains(&EventSource::Schedule {
        name: "Tick".to_owned(),
        expression: "rate(1 hour)".to_owned(),
        input: Some(json!({"op": "tick"})),
    }));
    assert!(events.contains(&EventSource::DynamoDbStream {
        table_logical_id: "Table".to_owned(),
        batch_size: 25,
        filter_patterns: vec![json!({"dynamodb": {"NewImage": {"kind": {"S": ["outbox"]}}}})],
    }));
    assert!(events.contains(&EventSource::Sqs { queue_logical_id: "Queue".to_owned(), batch_size: 10 }));
    assert_eq!(template.http_routes(), [route("GET", "/things", "Fn")]);
}

#[test]
fn malformed_templates_are_refused_with_the_place() {
    assert!(matches!(Template::parse("Resources: [unclosed"), Err(LocalError::Yaml(_))));
    assert!(matches!(Template::parse("Parameters: {}"), Err(LocalError::InvalidTemplate { .. })));

    let unsupported_event = r#"
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/f
      Events:
        Rest: {Type: Api, Properties: {Path: /x, Method: get}}
"#;
    let err = Template::parse(unsupported_event).expect_err("Api events are not supported");
    assert!(err.to_string().contains("Resources.F.Properties.Events.Rest"), "{err}");

    let dangling_queue = r#"
Resources:
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/f
      Events:
        Jobs: {Type: SQS, Properties: {Queue: !GetAtt Nowhere.Arn}}
"#;
    let err = Template::parse(dangling_queue).expect_err("Nowhere is no resource");
    assert!(err.to_string().contains("Nowhere"), "{err}");

    let bad_pattern = r#"
Resources:
  T: {Type: AWS::DynamoDB::Table}
  F:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: functions/f
      Events:
        S: {Type: DynamoDB, Properties: {Stream: !GetAtt T.StreamArn, FilterCriteria: {Filters: [{Pattern: "{not json"}]}}}
"#;
    let err = Template::parse(bad_pattern).expect_err("pattern is not JSON");
    assert!(err.to_string().contains("Pattern"), "{err}");

    let missing = Template::load("/nonexistent/template.yaml").expect_err("no such file");
    assert!(matches!(missing, LocalError::Io { .. }));
}

#[test]
fn the_repository_templates_websocket_api_is_read_with_its_routes() {
    let template = Template::load_repo().expect("template.yaml");
    let apis = template.websocket_apis();
    assert_eq!(apis.len(), 1, "one WebSocket API");
    let api = &apis[0];
    assert_eq!(api.route_selection_expression, "$request.body.action");
    assert_eq!(api.stage, "live");
    let routes: Vec<(&str, &str, bool)> = api
        .routes
        .iter()
        .map(|r| (r.route_key.as_str(), r.function_logical_id.as_str(), r.responds))
        .collect();
    for expected in [
        ("$connect", "WsConnectFunction", false),
        ("$disconnect", "WsDisconnectFunction", false),
        ("send", "WsSendFunction", true),
    ] {
        assert!(routes.contains(&expected), "{expected:?} not in {routes:?}");
    }
}
