"""Adds the per-function log group and Errors/Throttles alarms to template.yaml for
every AWS::Serverless::Function that has none yet (tests/iam.rs requires them).

Usage: .venv/bin/python scripts/function-alarms.py [template.yaml]
Appends the missing blocks at the end of the "per-function logs and alarms" section.
"""

import re
import sys

BLOCK = """
  {f}Logs:
    Type: AWS::Logs::LogGroup
    DeletionPolicy: Delete
    UpdateReplacePolicy: Delete
    Properties:
      LogGroupName: !Sub /aws/lambda/${{{f}}}
      RetentionInDays: !Ref LogRetentionDays
{alarms}"""

ALARM = """
  {f}{metric}Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: {f} {what}. See docs/RUNBOOK.md.
      Namespace: AWS/Lambda
      MetricName: {metric}
      Dimensions: [{{Name: FunctionName, Value: !Ref {f}}}]
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanOrEqualToThreshold
      TreatMissingData: notBreaching
      AlarmActions: [!Ref OperationsAlarmTopic]
      OKActions: [!Ref OperationsAlarmTopic]
"""

WHAT = {
    "Errors": "failed an invocation (an error, a panic, a timeout)",
    "Throttles": "was throttled (concurrency exhausted)",
}


def main(path):
    text = open(path).read()
    functions = re.findall(r"^  (\w+):\n    Type: AWS::Serverless::Function$", text, re.M)
    missing = [f for f in functions if not re.search(rf"^  {f}Logs:$", text, re.M)]
    if not missing:
        return
    blocks = "".join(
        BLOCK.format(f=f, alarms="".join(ALARM.format(f=f, metric=m, what=WHAT[m]) for m in WHAT))
        for f in missing
    )
    marker = "  # ---------------------------------------------------------------- per-function logs and alarms\n"
    start = text.index(marker) + len(marker)
    # The section ends at the next section marker or the next top-level key (Outputs:).
    following = re.search(r"^(  # -{10,}|\S)", text[start:], re.M)
    end = start + following.start() if following else len(text.rstrip("\n")) + 1
    # Blocks are separated by one blank line.
    head = text[:end].rstrip("\n") + "\n"
    tail = text[end:]
    open(path, "w").write(head + blocks + ("\n" + tail if tail else ""))
    print("added logs and alarms for: " + ", ".join(missing))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "template.yaml")
