//! What the `migrate` function is sent and answers: direct-invoke commands,
//! the segment jobs it puts on its own queue, and what a job did.

use super::Direction;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A direct-invoke command of the `migrate` function.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Command {
    Status,
    Up {
        /// Default: the latest version this code knows.
        #[serde(default)]
        to: Option<u32>,
        #[serde(default)]
        segments: Option<u32>,
        #[serde(default)]
        dry_run: bool,
    },
    Down {
        to: u32,
        #[serde(default)]
        segments: Option<u32>,
        #[serde(default)]
        dry_run: bool,
    },
}

/// A message on the jobs queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "job")]
pub enum Job {
    #[serde(rename = "migrate.segment")]
    Segment(SegmentJob),
}

/// Work for one scan segment of one run. The stored checkpoint, not `cursor`,
/// decides where the scan resumes (a redelivered message carries an old one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentJob {
    pub run_id: String,
    pub direction: Direction,
    pub to_version: u32,
    pub segment: u32,
    pub total_segments: u32,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<BTreeMap<String, String>>,
    /// 0 for the first message of a segment, +1 per continuation.
    #[serde(default)]
    pub leg: u32,
}

/// What a segment invocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentOutcome {
    /// The segment finished; other segments are still running.
    SegmentDone,
    /// The segment finished last and finalized the run.
    RunFinished,
    /// Out of time: a continuation message was enqueued.
    Continued,
    /// The run failed (threshold reached here or elsewhere) or was abandoned.
    Stopped,
    /// Another invocation advanced this segment's checkpoint (a duplicate delivery).
    Duplicate,
    /// The message names no run, or disagrees with the run (dropped).
    Ignored,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        let up: Command =
            serde_json::from_str(r#"{"action":"up","to":3,"segments":4,"dry_run":true}"#).unwrap();
        assert_eq!(up, Command::Up { to: Some(3), segments: Some(4), dry_run: true });
        let status: Command = serde_json::from_str(r#"{"action":"status"}"#).unwrap();
        assert_eq!(status, Command::Status);
        assert!(serde_json::from_str::<Command>(r#"{"action":"down"}"#).is_err(), "down needs a target");
        assert!(serde_json::from_str::<Command>(r#"{"action":"sideways"}"#).is_err());
    }

    #[test]
    fn jobs_round_trip() {
        let job = Job::Segment(SegmentJob {
            run_id: "r".into(),
            direction: Direction::Down,
            to_version: 1,
            segment: 2,
            total_segments: 4,
            dry_run: false,
            cursor: Some(BTreeMap::from([("pk".into(), "T#a#B".into()), ("sk".into(), "C".into())])),
            leg: 3,
        });
        let text = serde_json::to_string(&job).unwrap();
        assert!(text.contains(r#""job":"migrate.segment""#), "{text}");
        assert_eq!(serde_json::from_str::<Job>(&text).unwrap(), job);
    }
}
