//! The template's WebSocket APIs (`AWS::ApiGatewayV2::Api` with `ProtocolType:
//! WEBSOCKET`): their route selection expression, stage, and routes, each with the
//! function its `AWS_PROXY` integration invokes and whether it has a route response
//! (then the integration's answer goes back to the client as a frame). Checked and
//! extracted once when the template is parsed.

use serde_json::Value;

use super::Template;
use crate::error::LocalError;
use crate::resolve::references;

pub(crate) const API_TYPE: &str = "AWS::ApiGatewayV2::Api";
pub(crate) const STAGE_TYPE: &str = "AWS::ApiGatewayV2::Stage";
const ROUTE_TYPE: &str = "AWS::ApiGatewayV2::Route";
const INTEGRATION_TYPE: &str = "AWS::ApiGatewayV2::Integration";
const ROUTE_RESPONSE_TYPE: &str = "AWS::ApiGatewayV2::RouteResponse";

/// One WebSocket API.
#[derive(Debug, Clone, PartialEq)]
pub struct WebSocketApi {
    pub logical_id: String,
    /// `RouteSelectionExpression`, e.g. `$request.body.action`.
    pub route_selection_expression: String,
    /// The `StageName` of its stage (the first, by logical id); `$default` without one.
    pub stage: String,
    pub routes: Vec<WebSocketRoute>,
}

/// One route of a WebSocket API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSocketRoute {
    /// `$connect`, `$disconnect`, `$default` or a custom key such as `send`.
    pub route_key: String,
    pub function_logical_id: String,
    /// A `RouteResponse` exists: the integration's body is sent back as a frame.
    pub responds: bool,
}

impl WebSocketApi {
    pub fn route(&self, key: &str) -> Option<&WebSocketRoute> {
        self.routes.iter().find(|r| r.route_key == key)
    }
}

impl Template {
    pub(super) fn parse_websocket_apis(&self) -> Result<Vec<WebSocketApi>, LocalError> {
        let mut apis = Vec::new();
        for (id, resource) in self.resources() {
            let is_websocket = resource.get("Type").and_then(Value::as_str) == Some(API_TYPE)
                && resource.pointer("/Properties/ProtocolType").and_then(Value::as_str) == Some("WEBSOCKET");
            if !is_websocket {
                continue;
            }
            let at = format!("Resources.{id}.Properties");
            let route_selection_expression = resource
                .pointer("/Properties/RouteSelectionExpression")
                .and_then(Value::as_str)
                .ok_or_else(|| LocalError::invalid(&at, "a WebSocket API needs a RouteSelectionExpression"))?
                .to_owned();
            let stage = self
                .of_api(STAGE_TYPE, id)
                .into_iter()
                .find_map(|(_, stage)| stage.pointer("/Properties/StageName")?.as_str().map(str::to_owned))
                .unwrap_or_else(|| "$default".to_owned());
            let mut routes = Vec::new();
            for (route_id, route) in self.of_api(ROUTE_TYPE, id) {
                routes.push(self.websocket_route(id, route_id, route)?);
            }
            apis.push(WebSocketApi { logical_id: id.clone(), route_selection_expression, stage, routes });
        }
        Ok(apis)
    }

    /// The resources of `kind` whose `ApiId` is `!Ref api`.
    fn of_api(&self, kind: &str, api: &str) -> Vec<(&String, &Value)> {
        self.resources()
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(kind))
            .filter(|(_, r)| r.pointer("/Properties/ApiId/Ref").and_then(Value::as_str) == Some(api))
            .collect()
    }

    fn websocket_route(&self, api: &str, id: &str, route: &Value) -> Result<WebSocketRoute, LocalError> {
        let at = format!("Resources.{id}.Properties");
        let route_key = route
            .pointer("/Properties/RouteKey")
            .and_then(Value::as_str)
            .ok_or_else(|| LocalError::invalid(&at, "a route needs a RouteKey"))?
            .to_owned();
        let integration =
            self.referenced(route.pointer("/Properties/Target"), INTEGRATION_TYPE).ok_or_else(|| {
                LocalError::invalid(format!("{at}.Target"), "must name an integration of the API")
            })?;
        let integration_at = format!("Resources.{integration}.Properties");
        let props = &self.resources()[&integration];
        if props.pointer("/Properties/IntegrationType").and_then(Value::as_str) != Some("AWS_PROXY") {
            return Err(LocalError::invalid(
                format!("{integration_at}.IntegrationType"),
                "only AWS_PROXY (Lambda proxy) integrations are served locally",
            ));
        }
        let function_logical_id = self
            .referenced(props.pointer("/Properties/IntegrationUri"), super::FUNCTION_TYPE)
            .ok_or_else(|| {
                LocalError::invalid(format!("{integration_at}.IntegrationUri"), "must name a function's Arn")
            })?;
        let responds = self.of_api(ROUTE_RESPONSE_TYPE, api).iter().any(|(_, response)| {
            response.pointer("/Properties/RouteId/Ref").and_then(Value::as_str) == Some(id)
        });
        Ok(WebSocketRoute { route_key, function_logical_id, responds })
    }

    /// The first resource of type `kind` that `value` refers to.
    fn referenced(&self, value: Option<&Value>, kind: &str) -> Option<String> {
        let mut ids = Vec::new();
        references(value?, &mut ids);
        ids.into_iter().find(|id| self.resource_type(id) == Some(kind))
    }
}
