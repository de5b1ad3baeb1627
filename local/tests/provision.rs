//! Provisions the real template.yaml on the emulator (`scripts/test` starts it and sets
//! `AWS_ENDPOINT_URL`; without it these tests fail rather than skip).

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    IndexStatus, KeyType, PointInTimeRecoveryStatus, ProjectionType, SseStatus, SseType, StreamViewType,
    TimeToLiveStatus,
};
use aws_sdk_kms::types::{KeySpec, KeyState, KeyUsageType};
use aws_sdk_sqs::types::QueueAttributeName;
use caas_local::{ResourceKind, Stack, Template, provision, random_suffix};

async fn sdk() -> SdkConfig {
    caas_local::emulator_sdk_config()
        .await
        .expect("these tests need the emulator: run them through scripts/test")
}

async fn provisioned() -> (SdkConfig, Template, Stack) {
    let sdk = sdk().await;
    let template = Template::load_repo().expect("template.yaml");
    let suffix = random_suffix();
    let stack = provision(&template, &sdk, &suffix).await.expect("provision");
    assert_eq!(stack.suffix, suffix);
    (sdk, template, stack)
}

#[tokio::test]
async fn the_table_has_keys_indexes_stream_encryption_ttl_and_pitr() {
    let (sdk, _template, stack) = provisioned().await;
    let table = &stack.resources["Table"];
    assert_eq!(table.kind, ResourceKind::Table);
    assert_eq!(table.name, format!("Table-{}", stack.suffix));
    assert_eq!(stack.table_name(), Some(table.name.as_str()));
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);

    let described = ddb.describe_table().table_name(&table.name).send().await.expect("DescribeTable");
    let t = described.table().expect("table description");
    assert_eq!(t.table_arn(), Some(table.arn.as_str()));
    let keys: Vec<_> = t.key_schema().iter().map(|k| (k.attribute_name(), k.key_type().clone())).collect();
    assert_eq!(keys, [("pk", KeyType::Hash), ("sk", KeyType::Range)]);

    let mut indexes: Vec<_> = t
        .global_secondary_indexes()
        .iter()
        .map(|g| {
            let keys: Vec<_> = g
                .key_schema()
                .iter()
                .map(|k| (k.attribute_name().to_owned(), k.key_type().clone()))
                .collect();
            let projection = g.projection().and_then(|p| p.projection_type()).cloned();
            (g.index_name().unwrap_or_default().to_owned(), keys, projection, g.index_status().cloned())
        })
        .collect();
    indexes.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(indexes.len(), 2, "{indexes:?}");
    for (index, (name, keys, projection, status)) in ["gsi1", "gsi2"].iter().zip(&indexes) {
        assert_eq!(name, index);
        assert_eq!(keys, &[(format!("{index}pk"), KeyType::Hash), (format!("{index}sk"), KeyType::Range)]);
        assert_eq!(projection, &Some(ProjectionType::All));
        assert_eq!(status, &Some(IndexStatus::Active));
    }

    let stream = t.stream_specification().expect("stream specification");
    assert!(stream.stream_enabled());
    assert_eq!(stream.stream_view_type(), Some(&StreamViewType::NewAndOldImages));
    assert!(t.latest_stream_arn().is_some());
    assert_eq!(t.latest_stream_arn(), table.stream_arn.as_deref());

    let sse = t.sse_description().expect("SSE description");
    assert_eq!(sse.status(), Some(&SseStatus::Enabled));
    assert_eq!(sse.sse_type(), Some(&SseType::Kms));
    let data_key = &stack.resources["DataKey"];
    let kms_key = sse.kms_master_key_arn().expect("KMS key of the table");
    assert!(
        kms_key == data_key.arn || kms_key.ends_with(&data_key.name),
        "table encrypted with {kms_key}, not {data_key:?}"
    );

    let ttl = ddb.describe_time_to_live().table_name(&table.name).send().await.expect("DescribeTimeToLive");
    let ttl = ttl.time_to_live_description().expect("TTL description");
    assert_eq!(ttl.attribute_name(), Some("expires_at"));
    assert_eq!(ttl.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));

    let backups = ddb
        .describe_continuous_backups()
        .table_name(&table.name)
        .send()
        .await
        .expect("DescribeContinuousBackups");
    let pitr = backups
        .continuous_backups_description()
        .and_then(|d| d.point_in_time_recovery_description())
        .and_then(|p| p.point_in_time_recovery_status());
    assert_eq!(pitr, Some(&PointInTimeRecoveryStatus::Enabled));

    stack.teardown(&sdk).await;
}

