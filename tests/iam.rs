//! IAM conformance of template.yaml: every AWS call a function's handler makes
//! in the test suite is allowed by that function's `Policies`, and every
//! permission a policy grants is used by some test, or listed in
//! [`UNEXERCISED`] with its reason.
//!
//! How it works:
//! - Calls: every App the tests build for a function carries SDK clients with
//!   a recorder tagged with the function's logical id (tests/support/iam.rs);
//!   each request becomes the IAM authorizations it needs, with canonical
//!   resource ARNs (logical ids instead of a test stack's names), written to
//!   `$CAAS_IAM_CALLS/*.jsonl`.
//! - Policies: each `AWS::Serverless::Function`'s `Policies` are read from
//!   template.yaml (found again for functions added later); inline statements
//!   are taken as they are, SAM policy templates (`DynamoDBCrudPolicy: {...}`)
//!   are expanded from the `policy_templates.json` of the pinned SAM
//!   translator, and `Ref` / `Fn::GetAtt` / `Fn::Sub` / `Fn::Join` / `Fn::If`
//!   are resolved to the same canonical ARNs. A call is allowed when an
//!   `Allow` statement without a `Condition` matches its action and resource
//!   (IAM wildcards) and no `Deny` does; a conditional statement never counts
//!   for a direct call (its conditions, such as `kms:ViaService`, are about
//!   calls AWS makes on the function's behalf), with one exception:
//! - Keys by alias: a statement on `arn:...:kms:...:key/*` whose only
//!   condition is `StringEquals` or `ForAnyValue:StringEquals` on
//!   `kms:ResourceAliases`, with values that are all the stack's own alias
//!   names (an `AWS::KMS::Alias`'s `AliasName`, or that name followed by
//!   `-` and a suffix, as rotation names the previous key's alias), allows
//!   its actions on a key that has one of those aliases: the key a call named
//!   by one of them, or a key named by id whose aliases (the template's, and
//!   those the recorded alias calls gave it) include one. Signing keys are
//!   created at runtime by the rotation job, so their ARNs are in no
//!   template; this is how the policies reach exactly the stack's. The
//!   hygiene rule takes such a statement as the stack's own.
//! - Order: the record-based check is `#[ignore]`d because it needs the
//!   records of a whole run; `scripts/test` runs it after `cargo test` has run
//!   every other test, with `cargo test --test iam -- --ignored`. The other
//!   tests here (policy hygiene, the expansion, and the check itself against
//!   a VerifyFunction policy without `GetItem`) run with the rest.
//!
//! The same binary checks the template's operations rules that should hold for
//! every function added later: log groups with retention, Errors and Throttles
//! alarms, alarms that notify, a depth alarm on every dead-letter queue.

use caas_tests::iam::{ACCOUNT, Call, REGION, read_records};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Granted but not called by any handler in the tests, with the reason.
/// `(function, action, resource suffix ("" = any), reason)`.
const UNEXERCISED: &[(&str, &str, &str, &str)] = &[
    ("BackupFunction", "dynamodb:PutItem", "", RESTORE_WRITES),
    ("BackupFunction", "dynamodb:UpdateItem", "", RESTORE_WRITES),
    ("BackupFunction", "dynamodb:DeleteItem", "", RESTORE_WRITES),
    ("BackupFunction", "dynamodb:BatchWriteItem", "", RESTORE_WRITES),
    (
        "BackupFunction",
        "dynamodb:RestoreTableFromBackup",
        "table/Table-restore-*",
        "an operator's restore from an on-demand backup (`backup_arn`) has no test; drills restore backups into drill tables",
    ),
];

/// Statements whose resources may be other than the stack's own ARNs:
/// `(function, Sid, reason)`.
const OTHER_RESOURCES: &[(&str, &str, &str)] = &[(
    "SigningKeysFunction",
    "KeysTheAliasesPointAt",
    "rotation moves the signing alias onto a key it has just created: that key has no ARN in the template and no alias yet, so neither a reference nor a kms:ResourceAliases condition can name it",
)];

const RESTORE_WRITES: &str = "the restore APIs require the write actions on the target table (DynamoDB writes the restored items itself)";

fn repo_root() -> PathBuf {
    caas_tests::repo_root()
}

// ------------------------------------------------------------------ template

/// template.yaml as JSON, short-form intrinsics in long form.
fn load_template(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_norway::Value = serde_norway::from_str(&text).expect("template.yaml parses");
    yaml_to_json(&doc)
}

fn template_path() -> PathBuf {
    std::env::var_os("CAAS_IAM_TEMPLATE").map_or_else(|| repo_root().join("template.yaml"), PathBuf::from)
}

fn yaml_to_json(value: &serde_norway::Value) -> Value {
    use serde_norway::Value as Y;
    match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => {
            n.as_i64().map(Value::from).or_else(|| n.as_f64().map(Value::from)).unwrap_or(Value::Null)
        }
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::Array(items.iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Y::String(s) => s.clone(),
                        other => serde_norway::to_string(other).unwrap_or_default().trim().to_owned(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(&tagged.value);
            match name {
                "Ref" | "Condition" => json!({ name: inner }),
                "GetAtt" => {
                    let arg = match &inner {
                        Value::String(s) => {
                            let (id, attr) = s.split_once('.').expect("!GetAtt Resource.Attribute");
                            json!([id, attr])
                        }
                        _ => inner,
                    };
                    json!({ "Fn::GetAtt": arg })
                }
                other => json!({ format!("Fn::{other}"): inner }),
            }
        }
    }
}

fn resources(template: &Value) -> &Map<String, Value> {
    template["Resources"].as_object().expect("Resources")
}

fn of_type<'a>(template: &'a Value, kind: &'a str) -> impl Iterator<Item = (&'a String, &'a Value)> {
    resources(template).iter().filter(move |(_, r)| r["Type"] == kind)
}

const FUNCTION: &str = "AWS::Serverless::Function";

// ------------------------------------------------------------------ resolution

/// Resolves intrinsics to the canonical names the recorder uses: a resource's
/// physical name is its logical id, region and account are fixed.
struct Resolver<'a> {
    template: &'a Value,
}

