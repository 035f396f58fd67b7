// Command gencorpus writes a synthetic OpenClaw state directory for
// benchmarks and prints the totals an ingester must report for it as JSON.
//
//	go run ./scripts/gencorpus -out /tmp/corpus -size-mb 100 -seed 1
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	o := corpus.DefaultOptions()
	fs := flag.NewFlagSet("gencorpus", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "output state directory (required; must not contain agents/)")
	sizeMB := fs.Float64("size-mb", 100, "approximate corpus size in MiB")
	end := fs.String("end", o.End.Format(time.DateOnly), "exclusive end date of the period (UTC, YYYY-MM-DD)")
	noTraps := fs.Bool("no-traps", false, "no forks, checkpoints, resets or rewrites: every row unique")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed: same seed and flags, same bytes")
	fs.IntVar(&o.Days, "days", o.Days, "days covered, ending at -end")
	fs.IntVar(&o.Agents, "agents", o.Agents, "number of agents")
	fs.Float64Var(&o.SessionsPerAgentDay, "sessions-per-agent-day", o.SessionsPerAgentDay, "mean sessions an agent starts per day")
	fs.Float64Var(&o.LegacyRate, "legacy-rate", o.LegacyRate, "share of sessions without responseId")
	fs.Float64Var(&o.ZeroCostRate, "zero-cost-rate", o.ZeroCostRate, "share of sessions with usage but zero cost")
	fs.Float64Var(&o.ImageRate, "image-rate", o.ImageRate, "share of user turns with a ~200 KB image (large sessions only)")
	fs.Float64Var(&o.AbortRate, "abort-rate", o.AbortRate, "share of model calls preceded by an aborted call")
	fs.Float64Var(&o.MirrorRate, "mirror-rate", o.MirrorRate, "share of channel turns with a delivery-mirror row")
	fs.Float64Var(&o.ForkRate, "fork-rate", o.ForkRate, "share of sessions forked into a <ts>_<uuid>.jsonl file")
	fs.Float64Var(&o.CheckpointRate, "checkpoint-rate", o.CheckpointRate, "share of sessions with a .checkpoint. copy")
	fs.Float64Var(&o.ResetRate, "reset-rate", o.ResetRate, "share of new sessions that archive the key's old one as .jsonl.reset.<ts>")
	fs.Float64Var(&o.RewriteRate, "rewrite-rate", o.RewriteRate, "share of sessions with a transcript rewrite (duplicate rows)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" {
		fmt.Fprintln(stderr, "gencorpus: -out is required")
		return 2
	}
	e, err := time.Parse(time.DateOnly, *end)
	if err != nil {
		fmt.Fprintf(stderr, "gencorpus: -end: %v\n", err)
		return 2
	}
	o.End = e
	o.SizeBytes = int64(*sizeMB * (1 << 20))
	if *noTraps {
		o = o.NoTraps()
	}

	began := time.Now()
	exp, err := corpus.Generate(*out, o)
	if err != nil {
		fmt.Fprintf(stderr, "gencorpus: %v\n", err)
		return 1
	}
	took := time.Since(began)
	fmt.Fprintf(stderr, "gencorpus: %s: %.1f MiB in %d files, %d sessions, %.2fs (%.0f MiB/s)\n",
		*out, float64(exp.Files.Bytes)/(1<<20),
		exp.Files.Transcripts+exp.Files.Forks+exp.Files.Checkpoints+exp.Files.ResetArchives+exp.Files.Stores,
		exp.Sessions, took.Seconds(), float64(exp.Files.Bytes)/(1<<20)/took.Seconds())
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(exp); err != nil {
		fmt.Fprintf(stderr, "gencorpus: %v\n", err)
		return 1
	}
	return 0
}
