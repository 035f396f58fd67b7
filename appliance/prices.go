package appliance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/rollup"
	"github.com/fleetmeter/fleetmeter/storage"
)

// modelPrice is one row of `fleetmeter prices`: a model seen in the data
// and the price fleetmeter would use for it today.
type modelPrice struct {
	Provider       string         `json:"provider"`
	Model          string         `json:"model"`
	Messages       int64          `json:"messages"`
	TotalTokens    int64          `json:"total_tokens"`
	UnpricedTokens int64          `json:"unpriced_tokens"`
	PricedAs       string         `json:"priced_as"` // matched table model, override key, or "transcript"; "" when unpriced
	PerMTok        *pricing.Price `json:"usd_per_mtok"`
}

// pricesOutput is `fleetmeter prices --json`.
type pricesOutput struct {
	Models         []modelPrice           `json:"models"`
	PriceTableDate string                 `json:"price_table_date"`
	PriceTable     string                 `json:"price_table"` // "embedded" or where an updated table came from
	PriceFile      string                 `json:"price_file"`  // the override file in use, "" for none
	Modifiers      []pricing.Modifier     `json:"modifiers"`
	ModifiersDate  string                 `json:"modifiers_date"`
	LastReprice    *storage.RepriceResult `json:"last_reprice,omitempty"`
	Warnings       []string               `json:"warnings,omitempty"`
}

// pricingSetup is the pricer of a configuration and where its table came from.
type pricingSetup struct {
	pricer *pricing.Pricer
	table  *pricing.Table
	source string // "embedded", or the URL or file an updated table came from
}

// newPricer builds the pricer of cfg: the table `prices update` keeps in
// the data dir (else the embedded snapshot), the override file, and the
// modifier table. A broken override file or kept table is an error, never
// silently ignored.
func newPricer(cfg Config) (pricingSetup, error) {
	table, info, updated, err := pricing.LoadFeed(cfg.DataDir)
	if err != nil {
		return pricingSetup{}, err
	}
	source := "embedded"
	if updated {
		source = info.Source
	} else if table, err = pricing.LoadTable(); err != nil {
		return pricingSetup{}, fmt.Errorf("price table: %w", err)
	}
	var overrides pricing.Overrides
	if cfg.PriceFile != "" {
		if overrides, err = pricing.LoadOverrides(cfg.PriceFile); err != nil {
			return pricingSetup{}, err
		}
	}
	return pricingSetup{pricer: pricing.NewPricer(table, overrides), table: table, source: source}, nil
}

// priceLedger reprices the ledger when the prices changed since it was
// priced (an override added, a table updated, a modifier fixed), so that
// history follows, and logs what changed. A new file just records them.
func priceLedger(ctx context.Context, db *storage.DB, p *pricing.Pricer, now time.Time, log *slog.Logger) (storage.RepriceResult, error) {
	fp := p.Fingerprint()
	old, err := db.PricingFingerprint()
	if err != nil || old == fp {
		return storage.RepriceResult{}, err
	}
	if old == "" {
		if st, err := db.Stats(); err == nil && st.LedgerRecords == 0 {
			return storage.RepriceResult{}, db.SetPricingFingerprint(fp)
		}
	}
	log.Info("prices changed since the ledger was priced: repricing it")
	res, err := db.Reprice(ctx, fp, now, p.Apply)
	if err != nil {
		return res, err
	}
	log.Info("ledger repriced", "records", res.Records, "changed", res.Changed,
		"cost_before_usd", res.CostBefore, "cost_after_usd", res.CostAfter)
	return res, nil
}

// repriceOffline reprices the database when no daemon holds it and its
// prices are not cfg's; a report from the database then shows cfg's
// prices. With a daemon running, the daemon's prices apply: a price file
// given here that the daemon does not use is an error, not ignored.
func repriceOffline(ctx context.Context, cfg Config, env *cliEnv) error {
	ps, err := newPricer(cfg)
	if err != nil {
		return err
	}
	db, daemon, err := openForReading(cfg)
	if err != nil {
		return err
	}
	if daemon {
		return checkDaemonPricing(ctx, cfg, ps.pricer)
	}
	fp, err := db.PricingFingerprint()
	db.Close()
	if err != nil || fp == ps.pricer.Fingerprint() {
		return err
	}
	wdb, err := openWritable(cfg)
	if errors.Is(err, storage.ErrLocked) {
		return checkDaemonPricing(ctx, cfg, ps.pricer) // a daemon started meanwhile
	}
	if err != nil {
		return err
	}
	defer wdb.Close()
	_, err = priceLedger(ctx, wdb, ps.pricer, time.Now(), newLogger(cfg, env.stderr))
	return err
}

// checkDaemonPricing fails when the running daemon prices with other
// overrides than a price file given to this command.
func checkDaemonPricing(ctx context.Context, cfg Config, p *pricing.Pricer) error {
	if cfg.PriceFile == "" {
		return nil
	}
	if other, _ := daemonPricesOtherwise(ctx, cfg, p); other {
		return fmt.Errorf("the running daemon prices with its own price file, not %s: set price_file in its configuration and restart it (its ledger is then repriced)", cfg.PriceFile)
	}
	return nil
}

