package sync

import (
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/fleetmeter/fleetmeter/storage"
	"github.com/lib/pq"
)

// Rows go upstream as one multi-row upsert per table: the columns as arrays,
// unnested server-side (a fixed number of parameters whatever the batch
// size, far below the 65,535-parameter limit). Values are absolute. The
// WHERE of DO UPDATE is the version guard: a row replaces the stored one
// only if it comes from another lineage of the host's database
// (generation) or carries a higher change counter (rev), so a replay or a
// late retry of an older batch changes nothing.

// pgText is untrusted text (agent, user, model, session names) as
// PostgreSQL text can hold it: a NUL byte and invalid UTF-8, which it
// refuses (the whole row would be quarantined, its usage missing
// upstream), each become U+FFFD. Only the upstream copy changes; the
// local ledger keeps the name as the transcript wrote it.
func pgText(s string) string {
	if strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// batch is one transaction's worth of rows, as column arrays per table.
type batch struct {
	daily    dailyCols
	sessions sessionCols
	host     hostCols
	agents   agentCols
}

func (b *batch) rows() int {
	return len(b.daily.day) + len(b.sessions.sessionID) + len(b.host.day) + len(b.agents.id)
}

type dailyCols struct {
	day                                            []int64
	source, agent, user, label, provider, model    []string
	messages, input, output, cacheRead, cacheWrite []int64
	cost, costIn, costOut, costRead, costWrite     []int64 // nano-dollars
	unpricedMessages, unpricedTokens               []int64
	final                                          []bool
	rev                                            []int64
}

func (c *dailyCols) add(ch *storage.Change, today int32) {
	r := &ch.Daily
	c.day = append(c.day, int64(r.Period))
	c.source = append(c.source, pgText(r.Source))
	c.agent = append(c.agent, pgText(r.Agent))
	c.user = append(c.user, pgText(r.User))
	c.label = append(c.label, pgText(ch.UserLabel))
	c.provider = append(c.provider, pgText(r.Provider))
	c.model = append(c.model, pgText(r.Model))
	c.messages = append(c.messages, r.Messages)
	c.input = append(c.input, r.Input)
	c.output = append(c.output, r.Output)
	c.cacheRead = append(c.cacheRead, r.CacheRead)
	c.cacheWrite = append(c.cacheWrite, r.CacheWrite)
	c.cost = append(c.cost, r.CostNanos)
	c.costIn = append(c.costIn, r.CostInputNanos)
	c.costOut = append(c.costOut, r.CostOutputNanos)
	c.costRead = append(c.costRead, r.CostCacheReadNanos)
	c.costWrite = append(c.costWrite, r.CostCacheWriteNanos)
	c.unpricedMessages = append(c.unpricedMessages, r.UnpricedMessages)
	c.unpricedTokens = append(c.unpricedTokens, r.UnpricedTokens)
	c.final = append(c.final, r.Period < today)
	c.rev = append(c.rev, int64(ch.Counter))
}

func (c *dailyCols) args(host, generation string) []any {
	return []any{host, generation, pq.Array(c.day), pq.Array(c.source), pq.Array(c.agent), pq.Array(c.user), pq.Array(c.label),
		pq.Array(c.provider), pq.Array(c.model), pq.Array(c.messages), pq.Array(c.input), pq.Array(c.output),
		pq.Array(c.cacheRead), pq.Array(c.cacheWrite), pq.Array(c.cost), pq.Array(c.costIn), pq.Array(c.costOut),
		pq.Array(c.costRead), pq.Array(c.costWrite), pq.Array(c.unpricedMessages), pq.Array(c.unpricedTokens),
		pq.Array(c.final), pq.Array(c.rev)}
}

// A closed day ("final": it had ended when sent) whose figures change gets
// restated_at, so readers see that a past figure moved.
const upsertDaily = `insert into public.token_usage_daily as t (host_id, generation, day, source, agent, user_id, user_label,
  provider, model, messages, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, total_tokens,
  cost_usd, input_cost_usd, output_cost_usd, cache_read_cost_usd, cache_write_cost_usd,
  unpriced_messages, unpriced_tokens, final, rev)
select $1, $2, date '1970-01-01' + r.day::int, r.source, r.agent, r.user_id, r.user_label, r.provider, r.model,
  r.messages, r.input, r.output, r.cache_read, r.cache_write, r.input + r.output + r.cache_read + r.cache_write,
  r.cost * 0.000000001, r.cost_in * 0.000000001, r.cost_out * 0.000000001, r.cost_read * 0.000000001, r.cost_write * 0.000000001,
  r.unpriced_messages, r.unpriced_tokens, r.final, r.rev
from unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
  $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[],
  $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[],
  $20::bigint[], $21::bigint[], $22::boolean[], $23::bigint[])
  as r(day, source, agent, user_id, user_label, provider, model, messages, input, output, cache_read, cache_write,
       cost, cost_in, cost_out, cost_read, cost_write, unpriced_messages, unpriced_tokens, final, rev)
on conflict (host_id, day, source, agent, user_id, provider, model) do update set
  user_label = excluded.user_label, messages = excluded.messages, input_tokens = excluded.input_tokens,
  output_tokens = excluded.output_tokens, cache_read_tokens = excluded.cache_read_tokens,
  cache_write_tokens = excluded.cache_write_tokens, total_tokens = excluded.total_tokens,
  cost_usd = excluded.cost_usd, input_cost_usd = excluded.input_cost_usd, output_cost_usd = excluded.output_cost_usd,
  cache_read_cost_usd = excluded.cache_read_cost_usd, cache_write_cost_usd = excluded.cache_write_cost_usd,
  unpriced_messages = excluded.unpriced_messages, unpriced_tokens = excluded.unpriced_tokens,
  restated_at = case when t.final and (t.messages, t.total_tokens, t.cost_usd, t.unpriced_tokens)
                     is distinct from (excluded.messages, excluded.total_tokens, excluded.cost_usd, excluded.unpriced_tokens)
                then now() else t.restated_at end,
  final = t.final or excluded.final, generation = excluded.generation, rev = excluded.rev, updated_at = now()
where t.generation <> excluded.generation or t.rev < excluded.rev`

type sessionCols struct {
	source, sessionID, provider, model, key, agent, channel []string
	first, last                                             []int64 // unix ms
	messages, input, output, cacheRead, cacheWrite, cost    []int64
	unpricedMessages, unpricedTokens                        []int64
	rev                                                     []int64
}

// add appends one row per model of the session. A session gone locally
// (every call in it replaced) has no rows to send.
func (c *sessionCols) add(ch *storage.Change) {
	s := ch.Session
	for _, name := range slices.Sorted(maps.Keys(s.Models)) {
		t := s.Models[name]
		provider, model, ok := strings.Cut(name, "/")
		if !ok {
			provider, model = "", name
		}
		c.source = append(c.source, pgText(s.Source))
		c.sessionID = append(c.sessionID, pgText(s.SessionID))
		c.provider = append(c.provider, pgText(provider))
		c.model = append(c.model, pgText(model))
		c.key = append(c.key, pgText(s.SessionKey))
		c.agent = append(c.agent, pgText(s.Agent))
		c.channel = append(c.channel, pgText(s.Channel))
		c.first = append(c.first, s.FirstTS)
		c.last = append(c.last, s.LastTS)
		c.messages = append(c.messages, t.Messages)
		c.input = append(c.input, t.Input)
		c.output = append(c.output, t.Output)
		c.cacheRead = append(c.cacheRead, t.CacheRead)
		c.cacheWrite = append(c.cacheWrite, t.CacheWrite)
		c.cost = append(c.cost, t.CostNanos)
		c.unpricedMessages = append(c.unpricedMessages, t.UnpricedMessages)
		c.unpricedTokens = append(c.unpricedTokens, t.UnpricedTokens)
		c.rev = append(c.rev, int64(ch.Counter))
	}
}

func (c *sessionCols) args(host, generation string) []any {
	return []any{host, generation, pq.Array(c.source), pq.Array(c.sessionID), pq.Array(c.provider), pq.Array(c.model),
		pq.Array(c.key), pq.Array(c.agent), pq.Array(c.channel), pq.Array(c.first), pq.Array(c.last),
		pq.Array(c.messages), pq.Array(c.input), pq.Array(c.output), pq.Array(c.cacheRead), pq.Array(c.cacheWrite),
		pq.Array(c.cost), pq.Array(c.unpricedMessages), pq.Array(c.unpricedTokens), pq.Array(c.rev)}
}

const upsertSessions = `insert into public.token_usage as t (host_id, generation, source, session_id, provider, model,
  session_key, agent, channel, first_activity, last_activity, messages, input_tokens, output_tokens,
  cache_read_tokens, cache_write_tokens, total_tokens, cost_usd, unpriced_messages, unpriced_tokens, rev)
select $1, $2, r.source, r.session_id, r.provider, r.model, r.session_key, r.agent, r.channel,
  to_timestamp(r.first_ms / 1000.0), to_timestamp(r.last_ms / 1000.0), r.messages, r.input, r.output,
  r.cache_read, r.cache_write, r.input + r.output + r.cache_read + r.cache_write, r.cost * 0.000000001,
  r.unpriced_messages, r.unpriced_tokens, r.rev
from unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
  $10::bigint[], $11::bigint[], $12::bigint[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[],
  $17::bigint[], $18::bigint[], $19::bigint[], $20::bigint[])
  as r(source, session_id, provider, model, session_key, agent, channel, first_ms, last_ms, messages, input, output,
       cache_read, cache_write, cost, unpriced_messages, unpriced_tokens, rev)
on conflict (host_id, source, session_id, provider, model) do update set
  session_key = excluded.session_key, agent = excluded.agent, channel = excluded.channel,
  first_activity = excluded.first_activity, last_activity = excluded.last_activity, messages = excluded.messages,
  input_tokens = excluded.input_tokens, output_tokens = excluded.output_tokens,
  cache_read_tokens = excluded.cache_read_tokens, cache_write_tokens = excluded.cache_write_tokens,
  total_tokens = excluded.total_tokens, cost_usd = excluded.cost_usd, unpriced_messages = excluded.unpriced_messages,
  unpriced_tokens = excluded.unpriced_tokens, generation = excluded.generation, rev = excluded.rev, updated_at = now()
where t.generation <> excluded.generation or t.rev < excluded.rev`

// hostCols are the daily host figures: averages are sums over counts,
// percentiles come from the day's merged histogram clamped to its min and
// max (as `fleetmeter report host` computes them).
type hostCols struct {
	day                                   []int64
	samples                               []int64
	cpuAvg, cpuP95, cpuMax                []float64
	stealAvg, stealP95, stealMax          []float64
	iowaitAvg, iowaitP95, iowaitMax       []float64
	memTotal                              []int64
	memAvgPct, memP95Pct, memMaxPct       []float64
	memMaxBytes, swapMaxBytes             []int64
	load1Avg, load1Max                    []float64
	loadCoreAvg, loadCoreP95, loadCoreMax []float64
	diskAvgPct, diskMaxPct                []float64
	diskFreeMin                           []int64
	sessionsAvg, sessionsP95, sessionsMax []float64
	final                                 []bool
	rev                                   []int64
}

func p95(h *storage.Histogram, s storage.Stat) float64 {
	if s.N == 0 {
		return 0
	}
	return min(max(h.Quantile(0.95), s.Min), s.Max)
}

func (c *hostCols) add(ch *storage.Change, today int32) {
	r := ch.Host
	usedPct := func(used, free float64) float64 {
		if used+free <= 0 {
			return 0
		}
		return 100 * used / (used + free)
	}
	c.day = append(c.day, int64(r.Day))
	c.samples = append(c.samples, r.Samples)
	c.cpuAvg = append(c.cpuAvg, r.CPU.Mean())
	c.cpuP95 = append(c.cpuP95, p95(&r.CPUHist, r.CPU))
	c.cpuMax = append(c.cpuMax, r.CPU.Max)
	c.stealAvg = append(c.stealAvg, r.CPUSteal.Mean())
	c.stealP95 = append(c.stealP95, p95(&r.StealHist, r.CPUSteal))
	c.stealMax = append(c.stealMax, r.CPUSteal.Max)
	c.iowaitAvg = append(c.iowaitAvg, r.CPUIowait.Mean())
	c.iowaitP95 = append(c.iowaitP95, p95(&r.IowaitHist, r.CPUIowait))
	c.iowaitMax = append(c.iowaitMax, r.CPUIowait.Max)
	c.memTotal = append(c.memTotal, int64(r.MemTotal.Max))
	c.memAvgPct = append(c.memAvgPct, r.MemUsedPct.Mean())
	c.memP95Pct = append(c.memP95Pct, p95(&r.MemUsedPctHist, r.MemUsedPct))
	c.memMaxPct = append(c.memMaxPct, r.MemUsedPct.Max)
	c.memMaxBytes = append(c.memMaxBytes, int64(r.MemUsed.Max))
	c.swapMaxBytes = append(c.swapMaxBytes, int64(r.SwapUsed.Max))
	c.load1Avg = append(c.load1Avg, r.Load1.Mean())
	c.load1Max = append(c.load1Max, r.Load1.Max)
	c.loadCoreAvg = append(c.loadCoreAvg, r.LoadPerCore.Mean())
	c.loadCoreP95 = append(c.loadCoreP95, p95(&r.LoadPerCoreHist, r.LoadPerCore))
	c.loadCoreMax = append(c.loadCoreMax, r.LoadPerCore.Max)
	c.diskAvgPct = append(c.diskAvgPct, usedPct(r.DataUsed.Mean(), r.DataFree.Mean()))
	c.diskMaxPct = append(c.diskMaxPct, usedPct(r.DataUsed.Max, r.DataFree.Min))
	c.diskFreeMin = append(c.diskFreeMin, int64(r.DataFree.Min))
	c.sessionsAvg = append(c.sessionsAvg, r.Sessions.Mean())
	c.sessionsP95 = append(c.sessionsP95, p95(&r.SessionsHist, r.Sessions))
	c.sessionsMax = append(c.sessionsMax, r.Sessions.Max)
	c.final = append(c.final, r.Day < today)
	c.rev = append(c.rev, int64(ch.Counter))
}

func (c *hostCols) args(host, generation string) []any {
	return []any{host, generation, pq.Array(c.day), pq.Array(c.samples),
		pq.Array(c.cpuAvg), pq.Array(c.cpuP95), pq.Array(c.cpuMax),
		pq.Array(c.stealAvg), pq.Array(c.stealP95), pq.Array(c.stealMax),
		pq.Array(c.iowaitAvg), pq.Array(c.iowaitP95), pq.Array(c.iowaitMax),
		pq.Array(c.memTotal), pq.Array(c.memAvgPct), pq.Array(c.memP95Pct), pq.Array(c.memMaxPct),
		pq.Array(c.memMaxBytes), pq.Array(c.swapMaxBytes), pq.Array(c.load1Avg), pq.Array(c.load1Max),
		pq.Array(c.loadCoreAvg), pq.Array(c.loadCoreP95), pq.Array(c.loadCoreMax),
		pq.Array(c.diskAvgPct), pq.Array(c.diskMaxPct), pq.Array(c.diskFreeMin),
		pq.Array(c.sessionsAvg), pq.Array(c.sessionsP95), pq.Array(c.sessionsMax),
		pq.Array(c.final), pq.Array(c.rev)}
}

const upsertHost = `insert into public.host_metrics_daily as t (host_id, generation, day, samples,
  cpu_avg_pct, cpu_p95_pct, cpu_max_pct, steal_avg_pct, steal_p95_pct, steal_max_pct,
  iowait_avg_pct, iowait_p95_pct, iowait_max_pct, mem_total_bytes, mem_used_avg_pct, mem_used_p95_pct,
  mem_used_max_pct, mem_used_max_bytes, swap_used_max_bytes, load1_avg, load1_max,
  load_per_core_avg, load_per_core_p95, load_per_core_max, disk_data_used_avg_pct, disk_data_used_max_pct,
  disk_data_free_min_bytes, active_sessions_avg, active_sessions_p95, active_sessions_max, final, rev)
select $1, $2, date '1970-01-01' + r.day::int, r.samples, r.cpu_avg, r.cpu_p95, r.cpu_max, r.steal_avg, r.steal_p95,
  r.steal_max, r.iowait_avg, r.iowait_p95, r.iowait_max, r.mem_total, r.mem_avg, r.mem_p95, r.mem_max,
  r.mem_max_bytes, r.swap_max, r.load1_avg, r.load1_max, r.lpc_avg, r.lpc_p95, r.lpc_max, r.disk_avg, r.disk_max,
  r.disk_free_min, r.sess_avg, r.sess_p95, r.sess_max, r.final, r.rev
from unnest($3::bigint[], $4::bigint[], $5::float8[], $6::float8[], $7::float8[], $8::float8[], $9::float8[],
  $10::float8[], $11::float8[], $12::float8[], $13::float8[], $14::bigint[], $15::float8[], $16::float8[],
  $17::float8[], $18::bigint[], $19::bigint[], $20::float8[], $21::float8[], $22::float8[], $23::float8[],
  $24::float8[], $25::float8[], $26::float8[], $27::bigint[], $28::float8[], $29::float8[], $30::float8[],
  $31::boolean[], $32::bigint[])
  as r(day, samples, cpu_avg, cpu_p95, cpu_max, steal_avg, steal_p95, steal_max, iowait_avg, iowait_p95, iowait_max,
       mem_total, mem_avg, mem_p95, mem_max, mem_max_bytes, swap_max, load1_avg, load1_max, lpc_avg, lpc_p95, lpc_max,
       disk_avg, disk_max, disk_free_min, sess_avg, sess_p95, sess_max, final, rev)
on conflict (host_id, day) do update set
  samples = excluded.samples, cpu_avg_pct = excluded.cpu_avg_pct, cpu_p95_pct = excluded.cpu_p95_pct,
  cpu_max_pct = excluded.cpu_max_pct, steal_avg_pct = excluded.steal_avg_pct, steal_p95_pct = excluded.steal_p95_pct,
  steal_max_pct = excluded.steal_max_pct, iowait_avg_pct = excluded.iowait_avg_pct,
  iowait_p95_pct = excluded.iowait_p95_pct, iowait_max_pct = excluded.iowait_max_pct,
  mem_total_bytes = excluded.mem_total_bytes, mem_used_avg_pct = excluded.mem_used_avg_pct,
  mem_used_p95_pct = excluded.mem_used_p95_pct, mem_used_max_pct = excluded.mem_used_max_pct,
  mem_used_max_bytes = excluded.mem_used_max_bytes, swap_used_max_bytes = excluded.swap_used_max_bytes,
  load1_avg = excluded.load1_avg, load1_max = excluded.load1_max, load_per_core_avg = excluded.load_per_core_avg,
  load_per_core_p95 = excluded.load_per_core_p95, load_per_core_max = excluded.load_per_core_max,
  disk_data_used_avg_pct = excluded.disk_data_used_avg_pct, disk_data_used_max_pct = excluded.disk_data_used_max_pct,
  disk_data_free_min_bytes = excluded.disk_data_free_min_bytes, active_sessions_avg = excluded.active_sessions_avg,
  active_sessions_p95 = excluded.active_sessions_p95, active_sessions_max = excluded.active_sessions_max,
  final = t.final or excluded.final, generation = excluded.generation, rev = excluded.rev, updated_at = now()
where t.generation <> excluded.generation or t.rev < excluded.rev`

type agentCols struct {
	id, name, team, owner []string
	retired               []bool
	rev                   []int64
}

func (c *agentCols) add(ch *storage.Change) {
	c.id = append(c.id, pgText(ch.Agent.ID))
	c.name = append(c.name, pgText(ch.Agent.Name))
	c.team = append(c.team, pgText(ch.Agent.Team))
	c.owner = append(c.owner, pgText(ch.Agent.Owner))
	c.retired = append(c.retired, ch.Gone)
	c.rev = append(c.rev, int64(ch.Counter))
}

func (c *agentCols) args(host, generation string) []any {
	return []any{host, generation, pq.Array(c.id), pq.Array(c.name), pq.Array(c.team), pq.Array(c.owner),
		pq.Array(c.retired), pq.Array(c.rev)}
}

const upsertAgents = `insert into public.fleet_agents as t (host_id, generation, agent_id, display_name, team, owner, retired, rev)
select $1, $2, r.id, r.name, r.team, r.owner, r.retired, r.rev
from unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::bigint[]) as r(id, name, team, owner, retired, rev)
on conflict (host_id, agent_id) do update set
  display_name = case when excluded.retired then t.display_name else excluded.display_name end,
  team = case when excluded.retired then t.team else excluded.team end,
  owner = case when excluded.retired then t.owner else excluded.owner end,
  retired = excluded.retired, generation = excluded.generation, rev = excluded.rev, updated_at = now()
where t.generation <> excluded.generation or t.rev < excluded.rev`

// The round's first statement: the upstream schema version (to refuse a
// schema this binary does not know before writing anything), what upstream
// last heard from this host (as JSON, which survives column changes), a
// statement timeout for the rest of the transaction, and, when $4, whether
// PostgreSQL knows the zone $3 (pg_timezone_names reads every zone file:
// ~40 ms, so the worker asks once, not every batch; the views cut days
// with it).
const roundStart = `select coalesce((select max(version) from public.fleetmeter_schema_migrations), 0),
  coalesce((select to_jsonb(f)::text from public.fleet_instances f where f.host_id = $1), ''),
  set_config('statement_timeout', $2, true),
  case when $4::boolean then coalesce((select name from pg_timezone_names where name = $3::text limit 1), '') end`

// The round's last statement: the host's own row, every batch.
const upsertInstance = `insert into public.fleet_instances as t (host_id, hostname, instance_type, fleetmeter_version,
  openclaw_version, tz, generation, last_rev, pending_rows, quarantined_rows, last_seen, last_sync)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
  now(), case when $11::boolean then now() end)
on conflict (host_id) do update set
  hostname = excluded.hostname, instance_type = excluded.instance_type, fleetmeter_version = excluded.fleetmeter_version,
  openclaw_version = case when excluded.openclaw_version <> '' then excluded.openclaw_version else t.openclaw_version end,
  tz = excluded.tz,
  last_rev = case when t.generation = excluded.generation then greatest(t.last_rev, excluded.last_rev) else excluded.last_rev end,
  generation = excluded.generation, pending_rows = excluded.pending_rows, quarantined_rows = excluded.quarantined_rows,
  last_seen = now(), last_sync = coalesce(excluded.last_sync, t.last_sync)`

// A zone change recut the host's days: its old rows go before the new ones
// arrive (in the same transaction as the first of them).
const deleteHostDays = `with d as (delete from public.token_usage_daily where host_id = $1)
delete from public.host_metrics_daily where host_id = $1`
