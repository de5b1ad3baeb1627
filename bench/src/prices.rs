//! Published on-demand list prices, us-east-1, and Lambda's CPU rule. They are
//! stated for [`PRICE_DATE`] and must be re-checked against the AWS pricing
//! pages before anyone budgets with them.

/// The date the prices below are stated for.
pub const PRICE_DATE: &str = "2025-06-01";

/// DynamoDB on-demand, per million write request units (standard table class,
/// after the 2024-11-01 on-demand price reduction).
pub const DYNAMODB_WRITE_UNITS: f64 = 0.625;
/// DynamoDB on-demand, per million read request units.
pub const DYNAMODB_READ_UNITS: f64 = 0.125;
/// KMS, per million asymmetric requests other than RSA 2048 (ECC `Sign`):
/// $0.15 per 10,000.
pub const KMS_ASYMMETRIC: f64 = 15.0;
/// SQS FIFO, per million requests (each 64 KB chunk of a payload is one).
pub const SQS_FIFO: f64 = 0.50;
/// Lambda, per million requests.
pub const LAMBDA_REQUESTS: f64 = 0.20;
/// Lambda arm64, per GB-second (first pricing tier).
pub const LAMBDA_ARM_GB_SECOND: f64 = 0.000_013_333_4;
/// The memory at which a function gets one full vCPU; below it CPU is in
/// proportion to memory.
pub const FULL_VCPU_MB: f64 = 1769.0;
/// SQS bills a request per started 64 KB of its payload.
pub const SQS_CHUNK_BYTES: usize = 65_536;

/// Lambda's duration of a handler with `cpu_ms` of CPU on one full vCPU and
/// `wait_ms` waiting on the network, at `memory_mb` (below 1,769 MB the CPU
/// part stretches by 1,769 / memory), and its billed GB-seconds (1 ms steps).
pub fn lambda(cpu_ms: f64, wait_ms: f64, memory_mb: f64) -> (f64, f64) {
    let stretch = (FULL_VCPU_MB / memory_mb).max(1.0);
    let duration = (cpu_ms * stretch + wait_ms).ceil();
    (duration, memory_mb / 1024.0 * duration / 1000.0)
}

/// Dollars per million invocations of that duration and memory.
pub fn lambda_dollars(gb_seconds: f64) -> f64 {
    LAMBDA_REQUESTS + gb_seconds * LAMBDA_ARM_GB_SECOND * 1e6
}
