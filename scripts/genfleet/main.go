// Command genfleet writes a data dir holding a generated fleet: a ledger of
// agents in teams, their users and models (appliance/corpus.GenerateFleet)
// and the host history of the same days, for API and UI benchmarks.
//
//	go run ./scripts/genfleet -out /tmp/fleet -calls 5000000
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/fleetmeter/fleetmeter/appliance/corpus"
	"github.com/fleetmeter/fleetmeter/storage"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	o := corpus.DefaultFleetOptions()
	fs := flag.NewFlagSet("genfleet", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "", "data dir to create (required; must not hold a database)")
	end := fs.String("end", "", "exclusive end of the period, RFC 3339 (default: now)")
	fs.IntVar(&o.Calls, "calls", o.Calls, "ledger records")
	fs.IntVar(&o.Days, "days", o.Days, "days covered, ending at -end")
	fs.IntVar(&o.Agents, "agents", o.Agents, "agents")
	fs.IntVar(&o.Users, "users", o.Users, "users")
	fs.IntVar(&o.Models, "models", o.Models, "models")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "random seed")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" {
		fmt.Fprintln(stderr, "genfleet: -out is required")
		return 2
	}
	o.End = time.Now().UTC().Truncate(time.Second)
	if *end != "" {
		t, err := time.Parse(time.RFC3339, *end)
		if err != nil {
			fmt.Fprintf(stderr, "genfleet: -end: %v\n", err)
			return 2
		}
		o.End = t
	}
	if err := generate(*out, o, stdout); err != nil {
		fmt.Fprintf(stderr, "genfleet: %v\n", err)
		return 1
	}
	return 0
}

func generate(dir string, o corpus.FleetOptions, stdout io.Writer) error {
	path := filepath.Join(dir, storage.FileName)
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%s exists", path)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	db, err := storage.Open(path, storage.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	tot, err := corpus.GenerateFleet(o, 20_000, func(records []storage.Usage) error {
		_, err := db.Apply(&storage.Batch{Records: records})
		return err
	})
	if err != nil {
		return err
	}
	h := corpus.DefaultHostOptions()
	h.End, h.Days = o.End, o.Days
	if err := corpus.HostHistory(h, db.PutHostSamples); err != nil {
		return err
	}
	// Raw samples are kept two weeks, as retention would.
	if _, err := db.PruneHostSamples(o.End.Add(-14 * 24 * time.Hour).UnixMilli()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d calls in %d sessions, $%.2f, %d tokens, ending %s, written in %s\n",
		tot.Calls, tot.Sessions, storage.USD(tot.CostNanos), tot.Tokens, o.End.Format(time.RFC3339), time.Since(start).Round(time.Second))
	return nil
}
