package appliance

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/fleetmeter/fleetmeter/rollup"
)

// writeConfig prints the effective configuration as TOML, secrets masked:
// what the file, the environment and the flags set, and every default in
// force, each marked "# default" — the alerting defaults too ([alerting]
// interval, a rule's tiers, windows, factor, thresholds), which apply only
// to rules the file has: rules are opt-in.
func writeConfig(w io.Writer, cfg Config) error {
	resolved, err := cfg.resolvedAlerts()
	if err != nil {
		return err
	}
	eff, alertDefaults, err := resolved.Effective(teamsOf(cfg.Agents))
	if err != nil {
		return err
	}
	if eff.Alerting.UIURL == "" {
		eff.Alerting.UIURL = uiURL(cfg)
	}
	defaulted := map[string]bool{}
	for _, k := range alertDefaults {
		defaulted[k] = true
	}
	sameAsDefault("", reflect.ValueOf(cfg), reflect.ValueOf(DefaultConfig()), defaulted)
	shown := cfg.Masked()
	eff.Notifiers = shown.Notifiers // as configured (url_file stays a path), masked
	shown.Settings = eff
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(shown); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# The effective configuration; \"# default\": not set by the config file, environment or flags.")
	if len(eff.Budgets)+len(eff.Alerts) == 0 {
		fmt.Fprintln(bw, "# No [[budgets]] or [[alerts]]: alerting is opt-in, no rule is evaluated and no default threshold applies.")
	}
	durations := map[string]bool{}
	durationKeys(reflect.TypeOf(Config{}), durations)
	markDefaults(bw, buf.String(), defaulted, durations)
	return bw.Flush()
}

// durationKeys adds to out the TOML keys of t, and of the tables in it,
// that hold a time.Duration.
func durationKeys(t reflect.Type, out map[string]bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		ft := f.Type
		for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case ft == reflect.TypeOf(time.Duration(0)):
			out[name] = true
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}):
			durationKeys(ft, out)
		}
	}
}

// sameAsDefault adds to out the keys (prefix+toml name) whose value in v
// equals the default's; nested tables recurse, the alerting tables are
// left to alerts.Settings.Effective.
func sameAsDefault(prefix string, v, def reflect.Value, out map[string]bool) {
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch {
		case name == "" || name == "-" || f.Anonymous:
		case f.Type.Kind() == reflect.Struct:
			sameAsDefault(prefix+name+".", v.Field(i), def.Field(i), out)
		case reflect.DeepEqual(v.Field(i).Interface(), def.Field(i).Interface()):
			out[prefix+name] = true
		}
	}
}

// markDefaults copies the encoder's TOML to w with "# default" after each
// key in defaulted, named as [table] key, table.key or table[i].key for
// the i-th [[table]], and the values of the keys in durations (which the
// encoder writes as Go does, "168h0m0s") as rollup.Duration writes them.
func markDefaults(w io.Writer, text string, defaulted, durations map[string]bool) {
	table, seen := "", map[string]int{}
	for _, line := range strings.SplitAfter(text, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "[["):
			name := strings.Trim(t, "[]")
			table = fmt.Sprintf("%s[%d].", name, seen[name])
			seen[name]++
		case strings.HasPrefix(t, "["):
			table = strings.Trim(t, "[]") + "."
		default:
			key, value, ok := strings.Cut(t, " = ")
			if !ok {
				break
			}
			if uq, err := strconv.Unquote(value); err == nil && durations[key] {
				if d, err := time.ParseDuration(uq); err == nil {
					line = strings.Replace(line, value, strconv.Quote(rollup.Duration(d)), 1)
				}
			}
			if defaulted[table+key] {
				line = strings.TrimSuffix(line, "\n") + "  # default\n"
			}
		}
		io.WriteString(w, line)
	}
}