#[tokio::test]
async fn the_keys_sign_with_p256_and_the_data_key_rotates() {
    let (sdk, _template, stack) = provisioned().await;
    let kms = aws_sdk_kms::Client::new(&sdk);

    let signing = &stack.resources["TokenSigningKey"];
    assert_eq!(signing.kind, ResourceKind::Key);
    let described = kms.describe_key().key_id(&signing.name).send().await.expect("DescribeKey");
    let meta = described.key_metadata().expect("key metadata");
    assert_eq!(meta.key_id(), signing.name);
    assert_eq!(meta.arn(), Some(signing.arn.as_str()));
    assert_eq!(meta.key_spec(), Some(&KeySpec::EccNistP256));
    assert_eq!(meta.key_usage(), Some(&KeyUsageType::SignVerify));
    assert_eq!(meta.key_state(), Some(&KeyState::Enabled));

    let data = &stack.resources["DataKey"];
    let described = kms.describe_key().key_id(&data.name).send().await.expect("DescribeKey");
    let meta = described.key_metadata().expect("key metadata");
    assert_eq!(meta.key_spec(), Some(&KeySpec::SymmetricDefault));
    assert_eq!(meta.key_usage(), Some(&KeyUsageType::EncryptDecrypt));
    let rotation =
        kms.get_key_rotation_status().key_id(&data.name).send().await.expect("GetKeyRotationStatus");
    assert!(rotation.key_rotation_enabled());

    // The aliases resolve the template's !Sub with the stack name and point at the keys.
    let alias = &stack.resources["TokenSigningKeyAlias"];
    assert_eq!(alias.kind, ResourceKind::Alias);
    assert_eq!(alias.name, format!("alias/caas-{}-token-signing", stack.suffix));
    let by_alias = kms.describe_key().key_id(&alias.name).send().await.expect("DescribeKey by alias");
    assert_eq!(by_alias.key_metadata().map(|m| m.key_id()), Some(signing.name.as_str()));

    stack.teardown(&sdk).await;
}

#[tokio::test]
async fn the_queues_are_fifo_where_declared_and_redrive_to_their_dlqs() {
    let (sdk, _template, stack) = provisioned().await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let attributes = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(QueueAttributeName::All)
                .send()
                .await
                .expect("GetQueueAttributes")
                .attributes()
                .cloned()
                .unwrap_or_default()
        }
    };
    let redrive = |attrs: &std::collections::HashMap<QueueAttributeName, String>| -> serde_json::Value {
        serde_json::from_str(attrs.get(&QueueAttributeName::RedrivePolicy).expect("RedrivePolicy"))
            .expect("JSON")
    };

    let events = &stack.resources["EventsQueue"];
    let events_dlq = &stack.resources["EventsDLQ"];
    assert_eq!(events.name, format!("EventsQueue-{}.fifo", stack.suffix));
    assert_eq!(events_dlq.name, format!("EventsDLQ-{}.fifo", stack.suffix));
    assert_eq!(stack.queue_url("EventsQueue"), events.url.as_deref());
    let attrs = attributes(stack.queue_url("EventsQueue").expect("url").to_owned()).await;
    assert_eq!(attrs.get(&QueueAttributeName::QueueArn), Some(&events.arn));
    assert_eq!(attrs.get(&QueueAttributeName::FifoQueue).map(String::as_str), Some("true"));
    assert_eq!(attrs.get(&QueueAttributeName::ContentBasedDeduplication).map(String::as_str), Some("false"));
    assert_eq!(attrs.get(&QueueAttributeName::VisibilityTimeout).map(String::as_str), Some("60"));
    let policy = redrive(&attrs);
    assert_eq!(policy["deadLetterTargetArn"].as_str(), Some(events_dlq.arn.as_str()));
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "5");

    let attrs = attributes(events_dlq.url.clone().expect("url")).await;
    assert_eq!(attrs.get(&QueueAttributeName::FifoQueue).map(String::as_str), Some("true"));
    assert_eq!(attrs.get(&QueueAttributeName::MessageRetentionPeriod).map(String::as_str), Some("1209600"));

    let jobs = &stack.resources["JobsQueue"];
    assert_eq!(jobs.name, format!("JobsQueue-{}", stack.suffix));
    let attrs = attributes(stack.queue_url("JobsQueue").expect("url").to_owned()).await;
    assert_eq!(attrs.get(&QueueAttributeName::FifoQueue), None);
    assert_eq!(attrs.get(&QueueAttributeName::VisibilityTimeout).map(String::as_str), Some("960"));
    let policy = redrive(&attrs);
    assert_eq!(policy["deadLetterTargetArn"].as_str(), Some(stack.resources["JobsDLQ"].arn.as_str()));
    assert_eq!(policy["maxReceiveCount"].to_string().trim_matches('"'), "3");

    assert_eq!(stack.queue_url("Table"), None);
    assert_eq!(stack.queue_url("NoSuchQueue"), None);
    stack.teardown(&sdk).await;
}

