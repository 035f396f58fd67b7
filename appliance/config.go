package appliance

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/fleetmeter/fleetmeter/alerts"
	"github.com/fleetmeter/fleetmeter/rollup"
)

// Config is every setting, in one struct: defaults, then the optional TOML
// file, then FLEETMETER_* environment variables (secrets also as *_FILE),
// then flags. It is passed by value.
type Config struct {
	DataDir      string        `toml:"data_dir"`
	TZ           string        `toml:"tz"`            // IANA zone that cuts days and weeks
	OpenClawDirs []string      `toml:"openclaw_dirs"` // explicit state dirs; empty = discover
	ClaudeDirs   []string      `toml:"claude_dirs"`   // explicit Claude Code config dirs (hold projects/)
	CodexDirs    []string      `toml:"codex_dirs"`    // explicit Codex homes (hold sessions/)
	NoDiscover   bool          `toml:"no_discover"`   // only read the explicit dirs
	PollInterval time.Duration `toml:"poll_interval"`
	PriceFile    string        `toml:"price_file"` // user price overrides (JSON, USD per 1M tokens)
	// IngestBatchBytes bounds the transcript bytes behind one commit: smaller
	// means more frequent (fsynced) commits, larger means faster cold ingest.
	IngestBatchBytes int64 `toml:"ingest_batch_bytes"`

	Listen    string `toml:"listen"`
	AuthToken string `toml:"auth_token"` // required to listen beyond loopback; a secret
	// BrowserLogin makes a browser log in even on loopback (a one-time
	// token, then a session cookie); false is the opt-out of a single-user
	// box, where every local account may read the UI and API.
	BrowserLogin bool `toml:"browser_login"`
	// RuntimeDir holds the daemon's unix socket, through which the CLI
	// talks to it; its permissions decide who may (see defaultRuntimeDir).
	RuntimeDir string `toml:"runtime_dir"`

	SampleInterval time.Duration `toml:"sample_interval"`
	InstanceType   string        `toml:"instance_type"`
	EC2Metadata    bool          `toml:"ec2_metadata"` // opt-in IMDSv2 lookup of the instance type
	IMDSEndpoint   string        `toml:"imds_endpoint"`

	// Upstream sync (Supabase), off while SupabaseDSN is empty (see sync.go).
	SupabaseDSN  string        `toml:"supabase_dsn"` // a secret: never printed
	SyncInterval time.Duration `toml:"sync_interval"`
	Agents       []Agent       `toml:"agents"` // the agent registry, [[agents]]
	// Alerting: [alerting], [[notifiers]], [[budgets]], [[alerts]] (alerts.go).
	alerts.Settings

	// DBMaxMB caps the database file (MiB; 0: no cap): at the cap ingest
	// stops writing (nothing is lost while the transcripts remain); a
	// pipeline db_size alert tells before.
	DBMaxMB int64 `toml:"db_max_mb"`

	Retention Retention `toml:"retention"`
	LogLevel  string    `toml:"log_level"`
	LogFormat string    `toml:"log_format"` // text or json

	file string // the config file read, "" when none (the audit looks at its mode)
	// origin says where each setting given came from, by its config file
	// key ("tz"): "flag --tz", "FLEETMETER_TZ" or "tz in FILE"; a key
	// not in it has its default. Errors name it; see Origin.
	origin map[string]string
}

// setOrigin records where key's value came from (the last one wins, as
// values do: file, then environment, then flags).
func (c *Config) setOrigin(key, from string) {
	if c.origin == nil {
		c.origin = map[string]string{}
	}
	c.origin[key] = from
}

// Origin is where key's value came from ("flag --tz", "FLEETMETER_TZ",
// "tz in /etc/fleetmeter/config.toml"), "" when it is the default.
func (c Config) Origin(key string) string { return c.origin[key] }

// Retention is how long each kind of data is kept (DESIGN §4). Daily and
// weekly rollups are kept forever.
type Retention struct {
	LedgerDays  int `toml:"ledger_days"`
	HostRawDays int `toml:"host_raw_days"`
	Host5mDays  int `toml:"host_5m_days"`
}

