-- fleetmeter upstream schema, version 1.
--
-- Every host writes its own rows (host_id is the first column of every key)
-- as the least-privilege role fleetmeter_sync; the dashboard reads as
-- `authenticated`. Values are absolute, never increments: a host may send a
-- row any number of times, and a row with a lower (generation, rev) never
-- overwrites a newer one (see the WHERE of the upserts in sync/rows.go).
--
-- Supabase since 2026: new tables and views in public are not exposed to the
-- Data API until granted, so every table and view below is granted
-- explicitly; views are security_invoker so that RLS applies to whoever
-- reads them; RLS is enabled on every table, read policies are `to
-- authenticated`, never `to public`. Older projects' default privileges may
-- have granted anon and authenticated everything on new tables: revoked.

do $$
begin
  -- Supabase projects have these roles; a plain PostgreSQL gets them
  -- without login, so the grants and policies below have someone to name.
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  -- The hosts' role. Created without login: the admin gives it a password
  -- (README, "Upstream sync (Supabase)").
  if not exists (select 1 from pg_roles where rolname = 'fleetmeter_sync') then
    create role fleetmeter_sync nologin noinherit;
  end if;
end
$$;

grant usage on schema public to fleetmeter_sync, authenticated;

-- One row per host: who it is and how its sync is doing.
create table public.fleet_instances (
  host_id            text primary key,
  hostname           text not null default '',
  instance_type      text not null default '',
  fleetmeter_version text not null default '',
  openclaw_version   text not null default '',
  tz                 text not null default 'UTC',   -- the zone that cuts this host's days
  generation         text not null,                 -- lineage of the host's database file
  last_rev           bigint not null default 0,     -- highest change counter sent
  pending_rows       bigint not null default 0,     -- outbox entries left after the last batch
  quarantined_rows   bigint not null default 0,
  first_seen         timestamptz not null default now(),
  last_seen          timestamptz not null default now(),
  last_sync          timestamptz                    -- the last round that left nothing pending
);

