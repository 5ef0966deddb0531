"""Arrow schemas: every parquet the project writes uses one of these."""

from __future__ import annotations

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
STDIO_CASE = pa.struct([("input", pa.string()), ("output", pa.string())])
TESTS = pa.struct([("entry_point", pa.string()), ("test", pa.string()), ("stdio", pa.list_(STDIO_CASE))])
VERDICT = pa.struct([("filter", pa.string()), ("verdict", pa.string()), ("reason", pa.string())])
# A tool call as NVIDIA's Nemotron-Post-Training-Dataset-v1 card types it (`arguments` a JSON object string).
TOOL_CALL = pa.struct(
    [
        ("id", pa.string()),
        ("type", pa.string()),
        ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())])),
    ]
)
MESSAGE_WITH_TOOL_CALLS = pa.struct(
    [("role", pa.string()), ("content", pa.string()), ("tool_calls", pa.list_(TOOL_CALL))]
)

# The published layout (Llama-Nemotron-Post-Training-Dataset v1.1) plus the optional verification columns.
PUBLISHED_SCHEMA = pa.schema(
    [
        ("input", pa.list_(MESSAGE)),
        ("output", pa.string()),
        ("category", pa.string()),
        ("license", pa.string()),
        ("reasoning", pa.string()),
        ("generator", pa.string()),
        ("used_in_training", pa.string()),
        ("version", pa.string()),
        ("system_prompt", pa.string()),
        ("expected_answer", pa.string()),
        ("tests", TESTS),
    ]
)

# The internal record between stages. Free-form dicts (sampling provenance, metadata) are JSON strings:
# their keys vary by engine, and a fixed struct would make every new key a schema change.
RECORD_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("pair_id", pa.string()),
        ("category", pa.string()),
        ("input", pa.list_(MESSAGE_WITH_TOOL_CALLS)),  # files written before tool calls lack the member: read alike
        ("reasoning", pa.string()),
        ("system_prompt", pa.string()),
        ("output", pa.string()),
        ("expected_answer", pa.string()),
        ("tests", TESTS),
        ("generator", pa.string()),
        ("license", pa.string()),
        ("used_in_training", pa.string()),
        ("version", pa.string()),
        ("sample", pa.int32()),
        ("sampling", pa.string()),
        ("verdicts", pa.list_(VERDICT)),
        ("metadata", pa.string()),
        ("tool_calls", pa.list_(TOOL_CALL)),  # the answer's; absent from older files (read as none)
    ]
)

# The conversational layouts, column for column as NVIDIA's cards declare them (dataset_info.features;
# tests/schemas/fixtures/ keeps the cards' YAML and a test compares): Nemotron-Post-Training-Dataset-v1 ...
NEMOTRON_V1_SCHEMA = pa.schema(
    [
        ("uuid", pa.string()),
        ("license", pa.string()),
        ("generator", pa.string()),
        ("version", pa.string()),
        ("category", pa.string()),
        ("reasoning", pa.string()),
        ("messages", pa.list_(MESSAGE_WITH_TOOL_CALLS)),
        ("metadata", pa.string()),
    ]
)
# ... and -v2: the same without tool calls and metadata.
NEMOTRON_V2_SCHEMA = pa.schema(
    [
        ("uuid", pa.string()),
        ("license", pa.string()),
        ("generator", pa.string()),
        ("version", pa.string()),
        ("category", pa.string()),
        ("reasoning", pa.string()),
        ("messages", pa.list_(MESSAGE)),
    ]
)

# dropped/ and failed/ of every stage: the record with its provenance, and why it left. An input row that could
# not be read has no record: its record columns are null, `source` and `detail` say where and what.
REJECTED_SCHEMA = pa.schema(
    [
        *RECORD_SCHEMA,
        ("stage", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("source", pa.string()),  # file:line the record was read from
    ]
)