// DefaultConfig is the configuration with nothing set.
func DefaultConfig() Config {
	return Config{
		DataDir:          defaultDataDir(),
		TZ:               "UTC",
		PollInterval:     10 * time.Second,
		IngestBatchBytes: 64 << 20,
		Listen:           "127.0.0.1:8767",
		BrowserLogin:     true,
		RuntimeDir:       defaultRuntimeDir(),
		SampleInterval:   15 * time.Second,
		IMDSEndpoint:     "http://169.254.169.254",
		SyncInterval:     5 * time.Minute,
		Retention:        Retention{LedgerDays: 400, HostRawDays: 14, Host5mDays: 400},
		LogLevel:         "info",
		LogFormat:        "text",
	}
}

// defaultDataDir is /var/lib/fleetmeter for root, else
// $XDG_STATE_HOME/fleetmeter (~/.local/state/fleetmeter).
func defaultDataDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/fleetmeter"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "fleetmeter")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "fleetmeter")
	}
	return "fleetmeter-data"
}

// defaultRuntimeDir is /run/fleetmeter for root, else
// $XDG_RUNTIME_DIR/fleetmeter, else "" (the data dir then).
func defaultRuntimeDir() string {
	if os.Geteuid() == 0 {
		return "/run/fleetmeter"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "fleetmeter")
	}
	return ""
}

// SocketPath is where the daemon's unix socket is: in the runtime dir, or
// in the data dir when there is none.
func (c Config) SocketPath() string {
	dir := c.RuntimeDir
	if dir == "" {
		if dir = defaultRuntimeDir(); dir == "" {
			dir = c.DataDir
		}
	}
	return filepath.Join(dir, "fleetmeter.sock")
}

// Location is the configured zone.
func (c Config) Location() (*time.Location, error) {
	return rollup.LoadZone(c.TZ)
}

// DBPath is the database file.
func (c Config) DBPath() string { return filepath.Join(c.DataDir, "fleetmeter.db") }

// Validate checks the settings together.
func (c Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir is empty"))
	}
	if _, err := c.Location(); err != nil {
		errs = append(errs, err)
	}
	if c.PollInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("poll_interval %s is below 100ms", c.PollInterval))
	}
	if c.IngestBatchBytes < 1<<10 {
		errs = append(errs, fmt.Errorf("ingest_batch_bytes %d is below 1 KiB", c.IngestBatchBytes))
	}
	if c.SampleInterval < time.Second {
		errs = append(errs, fmt.Errorf("sample_interval %s is below 1s", c.SampleInterval))
	}
	host, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		errs = append(errs, fmt.Errorf("listen %q: want host:port", c.Listen))
	} else if !isLoopback(host) && c.AuthToken == "" {
		errs = append(errs, fmt.Errorf("listen %q is not a loopback address: set an auth token (auth_token, FLEETMETER_AUTH_TOKEN or FLEETMETER_AUTH_TOKEN_FILE) to expose the UI", c.Listen))
	}
	if p := c.SocketPath(); len(p) > 100 {
		errs = append(errs, fmt.Errorf("socket path %s is too long for a unix socket: set a shorter runtime_dir", p))
	}
	if c.AuthToken == maskedSecret {
		errs = append(errs, errors.New("auth_token is the masked placeholder from `fleetmeter config`: put the real token there"))
	}
	errs = append(errs, c.validateSync()...)
	errs = append(errs, c.validateAlerts()...)
	if c.DBMaxMB < 0 {
		errs = append(errs, fmt.Errorf("db_max_mb %d is negative (0: no cap)", c.DBMaxMB))
	}
	if c.Retention.LedgerDays < 1 || c.Retention.HostRawDays < 1 || c.Retention.Host5mDays < 1 {
		errs = append(errs, errors.New("retention days must be at least 1"))
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log_level %q: want debug, info, warn or error", c.LogLevel))
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("log_format %q: want text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// durationForm is the form a duration takes, for errors: one rule for
// flags, FLEETMETER_* variables and the config file.
const durationForm = "want a number with a unit, such as 500ms, 10s, 5m or 2h (units ns, us, ms, s, m, h)"

// parseDuration reads a duration as Go writes one (10s, 1h30m; 0 alone);
// an error says the form it wants.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: %s", s, durationForm)
	}
	return d, nil
}

// durationFlag is a duration flag whose error says the form it wants
// (flag.Duration says "parse error").
type durationFlag struct{ dst *time.Duration }

func (f durationFlag) String() string {
	if f.dst == nil {
		return ""
	}
	return f.dst.String()
}

