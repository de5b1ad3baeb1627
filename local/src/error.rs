use std::path::PathBuf;

/// Everything that can go wrong reading the template or provisioning it.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("template.yaml is not valid YAML: {0}")]
    Yaml(#[from] serde_norway::Error),

    #[error("no template.yaml found; looked in: {}", display_paths(.searched))]
    TemplateNotFound { searched: Vec<PathBuf> },

    /// The template parses as YAML but not as what this crate understands.
    #[error("template: {at}: {reason}")]
    InvalidTemplate { at: String, reason: String },

    #[error("template has no AWS::Serverless::Function named {0}")]
    UnknownFunction(String),

    #[error("parameter override {0} names no parameter of the template")]
    UnknownParameter(String),

    /// A value of a function's environment could not be resolved.
    #[error("function {function}, variable {variable}: {reason}")]
    Unresolvable { function: String, variable: String, reason: String },

    /// A value of a resource's properties could not be resolved while provisioning.
    #[error("resource {resource}, property {property}: {reason}")]
    UnresolvableProperty { resource: String, property: String, reason: String },

    /// An AWS API call failed (the message carries the service's error code and text).
    #[error("{operation} for {resource} failed: {message}")]
    Aws { operation: &'static str, resource: String, message: String },

    #[error("the emulator endpoint is not configured: {0}")]
    NoEndpoint(String),
}

fn display_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

impl LocalError {
    pub(crate) fn invalid(at: impl Into<String>, reason: impl Into<String>) -> Self {
        LocalError::InvalidTemplate { at: at.into(), reason: reason.into() }
    }
}