impl Resolver<'_> {
    fn resolve(&self, value: &Value) -> Result<Value, String> {
        match value {
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().unwrap();
                if key == "Ref" || key.starts_with("Fn::") {
                    return self.intrinsic(key, arg);
                }
                Ok(Value::Object(
                    map.iter()
                        .map(|(k, v)| Ok((k.clone(), self.resolve(v)?)))
                        .collect::<Result<_, String>>()?,
                ))
            }
            Value::Object(map) => Ok(Value::Object(
                map.iter().map(|(k, v)| Ok((k.clone(), self.resolve(v)?))).collect::<Result<_, String>>()?,
            )),
            Value::Array(items) => {
                let mut out = Vec::new();
                for item in items {
                    let resolved = self.resolve(item)?;
                    if resolved != json!("AWS::NoValue") {
                        out.push(resolved);
                    }
                }
                Ok(Value::Array(out))
            }
            other => Ok(other.clone()),
        }
    }

    fn string(&self, value: &Value) -> Result<String, String> {
        match self.resolve(value)? {
            Value::String(s) => Ok(s),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!("{other} is not a string")),
        }
    }

    fn intrinsic(&self, key: &str, arg: &Value) -> Result<Value, String> {
        match key {
            "Ref" => self.reference(arg.as_str().ok_or("Ref takes a name")?).map(Value::String),
            "Fn::GetAtt" => {
                let parts: Vec<&str> = match arg {
                    Value::Array(p) => p.iter().filter_map(Value::as_str).collect(),
                    Value::String(s) => s.splitn(2, '.').collect(),
                    _ => vec![],
                };
                let [id, attr] = parts[..] else { return Err(format!("Fn::GetAtt {arg}")) };
                self.attribute(id, attr).map(Value::String)
            }
            "Fn::Sub" => {
                let (text, vars) = match arg {
                    Value::String(t) => (t.as_str(), None),
                    Value::Array(p) => {
                        (p[0].as_str().ok_or("Fn::Sub text")?, p.get(1).and_then(Value::as_object))
                    }
                    _ => return Err(format!("Fn::Sub {arg}")),
                };
                let mut out = String::new();
                let mut rest = text;
                while let Some(start) = rest.find("${") {
                    out.push_str(&rest[..start]);
                    let after = &rest[start + 2..];
                    let end = after.find('}').ok_or("Fn::Sub: unclosed ${")?;
                    let name = after[..end].trim();
                    if let Some(literal) = name.strip_prefix('!') {
                        out.push_str(&format!("${{{literal}}}"));
                    } else if let Some(value) = vars.and_then(|v| v.get(name)) {
                        out.push_str(&self.string(value)?);
                    } else if let Some((id, attr)) = name.split_once('.') {
                        out.push_str(&self.attribute(id, attr)?);
                    } else {
                        out.push_str(&self.reference(name)?);
                    }
                    rest = &after[end + 1..];
                }
                out.push_str(rest);
                Ok(Value::String(out))
            }
            "Fn::Join" => {
                let delimiter = arg[0].as_str().ok_or("Fn::Join delimiter")?;
                let Value::Array(items) = self.resolve(&arg[1])? else { return Err("Fn::Join list".into()) };
                let items: Vec<String> = items.iter().map(|v| self.string(v)).collect::<Result<_, _>>()?;
                Ok(Value::String(items.join(delimiter)))
            }
            "Fn::If" => {
                let name = arg[0].as_str().ok_or("Fn::If condition")?;
                let branch = if self.condition(name)? { &arg[1] } else { &arg[2] };
                self.resolve(branch)
            }
            "Fn::Select" => {
                let index = self.string(&arg[0])?.parse::<usize>().map_err(|e| e.to_string())?;
                let Value::Array(items) = self.resolve(&arg[1])? else {
                    return Err("Fn::Select list".into());
                };
                items.get(index).cloned().ok_or_else(|| "Fn::Select out of range".into())
            }
            "Fn::Split" => {
                let delimiter = arg[0].as_str().ok_or("Fn::Split delimiter")?;
                let text = self.string(&arg[1])?;
                Ok(Value::Array(text.split(delimiter).map(Value::from).collect()))
            }
            other => Err(format!("unsupported intrinsic {other}")),
        }
    }

    fn condition(&self, name: &str) -> Result<bool, String> {
        let spec = self.template["Conditions"].get(name).ok_or_else(|| format!("no condition {name}"))?;
        self.evaluate(spec)
    }

    fn evaluate(&self, spec: &Value) -> Result<bool, String> {
        let (key, arg) = spec.as_object().and_then(|m| m.iter().next()).ok_or("condition")?;
        match key.as_str() {
            "Fn::Equals" => Ok(self.string(&arg[0])? == self.string(&arg[1])?),
            "Fn::Not" => Ok(!self.evaluate(&arg[0])?),
            "Fn::And" => {
                arg.as_array().ok_or("Fn::And")?.iter().try_fold(true, |a, c| Ok(a && self.evaluate(c)?))
            }
            "Fn::Or" => {
                arg.as_array().ok_or("Fn::Or")?.iter().try_fold(false, |a, c| Ok(a || self.evaluate(c)?))
            }
            "Condition" => self.condition(arg.as_str().ok_or("Condition")?),
            other => Err(format!("unsupported condition function {other}")),
        }
    }

    fn reference(&self, name: &str) -> Result<String, String> {
        Ok(match name {
            "AWS::Region" => REGION.to_owned(),
            "AWS::AccountId" => ACCOUNT.to_owned(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            "AWS::StackName" => "caas".to_owned(),
            "AWS::NoValue" => "AWS::NoValue".to_owned(),
            _ => {
                if let Some(parameter) = self.template["Parameters"].get(name) {
                    return parameter
                        .get("Default")
                        .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_owned))
                        .ok_or_else(|| format!("parameter {name} has no default"));
                }
                let kind = self.kind(name)?;
                match kind {
                    "AWS::SQS::Queue" => format!("https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"),
                    "AWS::KMS::Alias" => format!("alias/{name}"),
                    "AWS::SNS::Topic" => self.arn(name, kind),
                    _ => name.to_owned(),
                }
            }
        })
    }

    fn kind(&self, id: &str) -> Result<&str, String> {
        resources(self.template)
            .get(id)
            .and_then(|r| r["Type"].as_str())
            .ok_or_else(|| format!("{id} is neither a parameter nor a resource"))
    }

    fn arn(&self, id: &str, kind: &str) -> String {
        match kind {
            "AWS::DynamoDB::Table" => format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{id}"),
            "AWS::KMS::Key" => format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{id}"),
            "AWS::KMS::Alias" => format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/{id}"),
            "AWS::SQS::Queue" => format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{id}"),
            "AWS::S3::Bucket" => format!("arn:aws:s3:::{id}"),
            "AWS::SNS::Topic" => format!("arn:aws:sns:{REGION}:{ACCOUNT}:{id}"),
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => {
                format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{id}")
            }
            "AWS::Logs::LogGroup" => format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{id}:*"),
            other => {
                let service = other.split("::").nth(1).unwrap_or("unknown").to_ascii_lowercase();
                format!("arn:aws:{service}:{REGION}:{ACCOUNT}:{id}")
            }
        }
    }

    fn attribute(&self, id: &str, attribute: &str) -> Result<String, String> {
        let kind = self.kind(id)?;
        Ok(match (kind, attribute) {
            (_, "Arn") => self.arn(id, kind),
            ("AWS::DynamoDB::Table", "StreamArn") => format!("{}/stream/latest", self.arn(id, kind)),
            ("AWS::KMS::Key", "KeyId") | ("AWS::SQS::Queue", "QueueName") => id.to_owned(),
            ("AWS::SQS::Queue", "QueueUrl") => self.reference(id)?,
            _ => format!("{id}.{attribute}"),
        })
    }
}

