//! What a provisioned stack is made of: the physical resources by logical id, the
//! account they claim to live in, and the [`Context`] the template's intrinsic
//! functions are resolved against. Provisioning creates a [`Stack`]; resolution reads
//! one; neither needs the other.

use std::collections::BTreeMap;

use crate::template::Template;

/// The account every locally provisioned resource claims to live in (the emulator's default).
pub const ACCOUNT_ID: &str = "123456789012";

/// The id of an API the local stack serves itself (API Gateway makes up ten random
/// characters; locally it is the logical id, as the tests' IAM check names it).
pub fn api_id(logical_id: &str) -> String {
    logical_id.to_owned()
}

/// The domain API Gateway gives an API, `{id}.execute-api.{region}.amazonaws.com`: what
/// its `!Ref` builds URLs with; the local stack serves such URLs on its own port
/// ([`crate::websocket_api::local_urls`]).
pub fn execute_api_domain(logical_id: &str, region: &str) -> String {
    format!("{}.execute-api.{region}.amazonaws.com", api_id(logical_id))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ResourceKind {
    Table,
    Key,
    Queue,
    Alias,
    Bucket,
}

/// A created resource.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Physical {
    pub kind: ResourceKind,
    /// Table name, key id, queue name, alias name (`alias/...`) or bucket name.
    pub name: String,
    pub arn: String,
    /// Queues only.
    pub url: Option<String>,
    /// Tables with a stream only.
    pub stream_arn: Option<String>,
}

/// What `provision` created, by logical id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stack {
    pub suffix: String,
    pub resources: BTreeMap<String, Physical>,
}

/// What intrinsic functions resolve against: the template, the resources created so
/// far, parameter values and the pseudo parameters.
pub(crate) struct Context<'a> {
    pub template: &'a Template,
    pub resources: &'a BTreeMap<String, Physical>,
    /// Parameter values: defaults, then overrides.
    pub params: BTreeMap<String, String>,
    pub region: String,
    pub stack_name: String,
}

impl Stack {
    /// The table the functions share (logical id `Table`; else the first table, by logical id).
    pub fn table_name(&self) -> Option<&str> {
        self.resources
            .get("Table")
            .filter(|p| p.kind == ResourceKind::Table)
            .or_else(|| self.resources.values().find(|p| p.kind == ResourceKind::Table))
            .map(|p| p.name.as_str())
    }

    /// The physical name of the table with this logical id.
    pub fn table_named(&self, logical_id: &str) -> Option<&str> {
        self.resources.get(logical_id).filter(|p| p.kind == ResourceKind::Table).map(|p| p.name.as_str())
    }

    pub fn queue_url(&self, logical_id: &str) -> Option<&str> {
        self.resources
            .get(logical_id)
            .filter(|p| p.kind == ResourceKind::Queue)
            .and_then(|p| p.url.as_deref())
    }

    /// The region the resources live in, read from their ARNs (else `AWS_REGION`, else
    /// `us-east-1`).
    pub fn region(&self) -> String {
        self.resources
            .values()
            .filter_map(|p| p.arn.split(':').nth(3))
            .find(|r| !r.is_empty())
            .map(str::to_owned)
            .or_else(|| std::env::var("AWS_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_owned())
    }

    /// The name `AWS::StackName` resolves to.
    pub(crate) fn stack_name(&self) -> String {
        format!("caas-{}", self.suffix)
    }

    /// The resolution context of this stack with these parameter values.
    pub(crate) fn context<'a>(
        &'a self,
        template: &'a Template,
        params: BTreeMap<String, String>,
        region: String,
    ) -> Context<'a> {
        Context { template, resources: &self.resources, params, region, stack_name: self.stack_name() }
    }
}
