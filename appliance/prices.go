package appliance

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/fleetmeter/fleetmeter/ingest/pricing"
	"github.com/fleetmeter/fleetmeter/rollup"
)

// modelPrice is one row of `fleetmeter prices`: a model seen in the data
// and the price fleetmeter would use for it today.
type modelPrice struct {
	Provider       string         `json:"provider"`
	Model          string         `json:"model"`
	Messages       int64          `json:"messages"`
	TotalTokens    int64          `json:"total_tokens"`
	UnpricedTokens int64          `json:"unpriced_tokens"`
	PricedAs       string         `json:"priced_as"` // matched table model or override key; "" when unpriced
	PerMTok        *pricing.Price `json:"usd_per_mtok"`
}

// runPrices lists the models in the data with their prices, unpriced
// ones first, so a user sees what needs an override.
func runPrices(ctx context.Context, env *cliEnv, args []string) error {
	ra, err := parseReportArgs(env, "prices", args)
	if err != nil {
		return err
	}
	cfg, asJSON := ra.cfg, ra.asJSON
	rep, err := usageReport(ctx, env, cfg, rollup.Query{Kind: "model", Since: ra.from, Until: ra.to}, ra.since, ra.until)
	if err != nil {
		return err
	}
	table, err := pricing.LoadTable()
	if err != nil {
		return err
	}
	var overrides pricing.Overrides
	if cfg.PriceFile != "" {
		if overrides, err = pricing.LoadOverrides(cfg.PriceFile); err != nil {
			return err
		}
	}
	pricer := pricing.NewPricer(table, overrides)
	var unpriced, priced []modelPrice
	for _, m := range rep.Rows.([]rollup.ModelRow) {
		row := modelPrice{Provider: m.Provider, Model: m.Model, Messages: m.Messages, TotalTokens: m.TotalTokens, UnpricedTokens: m.UnpricedTokens}
		if p, as, ok := pricer.Lookup(m.Provider, m.Model, time.Now()); ok {
			row.PricedAs, row.PerMTok = as, &p
			priced = append(priced, row)
		} else {
			unpriced = append(unpriced, row)
		}
	}
	rows := append(unpriced, priced...)
	if asJSON {
		return printJSON(env, map[string]any{"models": rows, "price_table_date": pricing.TableDate})
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Provider\tModel\tCalls\tTokens\tUnpriced tokens\tPriced as\tInput\tOutput\tCache read\tCache write\t")
	for _, r := range rows {
		as, in, out, cr, cw := "UNPRICED: add an override", "", "", "", ""
		if r.PerMTok != nil {
			as = rollup.Clean(r.PricedAs)
			p := r.PerMTok
			in, out, cr, cw = usd(p.Input), usd(p.Output), usd(p.CacheRead), usd(p.CacheWrite)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", rollup.Clean(r.Provider), rollup.Clean(r.Model),
			r.Messages, r.TotalTokens, r.UnpricedTokens, as, in, out, cr, cw)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(env.stdout, "\nPrices in USD per 1M tokens; table: pydantic/genai-prices of %s (MIT). Overrides: price_file.\n", pricing.TableDate)
	return err
}

func usd(v float64) string { return fmt.Sprintf("$%g", v) }
