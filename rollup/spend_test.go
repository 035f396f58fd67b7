package rollup

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

func spendCall(key string, ts time.Time, agent string, usd float64, output int64) storage.Usage {
	return storage.Usage{TS: ts.UnixMilli(), Source: storage.SourceOpenClaw, Agent: agent, SessionID: "s-" + agent,
		Provider: "anthropic", Model: "m", Input: 10, Output: output, Cost: storage.Cost{Total: usd},
		CostSource: storage.CostTranscript, DedupeKey: key}
}

// spendDB is a new database in loc, and a function recording calls in it.
func spendDB(t *testing.T, loc *time.Location) (*storage.DB, func(...storage.Usage)) {
	db, err := storage.Open(t.TempDir()+"/f.db", storage.Options{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, func(us ...storage.Usage) {
		t.Helper()
		if _, err := db.Apply(&storage.Batch{Records: us}); err != nil {
			t.Fatal(err)
		}
	}
}

// The index follows the ledger: new calls, late calls on past days and
// larger copies replacing a call show after Refresh, and a refresh with
// nothing new reads no ledger day.
func TestSpendIndexFollowsLedger(t *testing.T) {
	loc, _ := time.LoadLocation("America/New_York")
	db, apply := spendDB(t, loc)
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, loc)
	var calls []storage.Usage
	for h := range 10 * 24 { // $0.25 an hour for 10 days, for two agents
		for _, a := range []string{"a", "b"} {
			calls = append(calls, spendCall(fmt.Sprintf("%s%d", a, h), now.Add(-time.Duration(h)*time.Hour-time.Minute), a, 0.25, 5))
		}
	}
	apply(calls...)
	x := NewSpendIndex(db, 7*24*time.Hour, AllSpendDims)
	if err := x.Refresh(now); err != nil {
		t.Fatal(err)
	}
	onlyA := func(d storage.Dim) bool { return d.Agent == "a" }
	day := func() float64 {
		return storage.USD(x.Spend(now.Add(-24*time.Hour).UnixMilli(), now.UnixMilli(), onlyA).CostNanos)
	}
	if got := day(); got != 6 {
		t.Errorf("a's last 24 h: $%v, want $6", got)
	}
	read := x.DaysRead
	if read < 8 {
		t.Errorf("first refresh read %d days, want the horizon's 8 or more", read)
	}
	if err := x.Refresh(now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if x.DaysRead != read {
		t.Errorf("a refresh with nothing new read %d days", x.DaysRead-read)
	}
	apply(spendCall("new", now.Add(-10*time.Minute), "a", 1, 5), spendCall("late", now.Add(-3*24*time.Hour), "a", 2, 5))
	if err := x.Refresh(now.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := day(); got != 7 {
		t.Errorf("with a new call: $%v, want $7", got)
	}
	if got := storage.USD(x.Spend(now.Add(-4*24*time.Hour).UnixMilli(), now.Add(-2*24*time.Hour).UnixMilli(), onlyA).CostNanos); got != 14 {
		t.Errorf("days 4 to 2 back: $%v, want 12 + the late $2", got)
	}
	if x.DaysRead != read+2 {
		t.Errorf("read %d days for a call today and one late; want 2", x.DaysRead-read)
	}
	apply(spendCall("early", now.Add(-5*time.Hour), "a", 0.5, 5)) // today, but before the last minutes read first
	if err := x.Refresh(now.Add(150 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := day(); got != 7.5 {
		t.Errorf("with a call 5 hours back: $%v, want $7.50", got)
	}
	apply(spendCall("early", now.Add(-5*time.Hour), "a", 2, 50)) // a larger copy of the same call
	if err := x.Refresh(now.Add(3 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := day(); got != 9 {
		t.Errorf("after a larger copy replaced the call: $%v, want $9", got)
	}
	hourly := x.HourlySpend(now.Add(-3*time.Hour).UnixMilli(), now.UnixMilli(), func(d storage.Dim) string { return d.Agent })
	if a, b := hourly["a"], hourly["b"]; len(a) != 3 || a[0] != 250e6 || a[2] != 1250e6 || b[1] != 250e6 {
		t.Errorf("hourly %v", hourly)
	}
	if last, ok := x.LastCall(storage.SourceOpenClaw); !ok || last != now.Add(-time.Minute).UnixMilli() {
		t.Errorf("last call %v", time.UnixMilli(last))
	}
	if s := x.SessionsSince(now.Add(-time.Hour).UnixMilli()); len(s) != 2 || s[storage.SessionKey{Source: "openclaw", SessionID: "s-a"}].LastTS != now.Add(-time.Minute).UnixMilli() {
		t.Errorf("sessions %v", s)
	}
	// A week on, the old days are gone and the new ones read.
	if err := x.Refresh(now.Add(7 * 24 * time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := storage.USD(x.Spend(0, now.UnixMilli()+1, nil).CostNanos); got <= 0 || x.Start() < now.Add(-24*time.Hour).UnixMilli() {
		t.Errorf("after a week: spend %v from %v", got, time.UnixMilli(x.Start()))
	}
}

// The index holds each day's cells in arrays of their exact size, also
// after reads of a day's last minutes, and the same figures as an index
// built afresh; it keeps only the sessions of its window, marked read as
// an index keeping every session marks them (a call of an active session
// recorded late on an older day included).
func TestSpendIndexPackedAndSessionsOfWindow(t *testing.T) {
	db, apply := spendDB(t, time.UTC)
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	var calls []storage.Usage
	for m := 0; m < 3*24*60; m += 7 { // a call every 7 minutes for 3 days by each of 3 agents, a session an hour each
		for a := range 3 {
			c := spendCall(fmt.Sprintf("c%d-%d", m, a), now.Add(-time.Duration(m)*time.Minute), fmt.Sprintf("a%d", a), 0.1, 5)
			c.SessionID = fmt.Sprintf("s-%d-%d", a, m/60)
			calls = append(calls, c)
		}
	}
	apply(calls...)
	window := 2 * time.Hour
	x := NewSpendIndex(db, 7*24*time.Hour, SpendDims{Sessions: window})
	all := NewSpendIndex(db, 7*24*time.Hour, AllSpendDims)
	check := func(at time.Time) {
		t.Helper()
		for _, ix := range []*SpendIndex{x, all} {
			if err := ix.Refresh(at); err != nil {
				t.Fatal(err)
			}
		}
		for slot, cells := range x.slots {
			if len(cells) == 0 || cap(cells) != len(cells) {
				t.Fatalf("slot %v: %d cells in an array of %d", time.UnixMilli(slot), len(cells), cap(cells))
			}
		}
		fresh := NewSpendIndex(db, 7*24*time.Hour, SpendDims{})
		if err := fresh.Refresh(at); err != nil {
			t.Fatal(err)
		}
		var got, want []string
		x.Each(0, at.Add(time.Hour).UnixMilli(), func(slot int64, s *SlotSpend) {
			got = append(got, fmt.Sprint(slot, x.Dim(s.Dim), *s))
		})
		fresh.Each(0, at.Add(time.Hour).UnixMilli(), func(slot int64, s *SlotSpend) {
			want = append(want, fmt.Sprint(slot, fresh.Dim(s.Dim), *s))
		})
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) || len(got) == 0 {
			t.Fatalf("at %v: %d cells held, %d in an index built afresh", at, len(got), len(want))
		}
		since := at.Add(-window).UnixMilli()
		kept, every := x.SessionsSince(0), all.SessionsSince(since)
		if !maps.Equal(kept, every) || len(kept) == 0 || len(x.sessions) != len(kept) {
			t.Fatalf("at %v: sessions kept %v, want %v", at, kept, every)
		}
	}
	check(now)
	apply(spendCall("new", now.Add(time.Minute), "a0", 1, 5)) // read with the day's last minutes
	check(now.Add(2 * time.Minute))
	active := storage.SessionKey{Source: storage.SourceOpenClaw, SessionID: calls[0].SessionID}
	before := x.SessionsSince(0)[active]
	late := spendCall("late", now.Add(-30*time.Hour), "a0", 1, 5) // a call of an active session, recorded late on an older day
	late.SessionID = active.SessionID
	apply(late)
	check(now.Add(3 * time.Minute))
	if after := x.SessionsSince(0)[active]; after.Read == before.Read {
		t.Errorf("session %s not marked read after a call of it was read again: %+v", active.SessionID, after)
	}
	apply(spendCall("next", now.Add(26*time.Hour-time.Minute), "a1", 1, 5))
	check(now.Add(26 * time.Hour)) // a day on: the window moved, the first day dropped
}