#[tokio::test]
async fn function_env_points_at_the_created_resources_and_takes_overrides() {
    let (sdk, template, stack) = provisioned().await;
    let env = stack.function_env(&template, "LoginFunction", &BTreeMap::new()).expect("env");
    assert_eq!(env["TABLE_NAME"], stack.resources["Table"].name);
    assert_eq!(env["TOKEN_SIGNING_KEY_ID"], stack.resources["TokenSigningKey"].name);
    assert_eq!(env["TOKEN_ISSUER"], "caas");
    assert_eq!(env["TOKEN_AUDIENCE"], "caas-api");
    assert_eq!(env["ARGON2_MEMORY_KIB"], "65536");
    assert_eq!(env["ARGON2_ITERATIONS"], "3");
    assert_eq!(env["LOCKOUT_THRESHOLD"], "5");
    assert_eq!(env["REFRESH_TOKEN_TTL_SECONDS"], "2592000");
    assert_eq!(env["RUST_LOG"], "info");

    // The key id really is the signing key: KMS can sign with it.
    let kms = aws_sdk_kms::Client::new(&sdk);
    let signed = kms
        .sign()
        .key_id(&env["TOKEN_SIGNING_KEY_ID"])
        .message(aws_sdk_kms::primitives::Blob::new(b"header.payload".to_vec()))
        .message_type(aws_sdk_kms::types::MessageType::Raw)
        .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .expect("Sign");
    assert!(signed.signature().is_some());

    let overrides = BTreeMap::from([
        ("Argon2MemoryKiB".to_owned(), "1024".to_owned()),
        ("TokenIssuer".to_owned(), "issuer-under-test".to_owned()),
    ]);
    let env = stack.function_env(&template, "LoginFunction", &overrides).expect("env");
    assert_eq!(env["ARGON2_MEMORY_KIB"], "1024");
    assert_eq!(env["TOKEN_ISSUER"], "issuer-under-test");
    assert_eq!(env["ARGON2_ITERATIONS"], "3");

    // Every function's environment resolves.
    for function in template.functions() {
        let env = stack.function_env(&template, &function.logical_id, &BTreeMap::new()).expect("env");
        assert_eq!(env["TABLE_NAME"], stack.resources["Table"].name, "{}", function.logical_id);
    }
    stack.teardown(&sdk).await;
}

#[tokio::test]
async fn teardown_removes_what_provision_created() {
    let (sdk, _template, stack) = provisioned().await;
    stack.teardown(&sdk).await;

    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let gone = ddb.describe_table().table_name(stack.table_name().expect("table")).send().await;
    assert!(gone.is_err(), "table still there: {gone:?}");

    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for id in ["EventsQueue", "EventsDLQ", "JobsQueue", "JobsDLQ"] {
        let name = &stack.resources[id].name;
        let gone = sqs.get_queue_url().queue_name(name).send().await;
        assert!(gone.is_err(), "{name} still there");
    }

    let kms = aws_sdk_kms::Client::new(&sdk);
    for id in ["DataKey", "TokenSigningKey"] {
        let described =
            kms.describe_key().key_id(&stack.resources[id].name).send().await.expect("DescribeKey");
        assert_eq!(described.key_metadata().and_then(|m| m.key_state()), Some(&KeyState::PendingDeletion));
    }
}

#[tokio::test]
async fn a_failed_provision_reports_the_resource_and_cleans_up() {
    let sdk = sdk().await;
    let template = Template::parse(
        r#"
Resources:
  AKey:
    Type: AWS::KMS::Key
    Properties:
      KeySpec: SYMMETRIC_DEFAULT
  Broken:
    Type: AWS::SQS::Queue
    Properties:
      VisibilityTimeout: 60
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Missing.Arn
        maxReceiveCount: 3
"#,
    )
    .expect("parse");
    let suffix = random_suffix();
    let err = provision(&template, &sdk, &suffix).await.expect_err("Missing is no resource");
    let message = err.to_string();
    assert!(message.contains("Broken") && message.contains("Missing"), "{message}");

    // The key created before the failure is scheduled for deletion again.
    let kms = aws_sdk_kms::Client::new(&sdk);
    let keys = kms.list_keys().limit(1000).send().await.expect("ListKeys");
    let mut states = Vec::new();
    for key in keys.keys() {
        let described =
            kms.describe_key().key_id(key.key_id().unwrap_or_default()).send().await.expect("DescribeKey");
        if let Some(meta) =
            described.key_metadata().filter(|m| m.description() == Some(&format!("AKey-{suffix}")))
        {
            states.push(meta.key_state().cloned());
        }
    }
    assert_eq!(states, [Some(KeyState::PendingDeletion)]);
}

#[tokio::test]
async fn suffixes_that_would_make_invalid_names_are_refused() {
    let sdk = sdk().await;
    let template = Template::load_repo().expect("template.yaml");
    for bad in ["", "has space", "dots.not.allowed", &"x".repeat(33)] {
        assert!(provision(&template, &sdk, bad).await.is_err(), "{bad:?} accepted");
    }
}
