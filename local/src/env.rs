//! A function's environment as Lambda would get it from the deployed template.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::LocalError;
use crate::stack::Stack;
use crate::template::{FUNCTION_TYPE, Template};

impl Stack {
    /// `Globals.Function.Environment` merged with the function's own `Environment`
    /// (the function's wins), every intrinsic resolved against this stack: parameters
    /// (default, or `parameter_overrides`), resources (table name, key id, queue URL,
    /// alias name), pseudo parameters, `Fn::GetAtt`, `Fn::Sub` and `Fn::Join`.
    pub fn function_env(
        &self,
        template: &Template,
        function_logical_id: &str,
        parameter_overrides: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, LocalError> {
        let resource = template
            .resources()
            .get(function_logical_id)
            .filter(|_| template.resource_type(function_logical_id) == Some(FUNCTION_TYPE))
            .ok_or_else(|| LocalError::UnknownFunction(function_logical_id.to_owned()))?;
        if let Some(unknown) = parameter_overrides.keys().find(|k| !template.parameters().contains_key(*k)) {
            return Err(LocalError::UnknownParameter(unknown.clone()));
        }
        let mut params = template.parameter_defaults();
        params.extend(parameter_overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let context = self.context(template, params, self.region());
        let unresolvable = |variable: &str, reason: String| LocalError::Unresolvable {
            function: function_logical_id.to_owned(),
            variable: variable.to_owned(),
            reason,
        };

        let not_a_mapping = || unresolvable("*", "Environment.Variables is not a mapping".to_owned());
        let mut raw: BTreeMap<String, Value> = BTreeMap::new();
        raw.extend(
            variables(template.globals_function().and_then(|g| g.get("Environment")))
                .ok_or_else(not_a_mapping)?,
        );
        raw.extend(variables(resource.pointer("/Properties/Environment")).ok_or_else(not_a_mapping)?);
        let mut env = BTreeMap::new();
        for (name, value) in raw {
            if value.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
                continue;
            }
            let resolved = context.resolve_string(&value).map_err(|reason| unresolvable(&name, reason))?;
            env.insert(name, resolved);
        }
        Ok(env)
    }
}

/// The `Variables` of an `Environment` block; `None` when they are not a mapping.
fn variables(environment: Option<&Value>) -> Option<Vec<(String, Value)>> {
    match environment.and_then(|e| e.get("Variables")) {
        None => Some(Vec::new()),
        Some(Value::Object(vars)) => Some(vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        Some(_) => None,
    }
}
