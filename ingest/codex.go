package ingest

// codexState is a Codex rollout's reading state between polls.
type codexState struct{}

// codexCandidates lists Codex rollouts (placeholder until the Codex reader lands).
func (in *Ingester) codexCandidates(listed map[string]bool) []candidate { return nil }

func (r *fileReader) codexLine(line []byte, cur *fileCursor, c *chunk) {}