-- Per day (in the host's zone), agent, user and model.
create table public.token_usage_daily (
  host_id              text not null,
  day                  date not null,
  source               text not null,               -- openclaw, claude, codex
  agent                text not null,
  user_id              text not null,               -- <channel>:<sender id>; '' = no human (cron, heartbeat, sub-agent)
  user_label           text not null default '',
  provider             text not null,
  model                text not null,
  messages             bigint not null,
  input_tokens         bigint not null,
  output_tokens        bigint not null,
  cache_read_tokens    bigint not null,
  cache_write_tokens   bigint not null,
  total_tokens         bigint not null,
  cost_usd             numeric(24, 9) not null,
  input_cost_usd       numeric(24, 9) not null,
  output_cost_usd      numeric(24, 9) not null,
  cache_read_cost_usd  numeric(24, 9) not null,
  cache_write_cost_usd numeric(24, 9) not null,
  unpriced_messages    bigint not null,
  unpriced_tokens      bigint not null,
  final                boolean not null default false, -- the day had ended when this was sent
  generation           text not null,
  rev                  bigint not null,
  updated_at           timestamptz not null default now(),
  restated_at          timestamptz,                 -- set when a final day's figures changed
  primary key (host_id, day, source, agent, user_id, provider, model)
);
create index token_usage_daily_day on public.token_usage_daily (day);

-- Per session and model: a snapshot of the session's totals.
create table public.token_usage (
  host_id              text not null,
  source               text not null,
  session_id           text not null,
  provider             text not null,
  model                text not null,
  session_key          text not null default '',
  agent                text not null default '',
  channel              text not null default '',
  first_activity       timestamptz not null,
  last_activity        timestamptz not null,
  messages             bigint not null,
  input_tokens         bigint not null,
  output_tokens        bigint not null,
  cache_read_tokens    bigint not null,
  cache_write_tokens   bigint not null,
  total_tokens         bigint not null,
  cost_usd             numeric(24, 9) not null,
  unpriced_messages    bigint not null,
  unpriced_tokens      bigint not null,
  generation           text not null,
  rev                  bigint not null,
  updated_at           timestamptz not null default now(),
  primary key (host_id, source, session_id, provider, model)
);
create index token_usage_last_activity on public.token_usage (last_activity);

-- The host by day: averages are sums over counts and percentiles come from
-- merged histograms on the host, never averages of averages.
create table public.host_metrics_daily (
  host_id                  text not null,
  day                      date not null,
  samples                  bigint not null,
  cpu_avg_pct              double precision not null,
  cpu_p95_pct              double precision not null,
  cpu_max_pct              double precision not null,
  steal_avg_pct            double precision not null,
  steal_p95_pct            double precision not null,
  steal_max_pct            double precision not null,
  iowait_avg_pct           double precision not null,
  iowait_p95_pct           double precision not null,
  iowait_max_pct           double precision not null,
  mem_total_bytes          bigint not null,
  mem_used_avg_pct         double precision not null,
  mem_used_p95_pct         double precision not null,
  mem_used_max_pct         double precision not null,
  mem_used_max_bytes       bigint not null,
  swap_used_max_bytes      bigint not null,
  load1_avg                double precision not null,
  load1_max                double precision not null,
  load_per_core_avg        double precision not null,
  load_per_core_p95        double precision not null,
  load_per_core_max        double precision not null,
  disk_data_used_avg_pct   double precision not null,
  disk_data_used_max_pct   double precision not null,
  disk_data_free_min_bytes bigint not null,
  active_sessions_avg      double precision not null,
  active_sessions_p95      double precision not null,
  active_sessions_max      double precision not null,
  final                    boolean not null default false,
  generation               text not null,
  rev                      bigint not null,
  updated_at               timestamptz not null default now(),
  primary key (host_id, day)
);

-- The agent registry of each host's config ([[agents]]).
create table public.fleet_agents (
  host_id      text not null,
  agent_id     text not null,
  display_name text not null default '',
  team         text not null default '',
  owner        text not null default '',
  retired      boolean not null default false,    -- gone from the host's config
  generation   text not null,
  rev          bigint not null,
  updated_at   timestamptz not null default now(),
  primary key (host_id, agent_id)
);

-- Weeks are computed from the days, so a week always equals the sum of its
-- days, also after a late file restated a closed day. The trend compares
-- each row with the same host, agent, user and model the ISO week before.
create view public.token_usage_weekly with (security_invoker = true) as
with w as (
  select host_id, date_trunc('week', day)::date as week_start, source, agent, user_id, provider, model,
         max(user_label) as user_label,
         sum(messages)::bigint as messages,
         sum(input_tokens)::bigint as input_tokens,
         sum(output_tokens)::bigint as output_tokens,
         sum(cache_read_tokens)::bigint as cache_read_tokens,
         sum(cache_write_tokens)::bigint as cache_write_tokens,
         sum(total_tokens)::bigint as total_tokens,
         sum(cost_usd) as cost_usd,
         sum(input_cost_usd) as input_cost_usd,
         sum(output_cost_usd) as output_cost_usd,
         sum(cache_read_cost_usd) as cache_read_cost_usd,
         sum(cache_write_cost_usd) as cache_write_cost_usd,
         sum(unpriced_messages)::bigint as unpriced_messages,
         sum(unpriced_tokens)::bigint as unpriced_tokens,
         max(updated_at) as updated_at,
         max(restated_at) as restated_at
  from public.token_usage_daily
  group by host_id, date_trunc('week', day)::date, source, agent, user_id, provider, model
), t as (
  select w.*,
         case when lag(week_start) over d = week_start - 7 then lag(cost_usd) over d else 0 end as previous_week_cost_usd
  from w
  window d as (partition by host_id, source, agent, user_id, provider, model order by week_start)
)
select t.*,
       cost_usd - previous_week_cost_usd as cost_change_usd,
       case when previous_week_cost_usd > 0
            then round((cost_usd - previous_week_cost_usd) / previous_week_cost_usd * 100, 2) end as cost_change_pct
from t;

-- Today in each host's own zone.
create view public.token_usage_today with (security_invoker = true) as
select d.*
from public.token_usage_daily d
join public.fleet_instances i on i.host_id = d.host_id
where d.day = (now() at time zone i.tz)::date;

-- The last 7 days (today and the 6 before, in each host's zone), across the fleet.
create view public.token_usage_7d_by_agent with (security_invoker = true) as
select d.source, d.agent,
       count(distinct d.host_id) as hosts,
       sum(d.messages)::bigint as messages,
       sum(d.input_tokens)::bigint as input_tokens,
       sum(d.output_tokens)::bigint as output_tokens,
       sum(d.cache_read_tokens)::bigint as cache_read_tokens,
       sum(d.cache_write_tokens)::bigint as cache_write_tokens,
       sum(d.total_tokens)::bigint as total_tokens,
       sum(d.cost_usd) as cost_usd,
       sum(d.unpriced_messages)::bigint as unpriced_messages,
       sum(d.unpriced_tokens)::bigint as unpriced_tokens
from public.token_usage_daily d
join public.fleet_instances i on i.host_id = d.host_id
where d.day > (now() at time zone i.tz)::date - 7
group by d.source, d.agent;

create view public.token_usage_7d_by_user with (security_invoker = true) as
select d.user_id, max(d.user_label) as user_label,
       count(distinct d.host_id) as hosts,
       sum(d.messages)::bigint as messages,
       sum(d.input_tokens)::bigint as input_tokens,
       sum(d.output_tokens)::bigint as output_tokens,
       sum(d.cache_read_tokens)::bigint as cache_read_tokens,
       sum(d.cache_write_tokens)::bigint as cache_write_tokens,
       sum(d.total_tokens)::bigint as total_tokens,
       sum(d.cost_usd) as cost_usd,
       sum(d.unpriced_messages)::bigint as unpriced_messages,
       sum(d.unpriced_tokens)::bigint as unpriced_tokens
from public.token_usage_daily d
join public.fleet_instances i on i.host_id = d.host_id
where d.day > (now() at time zone i.tz)::date - 7
group by d.user_id;

-- Privileges: nothing for anon or public; the dashboard reads; hosts write.
revoke all on public.fleet_instances, public.token_usage_daily, public.token_usage, public.host_metrics_daily,
  public.fleet_agents, public.fleetmeter_schema_migrations from public, anon, authenticated;
revoke all on public.token_usage_weekly, public.token_usage_today, public.token_usage_7d_by_agent,
  public.token_usage_7d_by_user from public, anon, authenticated;

grant select on public.fleet_instances, public.token_usage_daily, public.token_usage, public.host_metrics_daily,
  public.fleet_agents, public.token_usage_weekly, public.token_usage_today, public.token_usage_7d_by_agent,
  public.token_usage_7d_by_user to authenticated;

-- An upsert needs SELECT, INSERT and UPDATE. DELETE only where a zone change
-- recuts a host's days (the host's rows are then replaced).
grant select, insert, update on public.fleet_instances, public.token_usage, public.fleet_agents to fleetmeter_sync;
grant select, insert, update, delete on public.token_usage_daily, public.host_metrics_daily to fleetmeter_sync;
grant select on public.fleetmeter_schema_migrations to fleetmeter_sync;

alter table public.fleet_instances enable row level security;
alter table public.token_usage_daily enable row level security;
alter table public.token_usage enable row level security;
alter table public.host_metrics_daily enable row level security;
alter table public.fleet_agents enable row level security;
alter table public.fleetmeter_schema_migrations enable row level security;

create policy dashboard_read on public.fleet_instances for select to authenticated using (true);
create policy dashboard_read on public.token_usage_daily for select to authenticated using (true);
create policy dashboard_read on public.token_usage for select to authenticated using (true);
create policy dashboard_read on public.host_metrics_daily for select to authenticated using (true);
create policy dashboard_read on public.fleet_agents for select to authenticated using (true);

create policy hosts_write on public.fleet_instances for all to fleetmeter_sync using (true) with check (true);
create policy hosts_write on public.token_usage_daily for all to fleetmeter_sync using (true) with check (true);
create policy hosts_write on public.token_usage for all to fleetmeter_sync using (true) with check (true);
create policy hosts_write on public.host_metrics_daily for all to fleetmeter_sync using (true) with check (true);
create policy hosts_write on public.fleet_agents for all to fleetmeter_sync using (true) with check (true);
create policy hosts_read_version on public.fleetmeter_schema_migrations for select to fleetmeter_sync using (true);
