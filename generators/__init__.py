"""Teachers answering prompts in both modes: prompt sources (`sources`), built-in procedural tasks
(`procedural`), engines (`engines`: vLLM offline, OpenAI-compatible, procedural), toggle conventions and
normalisation (`toggle`), and the resumable generate stage (`generate`: `GenerateConfig`, `run_generate`)."""
