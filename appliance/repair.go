package appliance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/fleetmeter/fleetmeter/ingest"
	"github.com/fleetmeter/fleetmeter/storage"
)

// runRepair recovers a damaged database: the damaged file is kept aside,
// what can be read of it is salvaged into a new file, and the transcripts
// still on disk (the source of truth) are read again into it.
func runRepair(ctx context.Context, env *cliEnv, args []string) error {
	var force bool
	cfg, rest, err := parseConfig(env, "repair", args, flagsData|flagsZone|flagsSources, func(fs *flag.FlagSet) {
		fs.BoolVar(&force, "force", false, "salvage even when every page reads back")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	loc, err := cfg.Location()
	if err != nil {
		return err
	}
	path := cfg.DBPath()
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("nothing to repair: %w", err)
	}
	if err := checkOwner(cfg.DataDir, "data dir"); err != nil {
		return err
	}
	// Taking the write lock shows no daemon uses the file.
	unlock, err := storage.LockFile(path, time.Second)
	if err != nil {
		return err
	}
	verr := storage.Verify(path)
	unlock()
	if verr == nil && !force {
		fmt.Fprintf(env.stdout, "%s reads back whole: nothing to repair (--force salvages it anyway)\n", path)
		return nil
	}
	if verr != nil && !errors.Is(verr, storage.ErrCorrupt) {
		return verr
	}
	aside := fmt.Sprintf("%s.damaged-%s", path, time.Now().UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, aside); err != nil {
		return fmt.Errorf("keep the damaged file aside: %w", err)
	}
	fmt.Fprintf(env.stdout, "kept the damaged file as %s\n", aside)
	res, err := storage.Salvage(aside, path, storage.Options{Location: loc})
	if err != nil {
		return fmt.Errorf("salvage: %w (the damaged file is %s)", err, aside)
	}
	fmt.Fprintf(env.stdout, "salvaged %d model calls and %d other rows; %d damaged regions and %d unreadable values left behind\n",
		res.Records, res.Values, res.DamagedRegions, res.DroppedValues)
	db, err := openDB(cfg, loc, false)
	if err != nil {
		return err
	}
	defer db.Close()
	ic, err := ingestConfig(cfg, newLogger(cfg, env.stderr), false)
	if err != nil {
		return err
	}
	in := ingest.New(ic, db)
	step, err := in.Step(ctx)
	if err != nil {
		return fmt.Errorf("read the transcripts again: %w", err)
	}
	fmt.Fprintf(env.stdout, "read %d transcript files again: %d model calls they still hold were missing and are back (%d already known)\n",
		step.Files, step.Added, in.Status().Skips.Duplicate)
	return nil
}

// runLogin asks the running daemon, over its socket, for a one-time URL
// that logs a browser in.
func runLogin(ctx context.Context, env *cliEnv, args []string) error {
	cfg, rest, err := parseConfig(env, "login", args, flagsData, nil)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	var buf bytes.Buffer
	if err := daemonStream(ctx, cfg, http.MethodPost, "/api/login-url", nil, &buf, 1<<16); err != nil {
		return err
	}
	var v struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal(buf.Bytes(), &v); err != nil || v.URL == "" {
		return fmt.Errorf("the daemon's answer holds no URL: %s", firstLine(buf.Bytes()))
	}
	fmt.Fprintf(env.stdout, "%s\n(valid once, for an hour)\n", v.URL)
	return nil
}