// daemonPricesOtherwise reports whether a daemon answers (up) and prices
// with other prices than p (other): its own price file, or none where p
// has one. (/api/status gives the fingerprint of the daemon's prices.)
func daemonPricesOtherwise(ctx context.Context, cfg Config, p *pricing.Pricer) (other, up bool) {
	body, err := daemonGet(ctx, cfg, "/api/status", nil)
	if err != nil {
		return false, false // the report itself says the daemon does not answer
	}
	return !strings.Contains(string(body), `"pricing":"`+p.Fingerprint()+`"`), true
}

// runPrices lists the models in the data with their prices, unpriced
// ones first, so a user sees what needs an override; `prices update`
// refreshes the price table.
func runPrices(ctx context.Context, env *cliEnv, args []string) error {
	if sub, rest := splitSub(args, "update"); sub != "" {
		return runPricesUpdate(ctx, env, rest)
	}
	ra, err := parseReportArgs(env, "prices", args, false)
	if err != nil {
		return err
	}
	if len(ra.rest) > 0 {
		return usageErr("unexpected argument %q (want `fleetmeter prices` or `fleetmeter prices update`)", ra.rest[0])
	}
	cfg, asJSON := ra.cfg, ra.asJSON
	rep, _, err := usageReport(ctx, env, ra, "model")
	if err != nil {
		return err
	}
	ps, err := newPricer(cfg)
	if err != nil {
		return err
	}
	out := pricesOutput{
		PriceTableDate: ps.table.Date(), PriceTable: ps.source, PriceFile: cfg.PriceFile,
		Modifiers: pricing.Modifiers, ModifiersDate: pricing.ModifiersDate,
	}
	var unpriced, priced []modelPrice
	var unpricedTokens int64
	for _, m := range rep.Rows.([]rollup.ModelRow) {
		row := modelPrice{Provider: m.Provider, Model: m.Model, Messages: m.Messages, TotalTokens: m.TotalTokens, UnpricedTokens: m.UnpricedTokens}
		unpricedTokens += m.UnpricedTokens
		switch p, as, ok := ps.pricer.Lookup(m.Provider, m.Model, time.Now()); {
		case ok:
			row.PricedAs, row.PerMTok = as, &p
			priced = append(priced, row)
		case m.UnpricedTokens == 0:
			row.PricedAs = "transcript" // every call carried its own cost
			priced = append(priced, row)
		default:
			unpriced = append(unpriced, row)
		}
	}
	out.Models = append(unpriced, priced...)
	if len(cfg.OpenClawDirs)+len(cfg.ClaudeDirs)+len(cfg.CodexDirs) == 0 {
		out.LastReprice = lastReprice(cfg)
		// The models and their costs come from the daemon; the prices
		// listed are this command's. They differ when the daemon has a
		// price file of its own (its configuration's price_file).
		if other, _ := daemonPricesOtherwise(ctx, cfg, ps.pricer); other {
			out.Warnings = append(out.Warnings, "the running daemon prices with another price file than this command: the prices listed are this command's, the costs in reports the daemon's (give this command the daemon's price_file with --prices)")
		}
	}
	if age := tableAge(ps.table.Date()); age > 60*24*time.Hour && unpricedTokens > 0 {
		out.Warnings = append(out.Warnings, fmt.Sprintf("the price table is %d days old and %s tokens are unpriced: `fleetmeter prices update` fetches a newer one",
			int(age.Hours()/24), rollup.Count(unpricedTokens)))
	}
	switch {
	case asJSON:
		return printJSON(env, out)
	case ra.asCSV:
		return writeCSV(env.stdout, out.Models)
	}
	return writePricesTable(env.stdout, out, termWidth(env))
}

// lastReprice reads the last reprice from the database when it can be
// opened (not while the daemon holds it: its log says).
func lastReprice(cfg Config) *storage.RepriceResult {
	db, daemon, err := openForReading(cfg)
	if err != nil || daemon {
		return nil
	}
	defer db.Close()
	r, _ := db.LastReprice()
	return r
}

func tableAge(date string) time.Duration {
	d, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return 0
	}
	return time.Since(d)
}