/// The logical ids of the template's resources that `value` refers to.
fn references(template: &Value, value: &Value, out: &mut BTreeSet<String>) {
    let resources = resources(template);
    match value {
        Value::Object(map) => {
            for (key, arg) in map {
                match key.as_str() {
                    "Ref" => {
                        if let Some(name) = arg.as_str().filter(|n| resources.contains_key(*n)) {
                            out.insert(name.to_owned());
                        }
                    }
                    "Fn::GetAtt" => {
                        let id =
                            arg.get(0).and_then(Value::as_str).or_else(|| arg.as_str()?.split('.').next());
                        if let Some(id) = id.filter(|n| resources.contains_key(*n)) {
                            out.insert(id.to_owned());
                        }
                    }
                    "Fn::Sub" => {
                        let text = arg.as_str().or_else(|| arg.get(0)?.as_str()).unwrap_or_default();
                        for piece in text.split("${").skip(1) {
                            let name = piece.split('}').next().unwrap_or_default();
                            let id = name.split('.').next().unwrap_or_default().trim();
                            if resources.contains_key(id) {
                                out.insert(id.to_owned());
                            }
                        }
                        if let Some(vars) = arg.get(1) {
                            references(template, vars, out);
                        }
                    }
                    _ => references(template, arg, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| references(template, v, out)),
        _ => {}
    }
}

// ------------------------------------------------------------------ policies

#[derive(Debug, Clone)]
struct Statement {
    function: String,
    /// Where it came from, for messages: `Policies[0].Statement[1]`, or the SAM template's name.
    origin: String,
    allow: bool,
    /// A condition this check does not evaluate (the statement never allows a call).
    conditional: bool,
    /// The canonical alias ARNs of a `kms:ResourceAliases` condition the
    /// check evaluates (see the module's "Keys by alias").
    key_aliases: Option<BTreeSet<String>>,
    /// The statement's `Sid`, if any.
    sid: Option<String>,
    actions: Vec<String>,
    resources: Vec<String>,
    /// The unresolved `Resource` values, for the "stack's own ARNs" rule.
    raw_resources: Vec<Value>,
}

fn as_list(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

/// SAM's policy templates (`samtranslator/policy_templates_data/policy_templates.json`).
fn sam_policy_templates() -> Value {
    let path = std::env::var_os("SAM_POLICY_TEMPLATES").map(PathBuf::from).or_else(|| {
        let lib = repo_root().join(".venv/tools/sam/lib");
        std::fs::read_dir(&lib).ok()?.filter_map(Result::ok).find_map(|python| {
            let candidate =
                python.path().join("site-packages/samtranslator/policy_templates_data/policy_templates.json");
            candidate.is_file().then_some(candidate)
        })
    });
    let path = path.unwrap_or_else(|| {
        panic!(
            "SAM's policy_templates.json not found: run scripts/bootstrap --with-lint (or set SAM_POLICY_TEMPLATES)"
        )
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("policy_templates.json")
}

/// Replaces the policy template's `{"Ref": <its parameter>}` by the values given.
fn substitute(definition: &Value, parameters: &Map<String, Value>, values: &Map<String, Value>) -> Value {
    match definition {
        Value::Object(map) => {
            if let Some(Value::String(name)) = map.get("Ref").filter(|_| map.len() == 1)
                && parameters.contains_key(name)
            {
                return values
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| panic!("SAM policy template parameter {name} not given"));
            }
            Value::Object(map.iter().map(|(k, v)| (k.clone(), substitute(v, parameters, values))).collect())
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute(v, parameters, values)).collect())
        }
        other => other.clone(),
    }
}

/// Every statement of every function's `Policies`, resolved.
fn policies(template: &Value) -> Result<Vec<Statement>, Vec<String>> {
    let resolver = Resolver { template };
    let mut sam_templates: Option<Value> = None;
    let mut statements = Vec::new();
    let mut errors = Vec::new();
    for (function, resource) in of_type(template, FUNCTION) {
        for (i, policy) in as_list(&resource["Properties"]["Policies"]).iter().enumerate() {
            let at = format!("{function}.Policies[{i}]");
            let documents: Vec<(String, Value)> = match policy {
                Value::String(name) => {
                    errors.push(format!("{at}: managed policy {name} cannot be checked; use statements or a SAM policy template"));
                    continue;
                }
                Value::Object(map) if map.contains_key("Statement") => vec![(at.clone(), policy.clone())],
                Value::Object(map) if map.len() == 1 => {
                    let (name, values) = map.iter().next().unwrap();
                    let templates = sam_templates.get_or_insert_with(sam_policy_templates);
                    let Some(spec) = templates["Templates"].get(name) else {
                        errors.push(format!("{at}: {name} is not a SAM policy template"));
                        continue;
                    };
                    let parameters = spec["Parameters"].as_object().cloned().unwrap_or_default();
                    let values = values.as_object().cloned().unwrap_or_default();
                    vec![(format!("{at} ({name})"), substitute(&spec["Definition"], &parameters, &values))]
                }
                other => {
                    errors.push(format!("{at}: unsupported policy {other}"));
                    continue;
                }
            };
            for (origin, document) in documents {
                for (j, raw) in as_list(&document["Statement"]).iter().enumerate() {
                    let origin = format!("{origin}.Statement[{j}]");
                    if raw.get("NotAction").is_some() || raw.get("NotResource").is_some() {
                        errors.push(format!("{origin}: NotAction/NotResource cannot be checked"));
                        continue;
                    }
                    let resolved = match resolver.resolve(raw) {
                        Ok(r) => r,
                        Err(e) => {
                            errors.push(format!("{origin}: {e}"));
                            continue;
                        }
                    };
                    let strings = |v: &Value| -> Vec<String> {
                        as_list(v).iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()
                    };
                    let resources = strings(&resolved["Resource"]);
                    let key_aliases = resolved
                        .get("Condition")
                        .and_then(|condition| alias_condition(template, condition, &resources));
                    statements.push(Statement {
                        function: function.clone(),
                        origin,
                        allow: resolved["Effect"] == "Allow",
                        conditional: resolved.get("Condition").is_some() && key_aliases.is_none(),
                        key_aliases,
                        sid: resolved["Sid"].as_str().map(str::to_owned),
                        actions: strings(&resolved["Action"]),
                        resources,
                        raw_resources: as_list(&raw["Resource"]),
                    });
                }
            }
        }
    }
    if errors.is_empty() { Ok(statements) } else { Err(errors) }
}

/// Every key of the account, the only resource a "keys by alias" statement may name.
fn any_key() -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/*")
}

/// `alias/<name>` as the canonical alias ARN the records use, when it is
/// one of the stack's own alias names: an `AWS::KMS::Alias`'s `AliasName`
/// (→ `alias/<LogicalId>`), or that name followed by `-` and a suffix (→
/// `alias/<LogicalId>-<suffix>`, as the recorder canonicalizes a test
/// stack's `alias/<physical>-<suffix>`).
fn own_alias(template: &Value, name: &str) -> Option<String> {
    let resolver = Resolver { template };
    let name = name.rsplit_once(":alias/").map_or(name.to_owned(), |(_, n)| format!("alias/{n}"));
    of_type(template, "AWS::KMS::Alias").find_map(|(id, alias)| {
        let own = resolver.string(&alias["Properties"]["AliasName"]).ok()?;
        let rest = name.strip_prefix(own.as_str())?;
        (rest.is_empty() || (rest.len() > 1 && rest.starts_with('-')))
            .then(|| format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/{id}{rest}"))
    })
}

/// The canonical aliases of a resolved `Condition` of the one form the check
/// evaluates: a single `StringEquals` or `ForAnyValue:StringEquals` with the
/// single key `kms:ResourceAliases`, every value one of the stack's own
/// alias names, on the resource `key/*` alone. Anything else: `None`.
fn alias_condition(template: &Value, condition: &Value, resources: &[String]) -> Option<BTreeSet<String>> {
    if resources.is_empty() || resources.iter().any(|r| *r != any_key()) {
        return None;
    }
    let operators = condition.as_object()?;
    let [(operator, keys)] = operators.iter().collect::<Vec<_>>()[..] else { return None };
    if operator != "StringEquals" && operator != "ForAnyValue:StringEquals" {
        return None;
    }
    let keys = keys.as_object()?;
    let [(key, values)] = keys.iter().collect::<Vec<_>>()[..] else { return None };
    if !key.eq_ignore_ascii_case("kms:ResourceAliases") {
        return None;
    }
    let values = as_list(values);
    if values.is_empty() {
        return None;
    }
    values.iter().map(|v| own_alias(template, v.as_str()?)).collect()
}

/// IAM's wildcard match: `*` any run of characters, `?` one.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn action_matches(pattern: &str, action: &str) -> bool {
    glob(&pattern.to_ascii_lowercase(), &action.to_ascii_lowercase())
}

/// A recorded resource against a statement's resource: `?` (the request did
/// not name it) matches any resource of the action's service.
fn resource_matches(pattern: &str, resource: &str) -> bool {
    resource == "?" || glob(pattern, resource)
}

/// Alias ARNs in records resolved to their target key (IAM authorizes the key).
fn alias_targets(template: &Value) -> BTreeMap<String, String> {
    let resolver = Resolver { template };
    of_type(template, "AWS::KMS::Alias")
        .filter_map(|(id, alias)| {
            let target = resolver.string(&alias["Properties"]["TargetKeyId"]).ok()?;
            Some((resolver.arn(id, "AWS::KMS::Alias"), resolver.arn(&target, "AWS::KMS::Key")))
        })
        .collect()
}

/// Actions IAM authorizes only on `"*"` (no resource-level permissions).
const NO_RESOURCE_LEVEL: &[&str] = &[
    "dynamodb:ListTables",
    "dynamodb:ListBackups",
    "dynamodb:DescribeLimits",
    "dynamodb:DescribeEndpoints",
    "sqs:ListQueues",
    "kms:ListKeys",
    "kms:ListAliases",
    "kms:CreateKey",
    "cloudwatch:PutMetricData",
];

/// Policy rules that need no records: no wildcard action, resources are the
/// stack's own (a reference to one of its resources), `*` only for actions
/// without resource-level permissions.
fn hygiene(template: &Value, statements: &[Statement]) -> Vec<String> {
    let mut problems = Vec::new();
    for s in statements.iter().filter(|s| s.allow) {
        let excused = OTHER_RESOURCES
            .iter()
            .any(|(function, sid, _)| *function == s.function && s.sid.as_deref() == Some(*sid));
        for action in &s.actions {
            if action == "*" || action.ends_with(":*") {
                problems.push(format!("{}: wildcard action {action}", s.origin));
            }
        }
        for (raw, resolved) in s.raw_resources.iter().zip(&s.resources) {
            if resolved == "*" {
                let others: Vec<&String> = s
                    .actions
                    .iter()
                    .filter(|a| !NO_RESOURCE_LEVEL.iter().any(|n| n.eq_ignore_ascii_case(a)))
                    .collect();
                if !others.is_empty() {
                    problems.push(format!(
                        "{}: Resource \"*\" for {others:?}, which take resource ARNs",
                        s.origin
                    ));
                }
                continue;
            }
            // Keys by alias (the stack's own aliases), and the stack's own alias names.
            if s.key_aliases.is_some()
                || (resolved.contains(":alias/") && own_alias(template, resolved).is_some())
            {
                continue;
            }
            let mut refs = BTreeSet::new();
            references(template, raw, &mut refs);
            if refs.is_empty() && !excused {
                problems.push(format!("{}: resource {resolved} is not one of the stack's own", s.origin));
            }
        }
    }
    problems
}

/// The verdict on a run's calls.
#[derive(Debug, Default)]
struct Verdict {
    denied: Vec<String>,
    unexercised: Vec<String>,
    stale_exceptions: Vec<String>,
}

impl Verdict {
    fn is_clean(&self) -> bool {
        self.denied.is_empty() && self.unexercised.is_empty() && self.stale_exceptions.is_empty()
    }
}

fn check(
    template: &Value,
    statements: &[Statement],
    calls: &[Call],
    exceptions: &[(&str, &str, &str, &str)],
) -> Verdict {
    let aliases = alias_targets(template);
    // The aliases of the key each KMS call used: the alias it named, or the
    // template's and the recorded aliases of the key it named.
    let calls: Vec<(Call, BTreeSet<String>)> = calls
        .iter()
        .map(|c| {
            let mut key_aliases: BTreeSet<String> = c.aliases.iter().cloned().collect();
            if c.resource.contains(":alias/") {
                key_aliases.insert(c.resource.clone());
            } else if c.resource.contains(":key/") {
                key_aliases
                    .extend(aliases.iter().filter(|(_, key)| **key == c.resource).map(|(a, _)| a.clone()));
            }
            let resource = aliases.get(&c.resource).cloned().unwrap_or_else(|| c.resource.clone());
            (Call { resource, ..c.clone() }, key_aliases)
        })
        .collect();
    // A keys-by-alias statement allowing `call`: its action, and a key of one of its aliases.
    let by_alias = |s: &Statement, call: &Call, key_aliases: &BTreeSet<String>| {
        s.key_aliases.as_ref().is_some_and(|allowed| {
            s.actions.iter().any(|a| action_matches(a, &call.action))
                && call.action.starts_with("kms:")
                && !allowed.is_disjoint(key_aliases)
        })
    };
    let mut verdict = Verdict::default();

    // Every call allowed.
    let mut seen = BTreeSet::new();
    for (call, key_aliases) in &calls {
        if !seen.insert((&call.function, &call.action, &call.resource, key_aliases)) {
            continue;
        }
        let of_function = statements.iter().filter(|s| s.function == call.function);
        // A call naming an alias the template does not have (one made at
        // runtime) authorizes a key unknown here: only a statement on every
        // key of the account (`key/*`) surely covers it.
        let unknown_key = call.resource.contains(":alias/") && call.action.starts_with("kms:");
        let applies = |s: &&Statement| {
            s.actions.iter().any(|a| action_matches(a, &call.action))
                && s.resources
                    .iter()
                    .any(|r| resource_matches(r, &call.resource) || (unknown_key && *r == any_key()))
        };
        let denied = of_function.clone().filter(|s| !s.allow).any(|s| applies(&s));
        let allowed = of_function.filter(|s| s.allow && !s.conditional).any(|s| match s.key_aliases {
            Some(_) => by_alias(s, call, key_aliases),
            None => applies(&s),
        });
        if denied || !allowed {
            verdict.denied.push(format!(
                "{} calls {} ({}) on {} (first in test {}), which its Policies do not allow",
                call.function, call.action, call.operation, call.resource, call.test
            ));
        }
    }

    // Every grant used (or excused).
    let mut used_exceptions = BTreeSet::new();
    for s in statements.iter().filter(|s| s.allow) {
        for action in &s.actions {
            for resource in &s.resources {
                let exercised = calls.iter().any(|(c, key_aliases)| {
                    c.function == s.function
                        && action_matches(action, &c.action)
                        && match s.key_aliases {
                            Some(_) => by_alias(s, c, key_aliases),
                            None => resource == "*" || c.resource == "?" || glob(resource, &c.resource),
                        }
                });
                if exercised && !s.conditional {
                    continue;
                }
                let excuse = exceptions.iter().position(|(f, a, r, _)| {
                    *f == s.function && a.eq_ignore_ascii_case(action) && resource.ends_with(r)
                });
                match excuse {
                    Some(i) => {
                        used_exceptions.insert(i);
                    }
                    None => verdict.unexercised.push(format!(
                        "{}: {action} on {resource} ({}) is {}; remove it, cover it with a test, or list it in UNEXERCISED with the reason",
                        s.function,
                        s.origin,
                        if s.conditional { "conditional, so no handler call can use it" } else { "never called by the handler in any test" }
                    )),
                }
            }
        }
    }
    for (i, (f, a, r, _)) in exceptions.iter().enumerate() {
        if !used_exceptions.contains(&i) {
            verdict.stale_exceptions.push(format!(
                "UNEXERCISED lists {f} {a} {r:?}, but no such grant is unused: remove the entry"
            ));
        }
    }
    verdict
}

fn report(verdict: &Verdict) -> String {
    let mut out = String::new();
    for (title, lines) in [
        ("calls the policy does not allow", &verdict.denied),
        ("grants no test exercises", &verdict.unexercised),
        ("stale UNEXERCISED entries", &verdict.stale_exceptions),
    ] {
        if !lines.is_empty() {
            out.push_str(&format!("\n{title}:\n"));
            for line in lines {
                out.push_str(&format!("  - {line}\n"));
            }
        }
    }
    out
}

// ------------------------------------------------------------------ tests

/// The conformance check on the records of a whole run (scripts/test runs it
/// last; `CAAS_IAM_TEMPLATE` checks the same records against another template).
#[test]
#[ignore = "needs the call records of a whole test run: scripts/test runs it after all other tests"]
fn every_recorded_call_is_allowed_and_every_grant_is_used() {
    let dir = std::env::var_os(caas_tests::iam::RECORD_DIR_VAR)
        .map(PathBuf::from)
        .expect("CAAS_IAM_CALLS is not set: run through scripts/test");
    let calls = read_records(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    assert!(!calls.is_empty(), "no calls recorded under {}: run the whole suite first", dir.display());
    let template = load_template(&template_path());
    let statements = policies(&template).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let functions: BTreeSet<&String> = of_type(&template, FUNCTION).map(|(id, _)| id).collect();
    let unknown: BTreeSet<&String> =
        calls.iter().map(|c| &c.function).filter(|f| !functions.contains(f)).collect();
    assert!(unknown.is_empty(), "calls recorded for functions template.yaml does not have: {unknown:?}");
    let verdict = check(&template, &statements, &calls, UNEXERCISED);
    assert!(
        verdict.is_clean(),
        "IAM of template.yaml does not match what the handlers call:{}",
        report(&verdict)
    );
    eprintln!(
        "iam: {} distinct calls of {} functions checked against {} statements",
        calls.iter().map(|c| (&c.function, &c.action, &c.resource)).collect::<BTreeSet<_>>().len(),
        functions.len(),
        statements.len()
    );
}

#[test]
fn policies_grant_no_wildcard_actions_and_only_the_stacks_resources() {
    let template = load_template(&template_path());
    let statements = policies(&template).unwrap_or_else(|e| panic!("{}", e.join("\n")));
    let problems = hygiene(&template, &statements);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check itself, on the bug it was written for: verifying the audit chain
/// reads the chain head with GetItem, which a Query/Scan-only policy denies.
#[test]
fn a_get_item_the_policy_lacks_is_reported() {
    let template = load_template(&repo_root().join("template.yaml"));
    let call = |action: &str, resource: &str| Call {
        function: "VerifyFunction".into(),
        operation: action.trim_start_matches("dynamodb:").into(),
        action: action.into(),
        resource: resource.into(),
        test: "synthetic".into(),
        aliases: vec![],
    };
    let table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Table");
    let calls = [call("dynamodb:GetItem", &table), call("dynamodb:Query", &table)];
    let denied_for = |template: &Value| {
        let statements: Vec<Statement> =
            policies(template).unwrap().into_iter().filter(|s| s.function == "VerifyFunction").collect();
        check(template, &statements, &calls, &[]).denied
    };
    assert!(denied_for(&template).is_empty(), "{:?}", denied_for(&template));

    let mut without = template.clone();
    for policy in without["Resources"]["VerifyFunction"]["Properties"]["Policies"].as_array_mut().unwrap() {
        for statement in policy["Statement"].as_array_mut().into_iter().flatten() {
            if let Some(actions) = statement["Action"].as_array_mut() {
                actions.retain(|a| a != "dynamodb:GetItem");
            }
        }
    }
    let denied = denied_for(&without);
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert!(denied[0].starts_with("VerifyFunction calls dynamodb:GetItem"), "{denied:?}");
}

/// Keys by alias: the signing functions reach the keys the stack's signing
/// aliases point at, and no other key; another condition is not evaluated.
#[test]
fn a_kms_call_on_a_key_outside_the_granted_aliases_is_refused() {
    let template = load_template(&repo_root().join("template.yaml"));
    let kms = |rest: &str| format!("arn:aws:kms:{REGION}:{ACCOUNT}:{rest}");
    let call = |action: &str, resource: &str, aliases: &[&str]| Call {
        function: "ChangePasswordFunction".into(),
        operation: action.trim_start_matches("kms:").into(),
        action: action.into(),
        resource: resource.into(),
        test: "synthetic".into(),
        aliases: aliases.iter().map(|a| kms(a)).collect(),
    };
    let denied = |template: &Value, calls: &[Call]| {
        let statements: Vec<Statement> = policies(template)
            .unwrap()
            .into_iter()
            .filter(|s| s.function == "ChangePasswordFunction")
            .collect();
        check(template, &statements, calls, &[]).denied
    };
    let (current, previous) = (kms("alias/TokenSigningKeyAlias"), kms("alias/TokenSigningKeyAlias-previous"));
    let allowed = [
        call("kms:Sign", &current, &[]),
        call("kms:Sign", &kms("key/TokenSigningKey"), &[]),
        // A key the rotation created, which the current alias points at.
        call("kms:Sign", &kms("key/0f4d9c2e-rotated"), &["alias/TokenSigningKeyAlias"]),
        call("kms:GetPublicKey", &previous, &[]),
        call("kms:GetPublicKey", &kms("key/0f4d9c2e-older"), &["alias/TokenSigningKeyAlias-previous"]),
    ];
    assert!(denied(&template, &allowed).is_empty(), "{:?}", denied(&template, &allowed));
    let refused = [
        call("kms:Sign", &previous, &[]),
        call("kms:Sign", &kms("alias/DataKeyAlias"), &[]),
        call("kms:Sign", &kms("key/DataKey"), &[]),
        call("kms:Sign", &kms("key/0f4d9c2e-elsewhere"), &[]),
        call("kms:Sign", &kms("key/0f4d9c2e-previous"), &["alias/TokenSigningKeyAlias-previous"]),
        call("kms:GetPublicKey", &kms("key/0f4d9c2e-other"), &["alias/SomeoneElsesAlias"]),
        call("kms:Sign", "?", &[]),
        call("kms:Decrypt", &current, &[]),
    ];
    for refused in &refused {
        assert_eq!(denied(&template, std::slice::from_ref(refused)).len(), 1, "{refused:?}");
    }

    // Any other condition beside it, or a foreign alias in it: not evaluated, and
    // not the stack's own resource.
    let with = |condition: Value| {
        let mut changed = template.clone();
        for policy in
            changed["Resources"]["ChangePasswordFunction"]["Properties"]["Policies"].as_array_mut().unwrap()
        {
            for statement in policy["Statement"].as_array_mut().into_iter().flatten() {
                if statement["Condition"].is_object() {
                    statement["Condition"] = condition.clone();
                }
            }
        }
        changed
    };
    let own = json!({ "Fn::Sub": "alias/${AWS::StackName}-token-signing" });
    for condition in [
        json!({ "ForAnyValue:StringEquals": { "kms:ResourceAliases": own, "kms:ViaService": "x" } }),
        json!({ "ForAnyValue:StringEquals": { "kms:ResourceAliases": own }, "Bool": { "aws:SecureTransport": "true" } }),
        json!({ "ForAnyValue:StringLike": { "kms:ResourceAliases": own } }),
        json!({ "ForAnyValue:StringEquals": { "kms:ResourceAliases": ["alias/elsewhere"] } }),
        json!({ "ForAnyValue:StringEquals": { "kms:ResourceAliases": [own, "alias/elsewhere"] } }),
    ] {
        let changed = with(condition.clone());
        assert!(!denied(&changed, &allowed[..1]).is_empty(), "{condition}");
        let statements: Vec<Statement> = policies(&changed)
            .unwrap()
            .into_iter()
            .filter(|s| s.function == "ChangePasswordFunction")
            .collect();
        assert!(!hygiene(&changed, &statements).is_empty(), "{condition}");
    }
    let plain = with(json!({ "StringEquals": { "kms:ResourceAliases": own } }));
    assert!(denied(&plain, &allowed[..1]).is_empty());

    // An alias made at runtime names a key unknown here: only a statement on
    // every key covers it (the rotation job's), not one on a named key.
    let rotation: Vec<Statement> =
        policies(&template).unwrap().into_iter().filter(|s| s.function == "SigningKeysFunction").collect();
    let describe = Call { function: "SigningKeysFunction".into(), ..call("kms:DescribeKey", &previous, &[]) };
    assert!(check(&template, &rotation, std::slice::from_ref(&describe), &[]).denied.is_empty());
    let verify: Vec<Statement> =
        policies(&template).unwrap().into_iter().filter(|s| s.function == "VerifyFunction").collect();
    let elsewhere = Call { function: "VerifyFunction".into(), ..call("kms:DescribeKey", &previous, &[]) };
    assert_eq!(check(&template, &verify, &[elsewhere], &[]).denied.len(), 1);
}

#[test]
fn unused_grants_and_stale_exceptions_are_reported() {
    let template = load_template(&repo_root().join("template.yaml"));
    let statements: Vec<Statement> =
        policies(&template).unwrap().into_iter().filter(|s| s.function == "JwksFunction").collect();
    let verdict = check(&template, &statements, &[], &[("JwksFunction", "kms:Sign", "", "no such grant")]);
    assert!(verdict.denied.is_empty());
    assert_eq!(verdict.unexercised.len(), 1, "{verdict:?}");
    assert!(verdict.unexercised[0].contains("kms:GetPublicKey"), "{verdict:?}");
    assert_eq!(verdict.stale_exceptions.len(), 1, "{verdict:?}");
}

/// SAM policy templates expand as SAM expands them, and their resources
/// resolve like inline ones.
#[test]
fn sam_policy_templates_are_expanded() {
    let mut template = load_template(&repo_root().join("template.yaml"));
    template["Resources"]["ProbeFunction"] = json!({
        "Type": FUNCTION,
        "Properties": { "Policies": [
            { "DynamoDBReadPolicy": { "TableName": { "Ref": "Table" } } },
            { "SQSSendMessagePolicy": { "QueueName": { "Fn::GetAtt": ["EventsQueue", "QueueName"] } } },
            { "KMSDecryptPolicy": { "KeyId": { "Ref": "DataKey" } } }
        ] }
    });
    let statements: Vec<Statement> =
        policies(&template).unwrap().into_iter().filter(|s| s.function == "ProbeFunction").collect();
    let allows = |action: &str, resource: &str| {
        statements.iter().any(|s| {
            s.actions.iter().any(|a| action_matches(a, action))
                && s.resources.iter().any(|r| glob(r, resource))
        })
    };
    let table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/Table");
    assert!(allows("dynamodb:GetItem", &table), "{statements:#?}");
    assert!(allows("dynamodb:Query", &format!("{table}/index/gsi1")));
    assert!(!allows("dynamodb:PutItem", &table));
    assert!(allows("sqs:SendMessage", &format!("arn:aws:sqs:{REGION}:{ACCOUNT}:EventsQueue")));
    assert!(allows("kms:Decrypt", &format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/DataKey")));
    assert!(!allows("kms:Decrypt", &format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/TokenSigningKey")));
    assert!(hygiene(&template, &statements).is_empty(), "{:?}", hygiene(&template, &statements));
}

#[test]
fn requests_become_the_authorizations_iam_checks() {
    use caas_tests::iam::{Names, authorizations};
    let names = Names::default();
    let table = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/T");
    let transact = json!({ "TransactItems": [
        { "Put": { "TableName": "T" } }, { "Update": { "TableName": "T" } },
        { "ConditionCheck": { "TableName": "T" } }, { "Delete": { "TableName": "T" } }
    ] });
    assert_eq!(
        authorizations(&names, "dynamodb", "TransactWriteItems", &transact),
        [
            ("dynamodb:PutItem".to_owned(), table.clone()),
            ("dynamodb:UpdateItem".to_owned(), table.clone()),
            ("dynamodb:ConditionCheckItem".to_owned(), table.clone()),
            ("dynamodb:DeleteItem".to_owned(), table.clone()),
        ]
    );
    assert_eq!(
        authorizations(&names, "dynamodb", "Query", &json!({ "TableName": "T", "IndexName": "gsi1" })),
        [("dynamodb:Query".to_owned(), format!("{table}/index/gsi1"))]
    );
    assert_eq!(
        authorizations(
            &names,
            "sqs",
            "SendMessageBatch",
            &json!({ "QueueUrl": "http://h/123456789012/q.fifo" })
        ),
        [("sqs:SendMessage".to_owned(), format!("arn:aws:sqs:{REGION}:{ACCOUNT}:q.fifo"))]
    );
    assert_eq!(
        authorizations(&names, "kms", "Decrypt", &json!({})),
        [("kms:Decrypt".to_owned(), "?".to_owned())]
    );
    assert!(glob("arn:*:table/Table-restore-*", "arn:x:table/Table-restore-1"));
    assert!(!glob("arn:*:table/Table", "arn:x:table/Table/index/gsi1"));
    assert!(action_matches("kms:GenerateDataKey*", "kms:GenerateDataKeyWithoutPlaintext"));
}

// ------------------------------------------------------------------ operations rules

/// `{"Ref": id}` or `{"Fn::GetAtt": [id, attribute]}` naming `id`.
fn names(value: &Value, id: &str, attribute: Option<&str>) -> bool {
    match attribute {
        None => value.get("Ref").and_then(Value::as_str) == Some(id),
        Some(attr) => value.get("Fn::GetAtt") == Some(&json!([id, attr])),
    }
}

fn alarms(template: &Value) -> Vec<(&String, &Value)> {
    of_type(template, "AWS::CloudWatch::Alarm").map(|(id, a)| (id, &a["Properties"])).collect()
}

/// An alarm on `metric` whose dimension `dimension` names `target`.
fn has_alarm(template: &Value, metric: &str, dimension: &str, target: &Value) -> bool {
    alarms(template).iter().any(|(_, p)| {
        p["MetricName"] == metric
            && as_list(&p["Dimensions"]).iter().any(|d| d["Name"] == dimension && &d["Value"] == target)
    })
}

#[test]
fn every_function_logs_with_retention_and_alarms_on_errors_and_throttles() {
    let template = load_template(&template_path());
    let mut problems = Vec::new();
    for (function, spec) in of_type(&template, FUNCTION) {
        let log_name = json!({ "Fn::Sub": format!("/aws/lambda/${{{function}}}") });
        let logs = of_type(&template, "AWS::Logs::LogGroup").any(|(_, g)| {
            g["Properties"]["LogGroupName"] == log_name
                && names(&g["Properties"]["RetentionInDays"], "LogRetentionDays", None)
        });
        if !logs {
            problems.push(format!("{function}: no log group {log_name} kept LogRetentionDays"));
        }
        for metric in ["Errors", "Throttles"] {
            if !has_alarm(&template, metric, "FunctionName", &json!({ "Ref": function })) {
                problems.push(format!("{function}: no {metric} alarm"));
            }
        }
        let events = spec["Properties"]["Events"].as_object().cloned().unwrap_or_default();
        if events.values().any(|e| e["Type"] == "Schedule" || e["Type"] == "ScheduleV2") {
            let on_failure = &spec["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"];
            if on_failure["Destination"].is_null() {
                problems
                    .push(format!("{function}: scheduled, but no EventInvokeConfig on-failure destination"));
            }
        }
        if events.values().any(|e| e["Type"] == "DynamoDB" || e["Type"] == "Kinesis")
            && !has_alarm(&template, "IteratorAge", "FunctionName", &json!({ "Ref": function }))
        {
            problems.push(format!("{function}: reads a stream, but no IteratorAge alarm"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_alarm_notifies_and_says_how_it_treats_missing_data() {
    let template = load_template(&template_path());
    let topics: Vec<&String> = of_type(&template, "AWS::SNS::Topic").map(|(id, _)| id).collect();
    let mut problems = Vec::new();
    for (id, props) in alarms(&template) {
        if !as_list(&props["AlarmActions"]).iter().any(|a| topics.iter().any(|t| names(a, t, None))) {
            problems.push(format!("{id}: no AlarmActions to the stack's topic"));
        }
        if props["TreatMissingData"].as_str().is_none() {
            problems.push(format!("{id}: TreatMissingData is not chosen"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// CloudWatch cannot publish to a topic under `alias/aws/sns`: the topic's key is
/// the stack's own, and its policy lets CloudWatch use it.
#[test]
fn alarm_notifications_can_be_delivered() {
    let template = load_template(&template_path());
    let resolver = Resolver { template: &template };
    for (topic, spec) in of_type(&template, "AWS::SNS::Topic") {
        let key = &spec["Properties"]["KmsMasterKeyId"];
        if key.is_null() {
            continue;
        }
        let key_id = key["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{topic}: encrypted with {key}, not a key of the stack"));
        let policy = resolver.resolve(&resources(&template)[key_id]["Properties"]["KeyPolicy"]).unwrap();
        let cloudwatch = as_list(&policy["Statement"]).into_iter().any(|s| {
            s["Effect"] == "Allow"
                && as_list(&s["Principal"]["Service"]).contains(&json!("cloudwatch.amazonaws.com"))
                && ["kms:Decrypt", "kms:GenerateDataKey"].iter().all(|needed| {
                    as_list(&s["Action"])
                        .iter()
                        .any(|a| a.as_str().is_some_and(|a| action_matches(a, needed)))
                })
        });
        assert!(cloudwatch, "{topic}: the key policy of {key_id} does not let CloudWatch publish");
    }
    assert!(
        of_type(&template, "AWS::SNS::Subscription")
            .any(|(_, s)| s["Properties"]["Endpoint"] == json!({ "Ref": "AlarmEmail" })),
        "no email subscription from the AlarmEmail parameter"
    );
}

/// Every queue something fails into (a redrive target, an on-failure destination)
/// alarms on its first message.
#[test]
fn every_dead_letter_queue_has_a_depth_alarm() {
    let template = load_template(&template_path());
    let mut dead_letter = BTreeSet::new();
    let mut collect = |value: &Value| {
        if let Some(id) = value.get("Fn::GetAtt").and_then(|g| g.get(0)).and_then(Value::as_str)
            && resources(&template).get(id).is_some_and(|r| r["Type"] == "AWS::SQS::Queue")
        {
            dead_letter.insert(id.to_owned());
        }
    };
    for (_, queue) in of_type(&template, "AWS::SQS::Queue") {
        collect(&queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]);
    }
    for (_, function) in of_type(&template, FUNCTION) {
        collect(
            &function["Properties"]["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Destination"],
        );
        for event in function["Properties"]["Events"].as_object().into_iter().flat_map(|e| e.values()) {
            collect(&event["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]);
        }
    }
    assert!(dead_letter.contains("EventsDLQ"), "{dead_letter:?}");
    let missing: Vec<&String> = dead_letter
        .iter()
        .filter(|q| {
            !has_alarm(
                &template,
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                &json!({ "Fn::GetAtt": [q, "QueueName"] }),
            )
        })
        .collect();
    assert!(missing.is_empty(), "dead-letter queues without a depth alarm: {missing:?}");
}