func (f durationFlag) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return errors.New(durationForm)
	}
	*f.dst = d
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loadFile merges a TOML file into c. Unknown keys are an error, so a typo
// does not silently leave a default in place.
func (c *Config) loadFile(path string) error {
	// A duration written as a bare number (poll_interval = 10) would
	// decode as nanoseconds: it is refused with the form it needs.
	var raw map[string]any
	if _, err := toml.DecodeFile(path, &raw); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if err := unitlessDurations(raw, reflect.TypeOf(Config{}), ""); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	md, err := toml.DecodeFile(path, c)
	if err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
			if near := nearestKey(k.String()); near != "" {
				keys[i] += fmt.Sprintf(" (did you mean %s?)", near)
			}
		}
		what := "unknown key"
		if len(keys) > 1 {
			what += "s"
		}
		return fmt.Errorf("config file %s: %s %s", path, what, strings.Join(keys, ", "))
	}
	for _, k := range md.Keys() {
		c.setOrigin(k.String(), fmt.Sprintf("%s in %s", k, path)) // "retention.ledger_days in FILE"
	}
	return nil
}

// unitlessDurations finds a number where t holds a time.Duration.
func unitlessDurations(raw map[string]any, t reflect.Type, prefix string) error {
	fields := map[string]reflect.Type{}
	var collect func(t reflect.Type)
	collect = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			switch {
			case f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct:
				collect(f.Type)
			case name != "" && name != "-":
				fields[name] = f.Type
			}
		}
	}
	collect(t)
	durType := reflect.TypeOf(time.Duration(0))
	for key, v := range raw {
		ft, ok := fields[key]
		if !ok {
			continue // unknown keys are named by the decoder
		}
		for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch v := v.(type) {
		case int64, float64:
			if ft == durType {
				return fmt.Errorf("%s%s = %v has no unit: write a duration such as \"%vs\" or \"%vm\" (units ns, us, ms, s, m, h)", prefix, key, v, v, v)
			}
		case string:
			if ft != durType {
				break
			}
			if _, err := parseDuration(v); err != nil {
				return fmt.Errorf("%s%s: %w", prefix, key, err)
			}
		case map[string]any:
			if ft.Kind() == reflect.Struct {
				if err := unitlessDurations(v, ft, prefix+key+"."); err != nil {
					return err
				}
			}
		case []map[string]any:
			for i, m := range v {
				if ft.Kind() == reflect.Struct {
					if err := unitlessDurations(m, ft, fmt.Sprintf("%s%s[%d].", prefix, key, i)); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// loadEnv merges FLEETMETER_* variables into c.
func (c *Config) loadEnv(getenv func(string) string) error {
	var errs []error
	// get reads FLEETMETER_<name> and notes where a value came from.
	get := func(name string) string {
		v := getenv("FLEETMETER_" + name)
		if v != "" {
			c.setOrigin(strings.ToLower(name), "FLEETMETER_"+name)
		}
		return v
	}
	str := func(name string, dst *string) {
		if v := get(name); v != "" {
			*dst = v
		}
	}
	list := func(name string, dst *[]string) {
		if v := get(name); v != "" {
			*dst = splitList(v)
		}
	}
	dur := func(name string, dst *time.Duration) {
		if v := get(name); v != "" {
			d, err := parseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("FLEETMETER_%s: %w", name, err))
			}
			*dst = d
		}
	}
	integer := func(name string, dst *int64) {
		if v := get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("FLEETMETER_%s=%q: want a whole number", name, v))
			}
			*dst = n
		}
	}
	boolean := func(name string, dst *bool) {
		if v := get(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("FLEETMETER_%s=%q: want true or false", name, v))
			}
			*dst = b
		}
	}
	secret := func(name string, dst *string) {
		str(name, dst)
		if path := getenv("FLEETMETER_" + name + "_FILE"); path != "" {
			c.setOrigin(strings.ToLower(name), "FLEETMETER_"+name+"_FILE")
			b, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("FLEETMETER_%s_FILE: %w", name, err))
				return
			}
			*dst = strings.TrimSpace(string(b))
		}
	}
	str("DATA_DIR", &c.DataDir)
	str("TZ", &c.TZ)
	list("OPENCLAW_DIRS", &c.OpenClawDirs)
	list("CLAUDE_DIRS", &c.ClaudeDirs)
	list("CODEX_DIRS", &c.CodexDirs)
	boolean("NO_DISCOVER", &c.NoDiscover)
	dur("POLL_INTERVAL", &c.PollInterval)
	str("PRICE_FILE", &c.PriceFile)
	integer("INGEST_BATCH_BYTES", &c.IngestBatchBytes)
	integer("DB_MAX_MB", &c.DBMaxMB)
	str("LISTEN", &c.Listen)
	secret("AUTH_TOKEN", &c.AuthToken)
	boolean("BROWSER_LOGIN", &c.BrowserLogin)
	str("RUNTIME_DIR", &c.RuntimeDir)
	dur("SAMPLE_INTERVAL", &c.SampleInterval)
	str("INSTANCE_TYPE", &c.InstanceType)
	boolean("EC2_METADATA", &c.EC2Metadata)
	str("IMDS_ENDPOINT", &c.IMDSEndpoint)
	secret("SUPABASE_DSN", &c.SupabaseDSN)
	dur("SYNC_INTERVAL", &c.SyncInterval)
	str("LOG_LEVEL", &c.LogLevel)
	str("LOG_FORMAT", &c.LogFormat)
	return errors.Join(errs...)
}