func writePricesTable(w io.Writer, out pricesOutput, width int) error {
	t := rollup.Table{Title: "Prices of the models in your data · USD per 1M tokens", Columns: []rollup.Column{
		{Head: "Provider", Hide: 2}, {Head: "Model", Shrink: true}, {Head: "Calls", Right: true, Hide: 3},
		{Head: "Tokens", Right: true, Hide: 3}, {Head: "Unpriced tokens", Right: true, Hide: 1},
		{Head: "Priced as", Shrink: true}, {Head: "Input", Right: true}, {Head: "Output", Right: true},
		{Head: "Cache read", Right: true, Hide: 4}, {Head: "Cache write", Right: true, Hide: 4},
	}}
	for _, r := range out.Models {
		as, in, o, cr, cw := "UNPRICED: add an override", rollup.NoValue, rollup.NoValue, rollup.NoValue, rollup.NoValue
		if r.PricedAs != "" {
			as = r.PricedAs
		}
		if r.PricedAs == "transcript" {
			as = "the transcript's own cost"
		}
		if p := r.PerMTok; p != nil {
			in, o, cr, cw = usd(p.Input), usd(p.Output), usd(p.CacheRead), usd(p.CacheWrite)
		}
		t.Rows = append(t.Rows, []string{r.Provider, r.Model, rollup.Count(r.Messages), rollup.Count(r.TotalTokens),
			rollup.Count(r.UnpricedTokens), as, in, o, cr, cw})
	}
	if len(out.Models) == 0 {
		t.Rows = append(t.Rows, []string{"", "(no model calls in range)"})
	}
	if err := t.Render(w, width); err != nil {
		return err
	}
	fmt.Fprintln(w)
	mods := rollup.Table{Title: fmt.Sprintf("Modifiers (× the standard rates; table of %s)", out.ModifiersDate), Columns: []rollup.Column{
		{Head: "Provider"}, {Head: "Speed or tier"}, {Head: "Models", Shrink: true}, {Head: "Multiple", Right: true},
		{Head: "Since", Hide: 1}, {Head: "Source", Shrink: true, Hide: 2},
	}}
	for _, m := range out.Modifiers {
		models := m.Models
		if models == "" {
			models = "all"
		}
		mods.Rows = append(mods.Rows, []string{m.Provider, m.Value, models, fmt.Sprintf("×%g", m.Multiple), m.Since, m.Source})
	}
	if err := mods.Render(w, width); err != nil {
		return err
	}
	if r := out.LastReprice; r != nil {
		fmt.Fprintf(w, "\nLast reprice %s: %s of %s calls changed, %s → %s\n", r.At.Format(time.RFC3339), rollup.Count(int64(r.Changed)), rollup.Count(int64(r.Records)), rollup.USD(r.CostBefore), rollup.USD(r.CostAfter))
		for _, m := range r.Models {
			fmt.Fprintf(w, "  %s: %s calls %s → %s, %s → %s\n", rollup.Clean(m.Model), rollup.Count(int64(m.Calls)), m.SourceFrom, m.SourceTo, rollup.USD(m.CostBefore), rollup.USD(m.CostAfter))
		}
	}
	file := out.PriceFile
	if file == "" {
		file = "none"
	}
	fmt.Fprintf(w, "\nTable: pydantic/genai-prices of %s (%s, MIT). Overrides: %s.\n", out.PriceTableDate, out.PriceTable, rollup.Clean(file))
	for _, warn := range out.Warnings {
		fmt.Fprintf(w, "Warning: %s\n", warn)
	}
	return nil
}

func usd(v float64) string { return rollup.Rate(v) }

// runPricesUpdate fetches the genai-prices feed (or reads a file),
// validates it and keeps it in the data dir; the ledger is repriced now
// when no daemon holds it, else when the daemon next starts.
func runPricesUpdate(ctx context.Context, env *cliEnv, args []string) error {
	var from string
	cfg, rest, err := parseConfig(env, "prices update", args, flagsData, func(fs *flag.FlagSet) {
		fs.StringVar(&from, "from", pricing.FeedURL, "the feed: an https:// or http:// URL, or a file")
	})
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageErr("unexpected argument %q", rest[0])
	}
	data, err := readFeed(ctx, from)
	if err != nil {
		return err
	}
	info, err := pricing.SaveFeed(cfg.DataDir, data, from, time.Now())
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "price table updated from %s: %d providers, %d models (sha256 %s…)\n", from, info.Providers, info.Models, info.SHA256[:12])
	db, err := openWritable(cfg)
	if errors.Is(err, storage.ErrLocked) {
		fmt.Fprintln(env.stdout, "the daemon holds the database: restart it to reprice the ledger with the new table")
		return nil
	}
	if err != nil {
		return err
	}
	defer db.Close()
	ps, err := newPricer(cfg)
	if err != nil {
		return err
	}
	res, err := priceLedger(ctx, db, ps.pricer, time.Now(), slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "ledger repriced: %d of %d calls changed, %s → %s\n", res.Changed, res.Records, rollup.USD(res.CostBefore), rollup.USD(res.CostAfter))
	return nil
}

// readFeed reads a feed from a URL or a file, at most MaxFeedBytes.
func readFeed(ctx context.Context, from string) ([]byte, error) {
	if !strings.HasPrefix(from, "https://") && !strings.HasPrefix(from, "http://") {
		f, err := os.Open(from)
		if err != nil {
			return nil, fmt.Errorf("read price table: %w", err)
		}
		defer f.Close()
		return io.ReadAll(io.LimitReader(f, pricing.MaxFeedBytes+1))
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, from, nil)
	if err != nil {
		return nil, fmt.Errorf("price table URL: %w", err)
	}
	req.Header.Set("User-Agent", "fleetmeter/"+version())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch price table: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch price table from %s: %s", from, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, pricing.MaxFeedBytes+1))
}
