package ingest

// claudeCandidates lists Claude Code transcripts (placeholder until the
// Claude Code reader lands).
func (in *Ingester) claudeCandidates(listed map[string]bool) []candidate { return nil }

func (r *fileReader) claudeLine(line []byte, cur *fileCursor, c *chunk) {}
