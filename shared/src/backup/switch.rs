//! The switch-over procedure after a verified restore (docs/RUNBOOK.md
//! explains each step).

use crate::store::{STREAM_VIEW, TTL_ATTRIBUTE};

/// The switch-over procedure (docs/RUNBOOK.md explains each step): the live
/// table is replaced in place, under its own name, so every ARN, IAM policy
/// and the stack itself stay valid.
pub fn switch_steps(live: &str, restored: &str) -> Vec<String> {
    let snapshot = format!("{restored}-switch");
    vec![
        "Freeze writes: for f in $(aws cloudformation describe-stack-resources --stack-name \"$STACK\" --query \"StackResources[?ResourceType=='AWS::Lambda::Function'].PhysicalResourceId\" --output text); do aws lambda put-function-concurrency --function-name \"$f\" --reserved-concurrent-executions 0; done".to_owned(),
        format!("Keep the live data: aws dynamodb create-backup --table-name {live} --backup-name {live}-before-switch"),
        format!("Snapshot the verified restore: aws dynamodb create-backup --table-name {restored} --backup-name {snapshot} --query BackupDetails.BackupArn --output text  # -> $ARN"),
        format!("Remove the live table: aws dynamodb delete-table --table-name {live} && aws dynamodb wait table-not-exists --table-name {live}"),
        format!("Restore under the live name: aws dynamodb restore-table-from-backup --target-table-name {live} --backup-arn \"$ARN\" --sse-specification-override Enabled=true,SSEType=KMS,KMSMasterKeyId=alias/$STACK-data && aws dynamodb wait table-exists --table-name {live}"),
        format!("Re-apply what a restore drops: aws dynamodb update-time-to-live --table-name {live} --time-to-live-specification Enabled=true,AttributeName={TTL_ATTRIBUTE} && aws dynamodb update-continuous-backups --table-name {live} --point-in-time-recovery-specification PointInTimeRecoveryEnabled=true && aws dynamodb update-table --table-name {live} --stream-specification StreamEnabled=true,StreamViewType={view}", view = STREAM_VIEW.as_str()),
        format!("Re-point the stream triggers to the new stream: NEW=$(aws dynamodb describe-table --table-name {live} --query Table.LatestStreamArn --output text); for each mapping of the old stream (aws lambda list-event-source-mappings --function-name <stream function>): aws lambda delete-event-source-mapping --uuid <uuid>, then aws lambda create-event-source-mapping --function-name <stream function> --event-source-arn \"$NEW\" --starting-position TRIM_HORIZON --function-response-types ReportBatchItemFailures --filter-criteria <same filters as template.yaml>"),
        "Verify the live table: aws lambda invoke --function-name <VerifyFunction> --payload '{}' /dev/stdout (ledger and audit chains must be ok)".to_owned(),
        "Unfreeze writes: for each function above: aws lambda delete-function-concurrency --function-name \"$f\"".to_owned(),
        format!("Clean up when satisfied: aws dynamodb delete-table --table-name {restored}"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_steps_name_both_tables() {
        let steps = switch_steps("live-t", "live-t-restore-1");
        assert!(steps.iter().any(|s| s.contains("delete-table --table-name live-t ")));
        assert!(steps.iter().any(|s| s.contains("--target-table-name live-t ")));
        assert!(steps.last().is_some_and(|s| s.contains("live-t-restore-1")));
    }
}