// otherEnv are the FLEETMETER_* variables read outside loadEnv: the config
// file, the migrate DSN, and those compose.yaml reads on the host.
var otherEnv = []string{"CONFIG", "MIGRATE_DSN", "MIGRATE_DSN_FILE", "UID", "GID", "AGENT_DIR", "DATA"}

// unknownEnv warns of each FLEETMETER_* variable in environ (KEY=value)
// that fleetmeter does not read, naming the nearest one it does: a typo
// (FLEETMETER_POLL_INTERVALL) would otherwise leave a default in place
// silently. FLEETMETER_TEST_* belong to the test suite.
func unknownEnv(environ []string) []string {
	known := map[string]bool{}
	var names []string
	add := func(k string) {
		if !known[k] {
			known[k] = true
			names = append(names, k)
		}
	}
	// loadEnv asks for every variable it reads: its names are the list.
	var probe Config
	_ = probe.loadEnv(func(k string) string { add(k); return "" })
	for _, k := range otherEnv {
		add("FLEETMETER_" + k)
	}
	var warns []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "FLEETMETER_") || strings.HasPrefix(k, "FLEETMETER_TEST_") || known[k] {
			continue
		}
		near, best := "", -1
		for _, n := range names {
			if d := editDistance(k, n); best < 0 || d < best {
				near, best = n, d
			}
		}
		warns = append(warns, fmt.Sprintf("%s is not a fleetmeter variable and is ignored (nearest known: %s)", rollup.Clean(k), near))
	}
	sort.Strings(warns)
	return warns
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ':' }) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// maskedSecret stands for a secret in printed configuration.
const maskedSecret = "********"

// Masked is the config for printing: secrets replaced.
func (c Config) Masked() Config {
	if c.AuthToken != "" {
		c.AuthToken = maskedSecret
	}
	if c.SupabaseDSN != "" {
		c.SupabaseDSN = maskedSecret
	}
	c.Settings = maskedAlerts(c.Settings)
	return c
}

// listFlag is a repeatable flag (--openclaw-dir A --openclaw-dir B).
type listFlag struct {
	dst *[]string
	set bool
}

func (l *listFlag) String() string {
	if l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listFlag) Set(v string) error {
	if !l.set {
		*l.dst, l.set = nil, true // flags replace what the file or env said
	}
	*l.dst = append(*l.dst, v)
	return nil
}

// flagGroups are the flag sets a command can ask for: each command
// registers only the flags it uses (its --help lists those).
type flagGroups int

const (
	flagsData     flagGroups = 1 << iota // --data-dir, --log-level (and --config, always)
	flagsSources                         // --openclaw-dir, --claude-dir, --codex-dir, --no-discover, --prices
	flagsListen                          // --listen
	flagsPoll                            // --poll-interval
	flagsSample                          // --sample-interval
	flagsInstance                        // --instance-type, --ec2-metadata
	flagsZone                            // --tz

	// flagsServe are the daemon's own flags.
	flagsServe = flagsListen | flagsPoll | flagsSample | flagsInstance
)

