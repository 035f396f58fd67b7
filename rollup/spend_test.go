package rollup

import (
	"fmt"
	"testing"
	"time"

	"github.com/fleetmeter/fleetmeter/storage"
)

func spendCall(key string, ts time.Time, agent string, usd float64, output int64) storage.Usage {
	return storage.Usage{TS: ts.UnixMilli(), Source: storage.SourceOpenClaw, Agent: agent, SessionID: "s-" + agent,
		Provider: "anthropic", Model: "m", Input: 10, Output: output, Cost: storage.Cost{Total: usd},
		CostSource: storage.CostTranscript, DedupeKey: key}
}

// The index follows the ledger: new calls, late calls on past days and
// larger copies replacing a call show after Refresh, and a refresh with
// nothing new reads no ledger day.
func TestSpendIndexFollowsLedger(t *testing.T) {
	loc, _ := time.LoadLocation("America/New_York")
	db, err := storage.Open(t.TempDir()+"/f.db", storage.Options{Location: loc})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	apply := func(us ...storage.Usage) {
		t.Helper()
		if _, err := db.Apply(&storage.Batch{Records: us}); err != nil {
			t.Fatal(err)
		}
	}
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
