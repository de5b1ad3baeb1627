//! The stack a run serves: a new one, or with `--persist` the one an earlier run
//! described in the data directory, while its table still exists.

use std::path::Path;

use aws_config::SdkConfig;

use super::{Options, RunError, io};
use crate::provision::{provision, random_suffix};
use crate::stack::Stack;
use crate::template::Template;

/// The stack to serve, and whether to keep it at exit.
pub(super) async fn stack(
    options: &Options,
    template: &Template,
    sdk: &SdkConfig,
) -> Result<(Stack, bool), RunError> {
    let file = options.data_dir.join("stack.json");
    let previous = if options.persist { read_stack(&file)? } else { None };
    if let Some(stack) = previous {
        let table = stack.table_name().unwrap_or_default().to_owned();
        let exists =
            aws_sdk_dynamodb::Client::new(sdk).describe_table().table_name(&table).send().await.is_ok();
        if exists {
            println!("reusing the stack of {} (suffix {})", file.display(), stack.suffix);
            return Ok((stack, true));
        }
    }
    let stack = provision(template, sdk, &random_suffix()).await?;
    if options.persist {
        let text = serde_json::to_string_pretty(&stack).unwrap_or_default();
        std::fs::write(&file, text).map_err(io(format!("writing {}", file.display())))?;
    }
    Ok((stack, options.persist))
}

fn read_stack(path: &Path) -> Result<Option<Stack>, RunError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| RunError::StackFile { path: path.to_path_buf(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(format!("reading {}", path.display()))(e)),
    }
}
