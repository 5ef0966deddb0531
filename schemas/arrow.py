"""Arrow schemas: every parquet the project writes uses one of these."""

from __future__ import annotations

import pyarrow as pa

MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
STDIO_CASE = pa.struct([("input", pa.string()), ("output", pa.string())])
TESTS = pa.struct([("entry_point", pa.string()), ("test", pa.string()), ("stdio", pa.list_(STDIO_CASE))])
VERDICT = pa.struct([("filter", pa.string()), ("verdict", pa.string()), ("reason", pa.string())])

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
        ("input", pa.list_(MESSAGE)),
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