// bindFlags registers the config flags of the groups asked for.
func (c *Config) bindFlags(fs *flag.FlagSet, groups flagGroups) {
	if groups&flagsData != 0 {
		fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the database file (env FLEETMETER_DATA_DIR)")
		fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	}
	if groups&(flagsZone|flagsServe) != 0 {
		fs.StringVar(&c.TZ, "tz", c.TZ, "IANA time zone that cuts days and weeks, any letter case (env FLEETMETER_TZ)")
	}
	if groups&flagsSources != 0 {
		fs.Var(&listFlag{dst: &c.OpenClawDirs}, "openclaw-dir", "OpenClaw state dir holding agents/ (repeatable; default: discover; naming any source dir turns discovery off for every kind)")
		fs.Var(&listFlag{dst: &c.ClaudeDirs}, "claude-dir", "Claude Code dir holding projects/ (repeatable; default: discover; naming any source dir turns discovery off for every kind)")
		fs.Var(&listFlag{dst: &c.CodexDirs}, "codex-dir", "Codex home holding sessions/ (repeatable; default: discover; naming any source dir turns discovery off for every kind)")
		fs.BoolVar(&c.NoDiscover, "no-discover", c.NoDiscover, "read only the dirs given, search nowhere else")
		fs.StringVar(&c.PriceFile, "prices", c.PriceFile, "JSON file of price overrides, USD per 1M tokens")
	}
	if groups&flagsListen != 0 {
		fs.StringVar(&c.Listen, "listen", c.Listen, "address of the UI, API and /metrics")
	}
	if groups&flagsPoll != 0 {
		fs.Var(durationFlag{&c.PollInterval}, "poll-interval", "how often transcripts are polled (a duration: 10s, 1m)")
	}
	if groups&flagsSample != 0 {
		fs.Var(durationFlag{&c.SampleInterval}, "sample-interval", "how often the host is sampled (a duration: 15s)")
	}
	if groups&flagsInstance != 0 {
		fs.StringVar(&c.InstanceType, "instance-type", c.InstanceType, "EC2 instance type, for scaling advice")
		fs.BoolVar(&c.EC2Metadata, "ec2-metadata", c.EC2Metadata, "ask EC2 instance metadata (IMDSv2) for the instance type")
	}
}

// sourced says err (Validate's) naming where each bad value came from: a
// message that starts with a key ("tz \"Mars/Base\" is not…") names the
// flag (--tz "Mars/Base" is not…), the variable (FLEETMETER_TZ…) or the
// config file (config file F: tz…) that set it; one about a default or
// about settings together is "config: …".
func (c Config) sourced(err error) string {
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	out := make([]string, len(errs))
	for i, e := range errs {
		msg := e.Error()
		key, _, _ := strings.Cut(msg, " ")
		key = strings.TrimSuffix(key, ":")
		o := c.Origin(key)
		switch {
		case o == "":
			out[i] = "config: " + msg
		case strings.HasPrefix(o, "flag "):
			out[i] = strings.TrimPrefix(o, "flag ") + msg[len(key):]
		case strings.HasPrefix(o, "FLEETMETER_"):
			out[i] = o + msg[len(key):]
		default: // "tz in FILE"
			_, file, _ := strings.Cut(o, " in ")
			out[i] = "config file " + file + ": " + msg
		}
	}
	return strings.Join(out, "; ")
}

// knownKeys are the config file's keys, dotted below their table
// ("retention.ledger_days", "budgets.amount_usd").
func knownKeys(t reflect.Type, prefix string) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		ft := f.Type
		for ft.Kind() == reflect.Slice || ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		switch {
		case f.Anonymous && name == "" && ft.Kind() == reflect.Struct:
			out = append(out, knownKeys(ft, prefix)...)
		case name == "" || name == "-" || !f.IsExported():
		case ft.Kind() == reflect.Struct && ft != reflect.TypeOf(time.Time{}):
			out = append(out, prefix+name)
			out = append(out, knownKeys(ft, prefix+name+".")...)
		default:
			out = append(out, prefix+name)
		}
	}
	return out
}

// nearestKey is the known key nearest to key, in the same table.
func nearestKey(key string) string {
	parent := ""
	if i := strings.LastIndex(key, "."); i >= 0 {
		parent = key[:i+1]
	}
	near, best := "", -1
	for _, k := range knownKeys(reflect.TypeOf(Config{}), "") {
		if !strings.HasPrefix(k, parent) || strings.Contains(k[len(parent):], ".") {
			continue
		}
		if d := editDistance(key, k); best < 0 || d < best {
			near, best = k, d
		}
	}
	return near
}

// flagKey is the config file key a flag sets.
func flagKey(flagName string) string {
	switch flagName {
	case "openclaw-dir", "claude-dir", "codex-dir":
		return strings.ReplaceAll(flagName, "-", "_") + "s"
	case "prices":
		return "price_file"
	}
	return strings.ReplaceAll(flagName, "-", "_")
}
